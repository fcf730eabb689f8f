"""The run side's contracts: what one tick returns, how a run ends, and the
View protocol the tick loop reports to (orchestrator.live_view.ConsoleView is
the terminal's). The minds' contracts live in agents.typing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.records import MemoryRow, MessageRow, PromptRow
from orchestrator.scheduler import Event


@dataclass(frozen=True, kw_only=True)
class TickResult:
    """One tick's events and dump rows, with where its time went."""

    tick: int
    events: list[Event]
    rows: list[MessageRow]
    generate_s: float
    reflect_s: float
    memory_s: float
    tick_s: float
    generate_calls: int
    prompts: list[PromptRow] = field(default_factory=list)  # empty with save_prompts off
    memories: list[MemoryRow] = field(default_factory=list)  # stored during the tick
    positions: dict[str, str] = field(default_factory=dict)  # agent id -> location at the start


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    run_id: str
    status: str  # complete | interrupted | failed
    ticks: int  # ticks completed in this run (including resumed ones)
    agents: int
    total_s: float
    ticks_this_session: int
    run_dir: str
    resume_command: str | None = None  # shown when the run did not complete

    @property
    def avg_tick_s(self) -> float:
        return self.total_s / self.ticks_this_session if self.ticks_this_session else 0.0


class View(Protocol):
    """Where the tick loop reports progress."""

    def start(self, *, first_tick: int, total_ticks: int) -> None: ...

    def on_tick(self, result: TickResult) -> None: ...

    def finish(self, summary: RunSummary) -> None: ...

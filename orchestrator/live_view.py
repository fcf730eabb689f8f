"""What the terminal shows during a run. `render_tick` and `render_summary`
are pure functions of a tick's result; ConsoleView only prints them (with
--live) or drives a progress bar (without). The engine knows nothing of this."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from agents.typing import Traits
from orchestrator.records import MessageRow
from orchestrator.safe_text import text, visible
from orchestrator.typing import RunSummary, TickResult

MESSAGE_CHARS = 90
PLAN_CHARS = 120


def render_row(row: MessageRow) -> Text:
    # names, goals and model text are untrusted: visible() escapes control,
    # format and bidi characters (a newline in a name must not forge a line)
    ok = Text("✓ ", style="green") if row.parse_ok else Text("✗ ", style="red")
    line = Text.assemble(
        ok, (visible(row.agent_id), "bold"), " ", (visible(row.agent_name), "cyan"), " "
    )
    line.append(visible(row.action), style="magenta")
    if row.action == "MOVE":
        line.append(f" → {visible(row.target)}")
    elif row.content:
        shown = visible(row.content, MESSAGE_CHARS)
        line.append(f' "{shown}"' if row.action == "SAY" else f" {shown}")
    steer = Traits(E=row.steer_E, A=row.steer_A, C=row.steer_C, O=row.steer_O, N=row.steer_N)
    line.append(
        f"\n    goal: {visible(row.goal)} [{row.prompt_tokens}→{row.completion_tokens} tokens] "
        f"{steer.label()}",
        style="dim",
    )
    if row.plan:  # the goal stays; the plan (from the last reflection) is what it is doing now
        line.append(f"\n    plan: {visible(row.plan, PLAN_CHARS)}", style="dim")
    return line


def render_tick(result: TickResult, parallel: str | None = None) -> RenderableType:
    """`parallel` names the ranks of a distributed run, e.g. '2 ranks, data parallel'."""
    ranks = f" | {parallel}" if parallel else ""
    header = Text(
        f"TICK {result.tick} | {len(result.events)} events scheduled{ranks}", style="bold yellow"
    )
    rows = [render_row(r) for r in result.rows]
    reflect = f", reflection {result.reflect_s:.2f} s" if result.reflect_s else ""
    footer = Text(
        f"tick {result.tick} took {result.tick_s:.2f} s (generate {result.generate_s:.2f} s{reflect})",
        style="dim",
    )
    return Group(header, *rows, footer, Text(""))


def render_summary(summary: RunSummary) -> RenderableType:
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    table.add_row("run id", text(summary.run_id))
    table.add_row("status", summary.status)
    table.add_row("ticks", str(summary.ticks))
    table.add_row("agents", str(summary.agents))
    table.add_row("total time", f"{summary.total_s:.1f} s")
    table.add_row("avg time/tick", f"{summary.avg_tick_s:.3f} s")
    table.add_row("dumps", text(summary.run_dir))  # a path may hold '[': not markup
    if summary.status != "complete" and summary.resume_command:
        table.add_row("resume with", text(summary.resume_command))
    title = (
        "SIMULATION COMPLETE"
        if summary.status == "complete"
        else f"SIMULATION {summary.status.upper()}"
    )
    style = "green" if summary.status == "complete" else "yellow"
    return Panel(table, title=title, border_style=style, expand=False)


class TicksPerSecond(ProgressColumn):
    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:.2f} ticks/s" if speed else "- ticks/s", style="cyan")


class StopOnBrokenPipe(Console):
    """A console whose broken stdout (`--live | head`) raises BrokenPipeError,
    which the runner turns into a stop like SIGTERM; Rich's own handling would
    exit the process at once, leaving the manifest behind."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        raise BrokenPipeError


class ConsoleView:
    """Prints tick renderings (live) or a progress bar, then the summary panel."""

    def __init__(
        self,
        *,
        live: bool,
        no_color: bool,
        console: Console | None = None,
        parallel: str | None = None,  # a distributed run's ranks and mode
    ) -> None:
        self.live = live
        self.parallel = parallel
        self.console = console or StopOnBrokenPipe(
            no_color=no_color,
            highlight=False,
            emoji=False,
            color_system=None if no_color else "auto",
        )
        self._progress: Progress | None = None
        self._task = None

    def start(self, *, first_tick: int, total_ticks: int) -> None:
        if self.live:
            return
        self._progress = Progress(
            TextColumn(f"[bold]ticks[/bold] ({self.parallel})" if self.parallel else "[bold]ticks"),
            BarColumn(),
            MofNCompleteColumn(),
            TicksPerSecond(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=self.console,
            transient=False,
        )
        self._progress.start()
        self._task = self._progress.add_task("run", total=total_ticks, completed=first_tick)

    def on_tick(self, result: TickResult) -> None:
        if self.live:
            self.console.print(render_tick(result, self.parallel))
        elif self._progress is not None:
            self._progress.advance(self._task)

    def finish(self, summary: RunSummary) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None
        self.console.print(render_summary(summary))

"""The replay page of a run: one self-contained replay.html (no server, no
network) with a tick slider, a map of where every agent was, the tick's
events and, per agent, the prompt and memories behind each action.
data.py reads the run, page.py writes the HTML, assets/ holds the template."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

REPLAY_FILE = "replay.html"


@dataclass(frozen=True, kw_only=True)
class ReplayWritten:
    path: Path
    bytes: int
    agents: int
    ticks: int


def write_replay(run_dir: Path, out: Path | None = None) -> ReplayWritten:
    """Write the replay page of the run in `run_dir` (default <run_dir>/replay.html),
    atomically: a reader never sees half a page."""
    from orchestrator.replay.data import build_replay_data
    from orchestrator.replay.page import render
    from orchestrator.storage import atomic_write

    data = build_replay_data(run_dir)
    html = render(data).encode("utf-8")
    path = out or run_dir / REPLAY_FILE
    atomic_write(path, lambda p: p.write_bytes(html))
    log.info("replay of %s: %s (%d bytes)", run_dir, path, len(html))
    return ReplayWritten(
        path=path, bytes=len(html), agents=len(data.meta["agents"]), ticks=len(data.meta["ticks"])
    )

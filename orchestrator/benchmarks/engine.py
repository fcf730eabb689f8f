"""The engine's own overhead: a mock run (no model, no live view) of the fast
config at a given size, timed end to end and broken down with the run's own
perf.parquet (engine step, mock generation, memory, I/O and checkpoints)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

from orchestrator.benchmarks import FAST_CONFIG


class _Quiet:
    """A View that shows nothing: the benchmark times the engine, not the terminal."""

    def start(self, *, first_tick: int, total_ticks: int) -> None: ...
    def on_tick(self, result: object) -> None: ...
    def finish(self, summary: object) -> None: ...


# the run's folders and files whose sizes the benchmark reports
DUMP_PARTS = ("messages", "prompts", "memories", "positions", "checkpoint")


def bench_engine(
    *, agents: int = 100, ticks: int = 200, max_events: int = 24, save_prompts: bool = True
) -> dict[str, Any]:
    """One mock run of `agents` x `ticks` with at most `max_events` events per
    tick; with save_prompts off, the run writes no prompts/ (its cost is the
    difference)."""
    from orchestrator.config_loader import load_config
    from orchestrator.runner import run_simulation

    with tempfile.TemporaryDirectory() as tmp:
        resolved = load_config(
            FAST_CONFIG,
            [
                "model.backend=mock",
                f"population.agents={agents}",
                f"ticks={ticks}",
                f"max_events_per_tick={max_events}",
                f"storage.root={tmp}",
                f"storage.save_prompts={str(save_prompts).lower()}",
                "run_id=bench",
            ],
        )
        start = time.perf_counter()
        run_simulation(resolved, _Quiet())
        wall = time.perf_counter() - start
        run = Path(tmp) / "dumps" / "bench"
        perf = pd.read_parquet(run / "perf.parquet")
        sizes = {part: _size(run / part) for part in DUMP_PARTS}
    step_s = float(perf["tick_s"].sum())
    return {
        "benchmark": "engine",
        "agents": agents,
        "ticks": ticks,
        "max_events": max_events,
        "save_prompts": save_prompts,
        "requests": int(perf["requests"].sum()),
        "wall_s": round(wall, 2),
        "per_tick_ms": round(1000 * wall / ticks, 2),
        "engine_step_s": round(step_s, 2),
        "generate_mock_s": round(float(perf["generate_s"].sum()), 2),
        "memory_s": round(float(perf["memory_s"].sum()), 2),
        "io_and_checkpoint_s": round(wall - step_s, 2),
        "peak_rss_mb": round(float(perf["rss_mb"].max()), 1),
        "dump_mb": {part: round(size / 1e6, 2) for part, size in sizes.items()},
    }


def _size(path: Path) -> int:
    """Bytes of a file, or of the files under a folder."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())

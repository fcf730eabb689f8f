#!/usr/bin/env python
"""steersim benchmarks: one entry point for all of them. Each prints its
numbers; none asserts a target (the targets and results are in the README).

    python scripts/benchmark.py engine     # mock run, 100 agents x 200 ticks (target < 20 s)
    python scripts/benchmark.py batching   # SmolLM2 on CPU: 16 x 48 tokens batched vs one at a time
    python scripts/benchmark.py memory     # retrieval 1,000 agents x 500 memories; RSS of a long run
    python scripts/benchmark.py gpu        # random-weight real architectures on a GPU

Options after the sub-command go to it (`python scripts/benchmark.py gpu --help`).
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

import pandas as pd
import typer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

app = typer.Typer(add_completion=False, no_args_is_help=True)


@app.callback(help=__doc__)
def _main() -> None:
    """Keeps sub-commands even while there is only one."""


def _emit(result: dict, json_path: Path | None) -> None:
    for k, v in result.items():
        print(f"{k:>28}: {v}")
    if json_path:
        existing = json.loads(json_path.read_text()) if json_path.exists() else []
        json_path.write_text(json.dumps([*existing, result], indent=2))


class _Quiet:
    def start(self, **_: object) -> None: ...
    def on_tick(self, _: object) -> None: ...
    def finish(self, _: object) -> None: ...


@app.command()
def engine(
    agents: int = 100,
    ticks: int = 200,
    max_events: Annotated[int, typer.Option(help="events per tick")] = 24,
    json_out: Annotated[Path | None, typer.Option("--json")] = None,
) -> None:
    """The engine's own overhead: a mock run (no model), no live view."""
    from orchestrator.config_loader import load_config
    from orchestrator.runner import run_simulation

    with tempfile.TemporaryDirectory() as tmp:
        resolved = load_config(
            REPO / "configs" / "run.fast.yaml",
            [
                "model.backend=mock",
                f"population.agents={agents}",
                f"ticks={ticks}",
                f"max_events_per_tick={max_events}",
                f"storage.root={tmp}",
                "run_id=bench",
            ],
        )
        start = time.perf_counter()
        run_simulation(resolved, _Quiet())
        wall = time.perf_counter() - start
        perf = pd.read_parquet(Path(tmp) / "dumps" / "bench" / "perf.parquet")
    _emit(
        {
            "benchmark": "engine",
            "agents": agents,
            "ticks": ticks,
            "requests": int(perf["requests"].sum()),
            "wall_s": round(wall, 2),
            "per_tick_ms": round(1000 * wall / ticks, 2),
            "engine_step_s": round(float(perf["tick_s"].sum()), 2),
            "generate_s (mock)": round(float(perf["generate_s"].sum()), 2),
            "memory_s": round(float(perf["memory_s"].sum()), 2),
            "io_and_checkpoint_s": round(wall - float(perf["tick_s"].sum()), 2),
            "peak_rss_mb": round(float(perf["rss_mb"].max()), 1),
        },
        json_out,
    )


_PASS_THROUGH = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}


def _delegate(module: str, ctx: typer.Context) -> None:
    """Run scripts/<module>.py's argparse main with the remaining arguments."""
    import importlib

    sys.argv = [f"{module}.py", *ctx.args]
    result = importlib.import_module(f"scripts.{module}").main()
    raise typer.Exit(int(result or 0))


@app.command(context_settings=_PASS_THROUGH)
def batching(ctx: typer.Context) -> None:
    """Batched vs one-at-a-time generation with SmolLM2 on CPU (scripts/benchmark_batching.py)."""
    _delegate("benchmark_batching", ctx)


@app.command(context_settings=_PASS_THROUGH)
def memory(ctx: typer.Context) -> None:
    """Retrieval time and memory footprint (scripts/benchmark_memory.py)."""
    _delegate("benchmark_memory", ctx)


@app.command(context_settings=_PASS_THROUGH)
def gpu(ctx: typer.Context) -> None:
    """HF backend throughput on a GPU with random-weight models (scripts/benchmark_gpu.py)."""
    _delegate("benchmark_gpu", ctx)


if __name__ == "__main__":
    app()

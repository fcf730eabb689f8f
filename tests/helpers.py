"""Small helpers shared by tests: run the CLI, read a run's dumps."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd

from orchestrator.records import TIMING_COLUMNS
from tests.conftest import REPO


def cli(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """`python -m orchestrator.cli ARGS` in a subprocess (real exit codes, real stderr)."""
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def read_messages(run_dir: Path) -> pd.DataFrame:
    files = sorted((run_dir / "messages").glob("tick_*.parquet"))
    return pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)


def comparable_dumps(run_dir: Path) -> dict[str, object]:
    """Everything a run wrote, minus what measures time and the run's own name."""
    out: dict[str, object] = {}
    for f in sorted(run_dir.rglob("*.parquet")):
        if "checkpoint" in f.parts:
            continue
        df = pd.read_parquet(f)
        drop = [c for c in (*TIMING_COLUMNS, "run_id") if c in df]
        out[str(f.relative_to(run_dir))] = df.drop(columns=drop)
    config = json.loads((run_dir / "manifest.json").read_text())["config"]
    config.pop("run_id")
    out["manifest.config"] = config
    return out


def assert_same_dumps(a: Path, b: Path) -> None:
    da, db = comparable_dumps(a), comparable_dumps(b)
    assert da.keys() == db.keys()
    for key in da:
        if isinstance(da[key], pd.DataFrame):
            pd.testing.assert_frame_equal(da[key], db[key], obj=key)
        else:
            assert da[key] == db[key], key


def small_mock_runs(root: Path, *, ticks: int = 2) -> Path:
    """Two small mock runs, "a" and "b", under `root` (4 agents, `ticks` ticks):
    good runs for the hostile-input tests to read, copy and damage."""
    from orchestrator.config_loader import load_config
    from orchestrator.live_view import ConsoleView
    from orchestrator.runner import run_simulation
    from tests.conftest import CONFIGS

    for run_id in ("a", "b"):
        resolved = load_config(
            CONFIGS / "run.fast.yaml",
            ["model.backend=mock", f"ticks={ticks}", "population.agents=4"]
            + ["max_events_per_tick=4", f"run_id={run_id}", f"storage.root={root}"],
        )
        run_simulation(resolved, ConsoleView(live=False, no_color=True))
    return root


def cli_exit(argv: list[str], capsys) -> tuple[int, str]:
    """steersim's main in-process: its exit code and its stderr, stripped."""
    import pytest

    from orchestrator.cli import main as cli_main

    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    return info.value.code, capsys.readouterr().err.strip()

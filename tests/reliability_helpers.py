"""Shared by the reliability tests: small mock runs (in-process and through
the command line), a backend that is interrupted at a chosen call, and the
fault launcher."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from agents.backends import build_backend
from agents.typing import Generation, Request
from orchestrator.assemble import backend_spec
from orchestrator.config_loader import ResolvedConfig, load_config
from orchestrator.live_view import ConsoleView
from orchestrator.runner import resume_simulation, run_simulation
from orchestrator.typing import RunSummary
from tests.conftest import CONFIGS, REPO
from tests.helpers import comparable_dumps

TICKS, AGENTS = 6, 8
LAUNCHER = REPO / "tests" / "fault_launcher.py"


def run_args(root: Path, run_id: str, ticks: int = TICKS, agents: int = AGENTS) -> list[str]:
    """CLI arguments of a small mock run under `root`."""
    return [
        str(CONFIGS / "run.fast.yaml"),
        "--mock-model",
        "--set",
        f"ticks={ticks}",
        "--set",
        f"population.agents={agents}",
        "--set",
        f"storage.root={root}",
        "--run-id",
        run_id,
    ]


def resolved(root: Path, run_id: str, ticks: int = TICKS, agents: int = AGENTS) -> ResolvedConfig:
    return load_config(
        CONFIGS / "run.fast.yaml",
        [
            "model.backend=mock",
            f"ticks={ticks}",
            f"population.agents={agents}",
            f"storage.root={root}",
            f"run_id={run_id}",
        ],
    )


def quiet_view() -> ConsoleView:
    return ConsoleView(live=False, no_color=True)


class InterruptAt:
    """The run's own backend, interrupted (KeyboardInterrupt, as by a second
    Ctrl+C) at its `at`-th generate call: the tick in progress is abandoned."""

    def __init__(self, inner: Any, at: int) -> None:
        self.inner, self.at, self.calls = inner, at, 0

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.calls += 1
        if self.calls == self.at:
            raise KeyboardInterrupt
        return self.inner.generate(requests)

    def __getattr__(self, name: str) -> Any:  # name, describe(), close(), ...
        return getattr(self.inner, name)


def complete_run(root: Path, run_id: str, **kw: int) -> RunSummary:
    return run_simulation(resolved(root, run_id, **kw), quiet_view())


def interrupted_run(root: Path, run_id: str, at: int = 5, **kw: int) -> RunSummary:
    cfg = resolved(root, run_id, **kw)
    backend = InterruptAt(build_backend(backend_spec(cfg.config)), at)
    summary = run_simulation(cfg, quiet_view(), backend=backend)
    assert summary.status == "interrupted" and 0 < summary.ticks < cfg.config.ticks
    return summary


def resume(root: Path, run_id: str) -> RunSummary:
    return resume_simulation(run_id, quiet_view(), storage_root=root)


def manifest(run_dir: Path) -> dict[str, Any]:
    return json.loads((run_dir / "manifest.json").read_text())


def launch(spec: dict[str, Any], *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The CLI under the fault launcher (see tests/fault_launcher.py)."""
    return subprocess.run(
        [sys.executable, str(LAUNCHER), json.dumps(spec), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def start(*args: str) -> subprocess.Popen:
    """The CLI in the background (stdout discarded, stderr kept)."""
    return subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def assert_same_run(a: Path, b: Path) -> None:
    """assert_same_dumps for runs under different storage roots (the root is
    part of the stored config, and changes no result)."""
    da, db = comparable_dumps(a), comparable_dumps(b)
    for d in (da, db):
        d["manifest.config"].pop("storage", None)
    assert da.keys() == db.keys()
    for key in da:
        if isinstance(da[key], pd.DataFrame):
            pd.testing.assert_frame_equal(da[key], db[key], obj=key)
        else:
            assert da[key] == db[key], key

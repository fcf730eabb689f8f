"""Crash safety: kill -9 and resume gives the uninterrupted run's dumps;
SIGINT stops cleanly with exit 130; resume refuses a changed config."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import CONFIGS, REPO
from tests.helpers import assert_same_dumps, cli

TICKS = 40
BASE = ["--mock-model", "--set", f"ticks={TICKS}", "--set", "population.agents=60"]


def _start(run_id: str, root: Path, extra: tuple[str, ...] = ()) -> subprocess.Popen:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orchestrator.cli",
            str(CONFIGS / "run.fast.yaml"),
            *BASE,
            *extra,
            "--run-id",
            run_id,
            "--set",
            f"storage.root={root}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


def _checkpointed_tick(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "LATEST").read_text())["next_tick"]
    except (OSError, ValueError):
        return 0


def _wait_for_tick(proc: subprocess.Popen, run_dir: Path, tick: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while _checkpointed_tick(run_dir) < tick:
        assert proc.poll() is None, "run ended before the kill point"
        assert time.monotonic() < deadline
        time.sleep(0.005)


RIDING = ("--set", "optimization.reflect_with_actions=true")


@pytest.mark.parametrize(
    ("kill_after", "extra"),
    [(random.Random(7).randint(1, TICKS - 10), ()), (0, ()), (TICKS // 2, RIDING)],
)
def test_sigkill_then_resume_equals_uninterrupted(tmp_path, kill_after, extra):
    root = tmp_path / "st"
    ref = cli(
        str(CONFIGS / "run.fast.yaml"),
        *BASE,
        *extra,
        "--run-id",
        "ref",
        "--set",
        f"storage.root={root}",
    )
    assert ref.returncode == 0, ref.stderr

    proc = _start("crash", root, extra)
    run_dir = root / "dumps" / "crash"
    if kill_after:
        _wait_for_tick(proc, run_dir, kill_after)
    else:
        while not (run_dir / "manifest.json").exists():  # kill as soon as the run exists
            time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _checkpointed_tick(run_dir) < TICKS, "the run finished before it was killed"

    resumed = cli("--resume", "crash", "--storage-root", str(root))
    assert resumed.returncode == 0, resumed.stderr
    assert_same_dumps(root / "dumps" / "ref", run_dir)
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"]
    assert not list(run_dir.rglob(".tmp-*"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_stop_signal_finishes_tick_and_exits_130(tmp_path, sig):
    """Ctrl+C, SIGTERM and SIGHUP (a closed terminal) all stop after the tick."""
    root = tmp_path / "st"
    proc = _start("int", root)
    run_dir = root / "dumps" / "int"
    _wait_for_tick(proc, run_dir, 3)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err.decode()
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "interrupted"
    done = manifest["ticks_completed"]
    assert done == _checkpointed_tick(run_dir) < TICKS
    ticks = sorted(p.name for p in (run_dir / "messages").glob("tick_*.parquet"))
    assert ticks == [f"tick_{i:06d}.parquet" for i in range(done)]
    # and it resumes to completion
    assert cli("--resume", "int", "--storage-root", str(root)).returncode == 0


def test_resume_refuses_changed_config_unless_forced(tmp_path):
    root = tmp_path / "st"
    args = [
        str(CONFIGS / "run.fast.yaml"),
        "--mock-model",
        "--set",
        "ticks=4",
        "--run-id",
        "r",
        "--set",
        f"storage.root={root}",
    ]
    assert cli(*args).returncode == 0
    extended = [a if a != "ticks=4" else "ticks=6" for a in args]
    refused = cli(*extended, "--resume", "r")
    assert refused.returncode == 2
    assert (
        "config differs" in refused.stderr
        and "ticks" in refused.stderr
        and "--force" in refused.stderr
    )
    forced = cli(*extended, "--resume", "r", "--force")
    assert forced.returncode == 0, forced.stderr
    assert len(list((root / "dumps" / "r" / "messages").glob("*.parquet"))) == 6


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--resume", "nope"], "no run found"),
        (["--resume", "../../etc"], "invalid run id"),
        ([], "give a CONFIG file"),
    ],
)
def test_resume_bad_input(tmp_path, args, fragment):
    proc = cli(*args, "--storage-root", str(tmp_path))
    assert proc.returncode == 2
    assert fragment in proc.stderr and "Traceback" not in proc.stderr


def test_interrupted_panel_prints_the_resume_command():
    from rich.console import Console

    from orchestrator.live_view import render_summary
    from orchestrator.runner import resume_command
    from orchestrator.typing import RunSummary

    def shown(status: str) -> str:
        console = Console(width=200, no_color=True, record=True)
        summary = RunSummary(
            run_id="r1",
            status=status,
            ticks=3,
            agents=4,
            total_s=1.0,
            ticks_this_session=3,
            run_dir="/tmp/x",
            resume_command=resume_command("r1", "/data/my runs"),
        )
        console.print(render_summary(summary))
        return console.export_text()

    assert "python -m orchestrator.cli --resume r1 --storage-root '/data/my runs'" in shown(
        "interrupted"
    )
    assert "--resume" not in shown("complete")


def test_resume_with_another_embedder_is_one_line(tmp_path):
    root = tmp_path / "st"
    proc = _start("e", root)  # interrupted after a few ticks: there is a checkpoint
    _wait_for_tick(proc, root / "dumps" / "e", 2)
    proc.send_signal(signal.SIGINT)
    proc.communicate(timeout=60)
    other = [str(CONFIGS / "run.fast.yaml"), *BASE, "--set", f"storage.root={root}"]
    refused = cli(*other, "--set", "memory.embedder=minilm", "--resume", "e", "--force")
    assert refused.returncode == 2, refused.stderr
    assert "memory.embedder" in refused.stderr and "Traceback" not in refused.stderr

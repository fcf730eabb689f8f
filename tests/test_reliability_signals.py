"""Signals and a vanishing reader: repeated Ctrl+C leaves a consistent
manifest, `--live | head` stops like SIGTERM, and a Ctrl+C while the command
line is still importing exits 130 without a traceback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.helpers import cli
from tests.reliability_helpers import manifest, run_args, start


def _checkpointed(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "LATEST").read_text())["next_tick"]
    except (OSError, ValueError):
        return 0


def _wait_for_tick(proc, run_dir: Path, tick: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _checkpointed(run_dir) < tick:
        assert proc.poll() is None, "the run ended before the signal"
        assert time.monotonic() < deadline
        time.sleep(0.01)


def _assert_consistent_stop(root: Path, run_id: str, err: str) -> None:
    run_dir = root / "dumps" / run_id
    assert "Traceback" not in err, err
    m = manifest(run_dir)
    assert m["status"] == "interrupted"
    done = m["ticks_completed"]
    assert done == _checkpointed(run_dir) > 0
    ticks = sorted(p.name for p in (run_dir / "messages").glob("tick_*.parquet"))
    assert ticks == [f"tick_{i:06d}.parquet" for i in range(done)]
    assert not (run_dir / "run.lock").exists()


@pytest.mark.parametrize("gap_s", [0.0, 0.02])
def test_three_quick_sigints_leave_a_consistent_manifest(tmp_path, gap_s):
    root = tmp_path / "st"
    proc = start(*run_args(root, "q", ticks=400, agents=40))
    _wait_for_tick(proc, root / "dumps" / "q", 2)
    for _ in range(3):
        proc.send_signal(signal.SIGINT)
        time.sleep(gap_s)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    _assert_consistent_stop(root, "q", err)


def test_live_output_into_a_closed_pipe_stops_like_sigterm(tmp_path):
    """`steersim CONFIG --live | head -5`. The output of 120 ticks overfills the
    pipe, so the writer meets the closed end before it finishes."""
    root = tmp_path / "st"
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator.cli", *run_args(root, "p", ticks=120), "--live"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    head = [proc.stdout.readline() for _ in range(5)]
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=120)
    assert head[0].startswith("TICK 0")
    assert proc.returncode == 130, err
    assert "stdout was closed" in err
    _assert_consistent_stop(root, "p", err)
    resumed = cli("--resume", "p", "--storage-root", str(root))
    assert resumed.returncode == 0, resumed.stderr


# A Ctrl+C that lands while the command line imports its modules (a few
# hundred ms): simulated exactly by an import hook that interrupts the process
# when `typer` is imported.
_EARLY = """
import os, runpy, signal, sys
class Interrupt:
    def find_spec(self, name, path=None, target=None):
        if name == "typer":
            os.kill(os.getpid(), signal.SIGINT)
        return None
sys.meta_path.insert(0, Interrupt())
sys.argv = [{argv0!r}, "--help"]
runpy.run_module("orchestrator.cli", run_name={run_name!r})
"""


@pytest.mark.parametrize(
    ("argv0", "run_name"),
    [("-m", "__main__"), ("/usr/local/bin/steersim", "orchestrator.cli")],
    ids=["python-m", "console-script"],
)
def test_ctrl_c_during_the_clis_imports_gives_no_traceback(argv0, run_name):
    proc = subprocess.run(
        [sys.executable, "-c", _EARLY.format(argv0=argv0, run_name=run_name)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr.strip() == "interrupted"


def test_the_same_interrupt_in_a_library_import_still_raises():
    """Importing orchestrator.cli from a program (a test, a notebook) leaves
    that program's Ctrl+C alone: the guard is only for the command line."""
    proc = subprocess.run(
        [sys.executable, "-c", _EARLY.format(argv0="notebook", run_name="orchestrator.cli")],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode != 130 and "KeyboardInterrupt" in proc.stderr


@pytest.mark.parametrize("how", ["exit-130", "keyboard-interrupt"])
def test_a_stopped_run_ignores_later_signals(monkeypatch, how):
    """Once the CLI exits 130, stop signals are ignored: during interpreter
    shutdown Python's default action would end the process by signal (-2)."""
    import orchestrator.cli as cli_module

    class Stopped:  # the real app's command names; running it ends as a stopped run
        registered_commands = cli_module.app.registered_commands
        registered_groups = cli_module.app.registered_groups

        def __call__(self, **_kwargs):
            if how == "exit-130":
                raise SystemExit(130)  # what typer.Exit(130) becomes in standalone mode
            raise KeyboardInterrupt

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    monkeypatch.setattr(cli_module, "app", Stopped())
    try:
        with pytest.raises(SystemExit) as exc:
            cli_module.main(["run", "x.yaml"])
        assert exc.value.code == 130
        assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN
    finally:
        for s, h in before.items():
            signal.signal(s, h)

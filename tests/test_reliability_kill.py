"""kill -9 at exact moments of a run (every fsync and rename is a numbered
step; see tests/fault_launcher.py), including inside checkpoint writes and
inside the finishing step, then recovery as a user would do it: the dumps
equal an uninterrupted run's. A full disk mid-run stops with one line, exit 1,
the manifest `failed`, and resumes to the same dumps once space is back."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.run_lock import holder
from tests.helpers import cli
from tests.reliability_helpers import assert_same_run, complete_run, launch, manifest, run_args

# the finish: perf.parquet, then manifest.json, each a temp file's fsync, the
# rename and the folder's fsync
FINISH_STEPS = 6


@pytest.fixture(scope="module")
def plan(tmp_path_factory) -> tuple[Path, int]:
    """A reference run, and how many steps an uninterrupted run takes."""
    root = tmp_path_factory.mktemp("ref")
    complete_run(root, "ref")
    counted = launch({"action": "count"}, *run_args(root, "counted"))
    assert counted.returncode == 0, counted.stderr
    steps = int(re.search(r"steps: (\d+)", counted.stderr).group(1))
    assert_same_run(root / "dumps" / "ref", root / "dumps" / "counted")
    return root / "dumps" / "ref", steps


def kill_moments(steps: int) -> list[tuple[str, int]]:
    """About 25 moments: the start, a spread over the ticks (checkpoint writes
    included), the last tick's checkpoint and every step of the finish."""
    spread = [round(1 + i * (steps - 12) / 11) for i in range(12)]
    late = range(steps - 9, steps + 1)  # the last checkpoint's LATEST, then the finish
    nths = sorted({1, 2, 3, *spread, *late})
    return [("kill_after" if n % 2 else "kill_before", n) for n in nths]


def recover(root: Path, run_id: str) -> None:
    """What a user does after a crash: --resume, or start again when the run
    never got as far as its manifest."""
    run_dir = root / "dumps" / run_id
    if (run_dir / "manifest.json").exists():
        if manifest(run_dir)["status"] == "complete":  # killed after the final rename
            return
        proc = cli("--resume", run_id, "--storage-root", str(root))
    else:
        proc = cli(*run_args(root, run_id), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert "Traceback" not in proc.stderr


def kill_and_recover(root: Path, ref: Path, action: str, nth: int) -> None:
    run_id = f"{action}{nth}"
    killed = launch({"action": action, "nth": nth}, *run_args(root, run_id))
    assert killed.returncode == -9, f"step {nth} was not reached: {killed.stderr}"
    recover(root, run_id)
    run_dir = root / "dumps" / run_id
    assert manifest(run_dir)["status"] == "complete"
    assert not list(run_dir.rglob(".tmp-*"))
    assert holder(run_dir) is None  # a kill after the final rename leaves a stale, free lock
    assert_same_run(ref, run_dir)


def test_kill_moments_cover_checkpoints_and_the_finish(plan):
    _, steps = plan
    nths = [n for _, n in kill_moments(steps)]
    assert len(nths) >= 20
    assert set(range(steps - FINISH_STEPS + 1, steps + 1)) <= set(nths)


@pytest.mark.parametrize("which", ["first", "mid", "finish-perf", "finish-manifest"])
def test_kill_at_a_moment_then_recover(plan, tmp_path, which):
    ref, steps = plan
    action, nth = {
        "first": ("kill_after", 1),  # agents.parquet's temp file is on disk, nothing else
        "mid": ("kill_after", steps // 2),
        "finish-perf": ("kill_before", steps - 4),  # perf.parquet's rename
        "finish-manifest": ("kill_before", steps - 1),  # the final manifest's rename
    }[which]
    kill_and_recover(tmp_path, ref, action, nth)


@pytest.mark.slow
def test_kill_at_every_moment_then_recover(plan, tmp_path):
    ref, steps = plan
    for action, nth in kill_moments(steps):
        kill_and_recover(tmp_path, ref, action, nth)


def test_full_disk_mid_run_then_resume(plan, tmp_path):
    ref, steps = plan
    failed = launch({"action": "enospc", "nth": steps // 2}, *run_args(tmp_path, "full"))
    assert failed.returncode == 1, failed.stderr
    lines = failed.stderr.strip().splitlines()
    assert "Traceback" not in failed.stderr
    assert lines[-1].startswith("error: storage: cannot write tick")
    assert "No space left on device" in lines[-1] and "--resume full" in lines[-1]
    run_dir = tmp_path / "dumps" / "full"
    # the disk was full for the final manifest too: it still says `running`
    assert manifest(run_dir)["status"] in ("failed", "running")
    recover(tmp_path, "full")
    assert_same_run(ref, run_dir)


def test_full_disk_only_for_the_tick_gives_a_failed_manifest(plan, tmp_path):
    """A write that fails once (then space is back): the manifest says `failed`."""
    ref, steps = plan
    spec = {"action": "enospc_once", "nth": 20, "only": "replace"}  # a rename in tick 3 or so
    proc = launch(spec, *run_args(tmp_path, "once"))
    assert proc.returncode == 1, proc.stderr
    run_dir = tmp_path / "dumps" / "once"
    m = manifest(run_dir)
    assert m["status"] == "failed" and 0 < m["ticks_completed"] < 6
    recover(tmp_path, "once")
    assert_same_run(ref, run_dir)

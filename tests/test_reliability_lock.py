"""One writer per run: a second start, --overwrite or --resume of a run being
written is refused in one line naming the writer's PID; a lock left by a
killed run is taken over; --overwrite only replaces a steersim run folder;
two writers racing leave one consistent run."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import time
from pathlib import Path

import pytest

from orchestrator.errors import RunDirError
from orchestrator.resume_check import problem_with
from orchestrator.run_lock import LOCK_NAME, RunLock, holder
from orchestrator.storage import RunDir
from tests.helpers import assert_same_dumps, cli
from tests.reliability_helpers import (
    complete_run,
    launch,
    manifest,
    resolved,
    run_args,
    start,
)


def _checkpointed(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "LATEST").read_text())["next_tick"]
    except (OSError, ValueError):
        return 0


def _wait_for_tick(proc, run_dir: Path, tick: int, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while _checkpointed(run_dir) < tick:
        assert proc.poll() is None, proc.stderr.read()
        assert time.monotonic() < deadline
        time.sleep(0.01)


def test_lock_in_process(tmp_path):
    first = RunLock.acquire(tmp_path)
    assert holder(tmp_path) == os.getpid()
    with pytest.raises(RunDirError, match=f"process {os.getpid()}"):
        RunLock.acquire(tmp_path)
    first.release()
    assert not (tmp_path / LOCK_NAME).exists() and holder(tmp_path) is None
    RunLock.acquire(tmp_path).release()  # free again


@pytest.mark.parametrize("kind", ["symlink", "fifo", "folder"])
def test_lock_file_that_is_not_a_file_is_refused(tmp_path, kind):
    path = tmp_path / LOCK_NAME
    if kind == "symlink":
        path.symlink_to(tmp_path / "elsewhere")
    elif kind == "fifo":
        os.mkfifo(path)
    else:
        path.mkdir()
    with pytest.raises(Exception, match="symbolic link|not a regular file|cannot create"):
        RunLock.acquire(tmp_path)
    assert not (tmp_path / "elsewhere").exists()  # a link is never followed


def test_second_writer_is_refused_with_the_holders_pid(tmp_path):
    root = tmp_path / "st"
    run_dir = root / "dumps" / "busy"
    proc = start(*run_args(root, "busy", ticks=400, agents=40))
    try:
        _wait_for_tick(proc, run_dir, 2)
        for extra in ([], ["--overwrite"]):
            second = cli(*run_args(root, "busy", ticks=400, agents=40), *extra)
            assert second.returncode == 2, second.stderr
            assert f"being written by process {proc.pid}" in second.stderr
            assert len(second.stderr.strip().splitlines()) == 1
        resumed = cli("--resume", "busy", "--storage-root", str(root))
        assert resumed.returncode == 2 and f"process {proc.pid}" in resumed.stderr
        assert proc.poll() is None, "the refused writers must leave the first one alone"
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=120)
    assert proc.returncode == 130
    assert not (run_dir / LOCK_NAME).exists()
    m = manifest(run_dir)
    assert m["status"] == "interrupted" and m["ticks_completed"] == _checkpointed(run_dir)


def test_stale_lock_of_a_killed_run_is_taken_over(tmp_path):
    root = tmp_path / "st"
    run_dir = root / "dumps" / "k"
    proc = start(*run_args(root, "k", ticks=60, agents=20))
    _wait_for_tick(proc, run_dir, 2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert (run_dir / LOCK_NAME).exists() and holder(run_dir) is None  # stale, not held
    resumed = cli("--resume", "k", "--storage-root", str(root))
    assert resumed.returncode == 0, resumed.stderr
    assert manifest(run_dir)["status"] == "complete"
    assert not (run_dir / LOCK_NAME).exists()


def test_overwrite_replaces_only_a_run_folder(tmp_path):
    run_dir = tmp_path / "dumps" / "mine"
    run_dir.mkdir(parents=True)
    (run_dir / "notes.txt").write_text("my notes")
    with pytest.raises(RunDirError, match="not a steersim run folder"):
        RunDir(run_dir).clear()
    proc = cli(*run_args(tmp_path, "mine"), "--overwrite")
    assert proc.returncode == 2 and "not a steersim run folder" in proc.stderr
    assert (run_dir / "notes.txt").read_text() == "my notes"


@pytest.mark.parametrize(
    "manifest_text",
    [
        '{"name": "my-web-app", "version": "1.0.0"}',  # someone else's manifest.json
        '{"run_id": "mine", "config": {}, "versions": {"python": "3.11"}}',  # not steersim's
        "{not json",
        "[1, 2]",
        "LINK",  # a link, even to a real steersim manifest
    ],
)
def test_overwrite_keeps_a_folder_whose_manifest_is_not_steersims(tmp_path, manifest_text):
    complete_run(tmp_path, "real")
    run_dir = tmp_path / "dumps" / "mine"
    run_dir.mkdir(parents=True)
    (run_dir / "notes.txt").write_text("my notes")
    if manifest_text == "LINK":
        (run_dir / "manifest.json").symlink_to(tmp_path / "dumps" / "real" / "manifest.json")
    else:
        (run_dir / "manifest.json").write_text(manifest_text)
    with pytest.raises(RunDirError, match="not replacing"):
        RunDir(run_dir).clear()
    proc = cli(*run_args(tmp_path, "mine"), "--overwrite")
    assert proc.returncode == 2, proc.stderr
    assert "not replacing" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert sorted(os.listdir(run_dir)) == ["manifest.json", "notes.txt"]
    assert (run_dir / "notes.txt").read_text() == "my notes"


def test_overwrite_still_replaces_a_real_run(tmp_path):
    complete_run(tmp_path, "r")
    (tmp_path / "dumps" / "r" / "notes.txt").write_text("stale")
    proc = cli(*run_args(tmp_path, "r"), "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "dumps" / "r" / "notes.txt").exists()
    assert manifest(tmp_path / "dumps" / "r")["status"] == "complete"


def test_new_run_that_fails_to_start_leaves_nothing(tmp_path):
    """A start that fails after its folder was made (the disk is full at its
    first write) removes the folder and the lock it made: one line, exit 2."""
    root = tmp_path / "st"
    proc = launch({"action": "enospc", "nth": 1}, *run_args(root, "m"))
    assert proc.returncode == 2, proc.stderr
    assert "No space left on device" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert not (root / "dumps" / "m").exists()


def _consistent(run_dir: Path, ref: Path, ticks: int) -> str | None:
    """What is wrong with a run that should be complete (None: nothing)."""
    m = manifest(run_dir)
    if m["status"] != "complete" or m["ticks_completed"] != ticks:
        return f"manifest says {m['status']} with {m['ticks_completed']} ticks"
    files = sorted((run_dir / "messages").glob("tick_*.parquet"))
    if len(files) != ticks or any(problem_with(f, None) for f in files):
        return f"{len(files)} tick files"
    try:
        assert_same_dumps(ref, run_dir)
    except AssertionError as exc:
        return f"dumps differ: {exc}"
    return None


def race(root: Path, ref: Path, seed: int, ticks: int = 8) -> str | None:
    """Start a run and, at a random moment, a second writer (a start, an
    overwrite or a resume of the same run); let both end; the run must be
    complete and equal the reference. Returns what is wrong, or None."""
    rng = random.Random(seed)
    run_id = f"race{seed}"
    args = run_args(root, run_id, ticks=ticks, agents=12)
    first = start(*args)
    time.sleep(rng.uniform(0.0, 3.0))
    mode = rng.choice(["start", "overwrite", "resume"])
    second = {
        "start": lambda: start(*args),
        "overwrite": lambda: start(*args, "--overwrite"),
        "resume": lambda: start("--resume", run_id, "--storage-root", str(root)),
    }[mode]()
    outs = [p.communicate(timeout=300)[1] for p in (first, second)]
    codes = [first.returncode, second.returncode]
    if any("Traceback" in e for e in outs) or 0 not in codes or set(codes) - {0, 2}:
        return f"{mode}: exit codes {codes}: {outs}"
    return _consistent(root / "dumps" / run_id, ref, ticks)


def test_two_writers_racing_leave_one_consistent_run(tmp_path):
    root = tmp_path / "st"
    complete_run(root, "ref", ticks=8, agents=12)
    for seed in range(2):  # scripts/reliability_check.py runs 20
        problem = race(root, root / "dumps" / "ref", seed)
        assert problem is None, problem


def test_resolved_config_of_the_helpers_matches_the_cli():
    # race() compares CLI runs with an in-process reference: same config, same dumps
    cfg = resolved(Path("/x"), "a", ticks=8, agents=12).config
    assert cfg.ticks == 8 and cfg.population.agents == 12 and cfg.model.backend == "mock"


def test_an_overwrite_cut_short_leaves_a_folder_the_next_one_clears(tmp_path, monkeypatch):
    complete_run(tmp_path, "r")
    run_dir = RunDir(tmp_path / "dumps" / "r")
    real_rmtree, calls = shutil.rmtree, []

    def killed_midway(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 2:
            raise KeyboardInterrupt  # as if the process died here
        real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr("orchestrator.storage.shutil.rmtree", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        run_dir.clear()
    assert run_dir.manifest.exists()  # removed last: still recognisably a run
    monkeypatch.undo()
    run_dir.clear()
    assert run_dir.entries() == []

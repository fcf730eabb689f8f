"""A resume that verifies what it keeps: damaged tick files are restored from
the checkpoint's copies (or the resume is refused in one line), damaged
checkpoints and manifests are refused in one line, links are never followed,
and a run killed while finishing is finished by --resume."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from orchestrator.errors import ResumeError, RunDirError
from tests.helpers import assert_same_dumps, cli
from tests.reliability_helpers import (
    TICKS,
    complete_run,
    interrupted_run,
    manifest,
    resume,
)


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A complete reference run and an interrupted run, built once."""
    root = tmp_path_factory.mktemp("runs")
    complete_run(root, "ref")
    interrupted_run(root, "int")
    return root


@pytest.fixture
def copy(runs, tmp_path):
    """(root, run_dir) of a fresh copy of the interrupted run, and the reference."""
    root = tmp_path / "st"
    shutil.copytree(runs / "dumps" / "int", root / "dumps" / "int", symlinks=True)
    return root, root / "dumps" / "int", runs / "dumps" / "ref"


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _garbage(p: Path) -> None:
    p.write_bytes(b"\0" * p.stat().st_size)


def _link(p: Path) -> None:
    target = p.with_name("elsewhere.bin")
    p.rename(target)
    p.symlink_to(target)


@pytest.mark.parametrize(
    ("file", "damage"),
    [
        ("messages/tick_000001.parquet", Path.unlink),
        ("messages/tick_000002.parquet", _truncate),
        ("memories/tick_000001.parquet", _garbage),
        ("positions/tick_000000.parquet", _link),
        ("prompts/tick_000002.parquet", Path.unlink),
    ],
    ids=["deleted", "truncated", "garbage", "symlink", "prompts-deleted"],
)
def test_damaged_tick_file_is_restored_from_the_checkpoint(copy, file, damage, caplog):
    root, run_dir, ref = copy
    damage(run_dir / file)
    summary = resume(root, "int")
    assert summary.status == "complete"
    assert "restored it from the checkpoint's copy" in caplog.text
    assert not (run_dir / file).is_symlink()
    assert_same_dumps(ref, run_dir)


def test_damaged_file_whose_copy_is_damaged_too_is_refused(copy):
    root, run_dir, _ = copy
    tick = run_dir / "messages" / "tick_000001.parquet"
    data = tick.read_bytes()
    journal = run_dir / "checkpoint" / "ticks.bin"
    blob = journal.read_bytes()
    at = blob.index(data)  # the copy is the file's exact bytes
    journal.write_bytes(blob[:at] + b"\xff" * len(data) + blob[at + len(data) :])
    tick.unlink()
    with pytest.raises(ResumeError, match="copy of it is damaged too"):
        resume(root, "int")


def _latest(run_dir: Path) -> Path:
    return run_dir / "checkpoint" / "LATEST"


def _edit_latest(run_dir: Path, **changes) -> None:
    pointer = json.loads(_latest(run_dir).read_text())
    for k, v in changes.items():
        if v is None:
            pointer.pop(k)
        else:
            pointer[k] = v
    _latest(run_dir).write_text(json.dumps(pointer))


@pytest.mark.parametrize(
    ("damage", "fragment"),
    [
        (lambda d: (d / "manifest.json").write_text("not json {"), "manifest.json is damaged"),
        (lambda d: (d / "manifest.json").write_text("{}"), "manifest.json is damaged"),
        (lambda d: (d / "manifest.json").write_text("[1, 2]"), "manifest.json is damaged"),
        (lambda d: _edit_latest(d, sha256=None), "sha256 is missing or invalid"),
        (lambda d: _edit_latest(d, state="../../manifest.json"), "state is missing or invalid"),
        (lambda d: _edit_latest(d, next_tick=True), "next_tick is missing or invalid"),
        (lambda d: _edit_latest(d, row_stores={"../x": {}}), "row_stores"),
        (lambda d: _latest(d).write_text("garbage"), "the JSON is missing or invalid"),
        (
            lambda d: [p.unlink() for p in (d / "checkpoint").glob("rows_*")],
            "row store .* is missing",
        ),
        (
            lambda d: (d / "checkpoint" / "ticks.bin").write_bytes(b""),
            "journal .* is missing or shorter",
        ),
        (lambda d: shutil.rmtree(d / "checkpoint"), "checkpoint is missing but the manifest"),
    ],
    ids=[
        "manifest-garbage",
        "manifest-empty-object",
        "manifest-list",
        "latest-no-checksum",
        "latest-path-escape",
        "latest-bool-tick",
        "latest-store-name",
        "latest-garbage",
        "row-store-deleted",
        "journal-emptied",
        "checkpoint-deleted",
    ],
)
def test_damaged_run_is_refused_in_one_line(copy, damage, fragment):
    root, run_dir, _ = copy
    assert manifest(run_dir)["ticks_completed"] > 0  # what an interrupted run records
    damage(run_dir)
    with pytest.raises(ResumeError, match=fragment) as info:
        resume(root, "int")
    assert "\n" not in str(info.value)


def _forge_state(run_dir: Path, edit) -> None:
    """Edit the checkpoint state's JSON, then give LATEST the new checksum: a
    state that reads and checks out but that no run wrote."""
    folder = run_dir / "checkpoint"
    path = folder / json.loads(_latest(run_dir).read_text())["state"]
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    body = json.loads(arrays.pop("__state__").tobytes().decode())
    edit(body)
    buf = io.BytesIO()
    np.savez(buf, **arrays, __state__=np.frombuffer(json.dumps(body).encode(), dtype=np.uint8))
    path.write_bytes(buf.getvalue())
    _edit_latest(run_dir, sha256=hashlib.sha256(buf.getvalue()).hexdigest())


def _drop_agents(body) -> None:
    body["world"]["agents"] = body["world"]["agents"][:1]


def _unknown_location(body) -> None:
    body["world"]["agents"][0]["location"] = "nowhere"


def _twin_agent(body) -> None:
    body["world"]["agents"][1]["id"] = body["world"]["agents"][0]["id"]


def _old_next_id(body) -> None:
    body["memory"]["next_id"] = 0


@pytest.mark.parametrize(
    ("edit", "fragment"),
    [
        # before: the run went on with fewer agents than its memories and dumps name
        (_drop_agents, "the checkpointed memory holds agents the world does not"),
        # before: a KeyError traceback from the scheduler, after the model had loaded
        (_unknown_location, "world is damaged .agent 'agent-000' is at or lives in an unknown"),
        # before: one agent silently dropped
        (_twin_agent, "world is damaged .an agent id repeats"),
        # before: new memories took ids already held, and the dumps' memory_ids misled
        (_old_next_id, "memory is damaged .memory ids repeat, or next_id is not above them"),
    ],
    ids=["fewer-agents", "unknown-location", "twin-agent", "old-next-id"],
)
def test_a_forged_state_with_a_valid_checksum_is_refused_in_one_line(copy, edit, fragment):
    root, run_dir, _ = copy
    _forge_state(run_dir, edit)
    with pytest.raises(ResumeError, match=fragment) as info:
        resume(root, "int")
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("edit", [_unknown_location, _twin_agent], ids=["location", "twin"])
def test_a_damaged_world_is_refused_before_the_model_loads(copy, monkeypatch, edit):
    """The world needs no model: its refusal must not wait for one to load."""
    import orchestrator.assemble as assemble

    def no_model(spec):
        raise AssertionError("the backend was built before the world was checked")

    monkeypatch.setattr(assemble, "build_backend", no_model)
    root, run_dir, _ = copy
    _forge_state(run_dir, edit)
    with pytest.raises(ResumeError, match="the checkpointed world is damaged"):
        resume(root, "int")


def test_fifo_in_place_of_latest_is_refused_without_hanging(copy):
    root, run_dir, _ = copy
    _latest(run_dir).unlink()
    os.mkfifo(_latest(run_dir))
    proc = cli("--resume", "int", "--storage-root", str(root), timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "not a regular file" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def _outside_folder(tmp_path: Path) -> Path:
    """A folder outside the storage root, holding files named like a run's."""
    out = tmp_path / "outside"
    out.mkdir()
    for name in ("state_000001.npz", "rows_embeddings_g0.bin", ".tmp-x", "tick_000009.parquet"):
        (out / name).write_text("keep me")
    return out


@pytest.mark.parametrize("sub", ["checkpoint", "messages", "positions"])
def test_symlinked_subfolder_is_refused_and_its_target_untouched(copy, tmp_path, sub):
    root, run_dir, _ = copy
    out = _outside_folder(tmp_path)
    shutil.rmtree(run_dir / sub)
    (run_dir / sub).symlink_to(out, target_is_directory=True)
    with pytest.raises(RunDirError, match="symbolic link"):
        resume(root, "int")
    assert sorted(p.read_text() for p in out.iterdir()) == ["keep me"] * 4


def test_symlinked_run_folder_is_refused(copy, tmp_path):
    root, run_dir, _ = copy
    moved = tmp_path / "moved"
    run_dir.rename(moved)
    run_dir.symlink_to(moved, target_is_directory=True)
    with pytest.raises(RunDirError, match="symbolic link"):
        resume(root, "int")
    proc = cli("--resume", "int", "--storage-root", str(root))
    assert proc.returncode == 2 and "symbolic link" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_resume_finishes_a_run_killed_before_its_final_manifest(runs, tmp_path):
    """The state a kill between the last checkpoint and the final manifest
    leaves: manifest `running` with 0 ticks, perf.parquet behind."""
    root = tmp_path / "st"
    run_dir = root / "dumps" / "ref"
    shutil.copytree(runs / "dumps" / "ref", run_dir)
    m = manifest(run_dir)
    m.update(status="running", ticks_completed=0, ended_at=None)
    (run_dir / "manifest.json").write_text(json.dumps(m))
    perf = pd.read_parquet(run_dir / "perf.parquet")
    perf.head(2).to_parquet(run_dir / "perf.parquet")

    summary = resume(root, "ref")
    assert summary.status == "complete" and summary.ticks_this_session == 0
    m = manifest(run_dir)
    assert m["status"] == "complete" and m["ticks_completed"] == TICKS
    assert len(pd.read_parquet(run_dir / "perf.parquet")) == TICKS
    assert_same_dumps(runs / "dumps" / "ref", run_dir)
    with pytest.raises(ResumeError, match="already completed"):  # and only once
        resume(root, "ref")


def test_resume_of_a_run_that_never_started_says_what_to_do(tmp_path):
    run_dir = tmp_path / "dumps" / "x"
    (run_dir / "messages").mkdir(parents=True)
    with pytest.raises(ResumeError, match="--overwrite"):
        resume(tmp_path, "x")

"""Checkpoint files: round trip, append-only row stores, compaction, and a
crash between appending rows and replacing LATEST."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agents.typing import KeyedRows
from orchestrator.checkpoint import LATEST, Checkpoint, CheckpointStore
from orchestrator.errors import ResumeError


def _ckpt(tick: int, keys: list[str], dim: int = 4) -> Checkpoint:
    rows = (
        np.stack([np.full(dim, hash(k) % 997, np.float32) for k in keys])
        if keys
        else np.zeros((0, dim), np.float32)
    )
    return Checkpoint(
        next_tick=tick,
        world={"tick": tick, "agents": [{"id": "a", "traits": [0.1, 0, 0, 0, -1]}]},
        memory={
            "emb": KeyedRows(store="emb", keys=keys, rows=rows),
            "imp": np.arange(len(keys), dtype=np.float32),
            "nested": {"ticks": [1, 2, 3]},
        },
        config_hash="c",
        vectors_hash=None,
    )


def _same(a: Checkpoint, b: Checkpoint) -> None:
    assert a.next_tick == b.next_tick and a.world == b.world
    assert a.memory["emb"].keys == b.memory["emb"].keys
    np.testing.assert_array_equal(a.memory["emb"].rows, b.memory["emb"].rows)
    np.testing.assert_array_equal(a.memory["imp"], b.memory["imp"])
    assert a.memory["nested"] == b.memory["nested"]


def test_round_trip_and_rows_written_once(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(_ckpt(1, ["x", "y"]))
    size1 = (tmp_path / "rows_emb_g0.bin").stat().st_size
    assert size1 == 2 * 4 * 4
    store.save(_ckpt(2, ["x", "y", "z", "z"]))  # only z is new (once, though listed twice)
    assert (tmp_path / "rows_emb_g0.bin").stat().st_size == size1 + 4 * 4
    _same(CheckpointStore(tmp_path).load(), _ckpt(2, ["x", "y", "z", "z"]))
    assert sorted(p.name for p in tmp_path.glob("state_*")) == ["state_000002.npz"]


def test_compaction_drops_dead_rows(tmp_path):
    store = CheckpointStore(tmp_path)
    for t in range(1, 7):
        store.save(_ckpt(t, [f"k{t}-{i}" for i in range(600)]))  # every tick replaces all keys
        _same(CheckpointStore(tmp_path).load(), _ckpt(t, [f"k{t}-{i}" for i in range(600)]))
    pointer = json.loads((tmp_path / LATEST).read_text())["row_stores"]["emb"]
    assert pointer["generation"] >= 1 and pointer["rows"] <= 2 * 600 + 1024 + 600
    assert len(list(tmp_path.glob("rows_emb_g*.bin"))) == 1  # the old generation is gone


def test_rows_appended_after_latest_are_cut_off(tmp_path):
    store = CheckpointStore(tmp_path)
    store.save(_ckpt(1, ["a", "b"]))
    latest = (tmp_path / LATEST).read_bytes()
    kept = (tmp_path / "state_000001.npz").read_bytes()
    store.save(_ckpt(2, ["a", "b", "c"]))
    # as if killed after tick 2's rows and state were written, before LATEST moved on
    (tmp_path / LATEST).write_bytes(latest)
    (tmp_path / "state_000001.npz").write_bytes(kept)
    reopened = CheckpointStore(tmp_path)
    _same(reopened.load(), _ckpt(1, ["a", "b"]))
    reopened.save(_ckpt(2, ["a", "b", "c"]))  # c's row goes where the torn one was
    assert (tmp_path / "rows_emb_g0.bin").stat().st_size == 3 * 4 * 4
    _same(CheckpointStore(tmp_path).load(), _ckpt(2, ["a", "b", "c"]))


def test_resume_store_keeps_appending_consistently(tmp_path):
    first = CheckpointStore(tmp_path)
    first.save(_ckpt(1, ["a", "b"]))
    with open(tmp_path / "rows_emb_g0.bin", "ab") as fh:  # a crash mid-append of tick 2
        fh.write(b"\x00" * 10)
    reopened = CheckpointStore(tmp_path)
    _same(reopened.load(), _ckpt(1, ["a", "b"]))
    reopened.save(_ckpt(2, ["a", "b", "c"]))
    _same(CheckpointStore(tmp_path).load(), _ckpt(2, ["a", "b", "c"]))


def test_checksum_mismatch_is_a_clear_error(tmp_path):
    CheckpointStore(tmp_path).save(_ckpt(1, ["a"]))
    (tmp_path / "state_000001.npz").write_text("{}")
    with pytest.raises(ResumeError, match="checksum"):
        CheckpointStore(tmp_path).load()

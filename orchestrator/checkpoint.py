"""Crash-safe checkpoints of a run's state after each completed tick.

Layout under <run_dir>/checkpoint/:
    state_000123.npz             the state: its JSON (world, memories, perf rows,
                                 hashes) plus its numeric arrays; no pickles
    rows_<store>_gN.bin          append-only float32 row stores (see KeyedRows):
                                 each key's row (an embedding) is written once,
                                 not once per tick
    ticks.bin                    a copy of every tick file (see tick_journal.py)
    LATEST                       {"next_tick", "state", "sha256",
                                  "row_stores": {store: {"generation", "rows", "dim"}},
                                  "journal": {"bytes"}}

Order per save: append the tick's file copies to the journal (fsync), compact
a row store into a new generation if garbage (rows no longer used by the
previous checkpoint) dominates, append the new rows (fsync), write the state
file (temp + fsync + rename), then replace LATEST (temp + fsync + rename),
then delete what LATEST no longer names. At any instant LATEST names a
complete checkpoint; rows and copies appended after it are cut off when the
checkpoint is opened again.

Loading trusts nothing: LATEST and the state are read only as regular files
(never through a link, never blocking on a FIFO), every field of LATEST is
checked, the state must match LATEST's SHA-256, and any fault is one
ResumeError line. Only files named as this module names them are deleted.

All randomness is derived from (seed, tick, index) (see seeding.py), so the
state needs no RNG objects: the next tick number is the RNG state."""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from agents.typing import KeyedRows
from orchestrator.errors import ResumeError, RunDirError
from orchestrator.storage import (
    atomic_write,
    atomic_write_json,
    fsync_dir,
    is_regular,
    read_regular,
)
from orchestrator.tick_journal import TickCopy, TickJournal

LATEST = "LATEST"
_STATE = "__state__"  # the npz entry holding the JSON
_ARRAY_KEY = "__ndarray__"
_ROWS_KEY = "__keyed_rows__"
_COMPACT_SLACK = 1024  # rows of garbage tolerated before a store is rewritten
_STATE_RE = re.compile(r"state_\d{6,}\.npz")
_ROWS_RE = re.compile(r"rows_[A-Za-z0-9_-]{1,64}_g\d+\.bin")
_STORE_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SHA_RE = re.compile(r"[0-9a-f]{64}")
_MAX_LATEST = 1 << 20
_MAX_STATE = 1 << 40  # any size: the limit only keeps the reader on regular files


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    next_tick: int  # the first tick not yet run
    world: dict[str, Any]
    memory: dict[str, Any]
    config_hash: str
    vectors_hash: str | None
    perf: list[dict[str, Any]] = field(default_factory=list)  # perf rows so far


RESUMABLE_KEYS = ("run_id", "storage", "distributed", "limits")


def config_hash(config: dict[str, Any]) -> str:
    """Hash of the resolved config minus the keys that may change on resume
    (`distributed`: a run may continue on another number of ranks; `limits`
    change no result)."""
    relevant = {k: v for k, v in config.items() if k not in RESUMABLE_KEYS}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class _RowStore:
    """An append-only file of float32 rows; `index` maps the keys in use to rows."""

    folder: Path
    name: str
    dim: int
    generation: int = 0
    rows: int = 0  # rows in the file that LATEST (or this process) vouches for
    index: dict[str, int] = field(default_factory=dict)

    @property
    def path(self) -> Path:
        return self.folder / f"rows_{self.name}_g{self.generation}.bin"

    def encode(self, value: KeyedRows) -> dict[str, Any]:
        """Append the rows of keys not stored yet; return the state's reference."""
        rows = np.asarray(value.rows, dtype=np.float32).reshape(len(value.keys), self.dim)  # (N, D)
        fresh: dict[str, int] = {}
        for i, key in enumerate(value.keys):
            if key not in self.index and key not in fresh:
                fresh[key] = i
        if fresh:
            with open(self.path, "ab") as fh:
                fh.truncate(self.rows * self.dim * 4)  # drop a torn append from a crash
                fh.seek(0, os.SEEK_END)
                fh.write(np.ascontiguousarray(rows[list(fresh.values())]).tobytes())
                fh.flush()
                os.fsync(fh.fileno())
            for key in fresh:
                self.index[key] = self.rows
                self.rows += 1
        return {
            _ROWS_KEY: self.name,
            "keys": value.keys,
            "rows": [self.index[k] for k in value.keys],
        }

    def read(self) -> np.ndarray:
        if not is_regular(self.path):
            raise ResumeError(f"checkpoint row store {self.path} is missing (or not a file)")
        if self.path.stat().st_size < self.rows * self.dim * 4:  # before allocating for LATEST's
            # counts: a hostile LATEST asking for 10**12 rows would be a MemoryError
            raise ResumeError(f"checkpoint row store {self.path} is shorter than LATEST says")
        data = np.fromfile(self.path, dtype=np.float32, count=self.rows * self.dim)
        if data.size != self.rows * self.dim:
            raise ResumeError(f"checkpoint row store {self.path} is shorter than LATEST says")
        return data.reshape(self.rows, self.dim)  # (rows, D)

    def compact(self, live: dict[str, int]) -> None:
        """Rewrite the store with only the live keys once garbage dominates."""
        if self.rows <= 2 * len(live) + _COMPACT_SLACK:
            return
        block = self.read()[list(live.values())] if live else np.zeros((0, self.dim), np.float32)
        self.generation += 1
        atomic_write(self.path, lambda p: p.write_bytes(np.ascontiguousarray(block).tobytes()))
        self.index = {k: i for i, k in enumerate(live)}
        self.rows = len(live)

    def pointer(self) -> dict[str, int]:
        return {"generation": self.generation, "rows": self.rows, "dim": self.dim}


class CheckpointStore:
    """Saves and loads the checkpoints of one run directory. Keep one per run:
    it remembers which rows its row stores already hold."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._stores: dict[str, _RowStore] = {}
        self._live: dict[str, dict[str, int]] = {}  # per store: key -> row, as of the last save
        self.journal = TickJournal(folder)
        self.has_copies = True  # False for a checkpoint written before ticks.bin existed

    def save(self, ckpt: Checkpoint, tick_files: Mapping[str, bytes] | None = None) -> None:
        """Save the state after tick ckpt.next_tick - 1, with copies of the files
        that tick wrote (folder name -> bytes) when given."""
        if self.folder.is_symlink():
            raise RunDirError(f"{self.folder} is a symbolic link; not writing through it")
        self.folder.mkdir(parents=True, exist_ok=True)
        if tick_files:
            self.journal.append(ckpt.next_tick - 1, tick_files)
        for name, store in self._stores.items():  # before encoding: refs name the new generation
            store.compact(self._live.get(name, {}))
        arrays: dict[str, np.ndarray] = {}
        live: dict[str, dict[str, int]] = {name: {} for name in self._stores}
        body = {
            "next_tick": ckpt.next_tick,
            "world": ckpt.world,
            "memory": ckpt.memory,
            "config_hash": ckpt.config_hash,
            "vectors_hash": ckpt.vectors_hash,
            "perf": ckpt.perf,
        }
        text = json.dumps(body, separators=(",", ":"), default=self._encoder(arrays, live))
        buf = io.BytesIO()
        np.savez(buf, **arrays, **{_STATE: np.frombuffer(text.encode(), dtype=np.uint8)})
        data = buf.getvalue()
        state = self.folder / f"state_{ckpt.next_tick:06d}.npz"
        atomic_write(state, lambda p: p.write_bytes(data), sync_dir=False)
        fsync_dir(self.folder)
        atomic_write_json(
            self.folder / LATEST,
            {
                "next_tick": ckpt.next_tick,
                "state": state.name,
                "sha256": hashlib.sha256(data).hexdigest(),
                "row_stores": {name: s.pointer() for name, s in self._stores.items()},
                "journal": {"bytes": self.journal.length},
            },
        )
        keep = {state.name, *(s.path.name for s in self._stores.values())}
        for old in os.listdir(self.folder):  # only what this module names, never a link
            if old not in keep and (_STATE_RE.fullmatch(old) or _ROWS_RE.fullmatch(old)):
                if is_regular(self.folder / old):
                    (self.folder / old).unlink(missing_ok=True)
        self._live = live

    def tick_copies(self) -> dict[tuple[str, int], TickCopy]:
        """(folder, tick) -> the journal's copy, as of the loaded or last saved checkpoint."""
        return dict(self.journal.index)

    def read_copy(self, copy: TickCopy) -> bytes | None:
        """A copied tick file's bytes; None if the copy is damaged."""
        return self.journal.read(copy)

    def load(self) -> Checkpoint | None:
        """The last complete checkpoint, or None if the run never finished a tick."""
        if self.folder.is_symlink():
            raise ResumeError(f"{self.folder} is a symbolic link; not reading through it")
        latest = self.folder / LATEST
        try:
            raw = read_regular(latest, limit=_MAX_LATEST)
        except FileNotFoundError:
            return None
        except RunDirError as exc:
            raise ResumeError(str(exc)) from None
        pointer = _parse_pointer(raw, latest)
        state = self.folder / pointer["state"]
        try:
            data = read_regular(state, limit=_MAX_STATE)
        except (FileNotFoundError, RunDirError) as exc:
            raise ResumeError(f"checkpoint state {state} is unreadable ({_reason(exc)})") from None
        if hashlib.sha256(data).hexdigest() != pointer["sha256"]:
            raise ResumeError(f"checkpoint file {state} does not match its checksum")
        stores = {
            name: _RowStore(self.folder, name, p["dim"], p["generation"], p["rows"])
            for name, p in pointer["row_stores"].items()
        }
        self._stores = stores
        rows = {name: s.read() for name, s in stores.items()}
        try:
            with np.load(io.BytesIO(data), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            text = arrays.pop(_STATE).tobytes().decode()
            body = json.loads(text, object_hook=self._decoder(arrays, rows))
            ckpt = Checkpoint(
                next_tick=int(body["next_tick"]),
                world=body["world"],
                memory=body["memory"],
                config_hash=body["config_hash"],
                vectors_hash=body["vectors_hash"],
                perf=body.get("perf", []),
            )
        except (
            OSError,
            ValueError,
            KeyError,
            TypeError,
            IndexError,
            zipfile.BadZipFile,
            RecursionError,  # a state JSON of nested brackets (its checksum says nothing)
        ) as exc:
            raise ResumeError(f"checkpoint state {state} is unreadable ({_reason(exc)})") from None
        if ckpt.next_tick != pointer["next_tick"]:
            raise ResumeError(f"checkpoint state {state} is not the one {latest} names")
        journal = pointer.get("journal")
        self.has_copies = journal is not None
        self.journal.load(journal["bytes"] if journal else 0)
        self._live = {name: dict(s.index) for name, s in stores.items()}
        return ckpt

    def _encoder(self, arrays: dict[str, np.ndarray], live: dict[str, dict[str, int]]):
        """json `default`: arrays go to the npz, KeyedRows to their row store."""

        def default(obj: Any) -> Any:
            if isinstance(obj, KeyedRows):
                store = self._stores.get(obj.store)
                if store is None:
                    dim = int(np.asarray(obj.rows).shape[-1]) if len(obj.keys) else 1
                    store = self._stores[obj.store] = _RowStore(self.folder, obj.store, dim)
                ref = store.encode(obj)
                live.setdefault(obj.store, {}).update(zip(obj.keys, ref["rows"], strict=True))
                return ref
            if isinstance(obj, np.ndarray):
                key = f"a{len(arrays)}"
                arrays[key] = obj
                return {_ARRAY_KEY: key}
            if isinstance(obj, np.generic):
                return obj.item()
            raise TypeError(f"checkpoint state holds a {type(obj).__name__}, which is not JSON")

        return default

    def _decoder(self, arrays: dict[str, np.ndarray], rows: dict[str, np.ndarray]):
        """json `object_hook`: the inverse of _encoder; rebuilds the row stores' index."""

        def hook(obj: dict[str, Any]) -> Any:
            if len(obj) == 1 and _ARRAY_KEY in obj:
                return arrays[obj[_ARRAY_KEY]]
            if _ROWS_KEY in obj and set(obj) == {_ROWS_KEY, "keys", "rows"}:
                store = self._stores[obj[_ROWS_KEY]]
                store.index.update(zip(obj["keys"], obj["rows"], strict=True))
                block = (
                    rows[store.name][obj["rows"]]
                    if obj["rows"]
                    else np.zeros((0, store.dim), np.float32)
                )
                return KeyedRows(store=store.name, keys=obj["keys"], rows=block)
            return obj

        return hook


def _parse_pointer(raw: bytes, latest: Path) -> dict[str, Any]:
    """LATEST's fields, each checked (a hostile LATEST names no path outside the folder)."""

    def bad(field: str) -> ResumeError:
        return ResumeError(
            f"checkpoint pointer {latest}: {field} is missing or invalid; the checkpoint "
            "cannot be used (start the run again with --overwrite)"
        )

    try:
        pointer = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        raise bad("the JSON") from None
    if not isinstance(pointer, dict):
        raise bad("the JSON object")
    if not _count(pointer.get("next_tick")):
        raise bad("next_tick")
    if not (isinstance(pointer.get("state"), str) and _STATE_RE.fullmatch(pointer["state"])):
        raise bad("state")
    if not (isinstance(pointer.get("sha256"), str) and _SHA_RE.fullmatch(pointer["sha256"])):
        raise bad("sha256")
    stores = pointer.setdefault("row_stores", {})
    if not isinstance(stores, dict):
        raise bad("row_stores")
    for name, p in stores.items():
        if not _STORE_NAME_RE.fullmatch(name) or not isinstance(p, dict):
            raise bad(f"row_stores.{name}")
        if not all(_count(p.get(k)) for k in ("generation", "rows", "dim")) or p["dim"] < 1:
            raise bad(f"row_stores.{name}")
    journal = pointer.get("journal")
    if journal is not None and not (isinstance(journal, dict) and _count(journal.get("bytes"))):
        raise bad("journal")
    return pointer


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _reason(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return "missing"
    return str(exc) if isinstance(exc, RunDirError) else exc.__class__.__name__

"""Crash-safe checkpoints of a run's state after each completed tick.

Layout under <run_dir>/checkpoint/:
    state_000123.json   world, memories, hashes (arrays replaced by references)
    arrays_000123.npz   the numeric arrays of that state (no pickles)
    LATEST              {"tick": 123, "state": ..., "arrays": ..., "sha256": {...}}

Each file is written atomically (temp + fsync + rename) and LATEST is replaced
last, so at any instant LATEST names a complete checkpoint; the older files
are deleted only after that. All randomness is derived from (seed, tick,
index) (see seeding.py), so the state needs no RNG objects: the next tick
number is the RNG state."""

from __future__ import annotations

import hashlib
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from orchestrator.errors import ResumeError
from orchestrator.storage import atomic_write, atomic_write_json

LATEST = "LATEST"
_ARRAY_KEY = "__ndarray__"


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    next_tick: int  # the first tick not yet run
    world: dict[str, Any]
    memory: dict[str, Any]
    config_hash: str
    vectors_hash: str | None


def config_hash(config: dict[str, Any]) -> str:
    """Hash of the resolved config minus the keys that may change on resume."""
    relevant = {k: v for k, v in config.items() if k not in ("run_id", "storage")}
    text = json.dumps(relevant, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def save_checkpoint(folder: Path, ckpt: Checkpoint) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    body = {
        "next_tick": ckpt.next_tick,
        "world": ckpt.world,
        "memory": ckpt.memory,
        "config_hash": ckpt.config_hash,
        "vectors_hash": ckpt.vectors_hash,
    }
    stem = f"{ckpt.next_tick:06d}"
    state_path, arrays_path = folder / f"state_{stem}.json", folder / f"arrays_{stem}.npz"
    state_bytes = json.dumps(body, separators=(",", ":"), default=_array_ref(arrays)).encode()
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    arrays_bytes = buf.getvalue()
    atomic_write(state_path, lambda p: p.write_bytes(state_bytes))
    atomic_write(arrays_path, lambda p: p.write_bytes(arrays_bytes))
    atomic_write_json(
        folder / LATEST,
        {
            "next_tick": ckpt.next_tick,
            "state": state_path.name,
            "arrays": arrays_path.name,
            "sha256": {
                state_path.name: hashlib.sha256(state_bytes).hexdigest(),
                arrays_path.name: hashlib.sha256(arrays_bytes).hexdigest(),
            },
        },
    )
    for old in (*folder.glob("state_*.json"), *folder.glob("arrays_*.npz")):
        if old not in (state_path, arrays_path):
            old.unlink(missing_ok=True)


def load_checkpoint(folder: Path) -> Checkpoint | None:
    """The last complete checkpoint, or None if the run never finished a tick."""
    latest = folder / LATEST
    if not latest.exists():
        return None
    try:
        pointer = json.loads(latest.read_text())
        state_bytes = (folder / pointer["state"]).read_bytes()
        arrays_bytes = (folder / pointer["arrays"]).read_bytes()
    except (OSError, ValueError, KeyError) as exc:
        raise ResumeError(
            f"checkpoint in {folder} is unreadable ({exc.__class__.__name__})"
        ) from None
    for name, data in ((pointer["state"], state_bytes), (pointer["arrays"], arrays_bytes)):
        if hashlib.sha256(data).hexdigest() != pointer["sha256"].get(name):
            raise ResumeError(f"checkpoint file {folder / name} does not match its checksum")
    with np.load(io.BytesIO(arrays_bytes), allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    body = json.loads(state_bytes, object_hook=_array_from(arrays))
    return Checkpoint(
        next_tick=int(body["next_tick"]),
        world=body["world"],
        memory=body["memory"],
        config_hash=body["config_hash"],
        vectors_hash=body["vectors_hash"],
    )


def _array_ref(arrays: dict[str, np.ndarray]):
    """json `default`: store an ndarray in `arrays`, write {"__ndarray__": key} instead."""

    def default(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            key = f"a{len(arrays)}"
            arrays[key] = obj
            return {_ARRAY_KEY: key}
        if isinstance(obj, np.generic):
            return obj.item()
        raise TypeError(f"checkpoint state holds a {type(obj).__name__}, which is not JSON")

    return default


def _array_from(arrays: dict[str, np.ndarray]):
    """json `object_hook`: the inverse of _array_ref."""

    def hook(obj: dict[str, Any]) -> Any:
        if len(obj) == 1 and _ARRAY_KEY in obj:
            return arrays[obj[_ARRAY_KEY]]
        return obj

    return hook

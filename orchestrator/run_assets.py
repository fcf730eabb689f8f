"""What a run folder carries so that it can be copied or moved and still be
analysed: the steering vectors actually applied are copied into
<run>/vectors/ (their hash checked against the backend's) and the manifest
names them relative to the run folder; the model is named by name, identity
hash and, where it is a local folder, its absolute path (the weights are too
large to copy; on another machine the check finds the model by its name).

The analysis finds a recorded path relative to the run folder first
(orchestrator.analysis.behavioural). This module knows nothing about
backends or the analysis; orchestrator.assemble calls `carry_model_record`
once when a run starts."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from orchestrator.errors import StorageError

VECTORS_DIR = "vectors"


def carry_model_record(record: dict[str, Any] | None, run_path: Path) -> dict[str, Any] | None:
    """The backend's model record (Backend.describe()) for the manifest: the
    steering vectors file copied into the run folder and named relative to it
    (`vectors_source` keeps where it came from), the model's local folder as
    an absolute path. A record without vectors (mock, steering off) keeps its
    vectors as they are."""
    if not isinstance(record, dict):
        return record
    out = dict(record)
    resolved = out.get("resolved_path")
    if isinstance(resolved, str) and resolved and Path(resolved).exists():
        out["resolved_path"] = str(Path(resolved).resolve())
    steer = out.get("steering")
    if isinstance(steer, dict) and steer.get("vectors_file"):
        out["steering"] = _carry_vectors(steer, run_path)
    return out


def _carry_vectors(steer: dict[str, Any], run_path: Path) -> dict[str, Any]:
    from agents.steering.vectors import file_hash
    from orchestrator.storage import atomic_write

    source = Path(steer["vectors_file"]).resolve()
    if not source.is_file():
        raise StorageError(f"the steering vectors {source} the model was given are gone")
    dest = run_path / VECTORS_DIR / source.name
    try:
        dest.parent.mkdir(exist_ok=True)
        atomic_write(dest, lambda p: shutil.copyfile(source, p))
    except OSError as exc:
        raise StorageError(f"cannot copy the steering vectors into {dest.parent}: {exc}") from None
    digest = file_hash(dest)
    expected = steer.get("vectors_hash")
    if expected and digest != expected:
        raise StorageError(
            f"the steering vectors {source} changed while the run started "
            f"(hash {digest}, the model was given {expected}); start the run again"
        )
    return {
        **steer,
        "vectors_file": f"{VECTORS_DIR}/{source.name}",  # relative to the run folder
        "vectors_source": str(source),
        "vectors_hash": digest,
    }

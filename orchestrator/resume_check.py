"""What a resume keeps, checked before it is kept: the run's manifest and
every tick file below the checkpoint.

A tick file must exist as a regular file, its Parquet footer must read, and
its size and row count must equal what the checkpoint's journal recorded when
the tick was written (see tick_journal.py). A missing or damaged file is
written back from the journal's copy (after the copy's SHA-256 is checked);
one that cannot be written back refuses the resume in one line. A checkpoint
from before the journal existed gives no counts: then presence and a readable
footer are checked.

This module reads and repairs files; it decides nothing about the run (that
is orchestrator.assemble)."""

from __future__ import annotations

import json
import logging
import os
import stat
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq

from orchestrator.checkpoint import CheckpointStore
from orchestrator.errors import ResumeError, RunDirError
from orchestrator.storage import RunDir, atomic_write, read_regular
from orchestrator.tick_journal import TickCopy

log = logging.getLogger(__name__)

MAX_MANIFEST_BYTES = 64 << 20


def read_manifest(run_dir: RunDir, run_id: str, *, asked: str | None = None) -> dict[str, Any]:
    """manifest.json as a dict holding the run's config, or one line saying why
    not, led by `asked` (what the user typed; default `--resume RUN_ID`)."""
    asked = asked or f"--resume {run_id}"
    try:
        raw = read_regular(run_dir.manifest, limit=MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        if run_dir.exists():
            raise ResumeError(
                f"{asked}: {run_dir.path} has no manifest.json (the run stopped "
                "before it started); start it again with --overwrite"
            ) from None
        raise ResumeError(f"{asked}: no run found at {run_dir.path}") from None
    except RunDirError as exc:
        raise ResumeError(f"{asked}: {exc}") from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):  # RecursionError: nested too deep
        manifest = None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("config"), dict):
        raise ResumeError(
            f"{asked}: {run_dir.manifest} is damaged (not a JSON object holding "
            "the run's config); start the run again with --overwrite"
        )
    return manifest


def problem_with(path: Path, copy: TickCopy | None) -> str | None:
    """What is wrong with a tick file (None: nothing), judged against its record."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    if not stat.S_ISREG(info.st_mode):
        return "not a regular file"
    if copy is not None and info.st_size != copy.size:
        return f"{info.st_size} bytes instead of {copy.size}"
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except Exception:  # pyarrow raises ArrowInvalid, OSError, ... for a bad footer
        return "not a readable Parquet file"
    if copy is not None and rows != copy.rows:
        return f"{rows} rows instead of {copy.rows}"
    return None


def verify_tick_files(run_dir: RunDir, store: CheckpointStore, next_tick: int) -> int:
    """Check every tick file below `next_tick`; write back what is missing or
    damaged from the checkpoint's copies. Returns how many files were restored."""
    if not store.has_copies:  # an older checkpoint: no counts recorded
        for tick in range(next_tick):
            path = run_dir.tick_file(tick)
            problem = problem_with(path, None)
            if problem:
                raise ResumeError(
                    f"--resume: {path} is {problem}, and this run's checkpoint keeps no "
                    "copies to restore it from; the run cannot be resumed safely"
                )
        return 0
    copies = store.tick_copies()
    folders = {f.name: f for f in run_dir.tick_folders()}
    missing = [t for t in range(next_tick) if ("messages", t) not in copies]
    if missing:
        raise ResumeError(
            f"--resume: the checkpoint has no record of tick {missing[0]}'s messages; "
            "the run cannot be resumed safely"
        )
    restored = 0
    for (name, tick), copy in sorted(copies.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        if tick >= next_tick:
            continue
        if name not in folders:
            raise ResumeError(
                f"--resume: the checkpoint's journal names an unknown folder {name!r}"
            )
        path = run_dir.tick_file(tick, folders[name])
        problem = problem_with(path, copy)
        if problem is None:
            continue
        data = store.read_copy(copy)
        if data is None:
            raise ResumeError(
                f"--resume: {path} is {problem} and the checkpoint's copy of it is damaged "
                "too; the run cannot be resumed safely"
            )
        folders[name].mkdir(exist_ok=True)
        atomic_write(path, lambda p, d=data: p.write_bytes(d))
        log.warning("%s was %s; restored it from the checkpoint's copy", path, problem)
        restored += 1
    return restored

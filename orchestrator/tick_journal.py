"""The checkpoint's copy of every tick file: `checkpoint/ticks.bin`, an
append-only journal with one entry per file a tick wrote (messages, and
prompts, memories, positions where the run writes them).

Each entry is a small JSON header (folder, tick, rows, size, sha256) followed
by the file's exact bytes. The checkpoint's LATEST vouches for a length of the
journal; bytes past it (an append a crash cut short) are ignored on reading
and cut off before the next append, as for the row stores.

On resume the headers say what every tick file below the checkpoint must be
(its size and row count), and a missing or damaged file is written back from
its copy after the copy's SHA-256 is checked. The cost is a second copy of the
tick files on the same disk, which is what makes repair possible at all.

This module knows nothing about the run's state; checkpoint.py calls it."""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import ResumeError
from orchestrator.storage import is_regular

JOURNAL = "ticks.bin"
_MAGIC = b"STK1"
_HEAD = struct.Struct("<4sI")  # magic, length of the JSON header that follows
_MAX_HEADER = 4096


@dataclass(frozen=True, kw_only=True)
class TickCopy:
    """Where the journal keeps one tick file, and what that file must be."""

    folder: str  # messages | prompts | memories | positions
    tick: int
    rows: int
    size: int  # bytes
    sha256: str
    offset: int  # of the file's bytes in ticks.bin


class TickJournal:
    def __init__(self, folder: Path) -> None:
        self.path = folder / JOURNAL
        self.length = 0  # bytes LATEST vouches for (or this process wrote)
        self.index: dict[tuple[str, int], TickCopy] = {}

    def append(self, tick: int, files: Mapping[str, bytes]) -> None:
        """Append copies of tick `tick`'s files (folder name -> bytes), fsynced."""
        entries = []
        offset = self.length
        for folder, data in files.items():
            rows = pq.ParquetFile(pa.BufferReader(data)).metadata.num_rows
            sha = hashlib.sha256(data).hexdigest()
            head = json.dumps(
                {"folder": folder, "tick": tick, "rows": rows, "size": len(data), "sha256": sha},
                separators=(",", ":"),
            ).encode()
            copy = TickCopy(
                folder=folder,
                tick=tick,
                rows=rows,
                size=len(data),
                sha256=sha,
                offset=offset + _HEAD.size + len(head),
            )
            entries.append((_HEAD.pack(_MAGIC, len(head)) + head, data, copy))
            offset = copy.offset + len(data)
        with open(self.path, "ab") as fh:
            fh.truncate(self.length)  # drop a torn append from a crash
            fh.seek(0, os.SEEK_END)
            for head, data, _ in entries:
                fh.write(head)
                fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        for _, _, copy in entries:
            self.index[(copy.folder, copy.tick)] = copy
        self.length = offset

    def load(self, length: int) -> None:
        """Read the headers of the first `length` bytes (what LATEST vouches for)."""
        self.length, self.index = length, {}
        if length == 0:
            return
        if not is_regular(self.path) or self.path.stat().st_size < length:
            raise ResumeError(
                f"checkpoint journal {self.path} is missing or shorter than LATEST says"
            )
        with open(self.path, "rb") as fh:
            pos = 0
            while pos < length:
                copy = self._entry(fh, pos, length)
                self.index[(copy.folder, copy.tick)] = copy
                pos = copy.offset + copy.size

    def _entry(self, fh, pos: int, length: int) -> TickCopy:
        fh.seek(pos)
        raw = fh.read(_HEAD.size)
        try:
            magic, n = _HEAD.unpack(raw)
            if magic != _MAGIC or n > _MAX_HEADER:
                raise ValueError("bad entry")
            head = json.loads(fh.read(n))
            copy = TickCopy(
                folder=str(head["folder"]),
                tick=int(head["tick"]),
                rows=int(head["rows"]),
                size=int(head["size"]),
                sha256=str(head["sha256"]),
                offset=pos + _HEAD.size + n,
            )
        except (struct.error, ValueError, KeyError, TypeError, RecursionError):
            # RecursionError: a 4 KB header of nested brackets is deeper than json parses
            raise ResumeError(
                f"checkpoint journal {self.path} is damaged at byte {pos}; "
                "the run's tick files cannot be checked"
            ) from None
        if copy.offset + copy.size > length or copy.size < 0:
            raise ResumeError(f"checkpoint journal {self.path} is damaged at byte {pos}")
        return copy

    def read(self, copy: TickCopy) -> bytes | None:
        """The copied file's bytes, or None if the copy itself is damaged."""
        try:
            with open(self.path, "rb") as fh:
                fh.seek(copy.offset)
                data = fh.read(copy.size)
        except OSError:
            return None
        return data if hashlib.sha256(data).hexdigest() == copy.sha256 else None

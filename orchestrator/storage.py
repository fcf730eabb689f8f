"""The run directory and everything written into it. Files are written to a
temporary name in the same folder, fsynced and renamed, so a reader (or a
crash) never sees half a file. Paths are checked to stay under storage.root."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import RunDirError
from orchestrator.records import (
    AGENT_SCHEMA,
    MEMORY_SCHEMA,
    MESSAGE_SCHEMA,
    PERF_SCHEMA,
    PROMPT_SCHEMA,
    MemoryRow,
    MessageRow,
    PerfRow,
    PromptRow,
    positions_table,
    to_table,
)

TMP_PREFIX = ".tmp-"
PERF_FLUSH_TICKS = 10


def atomic_write(path: Path, write: Callable[[Path], None], *, sync_dir: bool = True) -> None:
    """Call write(tmp) on a temp file beside `path`, fsync it, rename it over `path`
    (and fsync the folder, unless the caller does it once for several files)."""
    fd, tmp_name = tempfile.mkstemp(prefix=TMP_PREFIX, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if sync_dir:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_json(path: Path, data: Any) -> None:
    text = json.dumps(data, indent=2, sort_keys=False, default=str)
    atomic_write(path, lambda p: p.write_text(text + "\n", encoding="utf-8"))


def _write_parquet(path: Path, table: pa.Table) -> None:
    pq.write_table(table, path, compression="zstd")


def atomic_write_table(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda p: _write_parquet(p, table))


def run_dir_for(root: str | Path, run_id: str) -> Path:
    """storage.root/dumps/<run_id>, refusing anything that leaves storage.root/dumps."""
    dumps = Path(root).resolve() / "dumps"
    target = (dumps / run_id).resolve()
    if target.parent != dumps:
        raise RunDirError(f"run_id: {run_id!r} would write outside {dumps}")
    return target


class RunDir:
    """Layout of one run's outputs (see README, "Output schema")."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.messages = path / "messages"
        self.prompts = path / "prompts"  # what each request showed the model
        self.memories = path / "memories"  # the memories stored in each tick
        self.positions = path / "positions"  # every agent's location at each tick
        self.checkpoint = path / "checkpoint"
        self.manifest = path / "manifest.json"
        self.agents = path / "agents.parquet"
        self.perf = path / "perf.parquet"

    def tick_file(self, tick: int, folder: Path | None = None) -> Path:
        return (folder or self.messages) / f"tick_{tick:06d}.parquet"

    def tick_folders(self) -> tuple[Path, ...]:
        """The folders that hold one file per tick."""
        return (self.messages, self.prompts, self.memories, self.positions)

    def drop_ticks_from(self, first: int) -> None:
        """Remove the tick files of `first` and later (a resumed run writes them again)."""
        for folder in self.tick_folders():
            for stale in folder.glob("tick_*.parquet"):
                if int(stale.stem.split("_")[1]) >= first:
                    stale.unlink()

    def exists(self) -> bool:
        return self.path.exists() and any(self.path.iterdir())

    def create(self, *, overwrite: bool) -> None:
        if self.exists():
            if not overwrite:
                raise RunDirError(
                    f"run directory {self.path} already exists; pass --overwrite to replace it "
                    "or --run-id to pick another name"
                )
            shutil.rmtree(self.path)
        for folder in self.tick_folders():
            folder.mkdir(parents=True, exist_ok=True)

    def clean_temp_files(self) -> int:
        """Remove temp files a crash left behind; returns how many."""
        n = 0
        for folder in (self.path, *self.tick_folders(), self.checkpoint):
            if folder.is_dir():
                for p in folder.glob(TMP_PREFIX + "*"):
                    p.unlink(missing_ok=True)
                    n += 1
        return n


class DumpWriter:
    """Writes a run's tick files, agents, perf stats and manifest."""

    def __init__(self, run_dir: RunDir, run_id: str | None = None) -> None:
        self.run_dir = run_dir
        self.run_id = run_id or run_dir.path.name  # the folder is named after the run
        self._perf: list[dict[str, Any]] = []  # PerfRow fields, as dicts for the checkpoint

    def write_tick(self, tick: int, rows: list[MessageRow]) -> Path:
        path = self.run_dir.tick_file(tick)
        atomic_write_table(path, to_table(rows, MESSAGE_SCHEMA))
        return path

    def write_records(
        self,
        run_id: str,
        tick: int,
        *,
        prompts: list[PromptRow] | None,
        memories: list[MemoryRow],
        positions: dict[str, str],
    ) -> None:
        """A tick's prompts (None: not recorded), new memories and positions, one
        file each; the folders are fsynced once after all three (not per file)."""
        d = self.run_dir
        d.memories.mkdir(exist_ok=True)  # a run made before these folders existed, resumed
        d.positions.mkdir(exist_ok=True)
        folders = [d.memories, d.positions]
        tables = [
            (d.memories, to_table(memories, MEMORY_SCHEMA)),
            (d.positions, positions_table(run_id, tick, positions)),
        ]
        if prompts is not None:
            d.prompts.mkdir(exist_ok=True)
            folders.append(d.prompts)
            tables.append((d.prompts, to_table(prompts, PROMPT_SCHEMA)))
        for folder, table in tables:
            path = d.tick_file(tick, folder)
            atomic_write(path, lambda p, t=table: _write_parquet(p, t), sync_dir=False)
        for folder in folders:
            fsync_dir(folder)

    def write_agents(self, rows: list[dict[str, Any]]) -> None:
        table = pa.Table.from_pylist(
            [{**r, "run_id": self.run_id} for r in rows], schema=AGENT_SCHEMA
        )
        atomic_write_table(self.run_dir.agents, table)

    def add_perf(self, row: PerfRow) -> None:
        """Collect a tick's perf row; perf.parquet is rewritten every PERF_FLUSH_TICKS
        ticks and by flush_perf (the checkpoint carries the rows in between)."""
        self._perf.append(asdict(row))
        if len(self._perf) % PERF_FLUSH_TICKS == 0:
            self.flush_perf()

    def flush_perf(self) -> None:
        rows = [{"run_id": self.run_id, **r} for r in self._perf]
        table = pa.Table.from_pylist(rows, schema=PERF_SCHEMA)
        atomic_write_table(self.run_dir.perf, table)

    def perf_rows(self) -> list[dict[str, Any]]:
        return list(self._perf)  # the dicts are never mutated: a shallow copy is a snapshot

    def restore_perf(self, rows: list[dict[str, Any]]) -> None:
        """Continue the perf rows of a resumed run (from its checkpoint)."""
        self._perf = [asdict(PerfRow(**r)) for r in rows]  # validates the fields

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic_write_json(self.run_dir.manifest, manifest)

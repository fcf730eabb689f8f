"""The run directory and everything written into it. Files are written to a
temporary name in the same folder, fsynced and renamed, so a reader (or a
crash) never sees half a file. Paths are checked to stay under storage.root:
a run folder, its messages/ and checkpoint/ folders and the files read back
on resume are never symbolic links (lstat, O_NOFOLLOW), and only files with
the names a run writes are ever deleted."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import RunDirError, StorageError, one_line
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
from orchestrator.run_lock import LOCK_NAME

TMP_PREFIX = ".tmp-"
PERF_FLUSH_TICKS = 10
TICK_FILE_RE = re.compile(r"tick_(\d{6,})\.parquet")
# what a run killed before its manifest was written may hold: --overwrite clears
# a folder without a manifest.json only if it holds nothing else
EARLY_ENTRIES = frozenset(
    {"messages", "prompts", "memories", "positions", "checkpoint", "agents.parquet", "vectors"}
)


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


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON file that holds an object (a manifest, a sweep spec). OSError when
    it cannot be read; ValueError, with a one-line reason, when its bytes are not
    UTF-8 JSON, are nested too deeply for the parser or hold no object: callers
    then use their `.get()`s without a second check."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw.decode("utf-8"))
    except RecursionError:  # json.loads of thousands of nested brackets
        raise ValueError("the JSON is nested too deeply") from None
    except ValueError as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise ValueError(one_line(str(exc))) from None
    if not isinstance(data, dict):
        raise ValueError(f"not a JSON object (a {type(data).__name__})")
    return data


def parquet_bytes(table: pa.Table) -> bytes:
    """The bytes of `table` as a parquet file (what pq.write_table writes to a path)."""
    sink = pa.BufferOutputStream()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue().to_pybytes()


def atomic_write_table(path: Path, table: pa.Table) -> None:
    atomic_write(path, lambda p: pq.write_table(table, p, compression="zstd"))


def run_dir_for(root: str | Path, run_id: str) -> Path:
    """storage.root/dumps/<run_id>, refusing anything that leaves storage.root/dumps
    and a run folder that is a symbolic link. The root and dumps/ may be links
    (a big disk mounted elsewhere); the run folder itself never is."""
    dumps = _resolve(Path(root) / "dumps", root)
    candidate = dumps / run_id
    try:
        linked = candidate.is_symlink()
    except OSError as exc:  # pathlib lets ENAMETOOLONG through: a name over 255 bytes
        raise StorageError(f"storage.root {root}: cannot use {candidate} ({why(exc)})") from None
    if linked:
        raise RunDirError(f"{candidate} is a symbolic link; a run folder must be a real folder")
    target = _resolve(candidate, root)
    if target.parent != dumps:
        raise RunDirError(f"run_id: {run_id!r} would write outside {dumps}")
    return target


def _resolve(path: Path, root: str | Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python < 3.13)
        raise StorageError(f"storage.root {root}: cannot resolve {path} ({why(exc)})") from None


def why(exc: BaseException) -> str:
    """A short reason for an OS error: 'No space left on device (ENOSPC)'."""
    if isinstance(exc, OSError) and exc.errno is not None:
        name = errno.errorcode.get(exc.errno, str(exc.errno))
        return f"{exc.strerror or name} ({name})"
    if isinstance(exc, RuntimeError):
        return "a symbolic link loop"
    return exc.__class__.__name__


def check_writable_root(root: str | Path) -> None:
    """Refuse, before anything is written, a storage root a new run could not
    write: a file, /dev/null, a link loop, a read-only folder (exit code 2)."""
    dumps = _resolve(Path(root) / "dumps", root)
    probe = dumps
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    for p in (dumps, *dumps.parents):
        if p.exists() and not p.is_dir():
            raise StorageError(f"storage.root {root}: {p} is not a folder")
        if p == probe:
            break
    if not os.access(probe, os.W_OK | os.X_OK):
        raise StorageError(f"storage.root {root}: {probe} is not writable")


def make_output_folder(path: Path) -> None:
    """mkdir -p a folder the user named for a command's output files (--out,
    --out-dir); a file in its place or above it is one line (exit code 2)."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        reason = why(exc)
        if exc.errno in (errno.EEXIST, errno.ENOTDIR):  # a file where a folder must go
            files = (p for p in (path, *path.parents) if p.exists() and not p.is_dir())
            blocker = next(files, None)
            reason = reason if blocker is None else f"{blocker} is not a folder"
        raise StorageError(f"cannot create the output folder {path}: {reason}") from None


def make_run_folder(path: Path) -> list[Path]:
    """mkdir -p the run folder; returns the folders created (for a clean undo)."""
    created = []
    for p in reversed((path, *path.parents)):
        if not p.exists():
            created.append(p)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"cannot create {path}: {why(exc)}") from None
    if path.is_symlink() or not path.is_dir():
        raise RunDirError(f"{path} is not a real folder")
    return created


def read_regular(path: Path, *, limit: int) -> bytes:
    """The bytes of a regular file that is not a link, at most `limit` of them.
    Never blocks: a FIFO or device in the file's place is refused in one line,
    as is a symlink. FileNotFoundError when there is nothing there."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path} is a symbolic link (not followed); remove it") from None
        raise RunDirError(f"cannot read {path}: {why(exc)}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise RunDirError(f"{path} is not a regular file; remove it")
        if info.st_size > limit:
            raise RunDirError(f"{path} is larger than {limit:,} bytes; is it the run's?")
        with os.fdopen(os.dup(fd), "rb") as fh:
            return fh.read(info.st_size)
    finally:
        os.close(fd)


def is_regular(path: Path) -> bool:
    """A regular file, not a link (lstat)."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


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

    def tick_files(self, folder: Path) -> dict[int, Path]:
        """The tick files in `folder` by tick: regular files named tick_NNNNNN.parquet."""
        if not folder.is_dir() or folder.is_symlink():
            return {}
        out = {}
        for p in folder.iterdir():
            m = TICK_FILE_RE.fullmatch(p.name)
            if m and is_regular(p):
                out[int(m.group(1))] = p
        return out

    def drop_ticks_from(self, first: int) -> None:
        """Remove the tick files of `first` and later (a resumed run writes them again)."""
        for folder in self.tick_folders():
            for tick, stale in self.tick_files(folder).items():
                if tick >= first:
                    stale.unlink()

    def refuse_links(self) -> None:
        """A run folder whose subfolders are links would write (and delete) outside
        itself: refuse it, naming the link."""
        if self.path.is_symlink():
            raise RunDirError(f"{self.path} is a symbolic link; a run folder must be a real folder")
        for sub in (*self.tick_folders(), self.checkpoint):
            if sub.is_symlink():
                raise RunDirError(
                    f"{sub} is a symbolic link; steersim does not follow links inside a run "
                    "folder (replace it with a real folder)"
                )
            if os.path.lexists(sub) and not sub.is_dir():
                raise RunDirError(f"{sub} is not a folder; remove it")

    def entries(self) -> list[str]:
        """What the folder holds, the lock file aside."""
        try:
            return sorted(n for n in os.listdir(self.path) if n != LOCK_NAME)
        except FileNotFoundError:
            return []
        except OSError as exc:
            raise StorageError(f"cannot list {self.path}: {why(exc)}") from None

    def exists(self) -> bool:
        return bool(self.entries())

    def create(self, *, overwrite: bool) -> None:
        """Lay out an empty run (the caller holds the run's lock); --overwrite
        clears a previous run first."""
        if self.exists():
            if not overwrite:
                raise RunDirError(
                    f"run directory {self.path} already exists; pass --overwrite to replace it "
                    "or --run-id to pick another name"
                )
            self.clear()
        self.refuse_links()
        for folder in self.tick_folders():
            folder.mkdir(parents=True, exist_ok=True)

    def clear(self) -> None:
        """Remove a previous run's files for --overwrite. Only a steersim run folder
        is cleared: one whose manifest.json is a steersim manifest, or one holding
        nothing but what a run writes before its manifest. Links are removed, never
        followed."""
        names = self.entries()
        if self.manifest.name in names:
            self.check_own_manifest()
        else:
            foreign = [n for n in names if n not in EARLY_ENTRIES and not n.startswith(TMP_PREFIX)]
            if foreign:
                raise RunDirError(
                    f"{self.path} is not a steersim run folder (it holds {foreign[0]!r} and no "
                    "manifest.json); not replacing it"
                )
        # the manifest goes last: a clear cut short leaves a folder still recognised as a run
        for name in sorted(names, key=lambda n: n == self.manifest.name):
            p = self.path / name
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            else:
                p.unlink()

    def check_own_manifest(self) -> None:
        """Raise RunDirError unless manifest.json is a regular file holding what
        steersim writes there (a run id, a config and the steersim version): a
        folder someone else keeps a manifest.json in is never cleared. A run's
        manifest is written whole (atomic_write), so a real one always reads."""
        why = None
        if not is_regular(self.manifest):
            why = "is not a regular file"
        else:
            try:
                data = read_json_object(self.manifest)
            except (OSError, ValueError) as exc:
                why = f"cannot be read ({one_line(str(exc))})"
            else:
                versions = data.get("versions")
                if not (
                    isinstance(data.get("run_id"), str)
                    and isinstance(data.get("config"), dict)
                    and isinstance(versions, dict)
                    and "steersim" in versions
                ):
                    why = "is not a steersim run manifest"
        if why is not None:
            raise RunDirError(
                f"{self.manifest} {why}; not replacing {self.path} (remove it yourself or "
                "pick another --run-id)"
            )

    def clean_temp_files(self) -> int:
        """Remove temp files a crash left behind; returns how many."""
        n = 0
        for folder in (self.path, *self.tick_folders(), self.checkpoint):
            if folder.is_dir() and not folder.is_symlink():
                for p in folder.glob(TMP_PREFIX + "*"):
                    if is_regular(p):
                        p.unlink(missing_ok=True)
                        n += 1
        return n


class DumpWriter:
    """Writes a run's tick files, agents, perf stats and manifest."""

    def __init__(self, run_dir: RunDir, run_id: str | None = None) -> None:
        self.run_dir = run_dir
        self.run_id = run_id or run_dir.path.name  # the folder is named after the run
        self._perf: list[dict[str, Any]] = []  # PerfRow fields, as dicts for the checkpoint

    def write_tick(
        self,
        tick: int,
        rows: list[MessageRow],
        *,
        prompts: list[PromptRow] | None,
        memories: list[MemoryRow],
        positions: dict[str, str],
    ) -> dict[str, bytes]:
        """A tick's files, one per folder: its messages, prompts (None: not
        recorded), new memories and positions. Each table is serialised once
        and the bytes written are returned (folder name -> bytes) for the
        checkpoint's copy. The folders are fsynced once after all the files."""
        d = self.run_dir
        tables = {d.messages: to_table(rows, MESSAGE_SCHEMA)}
        if prompts is not None:
            tables[d.prompts] = to_table(prompts, PROMPT_SCHEMA)
        tables[d.memories] = to_table(memories, MEMORY_SCHEMA)
        tables[d.positions] = positions_table(self.run_id, tick, positions)
        out = {}
        for folder, table in tables.items():
            folder.mkdir(exist_ok=True)  # a run made before these folders existed, resumed
            data = parquet_bytes(table)
            atomic_write(
                d.tick_file(tick, folder), lambda p, b=data: p.write_bytes(b), sync_dir=False
            )
            out[folder.name] = data
        for folder in tables:
            fsync_dir(folder)
        return out

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

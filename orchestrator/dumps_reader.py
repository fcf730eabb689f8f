"""Reading a finished (or running) run back: finds the run directory from a
run id or a path, and loads its manifest, agents, perf stats and tick files
into pandas. The one loader every analysis script uses.

It reads only the documented dump layout (orchestrator.storage.RunDir and the
schemas in orchestrator.records); it knows nothing about how a run is made,
and it never writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.errors import SteersimError, one_line
from orchestrator.records import AGENT_SCHEMA, MESSAGE_SCHEMA, PERF_SCHEMA
from orchestrator.storage import RunDir, read_json_object, why

log = logging.getLogger(__name__)

TRAIT_COLUMNS = ("steer_E", "steer_A", "steer_C", "steer_O", "steer_N")
REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_STORAGE = "storage"


class DumpsError(SteersimError):
    """The run's dumps cannot be found or read (exit code 2)."""


def is_run_dir(path: Path) -> bool:
    """A run directory holds a manifest.json or a messages/ folder."""
    return path.is_dir() and ((path / "manifest.json").is_file() or (path / "messages").is_dir())


def candidate_roots(storage_root: str | Path | None) -> list[Path]:
    """Where a bare run id is looked for: the given root only, or else
    ./storage and then the repository's storage/ (so scripts work from any
    directory for runs made in the repo)."""
    if storage_root is not None:
        return [Path(storage_root).expanduser()]  # as a run's own storage.root
    roots = [Path.cwd() / DEFAULT_STORAGE, REPO_ROOT / DEFAULT_STORAGE]
    return list(dict.fromkeys(r.resolve() for r in roots))


def resolve_run(ref: str | Path, storage_root: str | Path | None = None) -> Path:
    """A run directory from `ref`: a path to a run directory (or to its
    messages/ folder), or a run id looked up under <root>/dumps/."""
    try:
        return _resolve_run(ref, storage_root)
    except OSError as exc:  # pathlib's checks let e.g. a name over 255 bytes through
        where = f" at {exc.filename}" if exc.filename else ""
        raise DumpsError(f"cannot look up run {str(ref)!r}{where}: {why(exc)}") from None


def _resolve_run(ref: str | Path, storage_root: str | Path | None) -> Path:
    path = Path(ref).expanduser()
    if path.name == "messages" and is_run_dir(path.parent):
        return path.parent.resolve()
    if is_run_dir(path):
        return path.resolve()
    looks_like_path = path.is_absolute() or len(path.parts) > 1 or str(ref).startswith(".")
    if not looks_like_path:
        for root in candidate_roots(storage_root):
            found = root / "dumps" / str(ref)
            if is_run_dir(found):
                return found.resolve()
    if path.exists():
        raise DumpsError(
            f"{path} is not a run directory (no manifest.json or messages/ folder in it)"
        )
    where = ", ".join(str(r / "dumps") for r in candidate_roots(storage_root))
    raise DumpsError(
        f"no run {str(ref)!r}: not a directory, and no such run id under {where}; "
        "pass a run directory or --storage-root"
    )


def messages_dir_of(ref: str | Path) -> Path:
    """The messages/ folder named by `ref` (the folder itself or its run dir)."""
    path = Path(ref).expanduser()
    if not path.exists():
        raise DumpsError(f"{path} does not exist; pass <storage>/dumps/<run_id>/messages")
    if not path.is_dir():
        raise DumpsError(f"{path} is not a directory; pass <storage>/dumps/<run_id>/messages")
    if (path / "messages").is_dir():
        path = path / "messages"
    return path.resolve()


def tick_files(messages_dir: Path, num_files: int | None = None) -> list[Path]:
    """The tick files in tick order (temp files of a crash are not ticks);
    the first `num_files` of them when given."""
    files = sorted(p for p in messages_dir.glob("tick_*.parquet") if p.is_file())
    if not files:
        raise DumpsError(f"no message files (tick_*.parquet) in {messages_dir}")
    if num_files is not None:
        if num_files < 1:
            raise DumpsError(f"--num-files must be >= 1, got {num_files}")
        files = files[:num_files]
    return files


# Dumps written before agents.parquet used the messages' names and before
# agents/perf carried run_id: read them as if they had (cheap, and old runs stay usable).
LEGACY_NAMES = {"id": "agent_id", "name": "agent_name"}


def _upgrade_legacy(table: pa.Table, schema: pa.Schema, run_id: str | None) -> pa.Table:
    if "agent_id" in schema.names and "agent_id" not in table.column_names:
        table = table.rename_columns([LEGACY_NAMES.get(n, n) for n in table.column_names])
    if run_id is not None and "run_id" in schema.names and "run_id" not in table.column_names:
        table = table.add_column(0, "run_id", pa.array([run_id] * table.num_rows, pa.string()))
    if "request_id" in schema.names and "request_id" not in table.column_names:
        # messages from before prompts were recorded: a row's id is its position in its file
        at = table.column_names.index("tick") + 1 if "tick" in table.column_names else 0
        table = table.add_column(at, "request_id", pa.array(range(table.num_rows), pa.int32()))
    if "plan" in schema.names and "plan" not in table.column_names:
        # messages from before the plan had its own column (their goal column showed
        # the plan once there was one): no plan recorded
        at = table.column_names.index("goal") + 1 if "goal" in table.column_names else 0
        table = table.add_column(at, "plan", pa.nulls(table.num_rows, pa.string()))
    return table


def _read_table(path: Path, schema: pa.Schema, run_id: str | None = None) -> pd.DataFrame:
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DumpsError(f"cannot read {path}: {exc}") from None
    table = _upgrade_legacy(table, schema, run_id)
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise DumpsError(f"{path} lacks the columns {', '.join(missing)}; is it a steersim dump?")
    return table.to_pandas()


def load_messages(messages_dir: Path, num_files: int | None = None) -> pd.DataFrame:
    """All message rows of the tick files, in tick order (the MESSAGE_SCHEMA columns)."""
    files = tick_files(messages_dir, num_files)
    frames = [_read_table(f, MESSAGE_SCHEMA) for f in files]
    frames = [f for f in frames if len(f)] or frames[:1]
    df = pd.concat(frames, ignore_index=True)
    log.debug("read %d message rows from %d files in %s", len(df), len(files), messages_dir)
    return df


def load_tick_folder(folder: Path, schema: pa.Schema) -> pd.DataFrame | None:
    """All tick files of one of a run's per-tick folders (prompts/, memories/,
    positions/) in tick order, or None when the run has none (it predates
    them, or, for prompts/, storage.save_prompts was off)."""
    files = sorted(p for p in folder.glob("tick_*.parquet") if p.is_file())
    if not files:
        return None
    frames = [_read_table(f, schema) for f in files]
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """manifest.json, or {} when the run has none (a bare messages folder)."""
    path = RunDir(run_dir).manifest
    if not path.is_file():
        return {}
    try:
        return read_json_object(path)  # the readers take its fields with .get()
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 JSON holding an object
        raise DumpsError(f"cannot read {path}: {one_line(str(exc))}") from None


@dataclass(frozen=True, kw_only=True)
class RunDumps:
    """One run's dumps in memory. `agents` and `perf` are empty frames (with
    the documented columns) when the files are absent."""

    path: Path
    run_id: str
    manifest: dict[str, Any]
    messages: pd.DataFrame
    agents: pd.DataFrame
    perf: pd.DataFrame
    files_read: int

    @property
    def backend(self) -> str:
        model = self.manifest.get("model") or {}
        return str(model.get("backend") or "unknown")


def _optional_table(path: Path, schema: pa.Schema, run_id: str) -> pd.DataFrame:
    if path.is_file():
        return _read_table(path, schema, run_id)
    return schema.empty_table().to_pandas()


def load_run(run_dir: Path, num_files: int | None = None) -> RunDumps:
    """Everything a run wrote, read from `run_dir` (see resolve_run)."""
    layout = RunDir(run_dir)
    if not layout.messages.is_dir():
        raise DumpsError(f"{run_dir} has no messages/ folder; is it a run directory?")
    files = tick_files(layout.messages, num_files)
    manifest = load_manifest(run_dir)
    messages = load_messages(layout.messages, num_files)
    run_id = str(
        manifest.get("run_id")
        or (messages["run_id"].iloc[0] if len(messages) else "")
        or run_dir.name
    )
    return RunDumps(
        path=run_dir,
        run_id=run_id,
        manifest=manifest,
        messages=messages,
        agents=_optional_table(layout.agents, AGENT_SCHEMA, run_id),
        perf=_optional_table(layout.perf, PERF_SCHEMA, run_id),
        files_read=len(files),
    )


def storage_root_of(run_dir: Path) -> Path | None:
    """<root> for a run at <root>/dumps/<run_id>, else None."""
    if run_dir.parent.name == "dumps":
        return run_dir.parent.parent
    return None


def default_analysis_dir(run_dir: Path, run_id: str) -> Path:
    """<root>/analysis/<run_id> for a run under <root>/dumps/, else
    <run_dir>/analysis (a run directory outside any storage root)."""
    root = storage_root_of(run_dir)
    if root is None:
        return run_dir / "analysis"
    return root / "analysis" / run_id

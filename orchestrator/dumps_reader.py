"""Reading a finished (or running) run back: finds the run directory from a
run id or a path, and loads its manifest, agents, perf stats and tick files
into pandas. The one loader every analysis script uses.

It reads only the documented dump layout (orchestrator.storage.RunDir and the
schemas in orchestrator.records); it knows nothing about how a run is made,
and it never writes.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from agents.paths import expand_home
from orchestrator.errors import SteersimError, one_line
from orchestrator.records import AGENT_SCHEMA, MESSAGE_SCHEMA, PERF_SCHEMA
from orchestrator.storage import TICK_FILE_RE, RunDir, read_json_object, why

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
        return [_expanded(storage_root, "--storage-root")]  # as a run's own storage.root
    roots = [Path.cwd() / DEFAULT_STORAGE, REPO_ROOT / DEFAULT_STORAGE]
    return list(dict.fromkeys(r.resolve() for r in roots))


def resolve_run(ref: str | Path, storage_root: str | Path | None = None) -> Path:
    """A run directory from `ref`: a path to a run directory (or to its
    messages/ folder), or a run id looked up under <root>/dumps/."""
    if not str(ref).strip():  # read as '.', ". is not a run directory" named no option
        raise DumpsError("the run is empty: give a run id or a path to a run folder")
    try:
        return _resolve_run(ref, storage_root)
    except OSError as exc:  # pathlib's checks let e.g. a name over 255 bytes through
        where = f" at {exc.filename}" if exc.filename else ""
        raise DumpsError(f"cannot look up run {str(ref)!r}{where}: {why(exc)}") from None


def _expanded(path: str | Path, what: str) -> Path:
    """`path` with its `~` expanded; DumpsError for a `~user` of no user
    (Path.expanduser raised a RuntimeError traceback)."""
    try:
        return Path(expand_home(str(path)))
    except ValueError as exc:
        raise DumpsError(f"{what} {str(path)!r}: {exc}") from None


def _resolve_run(ref: str | Path, storage_root: str | Path | None) -> Path:
    path = _expanded(ref, "run")
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
    path = _expanded(ref, "messages folder")
    if not path.exists():
        raise DumpsError(f"{path} does not exist; pass <storage>/dumps/<run_id>/messages")
    if not path.is_dir():
        raise DumpsError(f"{path} is not a directory; pass <storage>/dumps/<run_id>/messages")
    if (path / "messages").is_dir():
        path = path / "messages"
    return path.resolve()


def _tick_entries(folder: Path) -> list[Path]:
    """The tick files of a per-tick folder in tick order. An entry with a tick
    file's name that is no file (a folder, a link to nothing) is damage, not a
    tick to leave out: skipping it would drop the tick's rows without a word."""
    files = sorted(folder.glob("tick_*.parquet"))
    for path in files:
        if not path.is_file():
            raise DumpsError(f"{path} is not a file (a folder or a broken link); a tick is lost")
    return files


def tick_files(messages_dir: Path, num_files: int | None = None) -> list[Path]:
    """The tick files in tick order; the first `num_files` of them when given."""
    files = _tick_entries(messages_dir)
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


# The only columns the writer leaves empty (records.py: `str | None`); a null
# anywhere else is damage that the readers would meet as a NaN tick or id.
NULLABLE = frozenset({"target", "plan"})
# Numbers every reader computes with or embeds in JSON: NaN or infinity there is damage.
FINITE = frozenset({*TRAIT_COLUMNS, "E", "A", "C", "O", "N", "importance", "memory_scores"})


def _kind(t: pa.DataType) -> str:
    """What a column holds, in the words of an error (int32 and int64 are alike)."""
    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "text"
    if pa.types.is_integer(t):
        return "whole numbers"
    if pa.types.is_floating(t):
        return "numbers"
    if pa.types.is_boolean(t):
        return "true/false"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"lists of {_kind(t.value_type)}"
    return str(t)


def _fits(found: pa.DataType, wanted: pa.DataType) -> bool:
    """Values of type `found` can stand for the schema's `wanted`: the same kind
    (another width, a dictionary), whole numbers for numbers, or all null."""
    kind = _kind(found)
    widened = kind.replace("whole numbers", "numbers")  # an int column where floats go
    return pa.types.is_null(found) or _kind(wanted) in (kind, widened)


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    """The schema's columns cast to its types; a column of another kind, with an
    empty value where the writer never leaves one, or a NaN coefficient is
    damage (one line), not a traceback deep in an analysis (a text `tick` made
    pandas compare str with int; a NaN trait broke the replay page's JSON)."""
    for field in schema:
        at = table.column_names.index(field.name)
        column = table.column(at)
        if not _fits(column.type, field.type):
            raise DumpsError(
                f"{path}: column {field.name} holds {_kind(column.type)}, not "
                f"{_kind(field.type)}; is it a steersim dump?"
            )
        try:
            column = column.cast(field.type)  # safe: an overflow is an error, not a wrap
        except pa.ArrowException:
            raise DumpsError(f"{path}: column {field.name} has values out of range") from None
        if column.null_count and field.name not in NULLABLE:
            raise DumpsError(f"{path}: column {field.name} is empty in {column.null_count} rows")
        if field.name in FINITE and not _all_finite(column):
            raise DumpsError(f"{path}: column {field.name} holds NaN or infinite values")
        table = table.set_column(at, field.name, column)
    return table


def _all_finite(column: pa.ChunkedArray) -> bool:
    values = pc.list_flatten(column) if pa.types.is_list(column.type) else column
    return len(values) == 0 or pc.all(pc.is_finite(values)).as_py() is not False


def _check_ticks(table: pa.Table, path: Path) -> None:
    """The rows of tick_N.parquet are tick N's: a copy or link of another tick's
    file would count its rows twice, and a wild tick (2**31 - 1) made the
    per-tick counts allocate every tick up to it."""
    named = TICK_FILE_RE.fullmatch(path.name)
    if named is None or "tick" not in table.column_names or table.num_rows == 0:
        return
    tick = int(named.group(1))
    low, high = pc.min_max(table.column("tick")).values()
    if (low.as_py(), high.as_py()) != (tick, tick):
        raise DumpsError(
            f"{path}: rows of ticks {low.as_py()} to {high.as_py()} in the file of tick {tick}"
        )


def _read_table(path: Path, schema: pa.Schema, run_id: str | None = None) -> pd.DataFrame:
    return read_arrow(path, schema, run_id).to_pandas()


def read_arrow(path: Path, schema: pa.Schema, run_id: str | None = None) -> pa.Table:
    """A dump file as a table with the schema's columns and types (and any
    others it has), checked: see _conform and _check_ticks."""
    try:
        table = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise DumpsError(f"cannot read {path}: {one_line(str(exc))}") from None
    table = _upgrade_legacy(table, schema, run_id)
    missing = [n for n in schema.names if n not in table.column_names]
    if missing:
        raise DumpsError(f"{path} lacks the columns {', '.join(missing)}; is it a steersim dump?")
    table = _conform(table, schema, path)
    _check_ticks(table, path)
    return table


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
    files = _tick_entries(folder)
    if not files:
        return None
    frames = [_read_table(f, schema) for f in files]
    frames = [f for f in frames if len(f)] or frames[:1]
    return pd.concat(frames, ignore_index=True)


def load_manifest(run_dir: Path) -> dict[str, Any]:
    """manifest.json, or {} when the run has none (a bare messages folder)."""
    path = RunDir(run_dir).manifest
    if not _present(path):
        return {}
    try:
        manifest = read_json_object(path)  # the readers take its fields with .get()
    except (OSError, ValueError) as exc:  # ValueError: not UTF-8 JSON holding an object
        raise DumpsError(f"cannot read {path}: {one_line(str(exc))}") from None
    check_manifest(manifest, path)
    return manifest


# The manifest fields the readers use and the JSON type each must have (null
# counts as absent): `(m.get("model") or {}).get(...)` on a string was an
# AttributeError traceback; a list `config.world.locations` of 5 a TypeError.
MANIFEST_FIELDS: dict[tuple[str, ...], type] = {
    ("run_id",): str,
    ("status",): str,
    ("seed",): int,
    ("ticks_completed",): int,
    ("config",): dict,
    ("config", "run_id"): str,
    ("config", "seed"): int,
    ("config", "world"): dict,
    ("config", "world", "locations"): list,
    ("model",): dict,
    ("model", "steering"): dict,
}
_JSON_NAMES = {str: "a string", int: "a whole number", dict: "an object", list: "a list"}


def check_manifest(manifest: dict[str, Any], path: Path) -> None:
    """DumpsError (one line) when a field the readers use has the wrong JSON type."""
    for keys, wanted in MANIFEST_FIELDS.items():
        value: Any = manifest
        for key in keys:  # a parent is checked before its fields: a dict or None here
            value = value.get(key) if isinstance(value, dict) else None
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, wanted):
            raise DumpsError(
                f"{path}: {'.'.join(keys)} must be {_JSON_NAMES[wanted]}, "
                f"not {one_line(json.dumps(value))[:60]}"
            )
    done = manifest.get("ticks_completed")
    if isinstance(done, int) and done < 0:
        raise DumpsError(f"{path}: ticks_completed must be >= 0, not {done}")


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


def _present(path: Path) -> bool:
    """Whether a run's optional file is there. An entry that is no file (a
    folder, a link to nothing) is damage: read as absent, the run lost its
    manifest or agents.parquet without a word."""
    if path.is_file():
        return True
    if path.exists() or path.is_symlink():
        raise DumpsError(f"{path} is not a file (a folder or a broken link)")
    return False


def _optional_table(path: Path, schema: pa.Schema, run_id: str) -> pd.DataFrame:
    if _present(path):
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
    agents = _optional_table(layout.agents, AGENT_SCHEMA, run_id)
    twice = agents["agent_id"][agents["agent_id"].duplicated()]
    if len(twice):  # the readers index agents by id: a second row would shadow the first
        raise DumpsError(f"{layout.agents}: agent {twice.iloc[0]!r} has more than one row")
    return RunDumps(
        path=run_dir,
        run_id=run_id,
        manifest=manifest,
        messages=messages,
        agents=agents,
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

"""`steersim sweep`: many runs of one config over a grid of overrides, each a
normal run folder under <root>/dumps/, with a sweep folder
<root>/sweeps/<name>/ holding

    sweep.json       what was asked: config, common overrides, grid, seeds
    index.parquet    one row per run: run_id, every swept key as a column,
                     seed, status, wall_s, ticks_completed, error, path
                     (relative to the storage root); rewritten atomically as
                     runs start and finish
    logs/<run_id>.log  each run's terminal output

Re-running the same command resumes the sweep: a complete run is skipped, an
interrupted one continues with `--resume`, a failed one is tried again. The
runs are started by a launcher (launchers.py); this module plans the points,
reads each run's state from its folder and keeps the index.
"""

from __future__ import annotations

import logging
import math
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import pyarrow as pa

import orchestrator
from orchestrator.checkpoint import config_hash
from orchestrator.config_loader import load_config
from orchestrator.config_schema import check_run_id
from orchestrator.errors import ConfigError, SteersimError, one_line
from orchestrator.experiments.grid import Axis, Point, expand, parse_axis, yaml_text
from orchestrator.experiments.launchers import Job, Launcher, Outcome
from orchestrator.storage import atomic_write_json, atomic_write_table, read_json_object

log = logging.getLogger(__name__)

Status = Literal["pending", "running", "complete", "failed", "interrupted"]
RunState = Literal["new", "complete", "resumable", "broken", "foreign"]
INDEX_FIXED = ("run_id", "seed", "status", "wall_s", "ticks_completed", "error", "path")


@dataclass(frozen=True, kw_only=True)
class SweepSpec:
    """What a sweep is: saved as sweep.json, compared when a sweep is re-run."""

    name: str
    config: str  # the config file, absolute
    overrides: tuple[str, ...]  # --set for every point
    axes: tuple[Axis, ...]
    repeat_seeds: int | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "config": self.config,
            "overrides": list(self.overrides),
            "grid": {a.key: list(a.values) for a in self.axes},
            "repeat_seeds": self.repeat_seeds,
        }


@dataclass(frozen=True, kw_only=True)
class PlannedRun:
    point: Point
    config_hash: str | None  # None: the point's config does not validate
    seed: int | None  # the run's seed (the config's own when seeds are not swept)
    invalid: str | None = None  # its one-line error then


@dataclass(frozen=True, kw_only=True)
class SweepPlan:
    spec: SweepSpec
    storage_root: Path
    runs: tuple[PlannedRun, ...]

    @property
    def folder(self) -> Path:
        return sweep_folder(self.storage_root, self.spec.name)

    @property
    def keys(self) -> list[str]:
        return [a.key for a in self.spec.axes if a.key != "seed"]

    def run_dir(self, run_id: str) -> Path:
        return self.storage_root / "dumps" / run_id


def sweep_folder(storage_root: Path, name: str) -> Path:
    return Path(storage_root) / "sweeps" / name


def plan_sweep(
    config: Path,
    grids: list[str],
    *,
    name: str | None = None,
    repeat_seeds: int | None = None,
    overrides: list[str] | None = None,
) -> SweepPlan:
    """Parse and validate the sweep; every point's config is resolved here, so
    a bad value is known before anything runs. ConfigError when the sweep
    itself is malformed, or when no point at all is valid."""
    if not grids:
        raise ConfigError("--grid", None, "give at least one --grid KEY=V1,V2,...")
    if name is None:  # `--name ''` is refused below, not read as "no name given"
        name = Path(config).name.removesuffix(".yaml").removesuffix(".yml")
    check_sweep_name(name, "--name")
    overrides = list(overrides or [])
    base = load_config(config, overrides)  # the base config must be valid on its own
    axes = [parse_axis(g) for g in grids]
    if any(a.key == "run_id" for a in axes):  # each point's --run-id replaces it
        raise ConfigError(
            "--grid", "run_id", "cannot be swept: each run is named <name>-<key><value>"
        )
    spec = SweepSpec(
        name=name,
        config=str(Path(config).resolve()),
        overrides=tuple(overrides),
        axes=tuple(axes),
        repeat_seeds=repeat_seeds,
    )
    runs = []
    for point in expand(name, axes, repeat_seeds):
        try:
            # the point's values under --grid: a value its key does not take is the
            # grid's fault, not --set's (the runs themselves get them as --set)
            swept = [("--grid", item) for item in point.overrides()]
            resolved = load_config(
                config,
                [*overrides, f"run_id='{point.run_id}'"],
                options=swept,
            )
        except ConfigError as exc:
            runs.append(
                PlannedRun(point=point, config_hash=None, seed=point.seed, invalid=str(exc))
            )
            continue
        if resolved.config.storage.root != base.config.storage.root:
            raise ConfigError("--grid", "storage.root", "cannot be swept: a sweep has one root")
        runs.append(
            PlannedRun(
                point=point,
                config_hash=config_hash(resolved.as_dict()),
                seed=resolved.config.seed,
            )
        )
    if all(r.invalid for r in runs):
        raise ConfigError("--grid", None, f"no point of the sweep is valid: {runs[0].invalid}")
    return SweepPlan(spec=spec, storage_root=Path(base.config.storage.root), runs=tuple(runs))


# -- the state of a run folder ------------------------------------------------


def run_state(run_dir: Path, expected_hash: str | None) -> tuple[RunState, dict[str, Any]]:
    """What to do with a point's run folder, and its manifest ({} if none)."""
    if not run_dir.exists() or not any(run_dir.iterdir()):
        return "new", {}
    try:
        manifest = read_json_object(run_dir / "manifest.json")
    except (OSError, ValueError):  # no manifest, or bytes that are none
        return "broken", {}  # killed before its manifest was written: start it again
    if expected_hash is not None and manifest.get("config_hash") not in (None, expected_hash):
        return "foreign", manifest
    if manifest.get("status") == "complete":
        return "complete", manifest
    return "resumable", manifest


# -- commands -------------------------------------------------------------------


def cli_prefix() -> list[str]:
    """This interpreter running this checkout's CLI (not whatever `steersim` is on PATH)."""
    return [sys.executable, "-m", "orchestrator.cli"]


def run_argv(plan: SweepPlan, run: PlannedRun, state: RunState, prefix: list[str]) -> list[str]:
    point = run.point
    if state == "resumable":
        return [*prefix, "run", "--resume", point.run_id, "--storage-root", str(plan.storage_root)]
    argv = [*prefix, "run", plan.spec.config]
    for item in (*plan.spec.overrides, *point.overrides()):
        argv += ["--set", item]
    argv += ["--run-id", point.run_id]
    if state == "broken":
        argv.append("--overwrite")
    return argv


def print_commands(plan: SweepPlan) -> list[str]:
    """One shell line per run, for any scheduler (fresh runs; the index is
    brought up to date by running the sweep command again)."""
    import shlex

    lines = []
    for run in plan.runs:
        if run.invalid is None:
            lines.append(shlex.join(run_argv(plan, run, "new", ["steersim"])))
    return lines


# -- the index ------------------------------------------------------------------


@dataclass(kw_only=True)
class SweepIndex:
    """index.parquet: one record per point, rewritten (atomically) on each change."""

    plan: SweepPlan
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def open(cls, plan: SweepPlan) -> SweepIndex:
        index = cls(plan=plan)
        old = _read_old(plan.folder / "index.parquet")
        for run in plan.runs:
            p = run.point
            record = {"run_id": p.run_id, **dict(p.values), "seed": run.seed}
            record.update(
                status="pending",
                wall_s=old.get(p.run_id, {}).get("wall_s", math.nan),
                ticks_completed=0,
                error=None,
                path=f"dumps/{p.run_id}",
            )
            index.records[p.run_id] = record
        return index

    def update(self, run_id: str, **fields: Any) -> None:
        with self._lock:
            self.records[run_id].update(fields)
            self.write()

    def write(self) -> Path:
        path = self.plan.folder / "index.parquet"
        atomic_write_table(path, index_table(list(self.records.values()), self.plan.keys))
        return path

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for r in self.records.values():
            out[r["status"]] = out.get(r["status"], 0) + 1
        return out


def _read_old(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    try:
        df = pd.read_parquet(path)
    except (OSError, pa.ArrowException, ValueError):
        log.warning("%s is unreadable; it is rebuilt from the run folders", path)
        return {}
    return {r["run_id"]: r for r in df.to_dict(orient="records")}


def index_table(records: list[dict[str, Any]], keys: list[str]) -> pa.Table:
    """The index as Arrow: swept keys as typed columns where their values share
    one scalar type, else as YAML text (lists, mixed types)."""
    columns: dict[str, pa.Array] = {"run_id": pa.array([r["run_id"] for r in records], pa.string())}
    for key in keys:
        values = [r.get(key) for r in records]
        columns[key] = _key_column(values)
    columns["seed"] = pa.array([r["seed"] for r in records], pa.int64())
    columns["status"] = pa.array([r["status"] for r in records], pa.string())
    columns["wall_s"] = pa.array([r["wall_s"] for r in records], pa.float64())
    columns["ticks_completed"] = pa.array([r["ticks_completed"] for r in records], pa.int64())
    columns["error"] = pa.array([r["error"] for r in records], pa.string())
    columns["path"] = pa.array([r["path"] for r in records], pa.string())
    return pa.table(columns)


def _key_column(values: list[Any]) -> pa.Array:
    kinds = {type(v) for v in values}
    if kinds <= {int, float} and float in kinds:
        return pa.array([float(v) for v in values], pa.float64())
    if len(kinds) == 1 and kinds <= {int, float, bool, str}:
        return pa.array(values)
    return pa.array([yaml_text(v) for v in values], pa.string())


# -- running --------------------------------------------------------------------


def error_line(outcome: Outcome) -> str:
    """The run's one-line error: its `error: ...` line, else its last line."""
    lines = [ln.strip() for ln in outcome.stderr_tail.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ln.startswith("error:")]
    line = (errors or lines or [f"exit code {outcome.returncode}"])[-1]
    return one_line(line.removeprefix("error:").strip())[:500]


# what the sweep folder holds: True for a folder, False for a file
LAYOUT = {"sweep.json": False, "index.parquet": False, "logs": True}


def check_layout(folder: Path) -> None:
    """Refuse, before anything is written, a sweep folder that cannot be made
    (a file in its place or above it, e.g. a storage root that is a file) or
    whose entries are of the wrong kind (a folder named sweep.json, a file
    named logs): each was a traceback, some once sweep.json was written."""
    from orchestrator.storage import why

    try:
        for p in (folder, *folder.parents):  # the nearest that exists: a file there blocks
            if p.exists():
                if not p.is_dir():
                    raise SteersimError(
                        f"cannot create the sweep folder {folder}: {p} is not a folder"
                    )
                break
        for name, is_folder in LAYOUT.items():
            path = folder / name
            if path.exists() and path.is_dir() != is_folder:
                kind = "a folder" if is_folder else "a file"
                raise SteersimError(f"{path} is not {kind}; move it away")
    except OSError as exc:  # e.g. a name too long, a link loop
        raise SteersimError(f"cannot use the sweep folder {folder}: {why(exc)}") from None


def check_sweep_name(name: str, option: str) -> None:
    """A sweep's name is a folder under <root>/sweeps, named like a run: no
    separators, no '..' (a name such as ../../x would read and write outside
    the storage root). ConfigError naming `option`."""
    try:
        check_run_id(name)
    except ValueError as exc:
        raise ConfigError(option, None, str(exc).replace("run id", "sweep name")) from None


def save_spec(plan: SweepPlan) -> None:
    """sweep.json; a sweep of the same name with another grid is refused."""
    path = plan.folder / "sweep.json"
    spec = plan.spec.to_dict()
    if path.is_file():
        try:
            old = read_json_object(path)
        except (OSError, ValueError):  # damaged: this run writes it again
            old = None
        if old is not None and old != spec:
            changed = sorted(k for k in spec if old.get(k) != spec[k])
            raise ConfigError(
                "--name",
                None,
                f"sweep {plan.spec.name!r} exists with another {', '.join(changed)} "
                f"({path}); re-run it as it was, or give another --name",
            )
    plan.folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, spec)


def run_sweep(
    plan: SweepPlan,
    launcher: Launcher,
    *,
    on_event: Callable[[str, dict[str, Any]], None] | None = None,
) -> SweepIndex:
    """Run what is left of the sweep; returns its index. `on_event(kind,
    record)` sees "skip", "start" and "end" for the command line's progress."""
    notify = on_event or (lambda kind, record: None)
    check_layout(plan.folder)
    save_spec(plan)
    (plan.folder / "logs").mkdir(exist_ok=True)
    index = SweepIndex.open(plan)
    jobs = []
    env = {"PYTHONPATH": _pythonpath()}
    for run in plan.runs:
        rid = run.point.run_id
        if run.invalid is not None:
            index.records[rid].update(status="failed", error=one_line(run.invalid))
            notify("end", index.records[rid])
            continue
        state, manifest = run_state(plan.run_dir(rid), run.config_hash)
        if state == "foreign":
            index.records[rid].update(
                status="failed",
                error=f"{plan.run_dir(rid)} holds a run of another config (did the config "
                "file change?); move it away or give another --name",
            )
            notify("end", index.records[rid])
            continue
        if state == "complete":
            index.records[rid].update(
                status="complete", ticks_completed=int(manifest.get("ticks_completed") or 0)
            )
            notify("skip", index.records[rid])
            continue
        argv = run_argv(plan, run, state, cli_prefix())
        jobs.append(
            Job(key=rid, argv=tuple(argv), env=env, log_path=plan.folder / "logs" / f"{rid}.log")
        )
    index.write()

    def started(job: Job) -> None:
        index.update(job.key, status="running", error=None)
        notify("start", index.records[job.key])

    def ended(outcome: Outcome) -> None:
        _, manifest = run_state(plan.run_dir(outcome.key), None)
        ticks = int(manifest.get("ticks_completed") or 0)
        if outcome.returncode == 0 and manifest.get("status") == "complete":
            status, error = "complete", None
        elif outcome.returncode in (0, 130):  # stopped by a signal: resumable
            status, error = "interrupted", None
        else:  # the manifest may still say "interrupted" from before: the run did not start
            status, error = "failed", error_line(outcome)
        index.update(
            outcome.key, status=status, error=error, wall_s=outcome.wall_s, ticks_completed=ticks
        )
        notify("end", index.records[outcome.key])

    launcher.run(jobs, started, ended)
    for record in index.records.values():  # stopped before it began: still to do
        if record["status"] == "running":
            record["status"] = "interrupted"
    index.write()
    return index


def _pythonpath() -> str:
    """The children import this same orchestrator package, even from a checkout."""
    import os

    here = str(Path(orchestrator.__file__).resolve().parents[1])
    rest = os.environ.get("PYTHONPATH")
    return here if not rest else f"{here}{os.pathsep}{rest}"


def load_index(storage_root: Path, name: str) -> tuple[pd.DataFrame, dict[str, Any]]:
    """A sweep's index and spec, for compare. SteersimError when missing."""
    folder = sweep_folder(storage_root, name)
    path = folder / "index.parquet"
    if not path.is_file():
        raise SteersimError(
            f"no sweep {name!r}: {path} does not exist (run `steersim sweep` first)"
        )
    try:
        spec = read_json_object(folder / "sweep.json")
        index = pd.read_parquet(path)
        # compare reads the grid's keys and these columns without a second look
        if not isinstance(spec.get("grid", {}), dict):
            raise ValueError("sweep.json's grid is not a mapping of keys to values")
        if missing := [c for c in ("run_id", "seed", "status", "path") if c not in index.columns]:
            raise ValueError(f"index.parquet lacks the columns {', '.join(missing)}")
        return index, spec
    except (OSError, pa.ArrowException, ValueError) as exc:  # JSONDecodeError: a ValueError
        raise SteersimError(
            f"cannot read sweep {name!r} in {folder}: {one_line(str(exc))}"
        ) from None

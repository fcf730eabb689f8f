"""`steersim compare`: several runs as one data set. The runs' agents,
messages and perf tables are stacked, each row carrying its run_id, the keys
that differ between the runs (a sweep's swept keys) and the seed as columns,
and written as one Parquet file per table; runs.parquet and summary.md hold
one row per run (size, parse rate, action shares, speed, and each trait's
behavioural effect where the action check is available).

Runs come from a sweep's index (the swept keys are its columns) or from a
list of runs (the keys are the config values that differ between them).
Reads dumps through orchestrator.dumps_reader; draws nothing itself
(compare_plots.py does)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from agents.typing import TRAITS
from orchestrator.dumps_reader import DumpsError, load_run, resolve_run
from orchestrator.errors import SteersimError
from orchestrator.experiments.grid import yaml_text
from orchestrator.experiments.sweep import load_index, sweep_folder
from orchestrator.safe_text import visible
from orchestrator.storage import atomic_write, atomic_write_table, make_output_folder

log = logging.getLogger(__name__)

ACTIONS = ("SAY", "MOVE", "WORK", "REST", "IDLE")
TABLES = ("agents", "messages", "perf")
IGNORED_KEYS = ("run_id", "storage.root", "seed")  # differ by design; seed is its own column


@dataclass(frozen=True, kw_only=True)
class RunRef:
    run_id: str
    path: Path
    keys: dict[str, Any]  # the compared keys' values for this run
    seed: int | None
    status: str


@dataclass(frozen=True, kw_only=True)
class Comparison:
    runs: tuple[RunRef, ...]
    keys: tuple[str, ...]
    tables: dict[str, pd.DataFrame]  # agents, messages, perf: stacked
    summary: pd.DataFrame  # one row per run


# -- which runs, with which keys -----------------------------------------------


def runs_of_sweep(storage_root: Path, name: str) -> tuple[list[RunRef], list[str]]:
    """The sweep's runs that have dumps to read (complete, or stopped after some ticks)."""
    index, spec = load_index(storage_root, name)
    keys = [k for k in spec.get("grid", {}) if k != "seed"]
    runs = []
    for row in index.to_dict(orient="records"):
        path = Path(storage_root) / row["path"]
        if not (path / "messages").is_dir() or row["status"] in ("failed", "pending"):
            log.info("%s: %s, left out", row["run_id"], row["status"])
            continue
        seed = None if row["seed"] is None or _isnan(row["seed"]) else int(row["seed"])
        runs.append(
            RunRef(
                run_id=row["run_id"],
                path=path,
                keys={k: row[k] for k in keys},
                seed=seed,
                status=row["status"],
            )
        )
    if not runs:
        raise SteersimError(f"sweep {name!r} has no run with dumps yet (see its index.parquet)")
    return runs, keys


def runs_of_refs(refs: list[str], storage_root: Path | None) -> tuple[list[RunRef], list[str]]:
    """Runs named by id or folder; the keys are the config values that differ."""
    if len(refs) < 1:
        raise SteersimError("name at least one run (or --sweep NAME)")
    paths = [resolve_run(r, storage_root) for r in refs]
    if len(set(paths)) != len(paths):
        raise DumpsError("a run is named twice")
    manifests = [load_run_manifest(p) for p in paths]
    flat = [_flatten(m.get("config") or {}) for m in manifests]
    keys = sorted(
        k
        for k in set().union(*flat)
        if k not in IGNORED_KEYS and len({yaml_text(f.get(k)) for f in flat}) > 1
    )
    runs = [
        RunRef(
            run_id=str(m.get("run_id") or p.name),
            path=p,
            keys={k: f.get(k) for k in keys},
            seed=(m.get("config") or {}).get("seed"),
            status=str(m.get("status") or "unknown"),
        )
        for p, m, f in zip(paths, manifests, flat, strict=True)
    ]
    if len({r.run_id for r in runs}) != len(runs):
        raise DumpsError("two of the runs have the same run_id; compare runs with distinct ids")
    return runs, keys


def load_run_manifest(path: Path) -> dict[str, Any]:
    from orchestrator.dumps_reader import load_manifest

    return load_manifest(path)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and v:
            out.update(_flatten(v, key + "."))
        else:
            out[key] = v
    return out


def _isnan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


# -- stacking -------------------------------------------------------------------


def compare(runs: list[RunRef], keys: list[str]) -> Comparison:
    """Read every run and stack its tables; one summary row per run."""
    parts: dict[str, list[pd.DataFrame]] = {t: [] for t in TABLES}
    rows = []
    for ref in runs:
        dumps = load_run(ref.path)
        tables = {"agents": dumps.agents, "messages": dumps.messages, "perf": dumps.perf}
        for name, df in tables.items():
            parts[name].append(_with_keys(df, ref, keys))
        rows.append(_summary_row(ref, keys, dumps.messages, dumps.perf, len(dumps.agents)))
    stacked = {name: pd.concat(frames, ignore_index=True) for name, frames in parts.items()}
    summary = pd.DataFrame(rows)
    effects = behaviour_effects(runs)
    if effects is not None:
        summary = summary.merge(effects, on="run_id", how="left")
    return Comparison(runs=tuple(runs), keys=tuple(keys), tables=stacked, summary=summary)


def _with_keys(df: pd.DataFrame, ref: RunRef, keys: list[str]) -> pd.DataFrame:
    """run_id first, then the keys and the seed, then the table's own columns."""
    out = df.drop(columns=[c for c in ("run_id", *keys, "seed") if c in df.columns]).copy()
    front = {"run_id": ref.run_id, **{k: _cell(ref.keys[k]) for k in keys}, "seed": ref.seed}
    for i, (col, value) in enumerate(front.items()):
        out.insert(i, col, [value] * len(out))
    return out


def _cell(value: Any) -> Any:
    """Scalars stay typed; lists and mappings become their YAML text."""
    return (
        value if value is None or isinstance(value, (bool, int, float, str)) else yaml_text(value)
    )


def _summary_row(
    ref: RunRef, keys: list[str], messages: pd.DataFrame, perf: pd.DataFrame, agents: int
) -> dict[str, Any]:
    acts = messages[messages["event_kind"] != "reflection"]
    counts = acts["action"].value_counts()
    n = max(len(acts), 1)
    tick_s = perf["tick_s"].to_numpy(float) if len(perf) else np.array([])
    tokens = float(perf["completion_tokens"].sum()) if len(perf) else 0.0
    gen_s = float(perf["generate_s"].sum()) if len(perf) else 0.0
    return {
        "run_id": ref.run_id,
        **{k: _cell(ref.keys[k]) for k in keys},
        "seed": ref.seed,
        "status": ref.status,
        # measured, named apart from config keys such as `ticks`
        "ticks_completed": int(messages["tick"].nunique()) if len(messages) else 0,
        "n_agents": agents,
        "n_rows": len(messages),
        "parse_ok": float(acts["parse_ok"].mean()) if len(acts) else math.nan,
        **{f"share_{a}": float(counts.get(a, 0)) / n for a in ACTIONS},
        "s_per_tick": float(tick_s.mean()) if tick_s.size else math.nan,
        "s_per_tick_sd": float(tick_s.std(ddof=1)) if tick_s.size > 1 else math.nan,
        "completion_tok_per_s": tokens / gen_s if gen_s > 0 else math.nan,
    }


def behaviour_effects(runs: list[RunRef]) -> pd.DataFrame | None:
    """Per run, the action check's measure of how much the agents' actions
    depend on their coefficients (orchestrator.analysis.action_check, when
    this version has it; None otherwise): per trait, effect_<T> = the length
    of its slope vector (change in the action shares per unit of coefficient,
    other traits held fixed) and p_<T> (its permutation p-value); pooled,
    action_r2 and action_p."""
    try:
        from orchestrator.analysis.action_check import action_check
    except ImportError:
        return None
    rows = []
    for ref in runs:
        dumps = load_run(ref.path)
        result = action_check(dumps.messages, dumps.agents, n_bootstrap=0)
        row: dict[str, Any] = {"run_id": ref.run_id}
        for trait in TRAITS:
            slopes = np.array(list(result.slope[trait].values()), dtype=float)
            row[f"effect_{trait}"] = float(np.sqrt((slopes**2).sum()))  # NaN when untested
        for trait in TRAITS:
            row[f"p_{trait}"] = result.p_trait[trait] if trait in result.tested else math.nan
        row["action_r2"], row["action_p"] = result.r2, result.p_permutation
        rows.append(row)
    return pd.DataFrame(rows)


# -- writing --------------------------------------------------------------------


def default_out(storage_root: Path, sweep: str | None, runs: list[RunRef]) -> Path:
    if sweep is not None:
        return sweep_folder(storage_root, sweep)
    name = "+".join(r.run_id for r in runs)
    if len(name) > 100:
        name = f"{runs[0].run_id}+{len(runs) - 1}-more"
    return Path(storage_root) / "comparisons" / name


def write(comparison: Comparison, out: Path) -> dict[str, Path]:
    """agents/messages/perf/runs .parquet and summary.md in `out` (atomically each)."""
    make_output_folder(out)
    written = {}
    for name, df in {**comparison.tables, "runs": comparison.summary}.items():
        path = out / f"{name}.parquet"
        atomic_write_table(path, pa.Table.from_pandas(df, preserve_index=False))
        written[name] = path
    md = out / "summary.md"
    text = summary_markdown(comparison)
    atomic_write(md, lambda p: p.write_text(text, encoding="utf-8"))
    written["summary"] = md
    return written


def summary_markdown(comparison: Comparison) -> str:
    """A markdown table, one row per run: the keys, then the headline numbers."""
    df = comparison.summary
    cols = ["run_id", *comparison.keys, "seed", "status", "ticks_completed", "n_agents"]
    cols += ["parse_ok"]
    cols += [f"share_{a}" for a in ACTIONS if df[f"share_{a}"].any()]
    cols += ["s_per_tick", "completion_tok_per_s"]
    cols += [c for c in df.columns if c.startswith("effect_")]
    lines = [
        f"# Comparison of {len(df)} runs",
        "",
        "Shares are of action rows (reflections left out); s/tick is the mean tick wall "
        "time; tok/s counts completion tokens per second of generation. effect T (where "
        "the action check is available): how far one unit of trait T's coefficient moves "
        "the agents' action shares (length of its slope vector, other traits held fixed).",
        "",
        "| " + " | ".join(_header(c) for c in cols) + " |",
        "|" + "|".join("---" for _ in cols) + "|",
    ]
    for row in df[cols].to_dict(orient="records"):
        lines.append("| " + " | ".join(_fmt(c, row[c]) for c in cols) + " |")
    return "\n".join(lines) + "\n"


def _header(col: str) -> str:
    return {
        "s_per_tick": "s/tick",
        "completion_tok_per_s": "tok/s",
        "parse_ok": "parsed",
        "ticks_completed": "ticks done",
        "n_agents": "agents",
    }.get(col, col.removeprefix("share_").replace("effect_", "effect "))


def _fmt(col: str, v: Any) -> str:
    if v is None or _isnan(v):
        return "–"
    if col.startswith("share_") or col == "parse_ok":
        return f"{100 * v:.1f}%"
    if isinstance(v, float):
        return f"{v:.3g}"
    # run ids and config values are printed to the terminal too: escaped, one line
    return visible(v).replace("|", "\\|")

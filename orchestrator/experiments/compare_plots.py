"""The comparison's figures (PNG, matplotlib Agg, the report's style): action
shares against each compared key, each trait's behavioural effect against
steering strength (when the runs have it), and seconds per tick per run.
Each function takes the summary table (compare.Comparison.summary) and a
path; none reads dumps."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import numpy as np
import pandas as pd

from agents.typing import TRAIT_NAMES, TRAITS
from orchestrator.analysis.plots import STYLE, _label, _save, plt
from orchestrator.experiments.compare import ACTIONS

log = logging.getLogger(__name__)

STRENGTH_KEY = "steering.strength"


def _numeric(values: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)


def _by_key(summary: pd.DataFrame, key: str, column: str) -> tuple[list, np.ndarray, np.ndarray]:
    """x values (sorted when numeric, else in order of appearance), mean and sd over the rest."""
    grouped = summary.groupby(key, sort=_numeric(summary[key]))[column]
    mean, sd = grouped.mean(), grouped.std(ddof=1)
    if not _numeric(summary[key]):
        order = list(dict.fromkeys(summary[key]))
        mean, sd = mean.reindex(order), sd.reindex(order)
    return list(mean.index), mean.to_numpy(float), sd.fillna(0).to_numpy(float)


def action_share_vs_key(summary: pd.DataFrame, key: str, path: Path) -> Path:
    """One line per action: its share of action rows against `key` (mean over
    seeds and the other keys, bars = sd)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 3.8))
        numeric = _numeric(summary[key])
        for action in ACTIONS:
            col = f"share_{action}"
            if not summary[col].any():
                continue
            xs, mean, sd = _by_key(summary, key, col)
            pos = np.asarray(xs, float) if numeric else np.arange(len(xs))
            ax.errorbar(pos, 100 * mean, yerr=100 * sd, marker="o", capsize=3, label=action)
            if not numeric:
                ax.set_xticks(np.arange(len(xs)), [_label(x) for x in xs], rotation=20)
        ax.set_xlabel(key)
        ax.set_ylabel("share of actions (%)")
        ax.set_title(f"Actions against {key}")
        ax.legend(ncols=min(5, len(ACTIONS)), loc="upper center", bbox_to_anchor=(0.5, -0.22))
        return _save(fig, path)


def trait_effect_vs_strength(summary: pd.DataFrame, path: Path) -> Path | None:
    """Each trait's behavioural effect (effect_E..effect_N) against steering
    strength; None when the runs have no effects or strength is not compared."""
    cols = [f"effect_{t}" for t in TRAITS if f"effect_{t}" in summary]
    if not cols or STRENGTH_KEY not in summary or summary[STRENGTH_KEY].nunique() < 2:
        return None
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 3.8))
        for col in cols:
            xs, mean, sd = _by_key(summary, STRENGTH_KEY, col)
            trait = col.removeprefix("effect_")
            ax.errorbar(xs, mean, yerr=sd, marker="o", capsize=3, label=TRAIT_NAMES[trait])
        ax.axhline(0, color="grey", lw=0.8)
        ax.set_xlabel(STRENGTH_KEY)
        ax.set_ylabel("action-share change per unit coefficient")
        ax.set_title("Steering's effect on behaviour, per trait")
        ax.legend()
        return _save(fig, path)


def seconds_per_tick(summary: pd.DataFrame, path: Path) -> Path:
    """Mean wall time per tick of each run (bars = sd over its ticks)."""
    with plt.rc_context(STYLE):
        height = max(2.5, 0.28 * len(summary) + 1.0)
        fig, ax = plt.subplots(figsize=(6.0, height))
        y = np.arange(len(summary))
        ax.barh(
            y,
            summary["s_per_tick"],
            xerr=summary["s_per_tick_sd"].fillna(0),
            color="#4C72B0",
            capsize=2,
        )
        ax.set_yticks(y, [_label(r) for r in summary["run_id"]])  # `$` would be mathtext
        ax.invert_yaxis()
        ax.set_xlabel("seconds per tick")
        ax.set_title("Speed of each run")
        return _save(fig, path)


def draw_all(summary: pd.DataFrame, keys: list[str], out: Path) -> list[Path]:
    """Every figure that the compared runs support, into `out`."""
    paths = []
    for key in keys:
        if summary[key].nunique() > 1:
            safe = re.sub(r"[^A-Za-z0-9._-]+", "_", key)
            paths.append(action_share_vs_key(summary, key, out / f"action_share_vs_{safe}.png"))
    effect = trait_effect_vs_strength(summary, out / "trait_effect_vs_strength.png")
    if effect is not None:
        paths.append(effect)
    paths.append(seconds_per_tick(summary, out / "seconds_per_tick.png"))
    return paths

"""The report's figures as PNG files, drawn with matplotlib's Agg backend
(no display needed) at a size and font that read well in a paper column.
Each function takes the data it draws and the output path; none reads dumps."""

from __future__ import annotations

import logging
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: files only, never a window

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from agents.typing import TRAIT_NAMES, TRAITS  # noqa: E402
from orchestrator.safe_text import visible  # noqa: E402

log = logging.getLogger(__name__)

DPI = 200
STYLE = {
    "font.size": 10,
    "axes.titlesize": 12,
    "axes.labelsize": 10,
    "legend.fontsize": 9,
    "xtick.labelsize": 9,
    "ytick.labelsize": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
}
# The report's figures by file name; pipeline.analyse_run draws each into the output folder.
ACTION_DISTRIBUTION = "action_distribution.png"
STEERING_HEATMAP = "steering_heatmap.png"
ACTIVITY_OVER_TIME = "activity_over_time.png"
BEHAVIOUR_BY_TRAIT = "behaviour_by_trait.png"
FIGURE_FILES = (ACTION_DISTRIBUTION, STEERING_HEATMAP, ACTIVITY_OVER_TIME, BEHAVIOUR_BY_TRAIT)
ACTION_COLOURS = {"MOVE": "#55A868", "SAY": "#4C72B0", "WORK": "#DD8452", "REST": "#8172B3"}
MAX_LABELLED_AGENTS = 60  # beyond this the heatmap drops agent names and cell values


def _label(value: object) -> str:
    """Text from the dumps (a run id, an agent's name, an action) as a plot
    label: one line of visible characters (a raw ESC reached the terminal in
    matplotlib's missing-glyph warning) and `$` escaped, or a name such as
    `$\\frac{$` is parsed as mathtext and savefig raises a traceback."""
    return visible(value).replace("$", r"\$")


def _titled(title: str, run_id: str) -> str:
    return f"{title} — {_label(run_id)}" if run_id else title


def _save(fig: plt.Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight", facecolor="white")
    plt.close(fig)
    log.info("wrote %s", path)
    return path


def action_distribution(actions: dict[str, int], path: Path, *, run_id: str = "") -> Path:
    """Bar chart of rows per action type, each bar labelled with its share."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.0, 3.6))
        names = [_label(a) for a in actions]
        counts = np.array(list(actions.values()), dtype=float)
        total = max(counts.sum(), 1.0)
        bars = ax.bar(names, counts, color="#4C72B0")
        ax.bar_label(bars, labels=[f"{100 * c / total:.1f}%" for c in counts], padding=2)
        ax.set_xlabel("action type")
        ax.set_ylabel("actions (rows)")
        ax.set_title(_titled("Action distribution", run_id))
        ax.margins(y=0.12)
        return _save(fig, path)


def steering_heatmap(profiles: pd.DataFrame, path: Path, *, run_id: str = "") -> Path:
    """Agents × traits heatmap of the applied coefficients; a diverging colour
    map centred on 0 (blue low, red high), symmetric limits, a labelled colour bar.
    `profiles`: one row per agent with columns agent_name, E, A, C, O, N."""
    values = profiles[list(TRAITS)].to_numpy(dtype=float)  # (agents, 5)
    n = len(values)
    limit = float(np.nanmax(np.abs(values))) if n else 1.0
    limit = limit if limit > 0 else 1.0
    labelled = n <= MAX_LABELLED_AGENTS
    with plt.rc_context(STYLE):
        height = min(max(2.5, 0.22 * n + 1.5), 14.0)
        fig, ax = plt.subplots(figsize=(5.6, height))
        img = ax.imshow(
            values if n else np.zeros((1, 5)),
            aspect="auto",
            cmap="RdBu_r",
            norm=TwoSlopeNorm(vcenter=0.0, vmin=-limit, vmax=limit),
            interpolation="nearest",
        )
        ax.set_xticks(
            range(len(TRAITS)),
            [f"{t} ({TRAIT_NAMES[t]})" for t in TRAITS],
            rotation=30,
            ha="right",
            rotation_mode="anchor",
        )
        if labelled:
            ax.set_yticks(range(n), [_label(x) for x in profiles["agent_name"]])
            if n <= 40:
                for (i, j), v in np.ndenumerate(values):
                    colour = "white" if abs(v) > 0.6 * limit else "black"
                    ax.text(j, i, f"{v:+.2f}", ha="center", va="center", fontsize=6, color=colour)
        else:
            ax.set_yticks([])
        ax.set_ylabel(f"agent ({n})")
        ax.set_xlabel("trait")
        ax.set_title(_titled("Steering coefficients", run_id))
        ax.spines[:].set_visible(False)
        bar = fig.colorbar(img, ax=ax, fraction=0.05, pad=0.03)
        bar.set_label("coefficient (− low … + high)")
        return _save(fig, path)


def activity_over_time(per_tick: pd.DataFrame, path: Path, *, run_id: str = "") -> Path:
    """Actions, messages (SAY) and parse failures per tick.
    `per_tick` (stats.per_tick_counts): index tick, columns actions, messages,
    parse_failures; reflection rows are not in it."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots(figsize=(6.4, 3.6))
        ticks = per_tick.index.to_numpy()
        marker = "o" if len(ticks) <= 60 else None
        ax.plot(ticks, per_tick["actions"], marker=marker, ms=3, label="actions")
        ax.plot(ticks, per_tick["messages"], marker=marker, ms=3, label="messages (SAY)")
        ax.plot(
            ticks,
            per_tick["parse_failures"],
            ls="--",
            color="#C44E52",
            label="unparsed outputs",
        )
        ax.set_xlabel("tick")
        ax.set_ylabel("count per tick")
        ax.set_ylim(bottom=0)
        ax.set_title(_titled("Activity over time", run_id))
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=3, frameon=False)
        ax.grid(axis="y", alpha=0.3)
        return _save(fig, path)


def behaviour_by_trait(
    per_agent: pd.DataFrame,
    slopes: dict[str, dict[str, float]],
    p_trait: dict[str, float],
    path: Path,
    *,
    run_id: str = "",
    source: str = "",
) -> Path:
    """One panel per trait: each agent's share of each action against its
    coefficient (marker size ~ its number of actions), and the action check's
    effect as a line through the mean (the trait's slope with the other traits
    held fixed). `per_agent` (action_check.agent_actions): columns E..N, the
    actions' shares and n; `slopes`/`p_trait` from the action check."""
    actions = [a for a in ACTION_COLOURS if a in per_agent.columns]
    n = per_agent["n"].to_numpy(dtype=float) if len(per_agent) else np.zeros(0)
    weights = n / n.sum() if n.sum() > 0 else n
    size = 6 + 30 * (n / n.max()) if len(n) and n.max() > 0 else 10
    with plt.rc_context(STYLE):
        fig, axes = plt.subplots(1, len(TRAITS), figsize=(14.0, 3.4), sharey=True)
        for ax, t in zip(axes, TRAITS, strict=True):
            x = per_agent[t].to_numpy(dtype=float) if len(per_agent) else np.zeros(0)
            x_mean = float((x * weights).sum()) if len(x) else 0.0
            grid = np.linspace(-1.0, 1.0, 3)
            for a in actions:
                y = per_agent[a].to_numpy(dtype=float)
                ax.scatter(x, y, s=size, alpha=0.35, color=ACTION_COLOURS[a], linewidths=0)
                beta = slopes.get(t, {}).get(a, float("nan"))
                if np.isfinite(beta):
                    y_mean = float((y * weights).sum())
                    ax.plot(grid, y_mean + beta * (grid - x_mean), color=ACTION_COLOURS[a], lw=2)
            p = p_trait.get(t)
            ax.set_title(f"{t} ({TRAIT_NAMES[t]})" + (f"\np = {p:.3f}" if p is not None else ""))
            ax.set_xlabel("coefficient")
            ax.set_xlim(-1.05, 1.05)
            ax.set_xticks([-1.0, -0.5, 0.0, 0.5, 1.0], ["−1", "", "0", "", "+1"])
            ax.set_ylim(-0.02, 1.02)
            ax.grid(alpha=0.3)
        axes[0].set_ylabel("share of the agent's actions")
        handles = [
            plt.Line2D([], [], color=ACTION_COLOURS[a], marker="o", lw=2, label=a) for a in actions
        ]
        fig.legend(handles=handles, loc="lower center", ncol=len(actions), frameon=False)
        note = f" (coefficients from the {source})" if source else ""
        fig.suptitle(_titled("Behaviour by trait", run_id) + note, y=1.1)
        fig.subplots_adjust(bottom=0.27, wspace=0.08)
        return _save(fig, path)

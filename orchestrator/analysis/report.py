"""The run report as markdown: a pure function of a RunReport (and the names
of the figures saved beside it). The same text is saved as report.md and
shown in the terminal by the script; this module writes nothing."""

from __future__ import annotations

import math
from collections.abc import Sequence

from agents.typing import TRAIT_NAMES
from orchestrator.analysis.stats import BEHAVIOURS, RunReport
from orchestrator.safe_text import md


def _fmt(v: float | int | None, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, int):
        return f"{v:,}"
    return f"{v:,.{digits}f}"


def _pct(v: float) -> str:
    return f"{100 * v:.1f}%"


def md_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table; the first column left-aligned, the rest right."""
    align = [":--"] + ["--:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    # cells come from the dumps (names, actions): md() keeps them plain one-line text
    lines += ["| " + " | ".join(md(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(report: RunReport, figures: Sequence[str] = ()) -> str:
    o, a, tok, st, tm, p = (
        report.overview,
        report.activity,
        report.tokens,
        report.steering,
        report.temporal,
        report.parsing,
    )
    parts: list[str] = [f"# Run report: {md(o.run_id)}"]
    parts.append(
        md_table(
            ["", "value"],
            [
                ["status", o.status],
                ["backend", o.backend],
                ["ticks", f"{_fmt(o.ticks)} ({o.first_tick}–{o.last_tick})"],
                ["tick files read", _fmt(o.files_read)],
                ["actions (rows)", _fmt(o.rows)],
                ["messages (SAY)", _fmt(o.messages)],
                ["agents acting", _fmt(o.agents_acting)],
                ["agents in agents.parquet", _fmt(o.agents_total)],
            ],
        )
    )

    total = max(o.rows, 1)
    parts.append("## Action distribution")
    parts.append(
        md_table(
            ["action", "count", "share"],
            [[k, _fmt(v), _pct(v / total)] for k, v in report.actions.items()],
        )
    )

    parts.append("## Agent activity")
    parts.append(
        f"Actions per agent: min {_fmt(a.rows_per_agent_min)}, median "
        f"{_fmt(a.rows_per_agent_median, 1)}, mean {_fmt(a.rows_per_agent_mean, 1)}, max "
        f"{_fmt(a.rows_per_agent_max)}; messages per agent: mean "
        f"{_fmt(a.messages_per_agent_mean, 1)}."
    )
    parts.append(
        md_table(
            ["most active", "actions", "least active", "actions "],
            [[*m, *le] for m, le in zip(a.most_active, a.least_active, strict=False)],
        )
    )

    parts.append("## Token usage")
    rows = [
        ["prompt tokens", _fmt(tok.prompt_total), _fmt(tok.prompt_mean, 1)],
        ["completion tokens", _fmt(tok.completion_total), _fmt(tok.completion_mean, 1)],
    ]
    parts.append(md_table(["", "total", "mean per action"], rows))
    by_action = ", ".join(f"{md(k)} {_fmt(v, 1)}" for k, v in tok.completion_mean_by_action.items())
    parts.append(
        f"Completion tokens p95: {_fmt(tok.completion_p95, 1)}; mean by action: {by_action}. "
        f"Generation time {_fmt(tok.generate_s_total)} s of {_fmt(tok.tick_s_total)} s in ticks"
        + (
            f", {_fmt(tok.completion_tokens_per_s, 1)} completion tokens/s."
            if tok.completion_tokens_per_s
            else "."
        )
    )

    parts.append("## Steering profiles")
    parts.append(
        f"{st.agents} agents with rows, {st.distinct_profiles} distinct applied profiles "
        "(coefficients as logged, one per agent)."
    )
    parts.append(
        md_table(
            ["trait", "mean", "std", "min", "max"],
            [
                [
                    f"{t.trait} ({TRAIT_NAMES[t.trait]})",
                    *(_fmt(x) for x in (t.mean, t.std, t.min, t.max)),
                ]
                for t in st.profiles
            ],
        )
    )
    parts.append(
        "Spearman correlation across agents between each trait coefficient and "
        "behaviour (shares of the agent's actions, words per SAY, parse failure rate):"
    )
    parts.append(
        md_table(
            ["trait", *BEHAVIOURS],
            [[t, *(_fmt(st.behaviour_rho[t][b]) for b in BEHAVIOURS)] for t in st.behaviour_rho],
        )
    )

    parts.append("## Temporal dynamics")
    parts.append(
        f"Actions per tick: mean {_fmt(tm.rows_per_tick_mean, 1)} (min {tm.rows_per_tick_min}, "
        f"max {tm.rows_per_tick_max}); messages per tick: mean "
        f"{_fmt(tm.messages_per_tick_mean, 1)}; trend of actions per tick over time: "
        f"Spearman rho {_fmt(tm.rows_trend_rho)}."
    )
    parts.append(
        md_table(
            ["action", "share, first third", "share, last third"],
            [
                [k, _pct(tm.action_share_first_third[k]), _pct(tm.action_share_last_third[k])]
                for k in tm.action_share_first_third
            ],
        )
    )

    parts.append("## Parse success")
    failed = ", ".join(f"{md(k)} {v}" for k, v in p.failed_by_action.items()) or "none"
    worst = (
        f"; most failures in one tick: {p.worst_tick_failures} (tick {p.worst_tick})"
        if p.worst_tick is not None
        else ""
    )
    parts.append(
        f"Parsed: {_fmt(p.ok)} of {_fmt(p.ok + p.failed)} ({_pct(p.ok_rate)}); failed: "
        f"{_fmt(p.failed)} (recorded as {failed}){worst}."
    )

    if figures:
        parts.append("## Figures")
        parts.append("\n".join(f"![{f}]({f})" for f in figures))
    return "\n\n".join(parts) + "\n"

"""The numbers of a run report: action distribution, agent activity, token
use, steering profiles and how they relate to behaviour, temporal dynamics,
and parse success. Pure functions from a RunDumps to frozen records; this
module knows nothing about markdown, plots or the terminal.

A "message" is a SAY row (something said to other agents); an "action" is
any row (one per acting agent and event). Activity over time counts action
rows only: reflection rows (REFLECT, written every N ticks) are left out.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import pandas as pd

from agents.statistics import spearman
from agents.typing import TRAITS
from orchestrator.dumps_reader import TRAIT_COLUMNS, RunDumps
from orchestrator.records import REFLECT_ACTION

REFLECTION_KIND = "reflection"  # event_kind of the rows a reflection round writes

# Per-agent behaviour measures correlated with the trait coefficients.
BEHAVIOURS: tuple[str, ...] = (
    "say_share",
    "work_share",
    "move_share",
    "rest_share",
    "words_per_say",
    "parse_fail_rate",
)


@dataclass(frozen=True, kw_only=True)
class Overview:
    run_id: str
    status: str
    backend: str
    ticks: int  # distinct ticks with rows
    first_tick: int
    last_tick: int
    files_read: int
    rows: int  # actions (all message rows)
    messages: int  # SAY rows
    agents_acting: int  # distinct agents with at least one row
    agents_total: int  # rows of agents.parquet (0 when absent)


@dataclass(frozen=True, kw_only=True)
class ActivityStats:
    rows_per_agent_min: int
    rows_per_agent_median: float
    rows_per_agent_mean: float
    rows_per_agent_max: int
    messages_per_agent_mean: float
    most_active: list[tuple[str, int]]  # (agent name, rows), top 5
    least_active: list[tuple[str, int]]  # bottom 5, agents.parquet agents without rows included


@dataclass(frozen=True, kw_only=True)
class TokenStats:
    prompt_total: int
    completion_total: int
    prompt_mean: float
    completion_mean: float
    completion_p95: float
    completion_mean_by_action: dict[str, float]
    generate_s_total: float  # from perf.parquet (0 when absent)
    tick_s_total: float
    completion_tokens_per_s: float  # completion tokens / generate seconds (0 when unknown)


@dataclass(frozen=True, kw_only=True)
class TraitProfile:
    trait: str
    mean: float
    std: float
    min: float
    max: float


@dataclass(frozen=True, kw_only=True)
class SteeringStats:
    agents: int  # agents with rows
    profiles: list[TraitProfile]  # over agents (one applied profile per agent)
    distinct_profiles: int
    # Spearman rho across agents: trait -> behaviour -> rho (NaN when undefined).
    behaviour_rho: dict[str, dict[str, float]]


@dataclass(frozen=True, kw_only=True)
class TemporalStats:
    rows_per_tick_mean: float
    rows_per_tick_min: int
    rows_per_tick_max: int
    messages_per_tick_mean: float
    # Shares of each action in the first and the last third of the ticks.
    action_share_first_third: dict[str, float]
    action_share_last_third: dict[str, float]
    rows_trend_rho: float  # Spearman rho of rows per tick against tick (NaN when constant)


@dataclass(frozen=True, kw_only=True)
class ParseStats:
    ok: int
    failed: int
    ok_rate: float
    failed_by_action: dict[str, int]  # what the failed outputs were recorded as
    worst_tick: int | None  # tick with most failures (None when none failed)
    worst_tick_failures: int


@dataclass(frozen=True, kw_only=True)
class RunReport:
    overview: Overview
    actions: dict[str, int]  # action -> rows, most frequent first
    activity: ActivityStats
    tokens: TokenStats
    steering: SteeringStats
    temporal: TemporalStats
    parsing: ParseStats

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def agent_profiles(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per agent (index agent_id): agent_name and the mean applied
    coefficient of each trait (columns E, A, C, O, N), in agent_id order."""
    if messages.empty:
        return pd.DataFrame(columns=["agent_name", *TRAITS])
    grouped = messages.groupby("agent_id", sort=True)
    out = grouped[list(TRAIT_COLUMNS)].mean().astype(float)
    out.columns = list(TRAITS)
    out.insert(0, "agent_name", grouped["agent_name"].first())
    return out


def agent_behaviour(messages: pd.DataFrame) -> pd.DataFrame:
    """One row per agent (index agent_id): the BEHAVIOURS measures."""
    grouped = messages.groupby("agent_id", sort=True)
    rows = grouped.size()
    out = pd.DataFrame(index=rows.index)
    for action in ("SAY", "WORK", "MOVE", "REST"):
        n = messages[messages["action"] == action].groupby("agent_id").size()
        out[f"{action.lower()}_share"] = n.reindex(rows.index, fill_value=0) / rows
    says = messages[(messages["action"] == "SAY") & messages["parse_ok"]]
    words = says["content"].fillna("").str.split().str.len()
    out["words_per_say"] = words.groupby(says["agent_id"]).mean().reindex(rows.index)
    out["parse_fail_rate"] = (~messages["parse_ok"]).groupby(messages["agent_id"]).mean()
    return out[list(BEHAVIOURS)]


def _overview(d: RunDumps) -> Overview:
    m = d.messages
    ticks = m["tick"]
    return Overview(
        run_id=d.run_id,
        status=str(d.manifest.get("status", "unknown")),
        backend=d.backend,
        ticks=int(ticks.nunique()),
        first_tick=int(ticks.min()) if len(m) else 0,
        last_tick=int(ticks.max()) if len(m) else 0,
        files_read=d.files_read,
        rows=len(m),
        messages=int((m["action"] == "SAY").sum()),
        agents_acting=int(m["agent_id"].nunique()),
        agents_total=len(d.agents),
    )


def _activity(d: RunDumps) -> ActivityStats:
    m = d.messages
    per_agent = m.groupby("agent_id").size()
    names = dict(zip(m["agent_id"], m["agent_name"], strict=True))
    if len(d.agents):  # agents that never acted count as 0
        names.update(zip(d.agents["agent_id"], d.agents["agent_name"], strict=True))
        per_agent = per_agent.reindex(
            sorted(set(per_agent.index) | set(d.agents["agent_id"])), fill_value=0
        )
    says = m[m["action"] == "SAY"].groupby("agent_id").size().reindex(per_agent.index, fill_value=0)
    ordered = per_agent.sort_values(ascending=False, kind="stable")
    labelled = [(names.get(a, a), int(n)) for a, n in ordered.items()]
    return ActivityStats(
        rows_per_agent_min=int(per_agent.min()) if len(per_agent) else 0,
        rows_per_agent_median=float(per_agent.median()) if len(per_agent) else 0.0,
        rows_per_agent_mean=float(per_agent.mean()) if len(per_agent) else 0.0,
        rows_per_agent_max=int(per_agent.max()) if len(per_agent) else 0,
        messages_per_agent_mean=float(says.mean()) if len(says) else 0.0,
        most_active=labelled[:5],
        least_active=labelled[::-1][:5],
    )


def _tokens(d: RunDumps) -> TokenStats:
    m, perf = d.messages, d.perf
    by_action = m.groupby("action")["completion_tokens"].mean().sort_index()
    generate_s = float(perf["generate_s"].sum() + perf["reflect_s"].sum()) if len(perf) else 0.0
    completion_total = int(m["completion_tokens"].sum())
    return TokenStats(
        prompt_total=int(m["prompt_tokens"].sum()),
        completion_total=completion_total,
        prompt_mean=float(m["prompt_tokens"].mean()) if len(m) else 0.0,
        completion_mean=float(m["completion_tokens"].mean()) if len(m) else 0.0,
        completion_p95=float(m["completion_tokens"].quantile(0.95)) if len(m) else 0.0,
        completion_mean_by_action={str(k): float(v) for k, v in by_action.items()},
        generate_s_total=generate_s,
        tick_s_total=float(perf["tick_s"].sum()) if len(perf) else 0.0,
        completion_tokens_per_s=completion_total / generate_s if generate_s > 0 else 0.0,
    )


def _steering(d: RunDumps) -> SteeringStats:
    profiles = agent_profiles(d.messages)
    behaviour = agent_behaviour(d.messages) if len(d.messages) else pd.DataFrame()
    traits = [
        TraitProfile(
            trait=t,
            mean=float(profiles[t].mean()) if len(profiles) else 0.0,
            std=float(profiles[t].std(ddof=0)) if len(profiles) else 0.0,
            min=float(profiles[t].min()) if len(profiles) else 0.0,
            max=float(profiles[t].max()) if len(profiles) else 0.0,
        )
        for t in TRAITS
    ]
    rho = {
        t: {
            b: spearman(profiles[t], behaviour[b]) if len(behaviour) else float("nan")
            for b in BEHAVIOURS
        }
        for t in TRAITS
    }
    distinct = len(profiles[list(TRAITS)].round(3).drop_duplicates()) if len(profiles) else 0
    return SteeringStats(
        agents=len(profiles), profiles=traits, distinct_profiles=distinct, behaviour_rho=rho
    )


def _shares(rows: pd.DataFrame, actions: list[str]) -> dict[str, float]:
    counts = rows["action"].value_counts()
    total = max(len(rows), 1)
    return {a: float(counts.get(a, 0)) / total for a in actions}


def is_reflection(messages: pd.DataFrame) -> pd.Series:
    """Rows a reflection round wrote (event_kind "reflection" or action REFLECT):
    an agent's insights and plan, not an action in the world."""
    kind = messages["event_kind"] if "event_kind" in messages else pd.Series("", messages.index)
    return (kind == REFLECTION_KIND) | (messages["action"] == REFLECT_ACTION)


def per_tick_counts(messages: pd.DataFrame) -> pd.DataFrame:
    """Index tick (every tick from first to last, gaps as 0): columns actions
    (action rows; reflection rows are left out, or every reflection round
    would show as a spike), messages (SAY rows) and parse_failures."""
    if messages.empty:
        return pd.DataFrame(columns=["actions", "messages", "parse_failures"])
    ticks = pd.RangeIndex(int(messages["tick"].min()), int(messages["tick"].max()) + 1, name="tick")
    g = messages[~is_reflection(messages)].groupby("tick")
    out = pd.DataFrame(
        {
            "actions": g.size(),
            "messages": g["action"].apply(lambda a: int((a == "SAY").sum())),
            "parse_failures": g["parse_ok"].apply(lambda ok: int((~ok).sum())),
        }
    )
    return out.reindex(ticks, fill_value=0).astype(int)


def _temporal(d: RunDumps, actions: list[str]) -> TemporalStats:
    m = d.messages
    per_tick = per_tick_counts(m)
    ticks = sorted(m["tick"].unique())
    third = max(len(ticks) // 3, 1)
    first, last = set(ticks[:third]), set(ticks[-third:])
    rows = per_tick["actions"]
    return TemporalStats(
        rows_per_tick_mean=float(rows.mean()) if len(rows) else 0.0,
        rows_per_tick_min=int(rows.min()) if len(rows) else 0,
        rows_per_tick_max=int(rows.max()) if len(rows) else 0,
        messages_per_tick_mean=float(per_tick["messages"].mean()) if len(rows) else 0.0,
        action_share_first_third=_shares(m[m["tick"].isin(first)], actions),
        action_share_last_third=_shares(m[m["tick"].isin(last)], actions),
        rows_trend_rho=spearman(per_tick.index.to_numpy(), rows.to_numpy()),
    )


def _parsing(d: RunDumps) -> ParseStats:
    m = d.messages
    failed = m[~m["parse_ok"]]
    by_tick = failed.groupby("tick").size()
    return ParseStats(
        ok=int(m["parse_ok"].sum()),
        failed=len(failed),
        ok_rate=float(m["parse_ok"].mean()) if len(m) else 0.0,
        failed_by_action={str(k): int(v) for k, v in failed["action"].value_counts().items()},
        worst_tick=int(by_tick.idxmax()) if len(by_tick) else None,
        worst_tick_failures=int(by_tick.max()) if len(by_tick) else 0,
    )


def build_report(d: RunDumps) -> RunReport:
    """All sections of the report for one run's dumps."""
    counts = d.messages["action"].value_counts()
    actions = {str(k): int(v) for k, v in counts.items()}
    return RunReport(
        overview=_overview(d),
        actions=actions,
        activity=_activity(d),
        tokens=_tokens(d),
        steering=_steering(d),
        temporal=_temporal(d, list(actions)),
        parsing=_parsing(d),
    )

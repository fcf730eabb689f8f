"""The verification result record, and the log checks: what the steering
columns of a run's messages say about whether steering was applied. The log
checks prove only that coefficients were recorded as intended, never that
they changed behaviour (see text_check and behavioural for that).

Thresholds (and why):
- present: every row has finite coefficients and at least one row is non-zero.
  Agents with an all-zero profile are allowed (a neutral control), so no
  share of non-zero rows is demanded beyond "some".
- vary: at least one trait has variance >= MIN_VARIANCE (0.001, i.e. a spread
  of about ±0.03) across messages. Traits that are constant are named: no
  analysis can relate them to behaviour.
- diverse: at least 2 distinct agent profiles (rounded to 0.01), and no one
  profile shared by more than MAX_SHARED_PROFILE (50%) of the agents; a
  population that is mostly one personality cannot show trait effects.
- one profile per agent: an agent's coefficients never change between its
  rows (within PROFILE_TOLERANCE). A change means coefficients were mixed
  up between batch rows, or logged from the wrong request.
- match: the logged profile of each agent equals its row in agents.parquet
  (within PROFILE_TOLERANCE, float32 rounding); skipped without agents.parquet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from agents.typing import TRAITS
from orchestrator.analysis.stats import agent_profiles
from orchestrator.dumps_reader import TRAIT_COLUMNS

CheckStatus = Literal["pass", "fail", "skip"]

MIN_VARIANCE = 1e-3
MAX_SHARED_PROFILE = 0.5
PROFILE_TOLERANCE = 1e-3
NONZERO = 1e-6


@dataclass(frozen=True, kw_only=True)
class CheckResult:
    """One verification check: a status, a one-line summary with the counts,
    optional further lines, and the numbers behind it (for JSON)."""

    name: str
    status: CheckStatus
    summary: str
    details: tuple[str, ...] = ()
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.status == "fail"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "status": self.status,
            "summary": self.summary,
            "details": list(self.details),
            "data": self.data,
        }


def _fmt_traits(values: dict[str, float], digits: int = 2) -> str:
    return ", ".join(f"{t} {v:+.{digits}f}" for t, v in values.items())


def check_present(messages: pd.DataFrame) -> CheckResult:
    coefs = messages[list(TRAIT_COLUMNS)].to_numpy(dtype=float)  # (rows, 5)
    finite = np.isfinite(coefs).all(axis=1)
    nonzero_rows = (np.abs(np.nan_to_num(coefs)) > NONZERO).any(axis=1)
    profiles = agent_profiles(messages)
    steered_agents = int((profiles[list(TRAITS)].abs() > NONZERO).any(axis=1).sum())
    share = float(nonzero_rows.mean()) if len(coefs) else 0.0
    ok = bool(len(coefs)) and bool(finite.all()) and bool(nonzero_rows.any())
    means = {t: float(profiles[t].mean()) for t in TRAITS} if len(profiles) else {}
    summary = (
        f"steering values present: {steered_agents} of {len(profiles)} agents with steering "
        f"applied; {100 * share:.1f}% of {len(coefs):,} messages with non-zero coefficients"
    )
    details = [f"mean trait values over agents: {_fmt_traits(means)}"]
    if not finite.all():
        details.append(f"{int((~finite).sum())} rows have missing or non-finite coefficients")
    layers = messages["steer_layers"].map(lambda x: x is not None and len(x) > 0)
    details.append(f"rows naming steered layers: {100 * float(layers.mean()):.1f}%")
    return CheckResult(
        name="present",
        status="pass" if ok else "fail",
        summary=summary,
        details=tuple(details),
        data={
            "agents_steered": steered_agents,
            "agents": len(profiles),
            "messages": len(coefs),
            "share_nonzero": share,
            "nonfinite_rows": int((~finite).sum()),
            "mean_traits": means,
        },
    )


def check_vary(messages: pd.DataFrame) -> CheckResult:
    var = {
        t: float(messages[c].astype(float).var(ddof=0))
        for t, c in zip(TRAITS, TRAIT_COLUMNS, strict=True)
    }
    var = {t: (0.0 if np.isnan(v) else v) for t, v in var.items()}
    varying = [t for t, v in var.items() if v >= MIN_VARIANCE]
    constant = [t for t in TRAITS if t not in varying]
    details = [f"per-trait variance across messages: {_fmt_traits(var, 3)}"]
    if constant and varying:
        details.append(f"constant traits (cannot be related to behaviour): {', '.join(constant)}")
    return CheckResult(
        name="vary",
        status="pass" if varying else "fail",
        summary=(
            f"values vary: {len(varying)} of {len(TRAITS)} traits with variance >= {MIN_VARIANCE}"
        ),
        details=tuple(details),
        data={"variance": var, "varying": varying},
    )


def check_diverse(messages: pd.DataFrame) -> CheckResult:
    profiles = agent_profiles(messages)[list(TRAITS)]
    n = len(profiles)
    groups = profiles.round(2).value_counts() if n else pd.Series(dtype=int)
    distinct, largest = len(groups), int(groups.max()) if n else 0
    share = largest / n if n else 1.0
    values = profiles.to_numpy(dtype=float)  # (agents, 5)
    dists = np.linalg.norm(values[:, None, :] - values[None, :, :], axis=-1)  # (agents, agents)
    mean_dist = float(dists[np.triu_indices(n, 1)].mean()) if n > 1 else 0.0
    ok = distinct >= 2 and share <= MAX_SHARED_PROFILE
    return CheckResult(
        name="diverse",
        status="pass" if ok else "fail",
        summary=(
            f"diverse profiles: {distinct} distinct profiles among {n} agents; the most common "
            f"is shared by {largest} ({100 * share:.0f}%, limit {100 * MAX_SHARED_PROFILE:.0f}%)"
        ),
        details=(f"mean distance between agent profiles: {mean_dist:.2f}",),
        data={
            "distinct": distinct,
            "agents": n,
            "largest_group": largest,
            "mean_distance": mean_dist,
        },
    )


def check_stable(messages: pd.DataFrame) -> CheckResult:
    grouped = messages.groupby("agent_id")[list(TRAIT_COLUMNS)]
    spread = grouped.max() - grouped.min()
    worst = spread.max(axis=1) if len(spread) else pd.Series(dtype=float)
    changing = worst[worst > PROFILE_TOLERANCE]
    return CheckResult(
        name="stable",
        status="fail" if len(changing) else "pass",
        summary=(
            f"one profile per agent: {len(worst) - len(changing)} of {len(worst)} agents keep "
            "the same coefficients in every message"
        ),
        details=tuple(
            f"{a}: coefficients change by up to {v:.3f}" for a, v in changing.head(5).items()
        ),
        data={"changing_agents": list(changing.index)},
    )


def check_match(messages: pd.DataFrame, agents: pd.DataFrame | None) -> CheckResult:
    if agents is None or agents.empty:
        return CheckResult(
            name="match",
            status="skip",
            summary="logged coefficients match agents.parquet: skipped (no agents.parquet)",
        )
    logged = agent_profiles(messages)[list(TRAITS)]
    configured = agents.set_index("agent_id")[list(TRAITS)].astype(float)
    common = logged.index.intersection(configured.index)
    unknown = logged.index.difference(configured.index)
    diff = (logged.loc[common] - configured.loc[common]).abs().max(axis=1)
    mismatched = diff[diff > PROFILE_TOLERANCE]
    ok = len(common) > 0 and len(mismatched) == 0 and len(unknown) == 0
    details = [f"{a}: off by up to {v:.3f}" for a, v in mismatched.head(5).items()]
    if len(unknown):
        details.append(f"{len(unknown)} agents in the messages are not in agents.parquet")
    return CheckResult(
        name="match",
        status="pass" if ok else "fail",
        summary=(
            f"logged coefficients match agents.parquet: {len(common) - len(mismatched)} of "
            f"{len(logged)} agents"
        ),
        details=tuple(details),
        data={"mismatched_agents": list(mismatched.index), "unknown_agents": list(unknown)},
    )


def log_checks(messages: pd.DataFrame, agents: pd.DataFrame | None = None) -> list[CheckResult]:
    """All log checks on the message rows (and agents.parquet when given)."""
    return [
        check_present(messages),
        check_vary(messages),
        check_diverse(messages),
        check_stable(messages),
        check_match(messages, agents),
    ]

"""The action check: does what an agent DOES depend on its trait coefficients?

Agents are the unit. Each agent's acting rows (parsed MOVE / SAY / WORK /
REST; reflections and unparsed fallbacks left out) give its action shares.
For each action, a weighted least-squares model of the agent's share on its
five coefficients (weights: the agent's number of actions) gives, per trait,
the change in that action's share per unit of coefficient with the other
traits held fixed: the effect size, with a 95% confidence interval from a
bootstrap over agents (N_BOOTSTRAP resamples).

Pass rule: the share of the agents' action variation the coefficients
explain (the weighted R², pooled over the four actions) is larger than when
the trait vectors are shuffled across agents: permutation p < ALPHA over
N_PERMUTATIONS shuffles (seeded). Whole profiles move between agents, so the
test is exact for any population design, and behaviour stays with the agent
that showed it. Per trait, the same permutations give a p-value for that
trait's own share of the explained variation.

It never passes:
- a run whose steering was off (steer_* all 0): it is computed on the agents'
  assigned traits (agents.parquet) and reported, but fails: such a run is a
  control, to be given to a steered run with --control;
- a run whose control (same config, steering off) shows a dependence too:
  then it is not the steering that makes the difference;
- fewer than MIN_AGENTS agents with MIN_ACTIONS actions (inconclusive).

Knows nothing about models or text; reads only the messages and agents frames.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from agents.grammar import VERB_NAMES
from agents.typing import TRAIT_NAMES, TRAITS
from orchestrator.analysis.checks import CheckResult
from orchestrator.analysis.stats import agent_profiles

log = logging.getLogger(__name__)

ACTIONS: tuple[str, ...] = VERB_NAMES  # MOVE, SAY, WORK, REST
ALPHA = 0.05
N_PERMUTATIONS = 2000
N_BOOTSTRAP = 1000
SEED = 0
MIN_AGENTS = 8
MIN_ACTIONS = 3
MIN_VARIANCE = 1e-3
NONZERO = 1e-6


@dataclass(frozen=True, kw_only=True)
class AgentActions:
    """Per agent (rows, index agent_id): coefficients (E..N), action shares
    (MOVE..REST) and n, the number of actions; and where the coefficients came from."""

    frame: pd.DataFrame
    source: str  # "steer columns" (what was applied) | "agents.parquet" (assigned, steering off)
    steered: bool


@dataclass(frozen=True, kw_only=True)
class ActionCheckResult:
    agents: int
    actions: int  # acting rows used
    source: str
    steered: bool
    tested: list[str]  # traits that vary across agents
    shares: dict[str, float]  # overall share of each action
    slope: dict[str, dict[str, float]]  # trait -> action -> change in share per unit coefficient
    ci_low: dict[str, dict[str, float]]
    ci_high: dict[str, dict[str, float]]
    r2: float  # pooled weighted R^2 of the shares on the coefficients
    p_permutation: float
    p_trait: dict[str, float]
    passed: bool
    reason: str
    control: ActionCheckResult | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "agents": self.agents,
            "actions": self.actions,
            "source": self.source,
            "steered": self.steered,
            "tested": self.tested,
            "shares": self.shares,
            "slope": self.slope,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "r2": self.r2,
            "p_permutation": self.p_permutation,
            "p_trait": self.p_trait,
            "passed": self.passed,
            "reason": self.reason,
            "control": self.control.to_dict() if self.control is not None else None,
        }


def agent_actions(messages: pd.DataFrame, agents: pd.DataFrame | None = None) -> AgentActions:
    """Each agent's coefficients and action shares. Coefficients: the steer_*
    columns (what was applied) when any is non-zero, else the assigned traits
    in agents.parquet (a run with steering off)."""
    acting = messages[messages["action"].isin(ACTIONS) & messages["parse_ok"].astype(bool)]
    counts = (
        acting.groupby(["agent_id", "action"]).size().unstack(fill_value=0)
        if len(acting)
        else pd.DataFrame()
    )
    counts = counts.reindex(columns=list(ACTIONS), fill_value=0)
    profiles = agent_profiles(messages)
    steered = bool(len(profiles)) and bool((profiles[list(TRAITS)].abs() > NONZERO).any().any())
    if steered or agents is None or not len(agents) or "agent_id" not in agents:
        coefs, source = profiles[list(TRAITS)], "steer columns"
    else:
        coefs = agents.set_index("agent_id")[list(TRAITS)].astype(float)
        source = "agents.parquet"
    n = counts.sum(axis=1)
    frame = coefs.join(counts.div(n.where(n > 0, 1), axis=0), how="inner")
    frame["n"] = n.reindex(frame.index).fillna(0).astype(int)
    return AgentActions(frame=frame, source=source, steered=steered)


def _wls_slopes(c: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Batched weighted least squares. c (..., n, k), y (n, A), w (..., n):
    slopes (..., k, A) and explained sums of squares per trait (..., k)."""
    wn = w / w.sum(axis=-1, keepdims=True)  # (..., n)
    cc = c - (wn[..., None] * c).sum(axis=-2, keepdims=True)  # (..., n, k)
    yc = y - np.einsum("...n,na->...a", wn, y)[..., None, :]  # (..., n, A)
    xtx = np.einsum("...nk,...n,...nj->...kj", cc, w, cc)  # (..., k, k)
    xty = np.einsum("...nk,...n,...na->...ka", cc, w, yc)  # (..., k, A)
    beta = np.linalg.solve(xtx + 1e-12 * np.eye(xtx.shape[-1]), xty)  # (..., k, A)
    # the part of the explained sum of squares that each trait carries: beta_t . (X'y)_t
    ess_trait = (beta * xty).sum(axis=-1)  # (..., k)
    return beta, ess_trait


def _tss(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    wn = w / w.sum(axis=-1, keepdims=True)
    yc = y - np.einsum("...n,na->...a", wn, y)[..., None, :]
    return np.einsum("...n,...na->...", w, yc**2)


def action_check(
    messages: pd.DataFrame,
    agents: pd.DataFrame | None = None,
    *,
    control: ActionCheckResult | None = None,
    n_permutations: int = N_PERMUTATIONS,
    n_bootstrap: int = N_BOOTSTRAP,
) -> ActionCheckResult:
    """The action check of one run (and its verdict, given a control's result)."""
    data = agent_actions(messages, agents)
    frame = data.frame[data.frame["n"] >= MIN_ACTIONS]
    n_agents = len(frame)
    coef_all = frame[list(TRAITS)].to_numpy(dtype=float)  # (n, 5)
    tested = [t for i, t in enumerate(TRAITS) if n_agents and coef_all[:, i].var() >= MIN_VARIANCE]
    y = frame[list(ACTIONS)].to_numpy(dtype=float)  # (n, A)
    w = frame["n"].to_numpy(dtype=float)  # (n,)
    total = int(w.sum())
    shares = {
        a: float((y[:, j] * w).sum() / total) if total else 0.0 for j, a in enumerate(ACTIONS)
    }
    nan = {t: dict.fromkeys(ACTIONS, float("nan")) for t in TRAITS}
    slope, lo, hi = nan, {t: dict(v) for t, v in nan.items()}, {t: dict(v) for t, v in nan.items()}
    r2, p_perm, p_trait = float("nan"), 1.0, dict.fromkeys(TRAITS, 1.0)
    enough = n_agents >= max(MIN_AGENTS, len(tested) + 3) and bool(tested)
    if enough:
        cols = [TRAITS.index(t) for t in tested]
        c = coef_all[:, cols]  # (n, k)
        tss = float(_tss(y, w))
        beta, ess = _wls_slopes(c, y, w)  # (k, A), (k,)
        r2 = float(ess.sum() / tss) if tss > 0 else 0.0
        rng = np.random.default_rng(SEED)
        perms = np.stack([rng.permutation(n_agents) for _ in range(n_permutations)])  # (P, n)
        _, ess_null = _wls_slopes(c[perms], y, w[None, :].repeat(n_permutations, 0))  # (P, k)
        p_perm = float((1 + (ess_null.sum(-1) >= ess.sum() - 1e-12).sum()) / (n_permutations + 1))
        for i, t in enumerate(tested):
            p_trait[t] = float(
                (1 + (ess_null[:, i] >= ess[i] - 1e-12).sum()) / (n_permutations + 1)
            )
        q_lo = q_hi = np.full_like(beta, np.nan)
        if n_bootstrap > 0:
            boots = rng.integers(0, n_agents, size=(n_bootstrap, n_agents))  # (B, n)
            # a resampled agent's behaviour travels with its coefficients
            beta_boot = np.stack([_wls_slopes(c[b], y[b], w[b])[0] for b in boots])  # (B, k, A)
            q_lo, q_hi = np.nanpercentile(beta_boot, [2.5, 97.5], axis=0)  # (k, A)
        for i, t in enumerate(tested):
            for j, a in enumerate(ACTIONS):
                slope[t][a] = float(beta[i, j])
                lo[t][a], hi[t][a] = float(q_lo[i, j]), float(q_hi[i, j])
    passed, reason = _verdict(data, n_agents, tested, enough, r2, p_perm, control)
    log.info("action check on %d agents: %s", n_agents, reason)
    return ActionCheckResult(
        agents=n_agents,
        actions=int(frame["n"].sum()),
        source=data.source,
        steered=data.steered,
        tested=tested,
        shares=shares,
        slope=slope,
        ci_low=lo,
        ci_high=hi,
        r2=r2,
        p_permutation=p_perm,
        p_trait=p_trait,
        passed=passed,
        reason=reason,
        control=control,
    )


def _verdict(
    data: AgentActions,
    n_agents: int,
    tested: list[str],
    enough: bool,
    r2: float,
    p: float,
    control: ActionCheckResult | None,
) -> tuple[bool, str]:
    found = f"R² {r2:.3f}, permutation p {p:.4f}" if enough else ""
    if not tested:
        return False, "no trait varies across agents"
    if not enough:
        need = max(MIN_AGENTS, len(tested) + 3)
        return False, (
            f"inconclusive: {n_agents} agents with >= {MIN_ACTIONS} parsed actions, need {need}"
        )
    if not data.steered:
        return False, (
            f"steering was off (steer_* are 0): {found} on the assigned traits; "
            "a control run, not a steered one"
        )
    if p >= ALPHA:
        return False, f"no dependence on the coefficients: {found} >= {ALPHA}"
    if control is not None and control.p_permutation < ALPHA:
        return False, (
            f"{found}, but the control run shows a dependence too (p "
            f"{control.p_permutation:.4f}): not the steering's doing"
        )
    against = (
        f"; control: p {control.p_permutation:.4f} (no dependence)" if control is not None else ""
    )
    return True, f"{found} < {ALPHA}{against}"


def _trait_line(result: ActionCheckResult, t: str) -> str:
    head = f"{t} ({TRAIT_NAMES[t]})"
    if t not in result.tested:
        return f"{head}: constant, not tested"
    effects = ", ".join(
        f"{a} {100 * result.slope[t][a]:+.1f} [{100 * result.ci_low[t][a]:+.1f}, "
        f"{100 * result.ci_high[t][a]:+.1f}]"
        for a in ACTIONS
    )
    return f"{head}: p {result.p_trait[t]:.3f}; share points per unit: {effects}"


def as_check(result: ActionCheckResult) -> CheckResult:
    """The action check as a CheckResult with per-trait effect lines."""
    shares = ", ".join(f"{a} {100 * v:.0f}%" for a, v in result.shares.items())
    details = [f"coefficients from the {result.source}; action shares: {shares}"]
    details += [_trait_line(result, t) for t in TRAITS]
    if result.control is not None:
        c = result.control
        details.append(
            f"control run: {c.agents} agents, {c.actions:,} actions, R² {c.r2:.3f}, "
            f"permutation p {c.p_permutation:.4f}"
        )
        details += [f"  control {_trait_line(c, t)}" for t in c.tested]
    return CheckResult(
        name="action",
        status="pass" if result.passed else "fail",
        summary=f"action check: {result.agents} agents, {result.actions:,} actions; {result.reason}",
        details=tuple(details),
        data=result.to_dict(),
    )

"""The text check: does an agent's steering show in what it wrote during the
run? Each message gets a score per trait, the projection of its sentence
embedding on (mean of high-trait descriptions − mean of low-trait
descriptions); an agent's trait score is the mean over its messages. Per
trait, the Spearman correlation across agents between coefficient and score
is reported with its one-sided p-value.

Pass rule (one test over all traits, then a guard per trait):
- the mean of the per-trait correlations (coefficient of trait t vs text
  score of trait t, over the traits that vary) is greater than under random
  assignment of profiles to agents: permutation p < ALPHA (0.05, N_PERMUTATIONS
  shuffles with a fixed seed). Shuffling whole profiles keeps the correlation
  between traits, so the test is exact for any population design;
- and no trait is reversed: no varying trait has rho < 0 with one-sided
  p < ALPHA (a reversed trait means a sign error somewhere).
A per-trait significance rule was rejected: with the 8 to 32 agents of
typical runs a single trait needs rho ≳ 0.64 to 0.30, and the text carries
some traits (agreeableness, neuroticism) much more than others (extraversion
shows more in how much agents talk than in what they say). The behavioural
check is the strict per-trait test; this one asks whether the steering shows
in the run's own text at all, and which way.
With fewer than MIN_AGENTS agents that have MIN_TEXTS texts the check fails
as inconclusive.

The embedder is passed in (agents.embedding.MiniLMEmbedder for real use; any
agents.typing.Embedder in tests). This module knows nothing about the model
that wrote the text.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from agents.statistics import average_ranks, spearman
from agents.typing import TRAIT_NAMES, TRAITS, Embedder
from orchestrator.analysis.checks import CheckResult
from orchestrator.analysis.stats import agent_profiles

log = logging.getLogger(__name__)

ALPHA = 0.05
N_PERMUTATIONS = 2000
PERMUTATION_SEED = 0
MIN_AGENTS = 6
MIN_TEXTS = 2
MIN_VARIANCE = 1e-3
TEXT_ACTIONS = ("SAY", "WORK", "REFLECT")

# First-person statements at each pole, in the register of agents' speech.
# Written for this check, never shown to the agents or used to build vectors.
DESCRIPTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "E": (
        (
            "I love being around people and chatting with everyone I meet!",
            "Let's get the whole neighbourhood together tonight, it'll be so much fun!",
            "Hey everyone, come over here and join the conversation!",
            "I feel full of energy when I'm in a lively crowd.",
        ),
        (
            "I'd rather stay home by myself where it's quiet.",
            "I don't really feel like talking to anyone today.",
            "Big groups drain me, so I keep to a quiet corner.",
            "I'll spend the afternoon alone with a book.",
        ),
    ),
    "A": (
        (
            "Of course I'll help you, just tell me what you need.",
            "Thank you so much, that was really kind of you.",
            "Let's make sure everyone feels welcome and included.",
            "I understand how you feel, and I'm here for you.",
        ),
        (
            "Figure it out yourself, it's none of my business.",
            "Your plan is stupid and I won't waste my time on it.",
            "I don't care what the rest of you think.",
            "Stop bothering me and get out of my way.",
        ),
    ),
    "C": (
        (
            "I wrote a careful schedule and I'll finish every task on time.",
            "Let me organise the details properly before we begin.",
            "I always double-check my work and keep my promises.",
            "Back to work: this has to be done thoroughly today.",
        ),
        (
            "Eh, I'll deal with it some other time, maybe.",
            "I forgot the deadline again, but whatever.",
            "Plans are a waste of time, I just improvise.",
            "I left the job half done and wandered off.",
        ),
    ),
    "O": (
        (
            "Let's invent something nobody in this town has ever tried.",
            "I'm fascinated by strange ideas, art and faraway places.",
            "I'd love to turn the old wall into a huge colourful artwork.",
            "I'm curious about everything, so let's experiment.",
        ),
        (
            "Let's just do it the usual way, as we always have.",
            "I don't see the point of art or fancy new ideas.",
            "I like my routine and the familiar things I know.",
            "Keep it simple and traditional, no experiments.",
        ),
    ),
    "N": (
        (
            "I'm so anxious that everything is going to fall apart.",
            "I feel stressed and on edge all the time.",
            "What if everyone is angry at me? I can't stop worrying.",
            "I'm nervous and upset, and I barely slept.",
        ),
        (
            "I feel calm and relaxed, all is well.",
            "No worries at all, it will work itself out.",
            "I'm content and at ease with how things are going.",
            "Nothing rattles me; I stay cool under pressure.",
        ),
    ),
}


@dataclass(frozen=True, kw_only=True)
class TextCheckResult:
    agents: int  # agents scored (with >= MIN_TEXTS texts)
    texts: int  # texts embedded
    rho: dict[str, float]  # trait -> Spearman rho (coefficient vs own-trait text score)
    p: dict[str, float]  # one-sided p-value (rho > 0)
    p_reversed: dict[str, float]  # one-sided p-value (rho < 0)
    tested: list[str]  # traits that vary across the scored agents
    mean_rho: float  # mean of rho over the tested traits
    p_permutation: float  # of mean_rho under shuffled agent profiles
    # rho of coefficient (row) against text score (column), for cross-talk.
    matrix: dict[str, dict[str, float]]
    passed: bool
    reason: str


def trait_axes(embedder: Embedder) -> np.ndarray:
    """(5, D): per trait, mean high-description embedding − mean low one."""
    rows = []
    for t in TRAITS:
        high, low = DESCRIPTIONS[t]
        h = embedder.embed(list(high)).mean(axis=0)  # (D,)
        lo = embedder.embed(list(low)).mean(axis=0)  # (D,)
        rows.append(h - lo)
    return np.stack(rows).astype(np.float32)  # (5, D)


def select_texts(messages: pd.DataFrame, max_per_agent: int | None) -> pd.DataFrame:
    """Rows with words in them (SAY, WORK, REFLECT), at most `max_per_agent`
    per agent, evenly spread over the run. Unparsed outputs count: they are
    recorded as SAY with the model's own words, which carry the personality
    whether or not they follow the action grammar."""
    rows = messages[
        messages["action"].isin(TEXT_ACTIONS)
        & (messages["content"].fillna("").str.strip().str.len() > 0)
    ]
    if max_per_agent is None:
        return rows
    parts = []
    for _, group in rows.groupby("agent_id", sort=True):
        if len(group) > max_per_agent:
            idx = np.linspace(0, len(group) - 1, max_per_agent).round().astype(int)
            group = group.iloc[np.unique(idx)]
        parts.append(group)
    return pd.concat(parts) if parts else rows


def agent_text_scores(
    messages: pd.DataFrame, embedder: Embedder, *, max_per_agent: int | None = 50
) -> pd.DataFrame:
    """Index agent_id; columns E..N: the agent's mean text score per trait,
    and n_texts. Agents without texts are absent."""
    rows = select_texts(messages, max_per_agent)
    if rows.empty:
        return pd.DataFrame(columns=[*TRAITS, "n_texts"])
    emb = embedder.embed(rows["content"].astype(str).tolist())  # (N, D)
    scores = emb @ trait_axes(embedder).T  # (N, 5)
    frame = pd.DataFrame(scores, columns=list(TRAITS), index=rows["agent_id"].to_numpy())
    out = frame.groupby(level=0).mean()
    out["n_texts"] = frame.groupby(level=0).size()
    return out


def _spearman(x: np.ndarray, y: np.ndarray, alternative: str) -> tuple[float, float]:
    """rho (agents.statistics.spearman) and its p-value from the t approximation
    with n - 2 degrees of freedom, as scipy.stats.spearmanr gives it; (NaN, 1)
    where rho is undefined."""
    rho = spearman(x, y)
    if np.isnan(rho):
        return rho, 1.0
    dof = len(x) - 2
    r = np.float64(rho)
    with np.errstate(divide="ignore"):
        t = r * np.sqrt(dof / ((1.0 + r) * (1.0 - r)))  # +-inf at |rho| = 1
    dist = stats.t(dof)
    p = {"greater": dist.sf(t), "less": dist.cdf(t), "two-sided": 2 * dist.sf(abs(t))}[alternative]
    return rho, float(min(p, 1.0))


def _zranks(x: np.ndarray) -> np.ndarray:
    """Column-wise ranks, standardised; constant columns become 0."""
    r = average_ranks(x, axis=0)  # (n, k)
    sd = r.std(axis=0)
    return (r - r.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def permutation_p(
    coef: np.ndarray, text: np.ndarray, n: int = N_PERMUTATIONS
) -> tuple[float, float]:
    """Mean over columns of Spearman rho(coef[:, k], text[:, k]), and the
    one-sided p-value of that mean against shuffling the rows of `coef`
    (whole profiles move between agents). (agents, k) arrays."""
    zc, zt = _zranks(coef), _zranks(text)  # (agents, k)
    observed = float((zc * zt).mean(axis=0).mean())
    rng = np.random.default_rng(PERMUTATION_SEED)
    perms = np.stack([rng.permutation(len(zc)) for _ in range(n)])  # (n, agents)
    null = (zc[perms] * zt[None]).mean(axis=1).mean(axis=1)  # (n,)
    return observed, float((1 + (null >= observed - 1e-12).sum()) / (n + 1))


def text_check(
    messages: pd.DataFrame, embedder: Embedder, *, max_per_agent: int | None = 50
) -> TextCheckResult:
    scores = agent_text_scores(messages, embedder, max_per_agent=max_per_agent)
    scores = scores[scores["n_texts"] >= MIN_TEXTS]
    profiles = agent_profiles(messages).loc[scores.index]
    n = len(scores)
    coef = profiles[list(TRAITS)].to_numpy(dtype=float)  # (agents, 5)
    text = scores[list(TRAITS)].to_numpy(dtype=float)  # (agents, 5)
    tested = [t for i, t in enumerate(TRAITS) if n and coef[:, i].var() >= MIN_VARIANCE]
    matrix = {
        t: {u: _spearman(coef[:, i], text[:, j], "two-sided")[0] for j, u in enumerate(TRAITS)}
        for i, t in enumerate(TRAITS)
    }
    rho, p, p_rev = {}, {}, {}
    for i, t in enumerate(TRAITS):
        rho[t], p[t] = _spearman(coef[:, i], text[:, i], "greater")
        p_rev[t] = _spearman(coef[:, i], text[:, i], "less")[1]
    mean_rho, p_perm = float("nan"), 1.0
    cols = [TRAITS.index(t) for t in tested]
    if n >= MIN_AGENTS and tested:
        mean_rho, p_perm = permutation_p(coef[:, cols], text[:, cols])
    reversed_ = [t for t in tested if p_rev[t] < ALPHA]
    if n < MIN_AGENTS:
        passed = False
        reason = f"inconclusive: {n} agents with >= {MIN_TEXTS} texts, need {MIN_AGENTS}"
    elif not tested:
        passed, reason = False, "no trait varies across agents"
    elif reversed_:
        passed = False
        reason = f"reversed (rho < 0, p < {ALPHA}) for {', '.join(reversed_)}"
    else:
        passed = p_perm < ALPHA
        verdict = "<" if passed else ">="
        reason = (
            f"mean rho {mean_rho:+.2f} over {len(tested)} traits, "
            f"permutation p {p_perm:.4f} {verdict} {ALPHA}; no trait reversed"
        )
    log.info("text check on %d agents: %s", n, reason)
    return TextCheckResult(
        agents=n,
        texts=int(scores["n_texts"].sum()) if n else 0,
        rho=rho,
        p=p,
        p_reversed=p_rev,
        tested=tested,
        mean_rho=mean_rho,
        p_permutation=p_perm,
        matrix=matrix,
        passed=passed,
        reason=reason,
    )


def _trait_line(result: TextCheckResult, t: str) -> str:
    head = f"{t} ({TRAIT_NAMES[t]}): rho {result.rho[t]:+.2f}, p {result.p[t]:.3f}"
    if t not in result.tested:
        return head + " — constant, not tested"
    if result.p_reversed[t] < ALPHA:
        return head + " — reversed"
    return head + (" — significant" if result.p[t] < ALPHA else " — not significant alone")


def as_check(result: TextCheckResult) -> CheckResult:
    """The text check as a CheckResult line with per-trait details."""
    details = [_trait_line(result, t) for t in TRAITS]
    details.append("rho of coefficient (row) against text score (column):")
    details.append("     " + "".join(f"{u:>7}" for u in TRAITS))
    details += [
        f"  {t}  " + "".join(f"{result.matrix[t][u]:>+7.2f}" for u in TRAITS) for t in TRAITS
    ]
    return CheckResult(
        name="text",
        status="pass" if result.passed else "fail",
        summary=(f"text check: {result.agents} agents, {result.texts:,} texts; {result.reason}"),
        details=tuple(details),
        data={
            "agents": result.agents,
            "texts": result.texts,
            "rho": result.rho,
            "p": result.p,
            "p_reversed": result.p_reversed,
            "tested": result.tested,
            "mean_rho": result.mean_rho,
            "p_permutation": result.p_permutation,
            "matrix": result.matrix,
        },
    )

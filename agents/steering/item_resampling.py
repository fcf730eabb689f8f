"""The ratio's interval when the questionnaire's items are a sample too.

`SteeringReport.ratio_ci` resamples the random controls only: it says how
much the verdict depends on which controls were drawn, not on which
statements were asked. A test set of 22-24 statements a trait is itself one
draw from the statements an inventory could have used, and on SmolLM2 the
draw matters: dev's 110 IPIP-NEO items and the test set's 117 (same
inventory, same facets) gave N lower bounds of 3.6 and 1.0. This interval
resamples both, jointly: in every resample each trait's high-keyed and
reverse-keyed statements are drawn with replacement (the keys kept apart,
as the score keeps them apart) and so are the controls, and the ratio is
recomputed from per-statement changes, its random spread corrected for the
statements a resample repeats (a mean over repeats is noisier than one over
distinct statements, which would bias the ratio low). Its lower bound
estimates what the same steering would show on another set of items like
these.

Pure numpy; knows nothing about models."""

from __future__ import annotations

import numpy as np

from agents.typing import TRAITS


def _resampled_weights(rng: np.random.Generator, n_items: int, n_boot: int) -> np.ndarray:
    """(n_boot, n_items): each row the weights of a mean over `n_items` draws
    with replacement (multiplicity / n_items), so `weights @ values` is the
    resampled mean."""
    draws = rng.integers(0, n_items, size=(n_boot, n_items))
    flat = (np.arange(n_boot)[:, None] * n_items + draws).ravel()
    counts = np.bincount(flat, minlength=n_boot * n_items).reshape(n_boot, n_items)
    return counts / n_items


def _duplicate_correction(
    rand: np.ndarray, counts: np.ndarray, pick: np.ndarray, n_items: int
) -> np.ndarray:
    """(B,) how much a resample's repeated statements inflate its random
    spread's variance, for one key's statements.

    A control's score on a resample weighs statement i by c_i / n_items, and
    a repeated statement counts its own variance where a set of distinct
    statements would have a covariance between two of them: the spread of a
    mean over n draws with replacement is larger than over n distinct
    statements, which biased the ratio low. The correction takes, for every
    pair of draws of the same statement, its variance minus the mean
    covariance between different statements (both over the resampled
    controls): sum_i (c_i^2 - c_i) / n_items^2 * (var_i - mean cov)."""
    n = rand.shape[0]
    mean = pick @ rand  # (B, k) each statement's mean over the resampled controls
    var = (pick @ rand**2 - mean**2) * n / (n - 1)  # (B, k)
    total = rand.sum(axis=1)  # (n,) the key's sum: its variance holds every covariance
    var_total = (pick @ total**2 - (pick @ total) ** 2) * n / (n - 1)  # (B,)
    pairs = n_items * (n_items - 1)
    mean_cov = (var_total - var.sum(axis=1)) / pairs if pairs else np.zeros(len(pick))
    return ((counts**2 - counts) * (var - mean_cov[:, None])).sum(axis=1) / n_items**2


def item_resampled_ratio_ci(
    own_item_effects: np.ndarray,
    random_item_effects: np.ndarray,
    item_traits: np.ndarray,
    item_keys: np.ndarray,
    *,
    n_boot: int,
    level: float,
    seed: int = 0,
) -> np.ndarray:
    """(5, 2) percentile interval of effect / random spread per trait.

    own_item_effects (C,): each statement's change (-1 -> +1) when its own
    trait is steered; random_item_effects (n, C): its change under each
    random control of its trait's placement; item_traits (C,) trait index;
    item_keys (C,) +1 / -1. A trait's score is the mean over its +1 items
    minus the mean over its -1 items, so these give back the report's effect
    and random effects exactly. Each resample's spread is the one its
    statements would give if they were distinct (`_duplicate_correction`)."""
    own = np.asarray(own_item_effects, dtype=float)
    rand = np.asarray(random_item_effects, dtype=float)
    traits = np.asarray(item_traits)
    keys = np.asarray(item_keys)
    n = rand.shape[0]
    out = np.full((len(TRAITS), 2), np.nan)
    if n < 3:
        return out
    rng = np.random.default_rng(seed)
    tail = 100 * (1 - level) / 2
    for t in range(len(TRAITS)):
        high = np.flatnonzero((traits == t) & (keys > 0))
        low = np.flatnonzero((traits == t) & (keys < 0))
        if not len(high) or not len(low):
            continue
        w_high = _resampled_weights(rng, len(high), n_boot)  # (B, nh)
        w_low = _resampled_weights(rng, len(low), n_boot)  # (B, nl)
        pick = _resampled_weights(rng, n, n_boot)  # (B, n) the controls, resampled too
        effect = w_high @ own[high] - w_low @ own[low]  # (B,)
        scores = (rand[:, high] @ w_high.T - rand[:, low] @ w_low.T).T  # (B, n) resample x control
        var = ((pick * scores**2).sum(axis=1) - (pick * scores).sum(axis=1) ** 2) * n / (n - 1)
        for idx, w in ((high, w_high), (low, w_low)):
            var -= _duplicate_correction(rand[:, idx], w * len(idx), pick, len(idx))
        with np.errstate(invalid="ignore"):
            ratio = effect / np.sqrt(np.where(var > 0, var, np.nan))
        if np.isfinite(ratio).any():
            out[t] = np.nanpercentile(ratio, [tail, 100 - tail])
    return out

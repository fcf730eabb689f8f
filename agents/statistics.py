"""Rank statistics shared by the steering evaluation and the run analysis:
average ranks (ties share the mean of the positions they span) and Spearman's
rho as the Pearson correlation of those ranks, the same numbers as
scipy.stats.rankdata and scipy.stats.spearmanr on finite data. Plain numpy,
so the minds need no scipy; significance tests (which need a t distribution)
stay with the analysis that reports them."""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

MIN_PAIRS = 3  # below this a rank correlation says nothing (reported as NaN)


def average_ranks(values: ArrayLike, axis: int = 0) -> np.ndarray:
    """1-based ranks along `axis`; tied values get the mean of their ranks
    (scipy.stats.rankdata(method="average")). NaN is not allowed."""
    a = np.asarray(values, dtype=float)
    if a.ndim != 1:
        return np.apply_along_axis(average_ranks, axis, a)
    if np.isnan(a).any():
        raise ValueError("average_ranks: NaN has no rank; drop it first")
    order = np.argsort(a, kind="mergesort")
    ordered = a[order]
    new_group = np.r_[True, ordered[1:] != ordered[:-1]]  # (n,) first of each tie group
    starts = np.flatnonzero(new_group)
    ends = np.r_[starts[1:], len(a)]
    group_rank = (starts + 1 + ends) / 2.0  # mean of positions start+1 .. end
    ranks = np.empty(len(a))
    ranks[order] = group_rank[np.cumsum(new_group) - 1]
    return ranks


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman's rho of paired samples, ties by average ranks. Pairs where
    either side is NaN are dropped; NaN when fewer than MIN_PAIRS pairs remain
    or either side is constant (rho is undefined there)."""
    xs, ys = np.asarray(x, dtype=float).ravel(), np.asarray(y, dtype=float).ravel()
    if xs.shape != ys.shape:
        raise ValueError(f"spearman: {xs.size} x values but {ys.size} y values")
    keep = ~(np.isnan(xs) | np.isnan(ys))
    xs, ys = xs[keep], ys[keep]
    if len(xs) < MIN_PAIRS or np.ptp(xs) == 0 or np.ptp(ys) == 0:
        return float("nan")
    rx, ry = average_ranks(xs), average_ranks(ys)
    rx, ry = rx - rx.mean(), ry - ry.mean()
    rho = float((rx * ry).sum() / np.sqrt((rx * rx).sum() * (ry * ry).sum()))
    return max(-1.0, min(1.0, rho))  # rounding can step just outside [-1, 1]

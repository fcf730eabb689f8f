"""Cross-talk control calibrated on the DEV questionnaire, and the shipped
calibrations (agents/data/steering_calibration.json).

Steering trait i from -1 to +1 moves every measured trait j by S[i, j] (the
report's 5x5 matrix). To first order the change is linear in the trait
coefficients, so a recombination W_k = sum_i B[k, i] V_i of the five
directions at trait k's layers moves trait j by (B S)[k, j] / |W_k| once W_k
is renormalised to unit length. `bounded_mixing` finds, for each trait, the
combination with the largest own change per unit length (what the pass rule
compares with random directions of the same length) whose change of every
other trait j is at most rho times the smaller of the two own changes (the
spill-over measure, row and column): a five-variable quadratic programme,
solved exactly by trying every set of active bounds, inside a binary search
on the own change and a few sweeps over the traits (the column bounds depend
on the other traits' own changes). Each trait's row uses the matrix and Gram
matrix measured with all five traits at that trait's layers.

Knows matrices and the calibration file, not models; agents.steering.sweep
measures the matrices, agents.steering.extract applies a matching entry."""

from __future__ import annotations

import itertools
import json
import logging
from collections.abc import Mapping, Sequence
from functools import cache
from importlib import resources

import numpy as np

from agents.typing import TRAITS

log = logging.getLogger(__name__)

N = len(TRAITS)


def _min_length(s: np.ndarray, gram: np.ndarray, k: int, own: float, bound: np.ndarray):
    """min b'Gb s.t. (S'b)_k = own and |(S'b)_j| <= bound[j] (j != k), over
    every set of active bounds; (b, b'Gb) or (None, inf) when infeasible."""
    others = [j for j in range(N) if j != k]
    g_inv = np.linalg.inv(gram)
    best, best_val = None, np.inf
    for states in itertools.product((0, 1, -1), repeat=len(others)):
        active = [(j, st) for j, st in zip(others, states, strict=True) if st]
        e = np.array([s[:, k]] + [s[:, j] for j, _ in active])
        f = np.array([own] + [st * bound[j] for j, st in active])
        try:
            b = g_inv @ e.T @ np.linalg.solve(e @ g_inv @ e.T, f)
        except np.linalg.LinAlgError:
            continue
        if np.all(np.abs(s[:, others].T @ b) <= bound[others] + 1e-9):
            if (val := float(b @ gram @ b)) < best_val:
                best, best_val = b, val
    return best, best_val


def _gain_vector(gains: Mapping[str, float] | None) -> np.ndarray:
    return np.array([float((gains or {}).get(t, 1.0)) for t in TRAITS])


def bounded_mixing(
    matrices: Sequence[np.ndarray],
    grams: Sequence[np.ndarray],
    rho: float,
    *,
    gains: Mapping[str, float] | None = None,
    sweeps: int = 20,
) -> np.ndarray:
    """matrices[k], grams[k]: the (5, 5) cross-talk and Gram matrix at trait
    k's layers -> (5, 5) B, rows of unit length (b'G_k b = 1), such that
    |(B S)[k, j]| <= rho min((B S)[k, k], (B S)[j, j]) (linear prediction).

    `gains` (trait -> factor, 1 where absent) are the per-trait strengths the
    run applies after mixing: trait k's row of changes is then g_k (B S)[k],
    so the bounds are |g_k (B S)[k, j]| <= rho min(g_k (B S)[k, k], g_j (B S)[j, j]).
    Without them a trait turned down (C at 0.6) keeps the others' bound on
    moving it at its full-strength size, and their spill-over onto it grows
    by 1/g (session 13, round 2)."""
    s = [np.asarray(m, dtype=float) for m in matrices]
    g = [np.asarray(m, dtype=float) for m in grams]
    gain = _gain_vector(gains)
    if np.any(gain <= 0):
        raise ValueError(f"gains must be positive, got {dict(gains or {})}")
    mix = np.eye(N)
    own = np.array([s[k][k, k] for k in range(N)])  # plain directions to start
    top = 4 * max(abs(float(x)) for m in s for x in m.ravel())
    for _ in range(sweeps):
        for k in range(N):
            lo, hi = 0.0, top
            for _ in range(40):  # the largest own change a unit-length W_k can have
                t = (lo + hi) / 2
                bound = rho * np.minimum(t, gain * own / gain[k])
                b, val = _min_length(s[k], g[k], k, t, bound)
                if b is not None and val <= 1.0:
                    lo, mix[k] = t, b / np.sqrt(val)
                else:
                    hi = t
            own[k] = lo
    return mix


def predicted(
    matrices: Sequence[np.ndarray],
    mixing: np.ndarray,
    gains: Mapping[str, float] | None = None,
) -> np.ndarray:
    """(5, 5) predicted cross-talk of the mixed, unit-length directions, each
    trait's row times its gain."""
    rows = [mixing[k] @ np.asarray(matrices[k], dtype=float) for k in range(N)]
    return _gain_vector(gains)[:, None] * np.array(rows)


@cache
def _calibrations() -> tuple[dict, ...]:
    raw = resources.files("agents").joinpath("data", "steering_calibration.json").read_text()
    return tuple(json.loads(raw)["calibrations"])


def find_mixing(
    *,
    model_identity: str,
    data_hash: str,
    method: str,
    orthogonalize: bool,
    layers_of: Mapping[str, Sequence[int]],
    gains: Mapping[str, float] | None = None,
) -> np.ndarray | None:
    """The shipped mixing for vectors built exactly this way, or None. An entry
    fitted for per-trait gains (its "gains" key) serves only runs with those
    gains; one without the key was fitted on the plain directions and serves
    any gains, as before gains entered the fit."""
    want = {t: sorted(layers_of[t]) for t in TRAITS}
    want_gains = _gain_vector(gains)
    for c in _calibrations():
        if (
            c["model_identity"] == model_identity
            and c["data_hash"] == data_hash
            and c["method"] == method
            and bool(c["orthogonalize"]) == bool(orthogonalize)
            and {t: sorted(c["layers_of"][t]) for t in TRAITS} == want
            and ("gains" not in c or np.allclose(_gain_vector(c["gains"]), want_gains))
        ):
            return np.asarray(c["mixing"], dtype=float)
    log.info(
        "no shipped cross-talk calibration for model %s, pairs %s, %s, layers %s: "
        "the directions are used as built",
        model_identity, data_hash, method, want,
    )  # fmt: skip
    return None

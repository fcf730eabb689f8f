"""The one Spearman (agents.statistics) against scipy on data with ties, its
rules for undefined cases, and the text check's p-values against scipy's."""

from __future__ import annotations

import numpy as np
import pytest

from agents.statistics import average_ranks, spearman

stats = pytest.importorskip("scipy.stats")


def _samples() -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(7)
    out = [
        (np.array([1, 2, 2, 3, 3, 3, 4]), np.array([5, 5, 6, 7, 7, 8, 8])),  # ties on both sides
        (np.array([0.5, 0.5, 0.5, 1.0]), np.array([4.0, 3.0, 2.0, 1.0])),  # a big tie group
        (np.array([-1.0, -0.5, 0.0, 0.5, 1.0]), np.array([0.1, 0.1, 0.3, 0.2, 0.3])),
        (np.arange(10.0), np.arange(10.0)[::-1]),  # rho = -1
    ]
    for _ in range(20):  # coarse rounding: many ties
        n = int(rng.integers(3, 40))
        x = rng.integers(0, 4, size=n).astype(float)
        y = np.round(x + rng.normal(0, 1.5, size=n))
        out.append((x, y))
    return out


@pytest.mark.parametrize("x, y", _samples())
def test_spearman_equals_scipy_with_ties(x: np.ndarray, y: np.ndarray) -> None:
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        pytest.skip("constant sample: undefined for both")
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert average_ranks(x) == pytest.approx(stats.rankdata(x))


def test_average_ranks_of_columns_equal_scipy() -> None:
    a = np.array([[1, 9], [1, 8], [3, 8], [2, 8]], dtype=float)
    assert average_ranks(a, axis=0) == pytest.approx(stats.rankdata(a, axis=0))
    assert average_ranks(a, axis=0)[:, 0].tolist() == [1.5, 1.5, 4.0, 3.0]


@pytest.mark.parametrize(
    "x, y",
    [
        ([1, 2], [1, 2]),  # fewer than 3 pairs
        ([1, 1, 1, 1], [1, 2, 3, 4]),  # x constant
        ([1, 2, 3, 4], [0, 0, 0, 0]),  # y constant
        ([1, np.nan, 3, np.nan], [1, 2, np.nan, 4]),  # one complete pair left
    ],
    ids=["n<3", "x-constant", "y-constant", "nan-pairs"],
)
def test_spearman_is_nan_where_undefined(x, y) -> None:
    assert np.isnan(spearman(x, y))


def test_spearman_drops_nan_pairs() -> None:
    x = [1.0, 2.0, np.nan, 3.0, 4.0, 5.0]
    y = [2.0, 1.0, 7.0, 4.0, np.nan, 5.0]
    assert spearman(x, y) == pytest.approx(stats.spearmanr([1, 2, 3, 5], [2, 1, 4, 5]).statistic)


def test_spearman_rejects_unpaired_input() -> None:
    with pytest.raises(ValueError, match="x values"):
        spearman([1, 2, 3], [1, 2])


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("x, y", _samples()[:8])
def test_text_check_p_values_equal_scipy(x, y, alternative: str) -> None:
    from orchestrator.analysis.text_check import _spearman

    if np.ptp(x) == 0 or np.ptp(y) == 0:
        pytest.skip("constant sample")
    rho, p = _spearman(x, y, alternative)
    ref = stats.spearmanr(x, y, alternative=alternative)
    assert rho == pytest.approx(ref.statistic, abs=1e-12)
    assert p == pytest.approx(ref.pvalue, abs=1e-12)

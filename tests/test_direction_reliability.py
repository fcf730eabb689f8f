"""The split-half cosine of a trait's pairs (agents.steering.reliability)."""

from __future__ import annotations

import math

import torch

from agents.steering.data import ContrastivePair
from agents.steering.reliability import content_means, split_half_cosine, trait_reliability

H = 256


def _contents(k: int, shared: float, seed: int = 0) -> torch.Tensor:
    """(k, 1, H): each content's readout = shared * a common unit vector + its own noise."""
    gen = torch.Generator().manual_seed(seed)
    common = torch.nn.functional.normalize(torch.randn(H, generator=gen), dim=0)
    own = torch.nn.functional.normalize(torch.randn(k, H, generator=gen), dim=-1)
    return (shared * common + own)[:, None, :]


def test_a_shared_direction_is_reliable_and_noise_is_not() -> None:
    strong = float(split_half_cosine(_contents(16, 3.0))[0])
    weak = float(split_half_cosine(_contents(16, 0.3))[0])
    noise = float(split_half_cosine(_contents(16, 0.0))[0])
    assert strong > 0.95
    assert abs(noise) < 0.15
    assert noise < weak < strong


def test_more_contents_make_the_same_weak_direction_more_reliable() -> None:
    few = float(split_half_cosine(_contents(8, 0.4))[0])
    many = float(split_half_cosine(_contents(128, 0.4))[0])
    assert many > few + 0.3


def test_turns_of_one_content_are_averaged_before_the_split() -> None:
    """Two contents x 3 turns: the split is between contents, not between turns,
    so two opposite contents give -1 however alike their turns are."""
    pairs = [
        ContrastivePair(trait="E", high=h, low=lo, user=u, continuation="")
        for h, lo in (("loud", "quiet"), ("bold", "shy"))
        for u in ("a", "b", "c")
    ]
    v = torch.nn.functional.normalize(torch.randn(H), dim=0)
    diffs = torch.stack([v] * 3 + [-v] * 3)[:, None, :]  # (6, 1, H)
    assert content_means(diffs, pairs).shape == (2, 1, H)
    rel = trait_reliability(diffs, [7], pairs)
    assert set(rel) == {"E"} and math.isclose(rel["E"][7], -1.0, abs_tol=1e-3)


def test_one_content_has_no_split_half() -> None:
    pairs = [ContrastivePair(trait="N", high="x", low="y", user=u, continuation="") for u in "ab"]
    rel = trait_reliability(torch.randn(2, 2, H), [3, 4], pairs)
    assert rel == {"N": {3: None, 4: None}}

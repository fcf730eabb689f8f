"""How well a trait's pairs agree on one direction: the split-half cosine.

A trait's mean readout (mean_diff, gradient) averages its pairs. Pairs that
repeat one content (a persona, a statement) under several user turns are
grouped first: the turns vary the context, the contents are what a pair set
samples. The contents are then split into two random halves, and the cosine
between the two halves' mean readouts is averaged over many splits. Near 1:
any half of the contents gives the same direction, so more contents would
change little. Near 0: the direction is mostly what single contents carry,
and it will carry little to new statements of the trait (on SmolLM2 the
likelihood gradients of single statements are nearly orthogonal: 16
statements give 0.1-0.2, 8 personas about 0.5; docs/steering.md, session 16).

Knows nothing about models; it works on the per-pair readouts a sweep holds."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from agents.steering.data import ContrastivePair
from agents.typing import TRAITS

N_SPLITS = 200


def content_means(diffs: torch.Tensor, pairs: Sequence[ContrastivePair]) -> torch.Tensor:
    """(P, L, H) readouts -> (K, L, H): the mean over each content's pairs (pairs
    with the same high and low side), in first-seen order."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, p in enumerate(pairs):
        groups.setdefault((p.high, p.low), []).append(i)
    return torch.stack([diffs[ix].mean(0) for ix in groups.values()])


def split_half_cosine(
    per_content: torch.Tensor, *, splits: int = N_SPLITS, seed: int = 0
) -> torch.Tensor:
    """(K, L, H) per-content readouts -> (L,) mean cosine between the mean
    readouts of two random halves of the contents (an odd one out is left
    out of each split); NaN with fewer than two contents."""
    k, n_layers = per_content.shape[0], per_content.shape[1]
    if k < 2:
        return torch.full((n_layers,), float("nan"))
    gen = torch.Generator().manual_seed(seed)
    half = k // 2
    total = torch.zeros(n_layers, dtype=torch.float64)
    for _ in range(splits):
        order = torch.randperm(k, generator=gen)
        a = per_content[order[:half]].mean(0)  # (L, H)
        b = per_content[order[half : 2 * half]].mean(0)
        total += torch.nn.functional.cosine_similarity(a, b, dim=-1).double()
    return (total / splits).float()


def trait_reliability(
    diffs: torch.Tensor,
    layers: Sequence[int],
    pairs: Sequence[ContrastivePair],
    *,
    splits: int = N_SPLITS,
    seed: int = 0,
) -> dict[str, dict[int, float | None]]:
    """Each trait's split-half cosine at each layer (`layers` names diffs' layer
    axis), rounded to 3 places; None where the trait has one content."""
    out: dict[str, dict[int, float | None]] = {}
    for t in TRAITS:
        idx = [i for i, p in enumerate(pairs) if p.trait == t]
        if not idx:
            continue
        per = content_means(diffs[idx], [pairs[i] for i in idx])
        cos = split_half_cosine(per, splits=splits, seed=seed)
        out[t] = {
            layer: (None if torch.isnan(c) else round(float(c), 3))
            for layer, c in zip(layers, cos, strict=True)
        }
    return out

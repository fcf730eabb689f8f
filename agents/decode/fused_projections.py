"""One matrix product where a Llama layer has several over the same input:
q, k and v (one [q; k; v] weight), gate and up (one [gate; up] weight).

A decode step is a few hundred small products; the k and v ones are the
smallest and run far from the memory bandwidth (on the H200, 1B shape,
B=256: about 6 us each for 2 MB of weights, where 0.5 us would stream them).
One product over the stacked rows reads the same bytes in fewer, fuller
launches.

No weight is held twice: the stacked weight is built once per layer and the
model's own parameters become views of its rows (same values, same shapes),
so the reference loop, the steering hooks and every other reader of the
model see no change, and the extra memory is one layer's worth while
building. Where a parameter cannot be re-homed (a tensor-parallel weight
that is not a plain local tensor, say), the layer keeps its separate products.

Knows nothing about caches, sampling or the decode loop."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agents.decode.tensor_parallel import local

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StackedLinear:
    """x @ [W_1; W_2; ...]^T (+ the stacked biases), split back per part."""

    weight: torch.Tensor  # (sum of rows, in)
    bias: torch.Tensor | None
    rows: tuple[int, ...]  # each part's output width

    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Each part's output, (B, rows[i]): column views of one product."""
        return F.linear(x, self.weight, self.bias).split(self.rows, dim=1)


def _storage_of(param: torch.Tensor) -> torch.Tensor:
    """The plain tensor whose storage holds a parameter's local values."""
    inner = getattr(param, "_local_tensor", None)  # a DTensor's shard
    return inner if isinstance(inner, torch.Tensor) else param


def _rehome(params: Sequence[torch.Tensor]) -> torch.Tensor | None:
    """The parameters' local values stacked by rows, each parameter now a view
    of its rows; None (nothing changed) when any of them cannot be."""
    parts = [local(p) for p in params]
    if any(p is None for p in parts):
        return None
    first = parts[0]
    if any(p.dtype != first.dtype or p.device != first.device for p in parts):
        return None
    if any(p.shape[1:] != first.shape[1:] for p in parts):
        return None
    stacked = torch.cat(parts, dim=0)
    offset = 0
    done: list[tuple[torch.Tensor, torch.Tensor]] = []
    for param, part in zip(params, parts, strict=True):
        target = _storage_of(param)
        view = stacked[offset : offset + part.shape[0]]
        offset += part.shape[0]
        old = target.data
        with torch.no_grad():
            target.data = view
        done.append((target, old))
        if local(param).data_ptr() != view.data_ptr():  # the parameter did not follow
            for t, was in done:
                t.data = was
            return None
    return stacked


def stack(linears: Sequence[nn.Module]) -> StackedLinear | None:
    """One StackedLinear for Linear layers over the same input (their own
    weights re-homed into it), or None when they cannot share one."""
    biases = [getattr(lin, "bias", None) for lin in linears]
    if any(b is None for b in biases) and any(b is not None for b in biases):
        return None  # mixed: keep them apart rather than invent zero biases
    weight = _rehome([lin.weight for lin in linears])
    if weight is None:
        return None
    bias = None
    if biases[0] is not None:
        bias = _rehome(biases)
        if bias is None:
            return None
    return StackedLinear(weight, bias, tuple(int(local(lin.weight).shape[0]) for lin in linears))

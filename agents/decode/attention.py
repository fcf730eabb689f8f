"""Decode attention over a static, grouped K/V cache: one query token per row
attends to the row's cache slots start[b]..slot (left padding sits before
start[b]; slot is the one just written). The query heads that share a K/V head
are grouped onto it, so K and V are read in place and never repeated per query
head (transformers' sdpa path copies them 4x per layer per step for Llama 3).

Two implementations of one function: the Triton kernel (agents.decode.kernels,
CUDA; it reads start and slot on the device and loops only over valid slots),
and this module's PyTorch version (CPU, tests, CUDA without Triton), which
masks the whole capacity instead. Both are fixed-shape and sync-free, so both
can sit inside a captured CUDA graph. Knows nothing about models or sampling."""

from __future__ import annotations

import torch


def grouped_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    start: torch.Tensor,
    slot: torch.Tensor,
    scale: float,
) -> torch.Tensor:
    """q (B, HQ*D), caches (B, HKV, L, D), start (B,), slot () -> (B, HQ*D)."""
    batch, hkv, length, d = k_cache.shape
    group = q.shape[1] // (hkv * d)
    qg = q.view(batch, hkv, group, d)  # query heads h = kv head * group + g
    scores = torch.matmul(qg, k_cache.transpose(-1, -2)).float() * scale  # (B, HKV, G, L)
    j = torch.arange(length, device=q.device)
    valid = (j[None, :] >= start[:, None]) & (j[None, :] <= slot)  # (B, L)
    scores = scores.masked_fill(~valid[:, None, None, :], float("-inf"))
    probs = scores.softmax(-1).to(v_cache.dtype)
    return torch.matmul(probs, v_cache).reshape(batch, hkv * group * d)  # (B, HQ*D)

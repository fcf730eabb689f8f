"""The fast path's sampler: greedy at temperature 0, else Gumbel-max over a
top-k shortlist with top-p applied inside it, float32 noise hashed from (row
seed, step, token id). A row's token depends only on its own seed, the step
and its logits (never on its batch mates or a global RNG), as with the
reference sampler (agents.hf_backend.sample_next); the two differ in that
top-p here is taken over the SHORTLIST most likely tokens, renormalised.

Every operation has a fixed shape and no host sync, so the sampler runs
inside a captured CUDA graph; `step` may be a device scalar that the graph
advances. An optional per-row bitmask (llguidance's layout: int32 words, bit j
of word w allows token 32*w + j) removes disallowed tokens first.

Knows nothing about models, caches or prompts."""

from __future__ import annotations

import torch

SHORTLIST = 64  # tokens considered per row; top-p is applied within them
BLOCK = 128  # vocabulary block of the two-stage top-k (top_k)
# Below this many rows one torch.topk beats the two PyTorch stages: eager on
# the H200 over 128k tokens, 0.085 vs 0.16 ms at B=32, 0.17 vs 0.15-0.20 at
# B=128, 0.32 vs 0.22 at B=256 (benchmarks/results/topk_blocks_h200.json).
# The fused stages (Triton) win at every size: 0.022 vs 0.039 ms at B=1, 0.027
# vs 0.151 at B=128 (benchmarks/results/pdl_topk_rows_session7_h200.json).
BLOCK_ROWS = 192

_M32 = 0xFFFFFFFF


def _pcg(x: torch.Tensor) -> torch.Tensor:
    """PCG hash of 32-bit values held in int64 (no overflow: products < 2**62)."""
    state = (x * 747796405 + 2891336453) & _M32
    word = (((state >> ((state >> 28) + 4)) ^ state) * 277803737) & _M32
    return ((word >> 22) ^ word) & _M32


def token_bits(seeds: torch.Tensor, step: torch.Tensor | int, tokens: torch.Tensor) -> torch.Tensor:
    """(B, K) uniform 32-bit hashes (in int64) of (seeds[b], step, tokens[b, k]);
    `tokens` may be (1, K), shared by every row. The random bits of both
    samplers: this one and the reference loop's (agents.hf_backend)."""
    lo, hi = seeds & _M32, (seeds >> 32) & _M32  # (B,)
    key = _pcg(_pcg(_pcg(lo) ^ hi) ^ step)  # (B,)
    return _pcg(key[:, None] ^ tokens)  # (B, K)


def gumbel32(seeds: torch.Tensor, step: torch.Tensor | int, tokens: torch.Tensor) -> torch.Tensor:
    """(B, K) float32 Gumbel noise for token ids `tokens` (B, K): a pure function
    of (seeds[b], step, token id). The uniform draw keeps 24 bits, all of which
    float32 holds exactly, so u is never 0 or 1."""
    bits = token_bits(seeds, step, tokens)  # (B, K)
    u = ((bits >> 8).float() + 0.5) * (1.0 / 2**24)  # (B, K) in (0, 1)
    return -torch.log(-torch.log(u))


def unpack_bitmask(bitmask: torch.Tensor, vocab: int) -> torch.Tensor:
    """(B, W) int32 words -> (B, vocab) bool, True where the token is allowed.
    (Also the reference loop's mask on CPU: agents.constraint.apply_bitmask.)"""
    shifts = torch.arange(32, device=bitmask.device, dtype=bitmask.dtype)  # (32,)
    bits = (bitmask.unsqueeze(-1) >> shifts) & 1  # (B, W, 32); an arithmetic shift keeps bit 0
    return bits.view(bitmask.shape[0], -1)[:, :vocab].bool()  # token 32*w + j = bit j of word w


def top_k(
    logits: torch.Tensor, k: int, block: int = BLOCK, *, fused: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """(values, ids) of the k largest logits per row, values descending: the
    values equal torch.topk's; ids can differ only among tied values.

    Two cheap stages instead of one radix select over the whole vocabulary:
    the max of each block of `block` tokens, then the k blocks with the largest
    maxima, whose k*block tokens hold every top-k token (a token outside them
    is <= its block's max <= the k-th selected block max, and those k maxima
    are k tokens at least that large), then a topk over those candidates.
    Used from BLOCK_ROWS rows on, where it is faster than one topk, and
    always when `fused`. `fused`:
    both stages as Triton kernels (agents.decode.sampler_kernels.top_k_blocks; CUDA,
    or the Triton interpreter), 0.053 against 0.113 ms for the block maxima
    kernel and two torch.topk at B=256 over 128k tokens."""
    rows, vocab = logits.shape
    if vocab < 4 * k * block:  # too few blocks to pay off
        return logits.topk(k, dim=-1)
    if fused:
        from agents.decode.sampler_kernels import top_k_blocks

        return top_k_blocks(logits, k, block)
    if vocab % block:  # whole blocks; -inf never outranks a real logit
        logits = torch.nn.functional.pad(logits, (0, block - vocab % block), value=float("-inf"))
    blocks = logits.view(rows, -1, block)  # (B, NB, block)
    maxima = blocks.amax(-1)
    best = maxima.topk(k, dim=-1).indices  # (B, k) blocks holding the top k
    cand = blocks.gather(1, best.unsqueeze(-1).expand(rows, k, block)).view(rows, k * block)
    vals, at = cand.topk(k, dim=-1)  # (B, k) positions among the candidates
    return vals, best.gather(1, at // block) * block + at % block


def shortlist_sample(
    logits: torch.Tensor,
    seeds: torch.Tensor,
    step: torch.Tensor | int,
    *,
    temperature: float,
    top_p: float,
    allowed: torch.Tensor | None = None,
    shortlist: int = SHORTLIST,
    fused: bool = False,
) -> torch.Tensor:
    """(B, V) logits -> (B,) token ids. `allowed` (B, V) bool masks tokens out.
    `fused`: the block maxima and the tail after the shortlist as Triton
    kernels (agents.decode.sampler_kernels; CUDA or the interpreter): the same rule
    and hash, but the kernel's float32 log and top-p summation order, so a
    draw can differ from the unfused one where two noisy scores all but tie."""
    if allowed is not None:
        logits = logits.masked_fill(~allowed, float("-inf"))
    if temperature <= 0:
        return logits.argmax(-1)
    k = min(shortlist, logits.shape[-1])
    if fused or logits.shape[0] >= BLOCK_ROWS:
        vals, ids = top_k(logits, k, fused=fused)  # (B, K), descending
    else:
        vals, ids = logits.topk(k, dim=-1)
    if fused:
        from agents.decode.sampler_kernels import pick_from_shortlist

        if not isinstance(step, torch.Tensor):
            step = torch.tensor(step, device=logits.device)
        return pick_from_shortlist(vals, ids, seeds, step, temperature, top_p)
    scores = vals.float() / temperature  # (B, K)
    if top_p < 1.0:
        probs = scores.softmax(-1)
        keep = probs.cumsum(-1) - probs < top_p  # the mass before it is still short of top_p
        scores = scores.masked_fill(~keep, float("-inf"))
    choice = (scores + gumbel32(seeds, step, ids)).argmax(-1, keepdim=True)  # (B, 1)
    return ids.gather(-1, choice).squeeze(-1)

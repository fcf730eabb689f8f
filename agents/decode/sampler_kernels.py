"""Triton kernels after the model's logits: the sampler's and the decode
loop's, each replacing several small PyTorch kernels in the captured step:

- `mask_logits_`: a grammar bitmask applied to the logits in place;
- `block_max`: the maximum of every vocabulary block of each row (the first
  stage of the sampler's top-k), at the copy rate where a PyTorch amax over
  a (B, V/128, 128) view reads at a fifth of it;
- `top_k_blocks`: the sampler's whole two-stage top-k (block maxima, best
  blocks, best tokens), each selection a binary search for the k-th key in
  one program per row;
- `pick_from_shortlist`: the sampler's tail (temperature, top-p within the
  shortlist, the hashed Gumbel noise, the argmax) as one program per row
  instead of about forty small kernels;
- `record_tokens`: the decode loop's per-step bookkeeping after sampling
  (finished rows, budgets, eos, the host's status record, the step counter)
  in one program.

Every wrapper takes and returns tensors; the sampling rule and the loop's
state live in agents.decode.sampling and agents.decode.decoder. Importing
this module needs triton (CUDA, or the CPU interpreter with
TRITON_INTERPRET=1 in tests)."""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from agents.decode import kernels


@triton.jit
def _mask_logits_kernel(logits_ptr, mask_ptr, V, W, BLOCK: tl.constexpr):
    row = tl.program_id(0)
    tok = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = tok < V
    words = tl.load(mask_ptr + row * W + (tok >> 5), mask=inside, other=-1)
    allowed = ((words >> (tok & 31)) & 1) != 0  # an arithmetic shift keeps bit 0 right
    neg = tl.full((BLOCK,), float("-inf"), tl.float32).to(logits_ptr.dtype.element_ty)
    tl.store(logits_ptr + row * V + tok, neg, mask=inside & ~allowed)


def mask_logits_(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
    """(B, V) contiguous logits, (B, ceil(V/32)) int32 bitmask (bit j of word w
    allows token 32w + j): disallowed logits become -inf, in place; one kernel,
    where unpacking the mask to (B, V) and masked_fill take several."""
    batch, vocab = logits.shape
    block = 4096
    _mask_logits_kernel[(batch, triton.cdiv(vocab, block))](
        logits, bitmask, vocab, bitmask.shape[1], BLOCK=block, num_warps=8
    )


@triton.jit
def _block_max_kernel(
    x_ptr, out_ptr, V, NB, s_row, BLOCK: tl.constexpr, PER: tl.constexpr, GDC: tl.constexpr
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()  # the next kernel may queue now
    row = tl.program_id(0)
    blk = tl.program_id(1) * PER + tl.arange(0, PER)  # (PER,) block numbers
    tok = blk[:, None] * BLOCK + tl.arange(0, BLOCK)[None, :]  # (PER, BLOCK)
    x = tl.load(x_ptr + row.to(tl.int64) * s_row + tok, mask=tok < V, other=float("-inf"))
    tl.store(out_ptr + row * NB + blk, tl.max(x, 1), mask=blk < NB)


def block_max(logits: torch.Tensor, block: int) -> torch.Tensor:
    """(B, V) logits (unit column stride) -> (B, ceil(V / block)) maxima of each
    block of `block` tokens, the last block padded with -inf (as
    torch.nn.functional.pad + amax). `block` is a power of two."""
    batch, vocab = logits.shape
    assert logits.stride(1) == 1 and block & (block - 1) == 0
    blocks = triton.cdiv(vocab, block)
    out = torch.empty((batch, blocks), dtype=logits.dtype, device=logits.device)
    per = max(1, 4096 // block)  # 4,096 tokens per program
    _block_max_kernel[(batch, triton.cdiv(blocks, per))](
        logits,
        out,
        vocab,
        blocks,
        logits.stride(0),
        BLOCK=block,
        PER=per,
        num_warps=4,
        **kernels.launch_options(),
    )
    return out


# top_k_blocks packs (value, index) into one int64 sort key: value key * 8192 +
# (8191 - index), so indices stay below 8192 and among equal values the lower
# index ranks first


@triton.jit
def _order_key32(x):
    """float32 -> int32 whose signed order is the float order (no NaNs); no
    value maps to -2**31, which therefore ranks below every value."""
    b = x.to(tl.int32, bitcast=True)
    return b ^ ((b >> 31) & 0x7FFFFFFF)


@triton.jit
def _select_top(
    key, scratch_ptr, K: tl.constexpr, SEARCH: tl.constexpr, SHIFT: tl.constexpr, floor
):
    """The K largest packed keys (key * 8192 + 8191 - i over the positions i of
    `key`, an int32 tensor of a power-of-two size), descending: the same K and
    order as tl.topk of the packed keys.

    SEARCH: instead of a bitonic top-k over all N keys (log2(N)**2 / 2
    compare-and-swap stages over the whole tile), a binary search for the
    K-th largest key (32 counting passes of compares and a sum), the ties at
    it taken lowest position first, the K winners compacted through
    `scratch_ptr` (K int64 words, this program's own) and sorted there.
    Both give the same result. SHIFT: 16 where every key's low 16 bits carry
    no order (keys of bf16 values), else 0. `floor`: a key >> SHIFT that at
    least K keys reach (the search starts there and stops once the range is
    one key: a few passes where the top keys are close together), or None
    for the smallest key."""
    i = tl.arange(0, key.shape[0])
    if SEARCH:
        # the search runs on key >> SHIFT: for bf16 logits the low 16 bits of the
        # float32 are zero (the key's 0 or 0xFFFF), so 16 passes suffice there
        # invariant: at least K keys >= lo, fewer than K keys >= hi + 1
        short = key >> SHIFT
        if floor is None:
            lo = tl.min(short, 0).to(tl.int64)
        else:
            lo = floor.to(tl.int64)
        hi = tl.max(short, 0).to(tl.int64)
        while lo < hi:  # the range halves each pass: at most 32 - SHIFT of them
            mid = lo + (hi - lo + 1) // 2
            enough = tl.sum((short >= mid).to(tl.int32), 0) >= K
            lo = tl.where(enough, mid, lo)
            hi = tl.where(enough, hi, mid - 1)
        above = short > lo
        tie = short == lo
        room = K - tl.sum(above.to(tl.int32), 0)  # ties to take, lowest position first
        take = above | (tie & (tl.cumsum(tie.to(tl.int32), 0) <= room))
        at = tl.cumsum(take.to(tl.int32), 0) - 1
        packed = key.to(tl.int64) * 8192 + (8191 - i)
        tl.store(scratch_ptr + at, packed, mask=take)
        tl.debug_barrier()  # the other threads' winners are in memory
        won = tl.load(scratch_ptr + tl.arange(0, K))
        tl.debug_barrier()  # every thread has read before the caller reuses scratch
        return tl.sort(won, descending=True)
    else:
        return tl.topk(key.to(tl.int64) * 8192 + (8191 - i), K)


@triton.jit
def _best_blocks_kernel(
    max_ptr,
    out_ptr,
    scratch_ptr,
    NB,
    NBP: tl.constexpr,
    K: tl.constexpr,
    SEARCH: tl.constexpr,
    SHIFT: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()  # the next kernel may queue now
    row = tl.program_id(0)
    i = tl.arange(0, NBP)
    x = tl.load(max_ptr + row * NB + i, mask=i < NB, other=float("-inf")).to(tl.float32)
    key = tl.where(i < NB, _order_key32(x), -(2**31))  # padding: below every block
    top = _select_top(key, scratch_ptr + row * K, K, SEARCH, SHIFT, None)
    tl.store(out_ptr + row * 2 * K + tl.arange(0, K), (8191 - (top & 8191)).to(tl.int32))


@triton.jit
def _top_tokens_kernel(
    x_ptr,
    best_ptr,
    vals_ptr,
    ids_ptr,
    V,
    s_row,
    K: tl.constexpr,
    BLOCK: tl.constexpr,
    SEARCH: tl.constexpr,
    SHIFT: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()  # the next kernel may queue now
    row = tl.program_id(0)
    base = x_ptr + row.to(tl.int64) * s_row
    c = tl.arange(0, K * BLOCK)  # candidate c: token c % BLOCK of the (c // BLOCK)-th best block
    best = best_ptr + row * 2 * K
    tok = tl.load(best + c // BLOCK).to(tl.int64) * BLOCK + c % BLOCK
    x = tl.load(base + tok, mask=tok < V, other=float("-inf"))
    key = _order_key32(x.to(tl.float32))
    # each of the K blocks holds its maximum: at least K candidates reach the
    # smallest of those maxima, so the K-th largest key is at or above it
    floor = tl.min(tl.max(tl.reshape(key >> SHIFT, (K, BLOCK)), 1), 0)
    top = _select_top(key, ids_ptr + row * K, K, SEARCH, SHIFT, floor)
    pos = 8191 - (top & 8191)
    t = tl.load(best + pos // BLOCK).to(tl.int64) * BLOCK + pos % BLOCK
    k = tl.arange(0, K)
    tl.store(ids_ptr + row * K + k, t)
    tl.store(vals_ptr + row * K + k, tl.load(base + t, mask=t < V, other=float("-inf")))


# _select_top's method: the search (False: the bitonic tl.topk, the tests'
# oracle; 0.094 against 0.053 ms for the whole top-64 at B=256 over 128k bf16
# logits on an H200, benchmarks/results/topk_search_session7_h200.json)
SEARCH = True


def top_k_blocks(logits: torch.Tensor, k: int, block: int) -> tuple[torch.Tensor, torch.Tensor]:
    """agents.decode.sampling.top_k's two stages as three kernels: the block
    maxima (block_max), the k blocks with the largest maxima, the k largest of
    their k * block tokens, each selection (_select_top) over packed (value,
    index) keys in one program per row instead of two torch.topk (0.053
    against 0.113 ms at B=256 over 128k tokens on an H200). (B, V) logits with
    unit column stride -> (values (B, k) descending, token ids (B, k) int64);
    among equal values the lower block, then the lower token, ranks first."""
    batch, vocab = logits.shape
    blocks = triton.cdiv(vocab, block)
    assert k & (k - 1) == 0 and k * block <= 8192 and blocks <= 8192 and k <= blocks
    maxima = block_max(logits, block)  # (B, NB)
    shift = 16 if logits.dtype == torch.bfloat16 else 0  # see _select_top
    # (B, 2k) int32: the best blocks in the first k words of a row; the row's
    # 2k words are its scratch as k int64 while they are chosen
    best = torch.empty((batch, 2 * k), dtype=torch.int32, device=logits.device)
    _best_blocks_kernel[(batch,)](
        maxima,
        best,
        best.view(torch.int64),
        blocks,
        NBP=triton.next_power_of_2(blocks),
        K=k,
        SEARCH=SEARCH,
        SHIFT=shift,
        num_warps=4,
        **kernels.launch_options(),
    )
    vals = torch.empty((batch, k), dtype=logits.dtype, device=logits.device)
    ids = torch.empty((batch, k), dtype=torch.int64, device=logits.device)
    _top_tokens_kernel[(batch,)](
        logits,
        best,
        vals,
        ids,
        vocab,
        logits.stride(0),
        K=k,
        BLOCK=block,
        SEARCH=SEARCH,
        SHIFT=shift,
        num_warps=8,
        **kernels.launch_options(),
    )
    return vals, ids


@triton.jit
def _pcg32(x):
    """The PCG hash of agents.decode.sampling._pcg on uint32 (wrapping products)."""
    state = x * 747796405 + 2891336453
    word = ((state >> ((state >> 28) + 4)) ^ state) * 277803737
    return (word >> 22) ^ word


@triton.jit
def _pick_kernel(
    vals_ptr,
    ids_ptr,
    seeds_ptr,
    step_ptr,
    out_ptr,
    K,
    s_vals,
    s_ids,
    inv_temperature,
    top_p,
    USE_TOP_P: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()  # the next kernel may queue now
    row = tl.program_id(0)
    k = tl.arange(0, BLOCK_K)
    inside = k < K
    v = tl.load(vals_ptr + row * s_vals + k, mask=inside, other=float("-inf"))
    ids = tl.load(ids_ptr + row * s_ids + k, mask=inside, other=0)
    scores = v.to(tl.float32) * inv_temperature
    if USE_TOP_P:  # the mass before a token is still short of top_p: it stays
        p = tl.exp(scores - tl.max(scores, 0))
        p = p / tl.sum(p, 0)
        keep = (tl.cumsum(p, 0) - p) < top_p
        scores = tl.where(keep & inside, scores, float("-inf"))
    seed = tl.load(seeds_ptr + row)
    lo = (seed & 0xFFFFFFFF).to(tl.uint32)
    hi = ((seed >> 32) & 0xFFFFFFFF).to(tl.uint32)
    step = tl.load(step_ptr).to(tl.uint32)
    key = _pcg32(_pcg32(_pcg32(lo) ^ hi) ^ step)
    bits = _pcg32(key ^ ids.to(tl.uint32))  # (BLOCK_K,)
    u = ((bits >> 8).to(tl.float32) + 0.5) * (1.0 / 16777216.0)
    noisy = scores - tl.log(-tl.log(u))
    choice = tl.argmax(noisy, 0)
    picked = tl.sum(tl.where(k == choice, ids, 0), 0)
    tl.store(out_ptr + row, picked)


def pick_from_shortlist(
    vals: torch.Tensor,
    ids: torch.Tensor,
    seeds: torch.Tensor,
    step: torch.Tensor,
    temperature: float,
    top_p: float,
) -> torch.Tensor:
    """(B, K) shortlist values (descending) and token ids, (B,) int64 seeds, a
    device step counter -> (B,) int64 tokens: agents.decode.sampling's tail
    (scores / temperature, top-p within the K, Gumbel noise hashed from
    (seed, step, token id), argmax) in one kernel. Same hash and rule; the
    float32 log, the temperature applied as a product with its reciprocal and
    the summation order of the top-p mass are the kernel's."""
    batch, k = vals.shape
    assert vals.stride(1) == 1 and ids.stride(1) == 1 and temperature > 0
    out = torch.empty(batch, dtype=torch.int64, device=vals.device)
    _pick_kernel[(batch,)](
        vals,
        ids,
        seeds,
        step,
        out,
        k,
        vals.stride(0),
        ids.stride(0),
        1.0 / temperature,
        top_p,
        USE_TOP_P=top_p < 1.0,
        BLOCK_K=triton.next_power_of_2(k),
        num_warps=1,
        **kernels.launch_options(),
    )
    return out


@triton.jit
def _record_kernel(
    nxt_ptr,
    done_ptr,
    produced_ptr,
    budgets_ptr,
    eos_ptr,
    step_ptr,
    finish_ptr,
    out_ptr,
    tokens_ptr,
    status_ptr,
    B,
    E,
    capacity,
    s_out,
    pad_id,
    BLOCK_B: tl.constexpr,
    BLOCK_E: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
    r = tl.arange(0, BLOCK_B)
    row = r < B
    step = tl.load(step_ptr)
    was = tl.load(done_ptr + r, mask=row, other=1) != 0
    tok = tl.where(was, pad_id, tl.load(nxt_ptr + r, mask=row, other=0))
    steps = (
        tl.zeros([BLOCK_B], dtype=tl.int64) + step
    )  # per row (a scalar mask trips the interpreter)
    tl.store(out_ptr + r.to(tl.int64) * s_out + steps, tok, mask=row & (steps < capacity))
    produced = tl.load(produced_ptr + r, mask=row, other=0) + tl.where(was, 0, 1)
    tl.store(produced_ptr + r, produced, mask=row)
    e = tl.arange(0, BLOCK_E)
    eos = tl.load(eos_ptr + e, mask=e < E, other=-1)  # -1 is no token id
    is_eos = tl.max((tok[:, None] == eos[None, :]).to(tl.int32), 1) != 0
    budget = tl.load(budgets_ptr + r, mask=row, other=0)
    newly = ~was & (is_eos | (produced >= budget))
    finish = tl.load(finish_ptr + r, mask=row, other=0)
    tl.store(finish_ptr + r, tl.where(newly, step, finish), mask=row)
    done = was | newly
    tl.store(done_ptr + r, done.to(tl.int1), mask=row)
    tl.store(tokens_ptr + r, tok, mask=row)
    tl.store(status_ptr + r, tok, mask=row)
    tl.store(status_ptr + B + r, done.to(tl.int64), mask=row)
    tl.store(status_ptr + 2 * B, tl.sum(tl.where(row & done, 1, 0).to(tl.int64), 0))
    tl.debug_barrier()  # every thread has read the step before it moves on
    tl.store(step_ptr, step + 1)


def record_tokens(
    nxt: torch.Tensor,
    done: torch.Tensor,
    produced: torch.Tensor,
    budgets: torch.Tensor,
    eos: torch.Tensor,
    step: torch.Tensor,
    finish_step: torch.Tensor,
    out: torch.Tensor,
    tokens: torch.Tensor,
    status: torch.Tensor,
    pad_id: int,
) -> None:
    """The decode loop's per-step bookkeeping in one program, in place: a row
    that was done gets pad_id instead of nxt (B,); the token goes to out[:,
    step], the next input `tokens` and status[:B]; produced counts it; a row
    that meets an eos id (E,) or its budget becomes done, with finish_step =
    step; status[B:2B] the done flags, status[2B] how many; step += 1. (The
    decoder's PyTorch form of the same takes about twenty small kernels.)"""
    batch = nxt.shape[0]
    assert out.stride(1) == 1 and status.shape[0] == 2 * batch + 1
    _record_kernel[(1,)](
        nxt,
        done,
        produced,
        budgets,
        eos,
        step,
        finish_step,
        out,
        tokens,
        status,
        batch,
        eos.shape[0],
        out.shape[1],
        out.stride(0),
        pad_id,
        BLOCK_B=triton.next_power_of_2(batch),
        BLOCK_E=triton.next_power_of_2(max(eos.shape[0], 1)),
        num_warps=4,
        **kernels.launch_options(),
    )

"""Triton kernels of the one-token decode step, each replacing several small
PyTorch kernels (the step is a few hundred launches long, so launches count);
the first three also serve the step's own prefill (LlamaStep.prefill), one
program per prompt token:

- `add_rmsnorm`: residual add (+ an optional per-row steering delta, or per
  token its prompt's) and RMSNorm;
- `rope_to_cache`: rotary embedding of q and k at each row's position, k and v
  written into the static cache at the current slot (read from a device
  scalar), or in a prefill at each token's own row and slot;
- `decode_attention`: split-K attention of one query token per row over the
  grouped K/V cache, in place (no repeat of K/V per query head), each row from
  its own first valid slot to the current one (both read on the device, so a
  captured graph serves every step), then a combine of the splits;
- `silu_mul`: the gated MLP's silu(gate) * up.

The sampler's and the decode loop's kernels are in agents.decode.sampler_kernels.

Rounding follows the PyTorch modules where it is cheap to (the residual adds
and the norm's weight product round to the model dtype as PyTorch does).
Every wrapper takes and returns tensors; nothing here knows about models,
steering or sampling. Importing this module needs triton (CUDA, or the CPU
interpreter with TRITON_INTERPRET=1 in tests)."""

from __future__ import annotations

import functools
import os

import torch
import triton
import triton.language as tl

LOG2E = 1.4426950408889634

# Programmatic dependent launch (Hopper on): every kernel of the step is
# launched to be scheduled while the kernel before it drains, and its first act
# is griddepcontrol.wait (GDC), which returns once that kernel has finished
# and its writes are visible, so the launch latency between kernels overlaps
# the previous kernel's tail. Measured on an H200 in the decode loop: 1B at 256
# rows 1.97 -> 1.93 ms a step, 8B at 32 rows 5.11 -> 4.95 ms, the same tokens
# (benchmarks/results/pdl_topk_rows_session7_h200.json). None: on where the
# GPU has it (compute capability 9 on, not the interpreter); True/False: forced.
PDL: bool | None = None


@functools.cache
def _pdl_available(device: int) -> bool:
    """Decided once per device and process: the prefill launches these kernels
    eagerly every tick, so no environment lookup per launch."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return False
    return torch.cuda.get_device_capability(device)[0] >= 9


def launch_options() -> dict[str, bool]:
    """The launch arguments every kernel here takes: GDC (wait for the kernel
    before) and, with it, triton's launch_pdl; both or neither, so no kernel
    is launched early without waiting."""
    if PDL is not None:
        on = PDL
    else:
        on = torch.cuda.is_available() and _pdl_available(torch.cuda.current_device())
    return {"GDC": True, "launch_pdl": True} if on else {"GDC": False}


@triton.jit
def _add_rmsnorm_kernel(
    x_ptr,
    res_ptr,
    delta_ptr,
    w_ptr,
    out_ptr,
    H,
    eps,
    delta_rows_ptr,
    HAS_RES: tl.constexpr,
    HAS_DELTA: tl.constexpr,
    DELTA_ROWS: tl.constexpr,
    BLOCK: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
    row = tl.program_id(0)
    at = row.to(tl.int64) * H  # a prefill's rows * H can pass 2**31
    cols = tl.arange(0, BLOCK)
    inside = cols < H
    x = tl.load(x_ptr + at + cols, mask=inside, other=0.0)
    dtype = x.dtype
    if HAS_RES:  # h = residual + x, rounded to the model dtype as a PyTorch add is
        r = tl.load(res_ptr + at + cols, mask=inside, other=0.0)
        x = (r.to(tl.float32) + x.to(tl.float32)).to(dtype)
    if HAS_DELTA:  # the steering hook's add, after the block's own
        d_row = tl.load(delta_rows_ptr + row).to(tl.int64) if DELTA_ROWS else row.to(tl.int64)
        d = tl.load(delta_ptr + d_row * H + cols, mask=inside, other=0.0).to(dtype)
        x = (x.to(tl.float32) + d.to(tl.float32)).to(dtype)
    if HAS_RES or HAS_DELTA:
        tl.store(res_ptr + at + cols, x, mask=inside)  # the residual stream, in place
    xf = x.to(tl.float32)
    var = tl.sum(xf * xf, axis=0) / H
    y = (xf * tl.rsqrt(var + eps)).to(dtype)
    w = tl.load(w_ptr + cols, mask=inside, other=0.0)
    tl.store(out_ptr + at + cols, (y.to(tl.float32) * w.to(tl.float32)).to(dtype), mask=inside)


def add_rmsnorm(
    x: torch.Tensor,
    residual: torch.Tensor | None,
    weight: torch.Tensor,
    eps: float,
    out: torch.Tensor,
    delta: torch.Tensor | None = None,
    delta_rows: torch.Tensor | None = None,
) -> None:
    """residual <- residual + x (+ delta); out <- rmsnorm(residual) * weight.
    Without a residual, out <- rmsnorm(x (+ delta)) (x is updated when delta is given).
    Row r adds delta[delta_rows[r]] when delta_rows is given (a prefill: each
    token its prompt's delta), else delta[r]."""
    batch, hidden = x.shape
    res = residual if residual is not None else x
    _add_rmsnorm_kernel[(batch,)](
        x,
        res,
        delta if delta is not None else x,
        weight,
        out,
        hidden,
        eps,
        delta_rows if delta_rows is not None else x,
        HAS_RES=residual is not None,
        HAS_DELTA=delta is not None,
        DELTA_ROWS=delta_rows is not None,
        BLOCK=triton.next_power_of_2(hidden),
        num_warps=8 if hidden >= 2048 else 4,
        **launch_options(),
    )


@triton.jit
def _rotate(x_ptr, rows, n_rows, i, partner, sign, cos, sin):
    """Rows `rows` (R, 1) of D-wide heads at x_ptr, rotated: x * cos + rotate_half(x) * sin."""
    inside = rows < n_rows
    x = tl.load(x_ptr + i, mask=inside, other=0.0)
    xr = tl.load(x_ptr + partner, mask=inside, other=0.0).to(tl.float32) * sign
    return (x.to(tl.float32) * cos + xr * sin).to(x.dtype), inside


@triton.jit
def _rope_to_cache_kernel(
    q_ptr,
    k_ptr,
    v_ptr,
    cos_ptr,
    sin_ptr,
    pos_ptr,
    slot_ptr,
    q_out_ptr,
    kc_ptr,
    vc_ptr,
    rows_ptr,
    k_out_ptr,
    s_q,
    s_kv,
    s_cb,
    s_ch,
    s_cl,
    HQ: tl.constexpr,
    HKV: tl.constexpr,
    BLOCK_HQ: tl.constexpr,
    BLOCK_HKV: tl.constexpr,
    D: tl.constexpr,
    PREFILL: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
        tl.extra.cuda.gdc_launch_dependents()  # the next kernel may queue now
    b = tl.program_id(0)  # one token: all its heads at once
    i = tl.arange(0, D)[None, :]  # (1, D)
    half: tl.constexpr = D // 2
    partner = tl.where(i < half, i + half, i - half)  # rotate_half's source index
    sign = tl.where(i < half, -1.0, 1.0)
    pos = tl.load(pos_ptr + b)
    if PREFILL:  # this token's cache row and slot (slot -1: a padding token, not kept)
        row = tl.load(rows_ptr + b)
        slot = tl.load(slot_ptr + b)
    else:  # a decode step: cache row b, the step's shared slot
        row = b
        slot = tl.load(slot_ptr)
    cos = tl.load(cos_ptr + pos * D + i).to(tl.float32)  # (1, D)
    sin = tl.load(sin_ptr + pos * D + i).to(tl.float32)
    hq = tl.arange(0, BLOCK_HQ)[:, None]  # (HQ, 1)
    q_base = q_ptr + b.to(tl.int64) * s_q + hq * D
    y, inside = _rotate(q_base, hq, HQ, i, partner, sign, cos, sin)
    tl.store(q_out_ptr + (b.to(tl.int64) * HQ + hq) * D + i, y, mask=inside)
    hk = tl.arange(0, BLOCK_HKV)[:, None]  # (HKV, 1)
    cache = row.to(tl.int64) * s_cb + hk * s_ch + slot * s_cl + i
    y, inside = _rotate(k_ptr + b.to(tl.int64) * s_kv + hk * D, hk, HKV, i, partner, sign, cos, sin)
    kept = inside & ((hk * 0 + slot) >= 0)  # (HKV, 1): the slot test as a tensor mask
    tl.store(kc_ptr + cache, y, mask=kept)
    v = tl.load(v_ptr + b.to(tl.int64) * s_kv + hk * D + i, mask=inside, other=0.0)
    tl.store(vc_ptr + cache, v, mask=kept)
    if PREFILL:  # the rotated keys of every token, for the prompt's own attention
        tl.store(k_out_ptr + (b.to(tl.int64) * HKV + hk) * D + i, y, mask=inside)


def rope_to_cache(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    pos: torch.Tensor,
    slot: torch.Tensor,
    q_out: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    rows: torch.Tensor | None = None,
    k_out: torch.Tensor | None = None,
) -> None:
    """q (B, HQ*D), k and v (B, HKV*D) (rows may be strided, as column slices of
    one fused projection are; k and v alike), cos/sin (L, D) tables, pos (B,),
    slot () -> q_out (B, HQ*D) contiguous, rotated; k rotated and v written at
    `slot` of the caches (R, HKV, L, D), which must share strides.

    Prefill (`rows` given): the B inputs are tokens; token t goes to cache row
    rows[t] at slot[t] (a (B,) tensor; -1 keeps it out of the cache), and its
    rotated k also to k_out (B, HKV*D) contiguous."""
    _, hkv, _, d = k_cache.shape
    batch = q.shape[0]
    hq = q.shape[1] // d
    assert k_cache.stride() == v_cache.stride() and k_cache.stride(-1) == 1
    assert q.stride(1) == k.stride(1) == v.stride(1) == 1 and k.stride(0) == v.stride(0)
    _rope_to_cache_kernel[(batch,)](
        q,
        k,
        v,
        cos,
        sin,
        pos,
        slot,
        q_out,
        k_cache,
        v_cache,
        rows if rows is not None else pos,
        k_out if k_out is not None else q_out,
        q.stride(0),
        k.stride(0),
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        HQ=hq,
        HKV=hkv,
        BLOCK_HQ=triton.next_power_of_2(hq),
        BLOCK_HKV=triton.next_power_of_2(hkv),
        D=d,
        PREFILL=rows is not None,
        num_warps=4,
        **launch_options(),
    )


@triton.jit
def _attn_split_kernel(
    q_ptr,
    kc_ptr,
    vc_ptr,
    start_ptr,
    slot_ptr,
    o_ptr,
    m_ptr,
    l_ptr,
    s_cb,
    s_ch,
    s_cl,
    qk_scale,
    HKV: tl.constexpr,
    G: tl.constexpr,
    BLOCK_G: tl.constexpr,
    D: tl.constexpr,
    BLOCK_N: tl.constexpr,
    SPLITS: tl.constexpr,
    IEEE: tl.constexpr,
    DIRECT: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
    bh = tl.program_id(0)
    sp = tl.program_id(1)
    b = bh // HKV
    kvh = bh % HKV
    start = tl.load(start_ptr + b).to(tl.int32)
    end = tl.load(slot_ptr).to(tl.int32) + 1
    chunk = tl.cdiv(tl.cdiv(end - start, SPLITS), BLOCK_N) * BLOCK_N
    lo = start + sp * chunk
    hi = tl.minimum(lo + chunk, end)
    g = tl.arange(0, BLOCK_G)
    d = tl.arange(0, D)
    # the G query heads that share this K/V head, padded to a tl.dot-sized tile
    q_rows = (b * HKV + kvh) * G + g
    q = tl.load(q_ptr + q_rows[:, None] * D + d[None, :], mask=(g < G)[:, None], other=0.0)
    m_i = tl.full([BLOCK_G], float("-inf"), tl.float32)
    l_i = tl.zeros([BLOCK_G], tl.float32)
    acc = tl.zeros([BLOCK_G, D], tl.float32)
    base = b.to(tl.int64) * s_cb + kvh * s_ch  # the pool can pass 2**31 elements
    for s0 in range(lo, hi, BLOCK_N):
        n = s0 + tl.arange(0, BLOCK_N)
        valid = n < hi
        offs = base + n[:, None] * s_cl + d[None, :]
        k = tl.load(kc_ptr + offs, mask=valid[:, None], other=0.0)  # (BLOCK_N, D)
        if IEEE:
            s = tl.dot(q, tl.trans(k), input_precision="ieee")
        else:
            s = tl.dot(q, tl.trans(k))
        s = tl.where(valid[None, :], s * qk_scale, float("-inf"))  # (BLOCK_G, BLOCK_N), log2
        m_new = tl.maximum(m_i, tl.max(s, 1))
        p = tl.exp2(s - m_new[:, None])
        alpha = tl.exp2(m_i - m_new)
        l_i = l_i * alpha + tl.sum(p, 1)
        v = tl.load(vc_ptr + offs, mask=valid[:, None], other=0.0)  # (BLOCK_N, D)
        if IEEE:
            pv = tl.dot(p.to(v.dtype), v, input_precision="ieee")
        else:
            pv = tl.dot(p.to(v.dtype), v)
        acc = acc * alpha[:, None] + pv
        m_i = m_new
    keep = g < G
    if DIRECT:  # one split: the output itself (o_ptr is `out`; row q_rows is b * HQ + h)
        y = acc / l_i[:, None]
        tl.store(
            o_ptr + q_rows[:, None] * D + d[None, :],
            y.to(o_ptr.dtype.element_ty),
            mask=keep[:, None],
        )
        return
    part = (bh * SPLITS + sp) * G + g  # (BLOCK_G,)
    tl.store(o_ptr + part[:, None] * D + d[None, :], acc, mask=keep[:, None])
    tl.store(m_ptr + part, m_i, mask=keep)
    tl.store(l_ptr + part, l_i, mask=keep)


@triton.jit
def _attn_combine_kernel(
    o_ptr,
    m_ptr,
    l_ptr,
    out_ptr,
    HQ: tl.constexpr,
    G: tl.constexpr,
    D: tl.constexpr,
    SPLITS: tl.constexpr,
    BLOCK_S: tl.constexpr,
    GDC: tl.constexpr,
):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
    pid = tl.program_id(0)  # b * HQ + h, and h = kv head * G + g
    b = pid // HQ
    h = pid % HQ
    s = tl.arange(0, BLOCK_S)
    d = tl.arange(0, D)
    inside = s < SPLITS
    part = ((b * (HQ // G) + h // G) * SPLITS + s) * G + h % G  # (BLOCK_S,)
    m = tl.load(m_ptr + part, mask=inside, other=float("-inf"))
    w = tl.exp2(m - tl.max(m, 0))  # empty splits (m = -inf) weigh 0
    w = tl.where(inside, w, 0.0)
    l_sum = tl.sum(tl.load(l_ptr + part, mask=inside, other=0.0) * w, 0)
    o = tl.load(o_ptr + part[:, None] * D + d[None, :], mask=inside[:, None], other=0.0)
    y = tl.sum(o * w[:, None], 0) / l_sum
    tl.store(out_ptr + pid * D + d, y.to(out_ptr.dtype.element_ty))


def attention_splits(batch: int, kv_heads: int, sm_count: int) -> int:
    """Splits of the sequence per (row, K/V head): enough programs to fill the
    chip about four times over, at most 16."""
    return max(1, min(16, -(-4 * sm_count // (batch * kv_heads))))


def decode_attention(
    q: torch.Tensor,
    k_cache: torch.Tensor,
    v_cache: torch.Tensor,
    start: torch.Tensor,
    slot: torch.Tensor,
    scale: float,
    out: torch.Tensor,
    work: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    *,
    block_n: int | None = None,
    num_warps: int = 2,
    num_stages: int = 2,
) -> None:
    """q (B, HQ*D) (one token per row) attends to cache slots start[b]..slot of
    k_cache/v_cache (B, HKV, L, D) -> out (B, HQ*D). `work` holds the split
    partials: o (B*HKV*S*G*D,), m and l (B*HKV*S*G,) float32, S = splits.

    The launch settings (tile of `block_n` cache slots, warps, pipeline
    stages) are the best of a sweep on the H200 over the 1B shape at B=256 and
    512 and the 8B shape at B=32 and 128 (benchmarks/results/
    attn_sampler_sweep_h200.json): 3.2 -> 3.4 TB/s at 1B B=256, 2.9 -> 3.2 at
    8B B=128, against 4 warps and the default stages."""
    batch, hkv, _, d = k_cache.shape
    hq = q.shape[1] // d
    group = hq // hkv
    o_part, m_part, l_part = work
    splits = m_part.numel() // (batch * hkv * group)
    direct = splits == 1  # a big batch fills the chip without splits: no combine pass
    _attn_split_kernel[(batch * hkv, splits)](
        q,
        k_cache,
        v_cache,
        start,
        slot,
        out if direct else o_part,
        m_part,
        l_part,
        k_cache.stride(0),
        k_cache.stride(1),
        k_cache.stride(2),
        scale * LOG2E,
        HKV=hkv,
        G=group,
        BLOCK_G=max(16, triton.next_power_of_2(group)),
        D=d,
        BLOCK_N=block_n or (64 if d <= 64 or direct else 32),
        SPLITS=splits,
        IEEE=q.dtype == torch.float32,
        DIRECT=direct,
        num_warps=num_warps,
        num_stages=num_stages,
        **launch_options(),
    )
    if direct:
        return
    _attn_combine_kernel[(batch * hq,)](
        o_part,
        m_part,
        l_part,
        out,
        HQ=hq,
        G=group,
        D=d,
        SPLITS=splits,
        BLOCK_S=max(2, triton.next_power_of_2(splits)),
        num_warps=1,
        **launch_options(),
    )


@triton.jit
def _silu_mul_kernel(g_ptr, u_ptr, out_ptr, N, s_in, BLOCK: tl.constexpr, GDC: tl.constexpr):
    if GDC:  # programmatic dependent launch: the kernel before has flushed
        tl.extra.cuda.gdc_wait()
    row = tl.program_id(0).to(tl.int64)  # a prefill's rows * N can pass 2**31
    i = tl.program_id(1) * BLOCK + tl.arange(0, BLOCK)
    inside = i < N
    g = tl.load(g_ptr + row * s_in + i, mask=inside, other=0.0)
    u = tl.load(u_ptr + row * s_in + i, mask=inside, other=0.0)
    gf = g.to(tl.float32)
    act = (gf / (1.0 + tl.exp(-gf))).to(g.dtype)  # rounded like F.silu's output
    y = (act.to(tl.float32) * u.to(tl.float32)).to(g.dtype)
    tl.store(out_ptr + row * N + i, y, mask=inside)


def silu_mul(gate: torch.Tensor, up: torch.Tensor, out: torch.Tensor) -> None:
    """out (B, N) contiguous <- silu(gate) * up, elementwise; gate and up (B, N)
    may be column views of one (B, 2N) product (a shared row stride)."""
    batch, n = gate.shape
    assert gate.stride() == up.stride() and gate.stride(1) == 1 and out.is_contiguous()
    block = 1024
    _silu_mul_kernel[(batch, triton.cdiv(n, block))](
        gate,
        up,
        out,
        n,
        gate.stride(0),
        BLOCK=block,
        num_warps=4,
        **launch_options(),
    )

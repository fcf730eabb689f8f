"""The static buffers of the fast decode path: one K/V pool shared by every
batch-size bucket (each bucket uses its first B rows), and each bucket's
fixed-address state (tokens, positions, slots, budgets, outputs), so a CUDA
graph captured once per bucket can be replayed on every later tick.

Buckets are powers of two up to 128 rows, then quarter steps (160, 192, 224,
256, 320, ...); a batch of n requests runs in the smallest bucket that holds
it, its extra rows finished from the start. The pool grows (and
the captured graphs are dropped) only when a tick needs more rows or a longer
sequence than any before it. Knows nothing about models or sampling."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from agents.decode.llama_step import Shape, StepBuffers

LENGTH_QUANTUM = 256  # cache lengths are rounded up to this, so growth is rare


POWER_OF_TWO_BUCKETS = 128  # up to this many rows, buckets are powers of two


def bucket_size(n: int) -> int:
    """The rows of the bucket that runs n requests: the smallest power of two
    >= n up to POWER_OF_TWO_BUCKETS, then the smallest multiple of a quarter of
    the power of two below n (129..160 -> 160, 257..320 -> 320), so at most a
    quarter of the rows are padding. Small batches are bound by reading the
    weights, where a padded row costs next to nothing and fewer buckets mean
    fewer captures; from a few hundred rows on the products are compute-bound
    and a padded row costs about what a real one does (1B shape, one H200:
    384 requests in a 512-row bucket took 3.22 ms a step against 3.42 ms for
    512 requests; benchmarks/results/decode_1b_batches_session10_h200.json)."""
    if n <= POWER_OF_TWO_BUCKETS:
        return 1 << max(0, (n - 1).bit_length())
    quarter = 1 << ((n - 1).bit_length() - 3)
    return -(-n // quarter) * quarter


def round_length(n: int) -> int:
    return -(-n // LENGTH_QUANTUM) * LENGTH_QUANTUM


@dataclass(kw_only=True)
class KVPool:
    """Per layer K and V of shape (rows, HKV, length, D), plus rotary tables."""

    rows: int
    length: int
    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    cos: torch.Tensor  # (length, D) float32
    sin: torch.Tensor

    @classmethod
    def allocate(cls, shape: Shape, rows: int, length: int, tables) -> KVPool:
        dims = (rows, shape.kv_heads, length, shape.head_dim)
        kw = dict(device=shape.device, dtype=shape.dtype)
        keys = [torch.zeros(dims, **kw) for _ in range(shape.layers)]
        values = [torch.zeros(dims, **kw) for _ in range(shape.layers)]
        cos, sin = tables(length)
        return cls(rows=rows, length=length, keys=keys, values=values, cos=cos, sin=sin)

    def bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.keys + self.values)


@dataclass(kw_only=True)
class Bucket:
    """The state of one batch size B; every tensor keeps its address for life."""

    size: int
    new_tokens: int  # capacity of `out`
    buf: StepBuffers
    seeds: torch.Tensor  # (B,) int64
    budgets: torch.Tensor  # (B,) int64
    produced: torch.Tensor  # (B,) int64
    done: torch.Tensor  # (B,) bool
    forced: torch.Tensor  # (B,) bool: finished by the host (a completed grammar)
    finish_step: torch.Tensor  # (B,) int64: the step of each row's last token
    step: torch.Tensor  # () int64: the index of the token being sampled
    out: torch.Tensor  # (B, new_tokens) int64
    logits: torch.Tensor  # (B, V): the sampler's input
    bitmask: torch.Tensor  # (B, W) int32: allowed tokens, all ones without constraints
    status: torch.Tensor  # (2B+1,) int64: tokens, done flags, rows done; read by the host
    graphs: dict[str, torch.cuda.CUDAGraph] = field(default_factory=dict)
    captured_with: tuple[int, ...] = ()  # data pointers the graphs read (steering buffers)
    capture_s: float = 0.0

    @classmethod
    def allocate(
        cls,
        shape: Shape,
        size: int,
        new_tokens: int,
        pool: KVPool,
        deltas: dict[int, torch.Tensor],
        attn_work,
    ) -> Bucket:
        dev = shape.device
        i64 = dict(device=dev, dtype=torch.long)
        words = -(-shape.vocab // 32)
        buf = StepBuffers(
            tokens=torch.zeros(size, **i64),
            pos=torch.zeros(size, **i64),
            start=torch.zeros(size, device=dev, dtype=torch.int32),
            slot=torch.zeros((), **i64),
            keys=[k[:size] for k in pool.keys],
            values=[v[:size] for v in pool.values],
            deltas={layer: d[:size] for layer, d in deltas.items()},
            attn_work=attn_work,
        )
        return cls(
            size=size,
            new_tokens=new_tokens,
            buf=buf,
            seeds=torch.zeros(size, **i64),
            budgets=torch.ones(size, **i64),
            produced=torch.zeros(size, **i64),
            done=torch.zeros(size, device=dev, dtype=torch.bool),
            forced=torch.zeros(size, device=dev, dtype=torch.bool),
            finish_step=torch.zeros(size, **i64),
            step=torch.zeros((), **i64),
            out=torch.zeros(size, new_tokens, **i64),
            logits=torch.zeros(size, shape.vocab, device=dev, dtype=shape.dtype),
            bitmask=torch.full((size, words), -1, device=dev, dtype=torch.int32),
            status=torch.zeros(2 * size + 1, **i64),
        )

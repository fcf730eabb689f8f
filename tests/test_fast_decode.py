"""The fast decode path (agents.decode) against the reference loop of
agents.hf_backend on the tiny random Llama: token for token under greedy
decoding, with left padding, with and without steering, under grammar-like
masks; buckets reused across ticks of different sizes; the grouped decode
attention (PyTorch and Triton) against sdpa; the shortlist sampler's contract.

On CPU the step runs as PyTorch operations without graphs; the Triton kernels
run where triton is importable and either CUDA is present or
TRITON_INTERPRET=1 (the CPU interpreter); CUDA graphs only on CUDA."""

from __future__ import annotations

import importlib.util
import os
from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.config import InferenceConfig, SteeringConfig  # noqa: E402
from agents.decode.attention import grouped_attention  # noqa: E402
from agents.decode.backend_path import generate_fast  # noqa: E402
from agents.decode.cache import POWER_OF_TWO_BUCKETS, bucket_size  # noqa: E402
from agents.decode.decoder import FastDecoder  # noqa: E402
from agents.decode.sampling import (  # noqa: E402
    BLOCK_ROWS,
    gumbel32,
    shortlist_sample,
    top_k,
    unpack_bitmask,
)
from agents.hf_backend import HFBackend  # noqa: E402
from agents.model_loading import LoadedModel  # noqa: E402
from agents.random_models import byte_tokenizer, tiny_llama  # noqa: E402
from agents.steering.vectors import SteeringVectors  # noqa: E402
from agents.typing import Message, Request, Traits  # noqa: E402

CUDA = torch.cuda.is_available()
DEVICE = "cuda" if CUDA else "cpu"
TRITON = importlib.util.find_spec("triton") is not None and (
    CUDA or os.environ.get("TRITON_INTERPRET") == "1"
)
needs_triton = pytest.mark.skipif(not TRITON, reason="triton on CUDA (or TRITON_INTERPRET=1)")
needs_cuda = pytest.mark.skipif(not CUDA, reason="CUDA graphs need a GPU")

# (kernels, graphs): the PyTorch step everywhere; Triton kernels and graphs where they run
VARIANTS = [
    pytest.param(False, False, id="torch"),
    pytest.param(True, False, id="triton", marks=needs_triton),
    pytest.param(True, True, id="triton-graphs", marks=[needs_triton, needs_cuda]),
]

PROMPTS = [
    "Hi.",
    "You are at the cafe with Bob and Ann. What do you do now, exactly?",
    "Tell me something.",
    "A much longer prompt that has a lot of words in it so that the padding differs a lot.",
    "Go.",
]
TRAITS = [Traits(E=1.0, N=-0.5), Traits(), Traits(A=-1.0, O=0.7), Traits(C=0.4), Traits(N=1.0)]


def make_backend(*, steering: bool, temperature: float = 0.0) -> HFBackend:
    """The reference backend (its fast decoder switched off) over the tiny model."""
    model = tiny_llama().to(DEVICE)
    lm = LoadedModel(
        model=model,
        tokenizer=byte_tokenizer(),
        name_or_path="tiny",
        resolved_path="tiny",
        identity="tiny",
        dtype="float32",
        device=DEVICE,
        quantized=False,
    )
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(2, 5, 64, generator=g), dim=-1)
    vectors = SteeringVectors(layers=(1, 2), directions=dirs, norms=torch.full((2,), 8.0))
    backend = HFBackend(
        lm,
        inference=InferenceConfig(temperature=temperature, top_p=0.9, constrained=False),
        steering=SteeringConfig(enabled=steering, layers=[1, 2], strength=1.0, trait_layers={}),
        vectors=vectors if steering else None,
    )
    backend.fast = None
    return backend


def attach_fast(backend: HFBackend, *, fused: bool, graphs: bool) -> FastDecoder:
    backend.fast = FastDecoder(
        backend.model,
        pad_id=backend.pad_id,
        eos_ids=sorted(backend.eos_ids),
        temperature=backend.temperature,
        top_p=backend.top_p,
        hooks=backend.hooks,
        graphs=graphs,
        fused=fused,
    )
    return backend.fast


def requests(idx, budgets=None) -> list[Request]:
    return [
        Request(
            prompt=(Message(role="user", content=PROMPTS[i]),),
            traits=TRAITS[i],
            max_new_tokens=(budgets or {}).get(i, 6 + 2 * i),
            seed=1000 + i,
        )
        for i in idx
    ]


def texts(gens) -> list[tuple[str, int]]:
    return [(g.text, g.completion_tokens) for g in gens]


@pytest.mark.parametrize(("fused", "graphs"), VARIANTS)
@pytest.mark.parametrize("steering", [False, True], ids=["plain", "steered"])
def test_fast_equals_reference_greedy(steering: bool, fused: bool, graphs: bool) -> None:
    backend = make_backend(steering=steering)
    reqs = requests(range(5))  # prompts of very different lengths: left padding
    reference = backend.generate(reqs)
    decoder = attach_fast(backend, fused=fused, graphs=graphs)
    fast = generate_fast(backend, reqs)
    assert texts(fast) == texts(reference)
    assert [g.steer for g in fast] == [g.steer for g in reference]
    last = decoder.last  # the prompts' host time is a part of the time to the first token
    assert last is not None and 0 < last.prompts_s <= last.prefill_s


@needs_triton
def test_fused_prefill_in_chunks_equals_reference(monkeypatch) -> None:
    """The step's own prefill, split into chunks of whole prompts (here one row
    each), fills the cache rows and logits of every chunk as one pass would."""
    from agents.decode import llama_step

    monkeypatch.setattr(llama_step, "_PREFILL_TOKENS", 1)
    backend = make_backend(steering=True)
    reqs = requests(range(5))
    reference = backend.generate(reqs)
    attach_fast(backend, fused=True, graphs=CUDA)
    assert texts(generate_fast(backend, reqs)) == texts(reference)


def test_steering_changes_the_fast_path() -> None:
    """The deltas really enter the fast step (not only the prefill)."""
    reqs = requests(range(5))
    steered = make_backend(steering=True)
    attach_fast(steered, fused=False, graphs=False)
    plain = make_backend(steering=False)
    attach_fast(plain, fused=False, graphs=False)
    assert texts(generate_fast(steered, reqs)) != texts(generate_fast(plain, reqs))


@pytest.mark.parametrize(("fused", "graphs"), VARIANTS)
def test_buckets_are_reused_across_ticks(fused: bool, graphs: bool) -> None:
    backend = make_backend(steering=True)
    ticks = [[0, 1, 2], [3, 4], [4, 0, 2, 1], [1]]
    reference = [backend.generate(requests(t)) for t in ticks]
    fast = attach_fast(backend, fused=fused, graphs=graphs)
    seen = {}
    pool = None
    for tick, ref in zip(ticks, reference, strict=True):
        assert texts(generate_fast(backend, requests(tick))) == texts(ref)
        size = bucket_size(len(tick))
        bucket = fast.buckets[size]
        assert seen.setdefault(size, bucket) is bucket  # the same buffers (and graphs) again
        pool = pool or fast.pool
        assert fast.pool is pool  # no tick needed a larger pool
    assert sorted(seen) == [1, 2, 4]
    if graphs:
        assert len(fast.captures) == 3  # one capture per bucket, none on reuse


def test_bucket_sizes() -> None:
    """Powers of two up to 128 rows; above, quarter steps, so padding stays
    under a quarter of the rows; every bucket holds its batch and is its own
    bucket."""
    assert [bucket_size(n) for n in (1, 2, 3, 20, 100, 128)] == [1, 2, 4, 32, 128, 128]
    assert [bucket_size(n) for n in (129, 161, 256, 257, 300, 385, 513)] == [
        160,
        192,
        256,
        320,
        320,
        448,
        640,
    ]
    last = 0
    for n in range(1, 5000):
        b = bucket_size(n)
        assert b >= n and b >= last and bucket_size(b) == b, n
        assert n <= POWER_OF_TWO_BUCKETS or 4 * (b - n) < n, n
        last = b


def test_a_tick_above_128_rows_runs_in_a_quarter_step_bucket() -> None:
    backend = make_backend(steering=True)
    reqs = requests([i % len(PROMPTS) for i in range(130)], budgets=dict.fromkeys(range(5), 3))
    reference = backend.generate(reqs)
    fast = attach_fast(backend, fused=False, graphs=False)
    assert texts(generate_fast(backend, reqs)) == texts(reference)
    assert sorted(fast.buckets) == [160] and fast.pool.rows == 160


@pytest.mark.parametrize(("fused", "graphs"), VARIANTS)
def test_pool_grows_for_a_longer_tick(fused: bool, graphs: bool, monkeypatch) -> None:
    monkeypatch.setattr("agents.decode.cache.LENGTH_QUANTUM", 32)  # small steps, short test
    backend = make_backend(steering=False)
    fast = attach_fast(backend, fused=fused, graphs=graphs)
    generate_fast(backend, requests([0, 1]))
    small = fast.pool
    long = requests([3], budgets={3: 40})  # the longest prompt + 40 tokens: past the pool
    assert texts(generate_fast(backend, long)) == texts(backend_reference(backend, long))
    assert fast.pool is not small and fast.pool.length > small.length
    wide = requests(range(5))  # more rows than the pool had: it grows again, graphs re-captured
    assert texts(generate_fast(backend, wide)) == texts(backend_reference(backend, wide))
    assert fast.pool.rows == 8


def backend_reference(backend: HFBackend, reqs):
    fast, backend.fast = backend.fast, None
    try:
        return backend.generate(reqs)
    finally:
        backend.fast = fast


class AllowOnly:
    """A stand-in for agents.constraint.GrammarConstraint: row b may only take
    tokens whose id is congruent to b mod 3, and its 'grammar' completes after
    `length` tokens."""

    def __init__(self, vocab: int, length: int) -> None:
        self.vocab, self.length = vocab, length
        self.count: dict[int, int] = {}

    def fill(self, bitmask: torch.Tensor, active) -> None:
        bitmask.fill_(-1)
        for b in active:
            allowed = torch.zeros(bitmask.shape[1] * 32, dtype=torch.bool)
            allowed[b % 3 : self.vocab : 3] = True
            bits = allowed.view(-1, 32).long() << torch.arange(32)
            words = bits.sum(-1)
            bitmask[b] = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)

    def consume(self, tokens, active) -> set[int]:
        done = set()
        for b in active:
            assert tokens[b] % 3 == b % 3, "a masked-out token was sampled"
            self.count[b] = self.count.get(b, 0) + 1
            if self.count[b] >= self.length:
                done.add(b)
        return done


@pytest.mark.parametrize(("fused", "graphs"), VARIANTS)
def test_fast_equals_reference_under_masks(fused: bool, graphs: bool) -> None:
    backend = make_backend(steering=True)
    vocab = backend.model.config.vocab_size
    reqs = requests(range(5))
    if not hasattr(backend, "_constraint"):
        pytest.skip("this backend has no grammar constraints")
    backend._constraint = lambda _reqs: AllowOnly(vocab, length=4)  # type: ignore[method-assign]
    width = -(-vocab // 32)
    backend.grammars = SimpleNamespace(allocate=lambda n: torch.zeros(n, width, dtype=torch.int32))
    reference = backend.generate(reqs)
    attach_fast(backend, fused=fused, graphs=graphs)
    fast = generate_fast(backend, reqs)
    assert texts(fast) == texts(reference)
    assert all(g.completion_tokens <= 4 for g in fast)


# -- attention ------------------------------------------------------------------


def sdpa_reference(q, k_cache, v_cache, start, slot, scale):
    """Repeat K/V per query head and mask: what transformers' sdpa path computes."""
    batch, hkv, length, d = k_cache.shape
    group = q.shape[1] // (hkv * d)
    k = k_cache.repeat_interleave(group, dim=1)
    v = v_cache.repeat_interleave(group, dim=1)
    j = torch.arange(length, device=q.device)
    valid = (j[None] >= start[:, None]) & (j[None] <= slot)  # (B, L)
    out = torch.nn.functional.scaled_dot_product_attention(
        q.view(batch, hkv * group, 1, d), k, v, attn_mask=valid[:, None, None, :], scale=scale
    )
    return out.reshape(batch, -1)


def random_cache(batch, hkv, group, d, length, dtype, device, seed):
    g = torch.Generator().manual_seed(seed)
    k = torch.randn(batch, hkv, length, d, generator=g).to(device, dtype)
    v = torch.randn(batch, hkv, length, d, generator=g).to(device, dtype)
    q = torch.randn(batch, hkv * group * d, generator=g).to(device, dtype)
    slot = torch.tensor(length - 7, device=device)
    start = torch.randint(0, length - 7, (batch,), generator=g).to(device, torch.int32)
    start[0] = 0
    start[-1] = length - 7  # a row with a single valid slot
    return q, k, v, start, slot


@pytest.mark.parametrize("group", [1, 3, 4])
def test_grouped_attention_equals_sdpa(group: int) -> None:
    q, k, v, start, slot = random_cache(5, 2, group, 32, 90, torch.float32, DEVICE, seed=group)
    got = grouped_attention(q, k, v, start, slot, 0.17)
    want = sdpa_reference(q, k, v, start, slot, 0.17)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-4)


@needs_triton
@pytest.mark.parametrize("splits", [1, 3])
@pytest.mark.parametrize(("group", "d"), [(4, 64), (3, 32)])
def test_triton_attention_equals_sdpa(group: int, d: int, splits: int) -> None:
    from agents.decode.kernels import decode_attention

    dtypes = [torch.float32] + ([torch.bfloat16] if CUDA else [])
    for dtype in dtypes:
        q, k, v, start, slot = random_cache(4, 2, group, d, 150, dtype, DEVICE, seed=splits)
        n = 4 * 2 * group * splits
        work = (
            torch.empty(n * d, device=DEVICE),
            torch.empty(n, device=DEVICE),
            torch.empty(n, device=DEVICE),
        )
        out = torch.full_like(q, float("nan"))
        decode_attention(q, k, v, start, slot, d**-0.5, out, work)
        want = sdpa_reference(q.float(), k.float(), v.float(), start, slot, d**-0.5)
        err = (out.float() - want).norm() / want.norm()
        assert err < (1e-5 if dtype == torch.float32 else 1e-2), (dtype, float(err))


# -- sampling -------------------------------------------------------------------


@pytest.mark.parametrize("vocab", [49152, 50021])  # whole blocks, and a padded last block
def test_top_k_equals_torch_topk(vocab: int) -> None:
    g = torch.Generator().manual_seed(vocab)
    logits = torch.randn(6, vocab, generator=g)
    logits[1, 1000:] = float(
        "-inf"
    )  # a grammar-masked row: few finite tokens, many blocks all -inf
    logits[2, ::7] += 6.0  # the top tokens spread over many blocks
    vals, ids = top_k(logits, 64)
    want_vals, want_ids = logits.topk(64, dim=-1)
    assert torch.equal(vals, want_vals)
    finite = want_vals.isfinite()
    assert torch.equal(ids[finite], want_ids[finite])  # float32 noise: no ties among finite values
    # bf16 has ties: the values still match, the ids are distinct and hold those values
    half = (logits * 3).bfloat16()
    vals, ids = top_k(half, 64)
    assert torch.equal(vals, half.topk(64, dim=-1).values)
    assert torch.equal(half.gather(1, ids), vals)
    assert all(len(set(r)) == 64 for r in ids.tolist())


@pytest.mark.parametrize("rows,vocab", [(6, 300), (BLOCK_ROWS, 49152)])  # one topk; blocks
def test_shortlist_sample_depends_only_on_row(rows: int, vocab: int) -> None:
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(rows, vocab, generator=g) * 3
    seeds = torch.arange(rows) * 7919
    batch = shortlist_sample(logits, seeds, 4, temperature=0.8, top_p=0.9)
    for b in range(0, rows, max(1, rows // 12)):
        alone = shortlist_sample(logits[b : b + 1], seeds[b : b + 1], 4, temperature=0.8, top_p=0.9)
        assert int(alone) == int(batch[b])
    step_tensor = shortlist_sample(logits, seeds, torch.tensor(4), temperature=0.8, top_p=0.9)
    assert torch.equal(step_tensor, batch)  # a device step counter gives the same draws
    other_step = shortlist_sample(logits, seeds, 5, temperature=0.8, top_p=0.9)
    assert not torch.equal(other_step, batch)


def test_shortlist_sample_follows_the_distribution() -> None:
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0] + [-30.0] * 100])
    draws = torch.stack(
        [
            shortlist_sample(logits, torch.tensor([s]), 0, temperature=1.0, top_p=1.0)
            for s in range(3000)
        ]
    ).flatten()
    freq = torch.bincount(draws, minlength=4)[:4].float() / len(draws)
    assert torch.allclose(freq, logits[0, :4].softmax(-1), atol=0.03)
    # top-p 0.6 keeps only the first token (its mass 0.64 reaches 0.6)
    top = [
        int(shortlist_sample(logits, torch.tensor([s]), 0, temperature=1.0, top_p=0.6))
        for s in range(50)
    ]
    assert set(top) == {0}


def test_sampler_respects_bitmask() -> None:
    vocab = 70
    allowed = torch.zeros(2, 96, dtype=torch.bool)
    allowed[0, [5, 69]] = True
    allowed[1, 40] = True
    words = (allowed.view(2, -1, 32).long() << torch.arange(32)).sum(-1)
    bitmask = torch.where(words >= 2**31, words - 2**32, words).to(torch.int32)
    assert torch.equal(unpack_bitmask(bitmask, vocab), allowed[:, :vocab])
    logits = torch.randn(2, vocab)
    for s in range(20):
        tok = shortlist_sample(
            logits, torch.tensor([s, s]), s, temperature=1.0, top_p=0.9, allowed=allowed[:, :vocab]
        )
        assert int(tok[0]) in (5, 69) and int(tok[1]) == 40


def test_projections_are_stacked_without_a_second_copy() -> None:
    """q/k/v and gate/up run as one product each; the model's own weights are
    views of the stacked buffer (no second copy), with their values unchanged."""
    model = tiny_llama()
    layer = model.model.layers[0]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    decoder = FastDecoder(
        model, pad_id=0, eos_ids=[1], temperature=0.0, top_p=1.0, graphs=False, fused=False
    )
    part = decoder.step.parts[0]
    assert all(p.qkv is not None and p.gate_up is not None for p in decoder.step.parts)
    assert layer.self_attn.q_proj.weight.data_ptr() == part.qkv.weight.data_ptr()
    assert layer.mlp.up_proj.weight.data_ptr() > part.gate_up.weight.data_ptr()
    assert part.qkv.weight.untyped_storage().data_ptr() == (
        layer.self_attn.v_proj.weight.untyped_storage().data_ptr()
    )
    for name, p in model.named_parameters():
        assert torch.equal(p, before[name]), name
    x = torch.randn(3, model.config.hidden_size)
    q, k, v = part.qkv(x)
    assert torch.allclose(k, layer.self_attn.k_proj(x)) and torch.allclose(
        q, layer.self_attn.q_proj(x)
    )
    assert torch.allclose(v, layer.self_attn.v_proj(x))


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [70, 4096 + 33])
def test_mask_logits_kernel_equals_unpacking(dtype: torch.dtype, vocab: int) -> None:
    """The fused path's in-place mask == unpack + masked_fill, on random words
    (sign bits included), a vocabulary that ends inside a word and a block."""
    from agents.decode.sampler_kernels import mask_logits_

    g = torch.Generator().manual_seed(vocab)
    words = (vocab + 31) // 32
    bitmask = torch.randint(-(2**31), 2**31, (3, words), generator=g, dtype=torch.int64)
    bitmask = bitmask.to(torch.int32).to(DEVICE)
    logits = torch.randn(3, vocab, generator=g).to(DEVICE, dtype)
    expected = logits.masked_fill(~unpack_bitmask(bitmask, vocab), float("-inf"))
    mask_logits_(logits, bitmask)
    assert torch.equal(logits, expected)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("vocab", [128 * 40, 128 * 40 + 77])  # whole blocks; a padded last one
def test_block_max_kernel_equals_amax(dtype: torch.dtype, vocab: int) -> None:
    from agents.decode.sampler_kernels import block_max

    g = torch.Generator().manual_seed(vocab)
    logits = torch.randn(5, vocab, generator=g).to(DEVICE, dtype)
    logits[1, 300:] = float("-inf")  # a grammar-masked row: whole blocks of -inf
    logits[2, -1] = 50.0  # the maximum in the last (maybe partial) block
    padded = torch.nn.functional.pad(logits, (0, -vocab % 128), value=float("-inf"))
    want = padded.view(5, -1, 128).amax(-1)
    got = block_max(logits, 128)
    assert got.shape == want.shape and torch.equal(got, want)
    vals, ids = top_k(logits, 8, fused=True)  # the two-stage kernels (40 blocks >= 4 * 8)
    assert torch.equal(vals, logits.topk(8, dim=-1).values)
    assert torch.equal(logits.gather(1, ids), vals)  # each id holds its value
    assert int(ids[2, 0]) == vocab - 1
    tied = torch.zeros(2, vocab, device=DEVICE, dtype=dtype)  # every value equal
    assert top_k(tied, 8, fused=True)[1].tolist() == [list(range(8))] * 2  # lowest ids first


@needs_triton
# SmolLM2's vocabulary (whole blocks) in bf16, a padded last block in float32: each pair
# costs about 2 min under the Triton interpreter, so the other two pairs are left out
@pytest.mark.parametrize("vocab,dtype", [(49152, torch.bfloat16), (50021, torch.float32)])
def test_top_k_search_selection_equals_bitonic(monkeypatch, vocab: int, dtype: torch.dtype) -> None:
    """The kernels' selection by binary search + compaction picks exactly what
    the bitonic tl.topk picks (same values, same ids, same order), also where
    many values tie at the k-th place and where most of a row is -inf."""
    from agents.decode import sampler_kernels

    g = torch.Generator().manual_seed(vocab)
    logits = torch.randn(6, vocab, generator=g) * 3
    logits[1] = (logits[1] * 2).round() / 2  # coarse levels: ties at the threshold
    logits[2, 100:] = float("-inf")  # fewer finite tokens than blocks
    logits[3] = 0.0  # every value equal
    logits[4, ::5] += 8.0  # the winners spread over many blocks
    logits[5, 1000:1064] = 30.0  # the winners packed in one block
    x = logits.to(DEVICE, dtype)
    monkeypatch.setattr(sampler_kernels, "SEARCH", True)
    vals, ids = top_k(x, 64, fused=True)
    monkeypatch.setattr(sampler_kernels, "SEARCH", False)
    want_vals, want_ids = top_k(x, 64, fused=True)
    assert torch.equal(vals, want_vals) and torch.equal(ids, want_ids)
    assert torch.equal(vals, x.topk(64, dim=-1).values)
    assert torch.equal(x.gather(1, ids), vals)


@needs_triton
@pytest.mark.parametrize("rows,top_p", [(7, 0.9), (BLOCK_ROWS, 0.9), (7, 1.0)])
def test_fused_sampler_matches_the_torch_tail(rows: int, top_p: float) -> None:
    """The kernel's tail (same hash, same top-p rule) draws what the PyTorch tail
    draws, row by row, and a row's draw depends only on its own seed and step."""
    g = torch.Generator().manual_seed(rows)
    logits = (torch.randn(rows, 16384, generator=g) * 3).to(DEVICE)
    logits[0, 100:] = float("-inf")  # a masked row with few finite tokens
    seeds = (torch.arange(rows) * 7919 + 2**40).to(DEVICE)
    for step in (0, 5):
        kw = dict(temperature=0.8, top_p=top_p)
        fused = shortlist_sample(logits, seeds, torch.tensor(step, device=DEVICE), fused=True, **kw)
        plain = shortlist_sample(logits, seeds, step, **kw)
        assert fused.dtype == torch.int64 and torch.equal(fused.cpu(), plain.cpu()), step
        alone = shortlist_sample(logits[3:4], seeds[3:4], step, fused=True, **kw)
        assert int(alone) == int(fused[3])
    assert int(fused[0]) < 100


@needs_triton
def test_record_tokens_kernel_keeps_the_books() -> None:
    """Four rows at step 2: one already done (gets the pad id, counts nothing),
    one sampling an eos id, one reaching its budget, one going on."""
    from agents.decode.sampler_kernels import record_tokens

    def dev(values: list, dtype: torch.dtype = torch.int64) -> torch.Tensor:
        return torch.tensor(values, dtype=dtype, device=DEVICE)

    nxt = dev([9, 1, 7, 8])
    done = dev([True, False, False, False], torch.bool)
    produced, budgets = dev([1, 2, 2, 2]), dev([5, 5, 3, 5])
    step, finish = dev(2), dev([1, 0, 0, 0])
    out = torch.full((4, 4), -5, dtype=torch.int64, device=DEVICE)
    tokens, status = dev([0, 0, 0, 0]), torch.zeros(9, dtype=torch.int64, device=DEVICE)
    eos, pad = dev([1, 2]), 0
    record_tokens(nxt, done, produced, budgets, eos, step, finish, out, tokens, status, pad)
    assert out[:, 2].tolist() == [0, 1, 7, 8] and out[:, [0, 1, 3]].eq(-5).all()
    assert tokens.tolist() == [0, 1, 7, 8]
    assert produced.tolist() == [1, 3, 3, 3]
    assert done.tolist() == [True, True, True, False]
    assert finish.tolist() == [1, 2, 2, 0]
    assert status.tolist() == [0, 1, 7, 8, 1, 1, 1, 0, 3]
    assert int(step) == 3


def test_gumbel32_is_a_pure_function() -> None:
    seeds = torch.tensor([3, 2**40 + 5])
    toks = torch.arange(50).expand(2, 50)
    n1 = gumbel32(seeds, 3, toks)
    assert torch.equal(n1[1], gumbel32(seeds[1:], 3, toks[1:])[0])
    assert not torch.equal(n1[0], gumbel32(seeds[:1], 4, toks[:1])[0])
    assert torch.isfinite(n1).all()


def test_describe_names_the_decode_path() -> None:
    """The manifest says which loop (and so which sampler) produced a run."""
    backend = make_backend(steering=False)
    assert backend.describe()["decode_path"] == "reference"
    attach_fast(backend, fused=False, graphs=False)
    assert backend.describe()["decode_path"] == "fast"


def test_fast_path_declines_what_graphs_cannot_hold() -> None:
    from agents.decode.decoder import fast_decoder_for, offload_or_quantized

    model = tiny_llama()
    assert offload_or_quantized(model, quantized=False) is None
    assert "4-bit" in offload_or_quantized(model, quantized=True)
    model.hf_device_map = {"model.embed_tokens": 0, "model.layers": "cpu"}
    assert "offloaded" in offload_or_quantized(model, quantized=False)
    del model.hf_device_map
    model._tp_size = 2  # tensor parallelism is served (tests/test_fast_decode_tp.py)
    assert offload_or_quantized(model, quantized=False) is None
    # a model on the CPU keeps the reference loop, without a word
    kwargs = dict(quantized=False, pad_id=0, eos_ids=[2], temperature=0.0, top_p=1.0, hooks=None)
    assert fast_decoder_for(tiny_llama(), **kwargs) is None

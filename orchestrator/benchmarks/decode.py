"""The fast decode path (agents.decode) against the memory-bandwidth floor, on
random-weight real architectures (agents.random_models), with the same
workload through the reference loop and one request at a time as ratios from
the same process.

The floor of one decode step is max(bytes / copy bandwidth, FLOPs / matmul
rate): the bytes are every weight the step reads (each decoder layer's
projections and the LM head; the embedding table contributes only B rows)
plus the K/V cache it reads at the mean context length; the FLOPs are two per
weight per row. Both ceilings are measured in the same run (a large
device-to-device copy, counting bytes read plus written; a large bf16 matrix
product), so the ratio is honest on whatever card runs it.

Knows nothing about how the decoder works inside; it reads the decoder's
record of its last batch (prefill and decode time, steps, captures)."""

from __future__ import annotations

import functools
import logging
import statistics
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.random_models import ARCHS, real_architecture
from agents.typing import Request
from orchestrator.benchmarks.gpu import STEERED_DEPTH, backend_for, load_tokenizer
from orchestrator.benchmarks.workload import tick_requests
from orchestrator.frozen_heap import frozen_heap

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Ceilings:
    copy_bytes_per_s: float  # device-to-device copy, bytes read + written
    matmul_flops_per_s: float  # 8192^3 bf16 product


def measure_ceilings(device: str = "cuda") -> Ceilings:
    """The two rates of METHOD.md, each the median of ten timed runs after warm-up."""
    src = torch.empty(2**30, dtype=torch.uint8, device=device).random_(0, 255)  # 1 GiB
    dst = torch.empty_like(src)
    a = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)
    b = torch.randn(8192, 8192, device=device, dtype=torch.bfloat16)

    def median_s(fn) -> float:
        for _ in range(3):
            fn()
        times = []
        for _ in range(10):
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            fn()
            end.record()
            end.synchronize()
            times.append(start.elapsed_time(end) / 1e3)
        return statistics.median(times)

    copy_s = median_s(lambda: dst.copy_(src))
    mm_s = median_s(lambda: a @ b)
    return Ceilings(
        copy_bytes_per_s=2 * src.numel() / copy_s, matmul_flops_per_s=2 * 8192**3 / mm_s
    )


def step_floor(
    shape: Mapping[str, int],
    *,
    batch: int,
    context: float,
    ceilings: Ceilings,
    dtype_bytes: int = 2,
) -> dict[str, float]:
    """The floor of one decode step of a Llama-shaped model (ARCHS fields) for
    `batch` rows at a mean of `context` cached tokens per row."""
    h, inter = shape["hidden_size"], shape["intermediate_size"]
    q_heads, kv_heads = shape["num_attention_heads"], shape["num_key_value_heads"]
    head_dim = shape.get("head_dim", h // q_heads)
    layers, vocab = shape["num_hidden_layers"], shape["vocab_size"]
    per_layer = h * head_dim * (2 * q_heads + 2 * kv_heads) + 3 * h * inter  # q, o, k, v; MLP
    weights = layers * per_layer + vocab * h  # + the LM head
    weight_bytes = weights * dtype_bytes
    kv_bytes = layers * 2 * kv_heads * head_dim * dtype_bytes * context * batch
    flops = 2 * weights * batch + 4 * layers * q_heads * head_dim * context * batch
    bytes_s = (weight_bytes + kv_bytes) / ceilings.copy_bytes_per_s
    flops_s = flops / ceilings.matmul_flops_per_s
    return {
        "weight_gb": weight_bytes / 1e9,
        "kv_gb": kv_bytes / 1e9,
        "gflop": flops / 1e9,
        "floor_ms": max(bytes_s, flops_s) * 1e3,
        "bound": "memory" if bytes_s >= flops_s else "compute",
    }


def _timed(fn) -> float:
    with frozen_heap():  # as in a run's tick loop: no full collection inside the timing
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        return time.perf_counter() - t0


def _free(reqs: Sequence[Request]) -> list[Request]:
    """The requests without their grammars (every row decodes its whole budget)."""
    from dataclasses import replace

    return [replace(r, grammar=None) if hasattr(r, "grammar") else r for r in reqs]


def _fast_rows(backend, batch: int, reqs: list[Request], repeats: int) -> dict[str, Any]:
    """First tick (captures included) and the median of `repeats` later ticks."""
    fast = backend.fast
    before = len(fast.captures)
    first = _timed(lambda: backend.generate(reqs))
    capture_s = sum(s for _, s in fast.captures[before:])
    ticks, steps_ms, prefill, mask_ms = [], [], [], []
    for _ in range(repeats):
        gens: list = []
        ticks.append(_timed(lambda gens=gens: gens.extend(backend.generate(reqs))))
        rec = fast.last
        steps_ms.append(rec.decode_s / max(1, rec.steps - 1) * 1e3)
        prefill.append(rec.prefill_s * 1e3)
        mask_ms.append(rec.mask_s / rec.steps * 1e3)
    return {
        "tick_s": statistics.median(ticks),
        "first_tick_s": first,
        "capture_s": capture_s,
        "step_ms": statistics.median(steps_ms),
        "prefill_ms": statistics.median(prefill),
        "mask_host_ms_per_step": statistics.median(mask_ms),
        "steps": fast.last.steps,
        "bucket": fast.last.bucket,
        "prompt_tokens_mean": sum(g.prompt_tokens for g in gens) / batch,
        "completion_tokens_mean": sum(g.completion_tokens for g in gens) / batch,
    }


def _reference_tick(backend, reqs: list[Request]) -> float:
    fast, backend.fast = backend.fast, None
    try:
        return _timed(lambda: backend.generate(reqs))
    finally:
        backend.fast = fast


def bench_arch(
    arch: str,
    *,
    batches: Sequence[int],
    new_tokens: int,
    repeats: int,
    tok,
    ceilings: Ceilings,
    reference: bool = True,
    grammar_batch: int | None = None,
) -> list[dict[str, Any]]:
    """One row per batch size on `arch` (bf16, steering on): the fast path's
    step against its floor, the reference loop, one at a time, steering off;
    then, at `grammar_batch`, the cost of grammar masks per step."""
    model = real_architecture(arch, device="cuda", dtype=torch.bfloat16)
    layer = int(ARCHS[arch]["num_hidden_layers"] * STEERED_DEPTH)
    batches = sorted({1, *batches})
    rows: list[dict[str, Any]] = []
    on = backend_for(model, tok, layers=[layer], steer=True, constrained=False)
    if on.fast is None:
        raise RuntimeError("the fast decode path does not apply to this model")
    on.generate(_free(tick_requests(2, 4)))  # kernels compile, allocator warms
    single = None
    for b in batches:
        reqs = _free(tick_requests(b, new_tokens, seed=b))
        r = _fast_rows(on, b, reqs, repeats)
        context = r["prompt_tokens_mean"] + new_tokens / 2
        floor = step_floor(ARCHS[arch], batch=b, context=context, ceilings=ceilings)
        single = single or r["tick_s"]
        row = {
            "arch": arch,
            "batch": b,
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()},
            **{k: round(v, 4) if isinstance(v, float) else v for k, v in floor.items()},
            "ratio_to_floor": round(r["step_ms"] / floor["floor_ms"], 2),
            "tokens_per_s": round(b * new_tokens / r["tick_s"], 1),
            "x_one_at_a_time": round(single * b / r["tick_s"], 1),
        }
        if reference:
            ref = _reference_tick(on, reqs)
            row["reference_tick_s"] = round(ref, 3)
            row["x_reference"] = round(ref / r["tick_s"], 2)
        rows.append(row)
        log.info("%s", row)
    grammar = None
    if grammar_batch:
        try:
            grammar = _grammar_cost(on, model, tok, layer, grammar_batch, new_tokens, repeats)
        except Exception as exc:  # report it; the other measurements still stand
            log.exception("grammar measurement failed")
            grammar = {"error": f"{type(exc).__name__}: {exc}"}
    on.close()
    off = backend_for(model, tok, layers=[layer], steer=False, constrained=False)
    off.generate(_free(tick_requests(2, 4)))
    for row in rows:
        reqs = _free(tick_requests(row["batch"], new_tokens, seed=row["batch"]))
        r = _fast_rows(off, row["batch"], reqs, repeats)
        row["step_ms_no_steering"] = round(r["step_ms"], 4)
        row["steering_overhead_pct"] = round(100 * (row["step_ms"] / r["step_ms"] - 1), 1)
    off.close()
    del model
    torch.cuda.empty_cache()
    return rows + ([{"grammar": grammar}] if grammar else [])


def _grammar_cost(on, model, tok, layer, grammar_batch, new_tokens, repeats) -> dict:
    """The step time under grammar masks (llguidance, one host sync per step) at
    `grammar_batch`, against the same requests without them through the same
    decoder, the two alternating tick by tick (a difference of a few percent
    must not be GPU clock drift between two phases of the run)."""
    g_backend = backend_for(model, tok, layers=[layer], steer=True, constrained=True)
    g_backend.fast = on.fast  # one pool and set of graphs (same model, same steering)
    g_backend.hooks = on.hooks
    reqs = tick_requests(grammar_batch, new_tokens, seed=grammar_batch)
    free_reqs = _free(reqs)
    first = _timed(lambda: g_backend.generate(reqs))  # captures the masked graphs
    on.generate(free_reqs)
    steps: dict[str, list[float]] = {"grammar": [], "free": []}
    mask_ms, completion = [], 0.0
    for _ in range(max(repeats, 5)):
        for name, backend, batch in (("free", on, free_reqs), ("grammar", g_backend, reqs)):
            gens = backend.generate(batch)
            rec = on.fast.last
            steps[name].append(rec.decode_s / max(1, rec.steps - 1) * 1e3)
            if name == "grammar":
                mask_ms.append(rec.mask_s / rec.steps * 1e3)
                completion = sum(g.completion_tokens for g in gens) / len(gens)
    g_ms, f_ms = statistics.median(steps["grammar"]), statistics.median(steps["free"])
    grammar = {
        "batch": grammar_batch,
        "step_ms_grammar": round(g_ms, 3),
        "step_ms_free": round(f_ms, 3),
        "grammar_ms_per_step": round(g_ms - f_ms, 3),
        "grammar_share_of_step": round((g_ms - f_ms) / f_ms, 4),
        "matcher_host_ms_per_step": round(statistics.median(mask_ms), 3),
        "ticks_each": len(steps["free"]),
        "completion_tokens_mean": round(completion, 1),
        "first_tick_s": round(first, 2),
    }
    log.info("grammar: %s", grammar)
    return grammar


def bench_offload(arch: str, *, tok, batch: int, new_tokens: int, gpu_gib: float) -> dict[str, Any]:
    """Steering on a model that accelerate partly offloads to CPU (the real
    loading path, optimization.max_gpu_memory_gb), s/tick against the same
    model held in memory; both through the reference loop (graphs do not apply
    to offloaded layers) and the in-memory one through the fast path too."""
    from agents.config import ModelConfig, OptimizationConfig
    from agents.model_loading import load_model

    layer = int(ARCHS[arch]["num_hidden_layers"] * STEERED_DEPTH)
    reqs = _free(tick_requests(batch, new_tokens, seed=7))
    result: dict[str, Any] = {"arch": arch, "batch": batch, "new_tokens": new_tokens}
    with tempfile.TemporaryDirectory() as tmp:
        real_architecture(arch, device="cuda", dtype=torch.bfloat16).save_pretrained(tmp)
        tok.save_pretrained(tmp)
        torch.cuda.empty_cache()
        for name, opt in (
            ("in_memory", OptimizationConfig()),
            ("offload", OptimizationConfig(max_gpu_memory_gb=gpu_gib, max_cpu_memory_gb=100)),
        ):
            lm = load_model(ModelConfig(name_or_path=tmp, dtype="bfloat16"), opt, Path(tmp))
            backend = backend_for(
                lm.model, lm.tokenizer, layers=[layer], steer=True, constrained=False
            )
            if name == "offload":
                result["device_map_devices"] = sorted(
                    {str(d) for d in lm.model.hf_device_map.values()}
                )
                result["fast_path"] = backend.fast is not None
            else:
                backend.generate(reqs)
                run = functools.partial(backend.generate, reqs)
                result["in_memory_fast_tick_s"] = round(_timed(run), 3)
            backend.generate(_free(tick_requests(2, 2)))
            result[f"{name}_tick_s"] = round(_reference_tick(backend, reqs), 3)
            backend.close()
            del lm, backend
            torch.cuda.empty_cache()
    log.info("offload: %s", result)
    return result


def bench_decode(
    *,
    arch: str = "llama-8b",
    batches: Sequence[int] = (16, 32, 64, 128),
    small_arch: str | None = "llama-1b",
    small_batches: Sequence[int] = (256,),
    new_tokens: int = 48,
    repeats: int = 3,
    grammar_batch: int | None = 128,
    offload_arch: str | None = "llama-1b",
    tokenizer: Path | None = None,
) -> dict[str, Any]:
    """Everything above in one process (CUDA only)."""
    if not torch.cuda.is_available():
        raise RuntimeError("the decode benchmark needs CUDA")
    from orchestrator.benchmarks.gpu import DEFAULT_TOKENIZER

    tok, tok_name = load_tokenizer(tokenizer or DEFAULT_TOKENIZER)
    ceilings = measure_ceilings()
    log.info("ceilings: %s", ceilings)
    rows = bench_arch(
        arch,
        batches=batches,
        new_tokens=new_tokens,
        repeats=repeats,
        tok=tok,
        ceilings=ceilings,
        grammar_batch=grammar_batch,
    )
    if small_arch:
        rows += bench_arch(
            small_arch,
            batches=small_batches,
            new_tokens=new_tokens,
            repeats=repeats,
            tok=tok,
            ceilings=ceilings,
        )
    offload = None
    if offload_arch:
        try:
            offload = bench_offload(offload_arch, tok=tok, batch=16, new_tokens=16, gpu_gib=1.0)
        except Exception as exc:  # report it; the decode rows still stand
            log.exception("offload measurement failed")
            offload = {"error": f"{type(exc).__name__}: {exc}"}
    grammar = [r["grammar"] for r in rows if "grammar" in r]
    return {
        "benchmark": "decode",
        "device": torch.cuda.get_device_name(),
        "torch": torch.__version__,
        "tokenizer": tok_name,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "copy_tb_per_s": round(ceilings.copy_bytes_per_s / 1e12, 3),
        "matmul_tflop_per_s": round(ceilings.matmul_flops_per_s / 1e12, 1),
        "rows": [r for r in rows if "grammar" not in r],
        "grammar": grammar[0] if grammar else None,
        "offload": offload,
    }


def table(result: Mapping[str, Any]) -> list[str]:
    """The result as printed lines."""
    lines = [
        f"{result['device']}: copy {result['copy_tb_per_s']} TB/s, bf16 matmul "
        f"{result['matmul_tflop_per_s']} TFLOP/s; tokenizer {result['tokenizer']}; "
        f"{result['new_tokens']} new tokens",
        f"{'arch':10} {'B':>4} {'prompt':>6} {'prefill ms':>10} {'step ms':>8} {'floor ms':>8} "
        f"{'ratio':>6} {'tok/s':>8} {'capture s':>9} {'x ref':>6} {'x one':>6} {'steer %':>7}",
    ]
    for r in result["rows"]:
        lines.append(
            f"{r['arch']:10} {r['batch']:>4} {r['prompt_tokens_mean']:>6.0f} "
            f"{r['prefill_ms']:>10.1f} {r['step_ms']:>8.2f} {r['floor_ms']:>8.2f} "
            f"{r['ratio_to_floor']:>6} {r['tokens_per_s']:>8} {r['capture_s']:>9.2f} "
            f"{r.get('x_reference', ''):>6} {r['x_one_at_a_time']:>6} "
            f"{r.get('steering_overhead_pct', ''):>7}"
        )
    if g := result.get("grammar"):
        lines.append(f"grammar masks: {g}")
    if o := result.get("offload"):
        lines.append(f"offload: {o}")
    return lines

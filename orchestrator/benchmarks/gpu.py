"""Throughput of the HF backend on a GPU with random-weight models of real
architectures (agents.random_models; no weights can be downloaded there): one
tick of B agent requests in ONE batched call, against B single-request calls,
with steering on and off, and bf16 against 4-bit NF4 (bitsandbytes, through
the real loading path) when it is installed.

Prompts are real agent prompts (orchestrator.benchmarks.workload), tokenized
by the converted SmolLM2's tokenizer (about 160 tokens each). Without that
folder a byte-level tokenizer stands in and prompts are about 3x longer in
tokens; the benchmark logs that in one line and records the tokenizer and
each row's mean prompt length in the result.
Every row decodes all its new tokens (random weights almost never emit EOS),
so the numbers are a worst case for the decode length."""

from __future__ import annotations

import importlib.util
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch

from agents.model_loading import EMBEDDED_FOLDER, resolve_dtype
from agents.random_models import ARCHS, byte_tokenizer, real_architecture
from orchestrator.benchmarks.workload import tick_requests
from orchestrator.frozen_heap import frozen_heap

log = logging.getLogger(__name__)

DEFAULT_TOKENIZER = Path("storage") / "models" / EMBEDDED_FOLDER  # the converted SmolLM2
BYTE_LEVEL = "byte-level"
STEERED_DEPTH = 0.8  # steer at 80% of the layers, where the shipped defaults sit


def load_tokenizer(folder: Path) -> tuple[Any, str]:
    """The tokenizer in `folder` (the converted SmolLM2's) and its name, else a
    byte-level one, said so in one warning: its prompts are ~3x longer in tokens."""
    if (folder / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
        tok.padding_side = "left"
        return tok, str(folder)
    log.warning(
        "no tokenizer.json in %s: using a byte-level tokenizer, so prompts are about 3x "
        "longer in tokens than with SmolLM2's and the numbers are not comparable (run a "
        "demo once to convert the model, or pass --tokenizer FOLDER)",
        folder,
    )
    return byte_tokenizer(), BYTE_LEVEL


def backend_for(
    model,
    tok,
    *,
    layers: list[int],
    steer: bool,
    quantized: bool = False,
    constrained: bool | None = None,
):
    """An HFBackend over an in-memory model, with random unit steering directions
    (`constrained`: inference.constrained, None = its default)."""
    from agents.config import InferenceConfig, SteeringConfig
    from agents.hf_backend import HFBackend
    from agents.model_loading import LoadedModel
    from agents.steering.vectors import SteeringVectors

    hidden, n = model.config.hidden_size, len(layers)
    g = torch.Generator().manual_seed(1)
    dirs = torch.nn.functional.normalize(torch.randn(n, 5, hidden, generator=g), dim=-1)
    vectors = SteeringVectors(layers=tuple(layers), directions=dirs, norms=torch.full((n,), 10.0))
    lm = LoadedModel(
        model=model,
        tokenizer=tok,
        name_or_path="random",
        resolved_path="random",
        identity="random",
        dtype=str(model.dtype),
        device=str(model.device),
        quantized=quantized,
    )
    return HFBackend(
        lm,
        inference=InferenceConfig(
            temperature=0.8,
            top_p=0.9,
            **({} if constrained is None else {"constrained": constrained}),
        ),
        steering=SteeringConfig(enabled=steer, layers=layers, strength=0.2),
        vectors=vectors if steer else None,
    )


def timed(fn: Callable[[], object], repeats: int) -> float:
    """Median wall seconds of `repeats` calls, synchronised with the GPU."""
    times = []
    with frozen_heap():  # as in a run's tick loop: no full collection inside the timing
        for _ in range(repeats):
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            fn()
            if torch.cuda.is_available():
                torch.cuda.synchronize()
            times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    backend, label: str, batches: Sequence[int], new_tokens: int, repeats: int
) -> list[dict[str, Any]]:
    """One row per batch size; batch 1 first, the one-at-a-time baseline."""
    rows: list[dict[str, Any]] = []
    backend.generate(tick_requests(2, 4))  # warm-up: kernels, allocator
    single = None
    for b in batches:
        reqs = tick_requests(b, new_tokens, seed=b)
        outputs: list[list] = []
        t = timed(lambda reqs=reqs, out=outputs: out.append(backend.generate(reqs)), repeats)
        if b == 1:
            single = t
        rows.append(
            {
                "config": label,
                "batch": b,
                "tick_s": round(t, 3),
                "prompt_tokens_mean": round(sum(g.prompt_tokens for g in outputs[-1]) / b, 1),
                "tokens_per_s": round(b * new_tokens / t, 1),
                "speedup_vs_one_at_a_time": round(single * b / t, 1) if single else None,
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if torch.cuda.is_available()
                else None,
            }
        )
        log.info("%s", rows[-1])
    return rows


def quantization(
    arch: str, tok, batches: Sequence[int], new_tokens: int, repeats: int
) -> list[dict[str, Any]]:
    """bf16 vs NF4 through the real loading path (save the random model, load it back)."""
    from agents.config import ModelConfig, OptimizationConfig
    from agents.model_loading import load_model

    if importlib.util.find_spec("bitsandbytes") is None:
        log.warning("bitsandbytes is not installed: the bf16 vs NF4 comparison is skipped")
        return []
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        model = real_architecture(arch, device="cuda", dtype=torch.bfloat16)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        layer = int(ARCHS[arch]["num_hidden_layers"] * STEERED_DEPTH)
        for quant in (False, True):
            torch.cuda.reset_peak_memory_stats()
            lm = load_model(
                ModelConfig(name_or_path=tmp, dtype="bfloat16", device="cuda"),
                OptimizationConfig(use_quantization=quant),
                tmp,
            )
            backend = backend_for(
                lm.model, lm.tokenizer, layers=[layer], steer=True, quantized=lm.quantized
            )
            label = f"{arch} {'nf4' if lm.quantized else 'bf16'} (loaded)"
            rows += measure(backend, label, batches, new_tokens, repeats)
            backend.close()
            del lm, backend
            torch.cuda.empty_cache()
    return rows


def bench_gpu(
    *,
    arch: str = "llama-8b",
    batches: Sequence[int] = (1, 16, 32, 64, 128),
    new_tokens: int = 48,
    repeats: int = 3,
    device: str | None = None,
    quant_arch: str | None = "llama-1b",
    tokenizer: Path | None = None,
) -> dict[str, Any]:
    """Batched vs one-at-a-time, steering on and off, on `arch`; then bf16 vs
    NF4 on `quant_arch` (CUDA only; None skips it)."""
    if arch not in ARCHS or (quant_arch and quant_arch not in ARCHS):
        raise ValueError(f"unknown architecture; choose from {', '.join(ARCHS)}")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    batches = sorted({1, *batches})  # batch 1 is the one-at-a-time baseline
    dtype = resolve_dtype("auto", torch.device(device))
    tok, tok_name = load_tokenizer(tokenizer or DEFAULT_TOKENIZER)
    model = real_architecture(arch, device=device, dtype=dtype)
    layer = int(model.config.num_hidden_layers * STEERED_DEPTH)
    rows: list[dict[str, Any]] = []
    for steer in (True, False):
        backend = backend_for(model, tok, layers=[layer], steer=steer)
        label = f"{arch} {str(dtype).removeprefix('torch.')} steer={steer}"
        rows += measure(backend, label, batches, new_tokens, repeats)
        backend.close()
    del model
    if quant_arch and device.startswith("cuda"):
        rows += quantization(quant_arch, tok, batches, new_tokens, repeats)
    return {
        "benchmark": "gpu",
        "arch": arch,
        "device": device,
        "tokenizer": tok_name,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "rows": rows,
    }

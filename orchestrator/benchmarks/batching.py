"""One tick's worth of agent requests generated in ONE batched call versus
one request at a time (the old way), on the same HF backend, in one process.
Both modes must produce the same text (a row does not depend on its batch
mates); the result says how many did."""

from __future__ import annotations

import time
from typing import Any

from orchestrator.benchmarks.workload import tick_requests


def bench_batching(
    *,
    model: str = "smollm2-135m",
    storage_root: str = "storage",
    requests: int = 16,
    max_new_tokens: int = 48,
    steering: bool = True,
) -> dict[str, Any]:
    from agents.backends import BackendSpec
    from agents.config import ModelConfig, SteeringConfig
    from agents.hf_backend import build_hf_backend

    spec = BackendSpec(
        model=ModelConfig(name_or_path=model),
        steering=SteeringConfig(enabled=steering),
        storage_root=storage_root,
    )
    backend = build_hf_backend(spec)  # the run's defaults for everything else
    try:
        reqs = tick_requests(requests, max_new_tokens)
        backend.generate(reqs[:2])  # warm-up

        t0 = time.perf_counter()
        batched = backend.generate(reqs)
        t_batch = time.perf_counter() - t0
        t0 = time.perf_counter()
        single = [backend.generate([r])[0] for r in reqs]
        t_single = time.perf_counter() - t0
        device = backend.describe()["device"]
    finally:
        backend.close()

    same = sum(a.text == b.text for a, b in zip(batched, single, strict=True))
    tokens = sum(g.completion_tokens for g in batched)
    return {
        "benchmark": "batching",
        "model": model,
        "device": device,
        "steering": steering,
        "requests": len(reqs),
        "max_new_tokens": max_new_tokens,
        "completion_tokens": tokens,
        "prompt_tokens_mean": round(sum(g.prompt_tokens for g in batched) / len(reqs), 1),
        "batched_s": round(t_batch, 2),
        "one_at_a_time_s": round(t_single, 2),
        "speedup": round(t_single / t_batch, 2),
        "batched_tok_s": round(tokens / t_batch, 1),
        "one_at_a_time_tok_s": round(tokens / t_single, 1),
        "identical_outputs": same,
    }

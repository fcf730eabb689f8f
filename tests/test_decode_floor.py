"""The decode benchmark's floor arithmetic on a known config: the random-weight
Llama-3.1-8B shape, whose numbers issue 13 computed by hand."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from agents.random_models import ARCHS  # noqa: E402
from orchestrator.benchmarks.decode import Ceilings, step_floor  # noqa: E402

H200 = Ceilings(copy_bytes_per_s=4.26e12, matmul_flops_per_s=790e12)


def test_floor_of_the_8b_shape_at_batch_32() -> None:
    f = step_floor(ARCHS["llama-8b"], batch=32, context=200, ceilings=H200)
    # per layer: q and o 4096x4096, k and v 4096x1024, gate/up/down 4096x14336; + LM head
    weights = 32 * (2 * 4096 * 4096 + 2 * 4096 * 1024 + 3 * 4096 * 14336) + 128256 * 4096
    assert weights == 7_504_658_432
    kv = 32 * 2 * 8 * 128 * 2 * 200 * 32  # layers, K+V, heads, dim, bf16 bytes, tokens, rows
    assert f["weight_gb"] == pytest.approx(2 * weights / 1e9)
    assert f["kv_gb"] == pytest.approx(kv / 1e9)
    assert f["floor_ms"] == pytest.approx((2 * weights + kv) / 4.26e12 * 1e3)
    assert f["floor_ms"] == pytest.approx(3.72, abs=0.005)  # the number
    assert f["bound"] == "memory"


def test_floor_turns_compute_bound_at_large_batches() -> None:
    small = step_floor(ARCHS["llama-1b"], batch=8, context=100, ceilings=H200)
    large = step_floor(ARCHS["llama-1b"], batch=4096, context=100, ceilings=H200)
    assert small["bound"] == "memory" and large["bound"] == "compute"
    assert large["floor_ms"] == pytest.approx(large["gflop"] * 1e9 / 790e12 * 1e3)

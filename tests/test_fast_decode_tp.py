"""The fast decode step on tensor-parallel models (agents.decode.tensor_parallel):
on 2 gloo ranks, with the tiny random Llama in fp32 loaded through
transformers' own tensor parallelism, the fast step on each rank's slices
(PyTorch form, no graphs; and with the Triton kernels in triton's
interpreter, which also prefill through the step) gives the same greedy tokens
as the reference loop over the same sharded model, with left padding and
steering, on a fresh and a reused bucket; every rank holds the same tokens, sampled ones included; a
model sharded by hand into plain local tensors agrees too. The decode loop
and the check live in tests/tp_fast_check.py, which a GPU run also executes
on CUDA (NCCL, Triton kernels, captured graphs). Plus the layouts the step
declines."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from agents.decode.tensor_parallel import TensorParallel, slice_model  # noqa: E402
from agents.random_models import tiny_llama  # noqa: E402
from agents.steering.hooks import decoder_layers  # noqa: E402


@pytest.fixture(scope="module")
def two_ranks() -> dict:
    from tests.tp_fast_check import run

    return run("cpu", world=2)


@pytest.mark.slow
@pytest.mark.parametrize(
    "check",
    [
        "fast_equals_reference",
        "fused_equals_reference",
        "reused_bucket_equals_reference",
        "hand_sharded_fast_equals_its_reference",
        "hand_sharded_equals_one_process",
        "ranks_identical",
        "projections_stacked",
    ],
)
def test_tensor_parallel_fast_step(two_ranks: dict, check: str) -> None:
    assert two_ranks["exit_code"] == 0, two_ranks
    assert two_ranks["checks"][check], two_ranks["ranks"][0]


@pytest.mark.slow
def test_each_rank_runs_its_own_heads(two_ranks: dict) -> None:
    """4 query and 2 kv heads over 2 ranks: 2 and 1 on each; output is real text."""
    for r in two_ranks["ranks"]:
        assert r["local_heads"] == [2, 1]
        assert all(n > 0 for _, n in r["fast"])


def _fake_tp(world: int) -> TensorParallel:
    return TensorParallel(group=None, rank=0, world=world, backend="gloo")


def test_slices_of_a_whole_model_are_not_a_split() -> None:
    """A model held whole is not a Megatron split over 2 ranks: declined, with why."""
    model = tiny_llama()
    reason = slice_model(model, decoder_layers(model), _fake_tp(2))
    assert isinstance(reason, str) and "q_proj" in reason


def test_heads_that_do_not_split_are_declined() -> None:
    model = tiny_llama()  # 4 query heads, 2 kv heads
    reason = slice_model(model, decoder_layers(model), _fake_tp(3))
    assert reason == "4 query / 2 kv heads do not split over 3 ranks"


def test_a_tensor_parallel_model_needs_a_process_group() -> None:
    from agents.decode.decoder import tensor_parallel_for

    model = tiny_llama()
    assert tensor_parallel_for(model) is None  # held whole
    model._tp_size = 2
    assert "process group" in tensor_parallel_for(model)

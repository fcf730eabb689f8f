"""The mock backend honours steering as a model would: what an agent does
depends on coefficient x strength, and nothing depends on the traits (and
steer_* is 0) when steering is off."""

from __future__ import annotations

from collections import Counter

import pytest

from agents.actions import parse
from agents.backends import BackendSpec, build_backend
from agents.config import InferenceConfig, ModelConfig, SteeringConfig
from agents.grammar import DEFAULT_LOCATIONS, action_grammar
from agents.mock_backend import MockBackend
from agents.typing import Message, Request, Traits

N = 600


def requests(traits: Traits, n: int = N) -> list[Request]:
    return [
        Request(
            prompt=(Message(role="user", content="Your goal: paint.\nWhat do you do?"),),
            traits=traits,
            max_new_tokens=48,
            seed=seed,
            kind="solo",
            grammar=action_grammar(DEFAULT_LOCATIONS),
        )
        for seed in range(n)
    ]


def shares(backend: MockBackend, traits: Traits) -> dict[str, float]:
    gens = backend.generate(requests(traits))
    counts = Counter(parse(g.text, DEFAULT_LOCATIONS).kind for g in gens)
    return {k: counts[k] / N for k in ("SAY", "WORK", "MOVE", "REST")}


def mock(*, enabled: bool = True, strength: float = 0.17) -> MockBackend:
    return MockBackend(steering=SteeringConfig(enabled=enabled, strength=strength))


@pytest.mark.parametrize("trait,verb", [("E", "SAY"), ("C", "WORK"), ("O", "MOVE"), ("N", "REST")])
def test_action_share_rises_with_coefficient_times_strength(trait: str, verb: str) -> None:
    gaps = {}
    for strength in (0.17, 0.4):
        backend = mock(strength=strength)
        high = shares(backend, Traits(**{trait: 1.0}))[verb]
        low = shares(backend, Traits(**{trait: -1.0}))[verb]
        gaps[strength] = high - low
    assert gaps[0.17] > 0.1  # visible at the default strength
    assert gaps[0.4] > gaps[0.17] + 0.05  # and larger when steered harder


@pytest.mark.parametrize("backend", [mock(enabled=False), mock(strength=0.0)], ids=["off", "zero"])
def test_no_steering_no_effect(backend: MockBackend) -> None:
    a = backend.generate(requests(Traits(E=1.0, C=-1.0, N=1.0), n=100))
    b = backend.generate(requests(Traits(E=-1.0, C=1.0, O=0.5), n=100))
    assert [g.text for g in a] == [g.text for g in b]


def test_steer_columns_record_what_was_applied() -> None:
    traits = Traits(E=0.5, N=-0.3)
    on = mock().generate(requests(traits, n=3))
    off = mock(enabled=False).generate(requests(traits, n=3))
    assert all(g.steer == traits for g in on)
    assert all(g.steer == Traits() for g in off)


def test_spec_reaches_the_mock() -> None:
    spec = BackendSpec(
        model=ModelConfig(backend="mock"),
        steering=SteeringConfig(enabled=True, strength=0.3),
        inference=InferenceConfig(constrained=False),
    )
    backend = build_backend(spec)
    assert isinstance(backend, MockBackend)
    assert backend.describe()["steering"] == {"enabled": True, "strength": 0.3}
    assert backend.malformed_rate > 0  # free text: some answers miss the grammar
    off = build_backend(BackendSpec(model=ModelConfig(backend="mock")))
    assert off.malformed_rate == 0.0  # constrained by default: every answer fits

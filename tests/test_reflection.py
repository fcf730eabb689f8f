"""Lazy reflection: parsing any text, who is due when, one batched call, and
the plan reaching the agent's next prompts through the engine."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from agents.mock_backend import MockBackend
from agents.reflection import Reflector, is_periodic_tick, parse_reflection
from agents.seeding import REFLECTION, derive_seed
from agents.typing import Generation, Request
from orchestrator.assemble import build_memory, build_reflector, engine_settings
from orchestrator.config_schema import RunConfig
from orchestrator.engine import Simulation
from orchestrator.population import build_agents
from orchestrator.world import World


class SpyBackend(MockBackend):
    """The mock backend, keeping every batch it was asked for."""

    def __init__(self) -> None:
        super().__init__(malformed_rate=0.0)
        self.batches: list[list[Request]] = []

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.batches.append(list(requests))
        return super().generate(requests)


@pytest.mark.parametrize(
    ("text", "insights", "plan", "ok"),
    [
        ("INSIGHT a\nINSIGHT b\nPLAN c", ("a", "b"), "c", True),
        (
            "- **Insight:** Ben is kind.\n2. plan: bake bread\nPLAN: later",
            ("Ben is kind.",),
            "bake bread",
            True,
        ),
        ("INSIGHT w\nINSIGHT x\nINSIGHT y\nINSIGHT z\nINSIGHT w", ("w", "x", "y"), None, True),
        ("PLANNING is hard\nYou will rest. Then walk.", (), "I will rest.", False),  # intention
        ("Insight <something you realised>\nINSIGHT: I ...\nPLAN: I will ...", (), None, False),
        ("INSIGHT " + "no. " * 12 + "\nPLAN: bake", (), "bake", True),  # a loop is dropped
        ("The weather is nice.", (), None, False),  # untagged prose is not remembered
        ("1. Plan for a new venture - big", (), None, False),  # prose, not a tag
        ("Insight: I will bake.", ("I will bake.",), "I will bake.", True),  # plan from an insight
        ("", (), None, False),
        ("INSIGHT\nPLAN", (), None, False),
    ],
)
def test_parse_reflection(text, insights, plan, ok) -> None:
    assert parse_reflection(text) == (insights, plan, ok)


def test_parse_reflection_survives_garbage() -> None:
    insights, plan, ok = parse_reflection("\x00\x1b[31m\ud800 hi\nINSIGHT \x07x\nPLAN " + "y" * 500)
    assert insights == ("x",) and plan == "y" * 200 and ok
    for weird in (None, 42, "\n" * 1000, "PLAN" * 10_000):
        parse_reflection(weird)  # type: ignore[arg-type]


def test_periodic_ticks() -> None:
    assert [t for t in range(12) if is_periodic_tick(t, 4)] == [3, 7, 11]
    assert [t for t in range(3) if is_periodic_tick(t, 1)] == [0, 1, 2]
    assert not any(is_periodic_tick(t, 0) for t in range(10))


def make_sim(**overrides) -> tuple[Simulation, SpyBackend]:
    cfg = RunConfig(
        run_id="t",
        population={"agents": 6},
        max_events_per_tick=4,
        model={"backend": "mock"},
        **overrides,
    )
    backend = SpyBackend()
    world = World(cfg.world.locations, build_agents(cfg.population, cfg.world, cfg.seed))
    memory = build_memory(cfg, backend)
    sim = Simulation(
        settings=engine_settings(cfg),
        world=world,
        backend=backend,
        memory=memory,
        reflector=build_reflector(cfg, backend, memory),
    )
    return sim, backend


def test_reflection_on_configured_ticks_and_plan_in_next_prompts() -> None:
    sim, backend = make_sim(
        optimization={"reflect_every_n_ticks": 4},
        inference={"max_new_tokens_by_action": {"reflection": 77}},
    )
    results = [sim.step() for _ in range(10)]
    reflect_ticks = [r.tick for r in results if any(row.action == "REFLECT" for row in r.rows)]
    assert reflect_ticks == [3, 7]
    assert backend.calls == 10 + 2  # one action batch per tick, one reflection batch per due tick
    assert [r.generate_calls for r in results] == [1, 1, 1, 2, 1, 1, 1, 2, 1, 1]

    tick3 = results[3]
    reflected = {row.agent_id for row in tick3.rows if row.action == "REFLECT"}
    assert reflected  # lazily: everyone who has memories; here that is all who met anyone
    assert all(row.reflected == (row.agent_id in reflected) for row in tick3.rows)
    assert not any(row.reflected for r in results if r.tick not in (3, 7) for row in r.rows)
    assert tick3.reflect_s > 0

    batch = backend.batches[4]  # the reflection batch of tick 3
    assert all(req.kind == "reflection" and req.max_new_tokens == 77 for req in batch)
    agents = {a.name: a for a in sim.world.agents}
    for req in batch:
        name = req.prompt[0].content.split(",", 1)[0].removeprefix("You are ")
        assert req.seed == derive_seed(sim.settings.seed, REFLECTION, 3, agents[name].index)

    # The plan of tick 3 is in every action prompt of a reflected agent until tick 7.
    plans = {}
    for row in (r for r in tick3.rows if r.action == "REFLECT"):
        plans[row.agent_name] = row.content.split(" | ")[0].removeprefix("PLAN ")
        assert plans[row.agent_name]
    later = [req for b in backend.batches[5:9] for req in b]  # ticks 4, 5, 6, 7 (actions)
    assert later and not any(req.kind == "reflection" for req in later)
    for req in later:
        name = req.prompt[0].content.split(",", 1)[0].removeprefix("You are ")
        if name in plans:
            assert f"Your current plan: {plans[name]}" in req.prompt[0].content
        else:
            assert "Your current plan" not in req.prompt[0].content
    assert any(req.prompt[0].content.split(",", 1)[0][8:] in plans for req in later)


def test_insights_become_memories() -> None:
    sim, _ = make_sim(optimization={"reflect_every_n_ticks": 2})
    for _ in range(2):
        sim.step()
    ids = [a.id for a in sim.world.agents if a.plan]
    assert ids
    recent = sim.memory.recent(ids[0], 20)
    assert any("I feel" in m for m in recent)  # the mock's INSIGHT lines
    assert sim.memory.last_reflection(ids[0]) == 1


def test_lazy_agents_without_new_memories_do_not_reflect() -> None:
    sim, backend = make_sim(optimization={"reflect_every_n_ticks": 1})
    reflector: Reflector = sim.reflector
    people = sim.world.agents
    assert reflector.due(people, 0) == []  # nobody has memories yet
    sim.step()
    due_next = {p.id for p in reflector.due(people, 1)}
    assert due_next == set()  # all who had memories reflected at tick 0; nothing new since
    reflector.memory.add(people[0].id, 1, "Something happened.", "observation")
    assert [p.id for p in reflector.due(people, 1)] == [people[0].id]


def test_importance_threshold_trigger() -> None:
    sim, _ = make_sim(
        optimization={"reflect_every_n_ticks": 0}, memory={"reflection_threshold": 15.0}
    )
    assert sim.reflector is not None
    ids = [a.id for a in sim.world.agents]
    reflected_any = False
    for _ in range(12):
        # Queued memories are rated at the end of a tick, so the trigger of
        # tick t sees the importance stored up to tick t-1: read it first.
        _, importance = sim.memory.reflection_stats(ids)
        over = {i for i, imp in zip(ids, importance.tolist(), strict=True) if imp >= 15.0}
        result = sim.step()
        reflected = {row.agent_id for row in result.rows if row.action == "REFLECT"}
        assert reflected == over, result.tick  # exactly those past the threshold
        reflected_any |= bool(reflected)
    assert reflected_any  # someone lived through enough to reflect


def test_no_reflection_when_off() -> None:
    sim, backend = make_sim(optimization={"reflect_every_n_ticks": 0})
    assert sim.reflector is None
    for _ in range(5):
        sim.step()
    assert backend.calls == 5

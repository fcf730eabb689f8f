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


@pytest.mark.parametrize("with_actions", [True, False])
def test_reflection_on_configured_ticks_and_plan_in_next_prompts(with_actions: bool) -> None:
    sim, backend = make_sim(
        optimization={"reflect_every_n_ticks": 4, "reflect_with_actions": with_actions},
        inference={"max_new_tokens_by_action": {"reflection": 77}},
    )
    results = [sim.step() for _ in range(10)]
    # due after ticks 3 and 7; riding in the next tick's batch, or a second batch of the same tick
    first, second = (4, 8) if with_actions else (3, 7)
    reflect_ticks = [r.tick for r in results if any(row.action == "REFLECT" for row in r.rows)]
    assert reflect_ticks == [first, second]
    second_decode = [int(not with_actions and r.tick in (3, 7)) for r in results]
    assert [r.generate_calls for r in results] == [1 + x for x in second_decode]
    assert backend.calls == 10 + sum(second_decode)

    tick = results[first]
    reflected = {row.agent_id for row in tick.rows if row.action == "REFLECT"}
    assert reflected  # lazily: everyone who has memories; here that is all who met anyone
    assert all(row.reflected == (row.agent_id in reflected) for row in tick.rows)
    assert not any(
        row.reflected for r in results if r.tick not in (first, second) for row in r.rows
    )
    assert tick.reflect_s > 0

    if with_actions:  # beside tick 4's actions, in its one batch
        batch = [req for req in backend.batches[4] if req.kind == "reflection"]
        assert batch and len(batch) < len(backend.batches[4])
        assert all(req.kind != "reflection" for req in backend.batches[4][: -len(batch)])
    else:  # the second batch of tick 3
        batch = backend.batches[4]
        assert all(req.kind == "reflection" for req in batch)
    assert all(req.max_new_tokens == 77 for req in batch)
    agents = {a.name: a for a in sim.world.agents}
    for req in batch:  # both reflect on tick 3
        name = req.prompt[0].content.split(",", 1)[0].removeprefix("You are ")
        assert req.seed == derive_seed(sim.settings.seed, REFLECTION, 3, agents[name].index)
        assert "Time step 3." in req.prompt[1].content

    # The plan is in every action prompt of a reflected agent from the next tick
    # until the next reflection's plan takes over.
    plans = {}
    for row in (r for r in tick.rows if r.action == "REFLECT"):
        plans[row.agent_name] = row.content.split(" | ")[0].removeprefix("PLAN ")
        assert plans[row.agent_name]
    later = [  # the actions of ticks first+1 .. second
        req for b in backend.batches[5:9] for req in b if req.kind != "reflection"
    ]
    for req in later:
        name = req.prompt[0].content.split(",", 1)[0].removeprefix("You are ")
        if name in plans:
            assert f"Your current plan: {plans[name]}" in req.prompt[0].content
        else:
            assert "Your current plan" not in req.prompt[0].content
    assert any(req.prompt[0].content.split(",", 1)[0][8:] in plans for req in later)


@pytest.mark.parametrize("with_actions", [True, False])
def test_insights_become_memories(with_actions: bool) -> None:
    sim, _ = make_sim(
        optimization={"reflect_every_n_ticks": 2, "reflect_with_actions": with_actions}
    )
    for _ in range(3 if with_actions else 2):  # due after tick 1: rides in tick 2
        sim.step()
    ids = [a.id for a in sim.world.agents if a.plan]
    assert ids
    recent = sim.memory.recent(ids[0], 20)
    assert any("I feel" in m for m in recent)  # the mock's INSIGHT lines
    assert sim.memory.last_reflection(ids[0]) == 1  # a reflection on tick 1 either way


def test_reflections_riding_with_actions_read_the_previous_tick() -> None:
    sim, backend = make_sim(optimization={"reflect_every_n_ticks": 1, "reflect_with_actions": True})
    people = sim.world.agents
    sim.step()  # tick 0: nobody is due before it
    assert [req.kind for req in backend.batches[0]].count("reflection") == 0
    before = {p.id: list(sim.memory.recent(p.id, 12)) for p in people}
    result = sim.step()  # tick 1: the reflections on tick 0 ride along
    riding = [req for req in backend.batches[1] if req.kind == "reflection"]
    reflected = [row.agent_id for row in result.rows if row.action == "REFLECT"]
    assert riding and len(riding) == len(reflected)
    for req, agent_id in zip(riding, reflected, strict=True):
        shown = req.prompt[1].content
        assert all(f"- {m}" in shown for m in before[agent_id])  # tick 0's memories, no later
        assert sim.memory.last_reflection(agent_id) == 0
    # Their insights are memories of tick 1, whose batch made them, but no new
    # experience: they make nobody due again; tick 1's own memories do.
    insights = [m for m in result.memories if m.kind == "reflection"]
    assert insights and all(m.tick == 1 for m in insights)
    lived = {m.agent_id for m in result.memories if m.kind != "reflection"}
    lived |= {row.agent_id for row in result.rows if row.action != "REFLECT"}  # refreshed ones too
    counts, _ = sim.memory.reflection_stats([p.id for p in people])
    assert {p.id for p, n in zip(people, counts.tolist(), strict=True) if n > 0} == lived


def test_lazy_agents_without_new_memories_do_not_reflect() -> None:
    sim, backend = make_sim(
        optimization={"reflect_every_n_ticks": 1, "reflect_with_actions": False}
    )
    reflector: Reflector = sim.reflector
    people = sim.world.agents
    assert reflector.due(people, 0) == []  # nobody has memories yet
    sim.step()
    due_next = {p.id for p in reflector.due(people, 1)}
    assert due_next == set()  # all who had memories reflected at tick 0; nothing new since
    reflector.memory.add(people[0].id, 1, "Something happened.", "observation")
    assert [p.id for p in reflector.due(people, 1)] == [people[0].id]


@pytest.mark.parametrize("with_actions", [True, False])
def test_importance_threshold_trigger(with_actions: bool) -> None:
    sim, _ = make_sim(
        optimization={"reflect_every_n_ticks": 0, "reflect_with_actions": with_actions},
        memory={"reflection_threshold": 15.0},
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

"""Event planning: caps, grouping, determinism."""

from __future__ import annotations

from agents.typing import Traits
from orchestrator.scheduler import plan_events
from orchestrator.world import AgentState, World


def _world(n: int, locations=("home", "cafe", "park")) -> World:
    agents = [
        AgentState(
            id=f"agent-{i:03d}",
            index=i,
            name=f"A{i}",
            age=30,
            home=locations[i % len(locations)],
            location=locations[i % len(locations)],
            goal="g",
            traits=Traits(),
        )
        for i in range(n)
    ]
    return World(list(locations), agents)


def test_cap_and_every_agent_at_most_once():
    world = _world(40)
    for cap in (1, 5, 12, 100):
        events = plan_events(world, tick=3, seed=7, max_events=cap, max_group=3)
        assert len(events) == min(cap, len(plan_events(world, 3, 7, 10_000, 3)))
        ids = [a for e in events for a in e.agent_ids]
        assert len(ids) == len(set(ids))
        assert [e.event_id for e in events] == list(range(len(events)))


def test_groups_are_co_located_and_sized():
    world = _world(10)
    events = plan_events(world, tick=0, seed=1, max_events=100, max_group=3)
    assert sum(len(e.agent_ids) for e in events) == 10  # uncapped: everybody acts
    for e in events:
        assert 1 <= len(e.agent_ids) <= 3
        assert {world.agent(a).location for a in e.agent_ids} == {e.location}
        assert e.kind == ("encounter" if len(e.agent_ids) > 1 else "solo")


def test_deterministic_per_seed_and_tick():
    world = _world(30)
    a = plan_events(world, tick=4, seed=11, max_events=6, max_group=3)
    assert a == plan_events(world, tick=4, seed=11, max_events=6, max_group=3)
    assert a != plan_events(world, tick=5, seed=11, max_events=6, max_group=3)
    assert a != plan_events(world, tick=4, seed=12, max_events=6, max_group=3)


def test_lone_agent_gets_a_solo_event():
    world = _world(1)
    (event,) = plan_events(world, tick=0, seed=0, max_events=5, max_group=3)
    assert event.kind == "solo" and event.agent_ids == ("agent-000",)

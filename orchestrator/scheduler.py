"""Forms a tick's events: co-located agents meet in small groups, a lone
agent acts solo; the order is drawn from the seeded RNG and the list is
capped at max_events_per_tick."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from agents.seeding import SCHEDULER, rng_for
from orchestrator.world import World


@dataclass(frozen=True, kw_only=True)
class Event:
    event_id: int  # position in the tick's order
    tick: int
    location: str
    agent_ids: tuple[str, ...]
    kind: Literal["solo", "encounter"]


def plan_events(world: World, tick: int, seed: int, max_events: int, max_group: int) -> list[Event]:
    rng = rng_for(seed, SCHEDULER, tick)
    groups: list[tuple[str, tuple[str, ...]]] = []
    for location, present in world.occupants().items():
        ids = [a.id for a in present]
        order = rng.permutation(len(ids)) if ids else []
        shuffled = [ids[j] for j in order]
        for start in range(0, len(shuffled), max_group):
            groups.append((location, tuple(shuffled[start : start + max_group])))
    order = rng.permutation(len(groups)) if groups else []
    chosen = [groups[j] for j in order][:max_events]
    return [
        Event(
            event_id=k,
            tick=tick,
            location=loc,
            agent_ids=ids,
            kind="encounter" if len(ids) > 1 else "solo",
        )
        for k, (loc, ids) in enumerate(chosen)
    ]

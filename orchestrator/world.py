"""The simulated town: locations, the agents' bodily state (where they are,
what they want) and the clock. Knows nothing about models or prompts."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from agents.typing import Traits


@dataclass(frozen=True, kw_only=True)
class AgentState:
    id: str  # "agent-007"
    index: int
    name: str
    age: int
    home: str
    location: str
    goal: str
    traits: Traits
    plan: str | None = None  # set by reflection, used in prompts until the next one

    def to_dict(self) -> dict[str, Any]:
        # field by field: dataclasses.asdict deep-copies and costs ms per tick at 100 agents
        d = {f.name: getattr(self, f.name) for f in fields(self)}
        d["traits"] = list(self.traits.as_tuple())
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentState:
        return cls(**{**d, "traits": Traits.from_sequence(d["traits"])})


class World:
    """Locations and agents; mutated only through move/set_plan."""

    def __init__(self, locations: list[str], agents: list[AgentState]) -> None:
        self.locations: tuple[str, ...] = tuple(locations)
        self._agents: dict[str, AgentState] = {a.id: a for a in agents}
        self.tick = 0  # the next tick to run

    @property
    def agents(self) -> list[AgentState]:
        return list(self._agents.values())

    def agent(self, agent_id: str) -> AgentState:
        return self._agents[agent_id]

    def occupants(self) -> dict[str, list[AgentState]]:
        """Agents per location, in agent order; every location present."""
        out: dict[str, list[AgentState]] = {loc: [] for loc in self.locations}
        for a in self._agents.values():
            out[a.location].append(a)
        return out

    def move(self, agent_id: str, location: str) -> None:
        if location not in self.locations:
            raise ValueError(f"unknown location {location!r}")
        self._agents[agent_id] = replace(self._agents[agent_id], location=location)

    def set_plan(self, agent_id: str, plan: str | None) -> None:
        self._agents[agent_id] = replace(self._agents[agent_id], plan=plan)

    def get_state(self) -> dict[str, Any]:
        return {
            "tick": self.tick,
            "locations": list(self.locations),
            "agents": [a.to_dict() for a in self._agents.values()],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> World:
        """get_state's inverse; ValueError (or the KeyError, TypeError of a missing
        or mistyped part) when the state cannot be a world this code made: its
        checksum only says that it was not cut short."""
        agents = [AgentState.from_dict(a) for a in state["agents"]]
        world = cls(state["locations"], agents)
        world.tick = int(state["tick"])
        places = set(world.locations)
        if not all(isinstance(x, str) for x in places) or len(places) != len(world.locations):
            raise ValueError("the locations are not distinct names")
        if len(world._agents) != len(agents) or world.tick < 0:
            raise ValueError("an agent id repeats, or the tick is negative")
        for a in agents:  # the scheduler groups agents by location: an unknown one raised
            if a.location not in places or a.home not in places:
                raise ValueError(f"agent {a.id!r} is at or lives in an unknown location")
        return world

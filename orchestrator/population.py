"""Creates the agents of a run from the population section and the run seed.
Agent i's draws come from its own seeded stream, so adding agents does not
change the existing ones."""

from __future__ import annotations

from agents.seeding import POPULATION, rng_for
from agents.typing import TRAITS, Traits
from orchestrator.config_schema import Persona, PopulationConfig, WorldConfig
from orchestrator.world import AgentState

FIRST_NAMES = (
    "Ada Ben Cleo Dev Elif Finn Gia Hugo Iris Jonas Kira Leo Mila Noor Omar Pia Quinn Rosa "
    "Sami Tara Ugo Vera Wes Xena Yusuf Zoe Alba Bruno Chen Dara Emil Faye Gus Hana Ivo Jade "
    "Kofi Lena Milo Nia Otto Pearl Rami Sana Theo Uma Viktor Wren Yara Zane"
).split()


def build_agents(pop: PopulationConfig, world: WorldConfig, seed: int) -> list[AgentState]:
    personas = pop.traits if isinstance(pop.traits, list) else []
    agents = []
    for i in range(pop.agents):
        persona = personas[i] if i < len(personas) else None
        agents.append(_agent(i, persona, pop.trait_range, world, seed))
    return agents


def _agent(
    i: int, persona: Persona | None, trait_range: float, world: WorldConfig, seed: int
) -> AgentState:
    rng = rng_for(seed, POPULATION, i)
    # Draw everything in a fixed order whatever the persona sets, so a persona
    # for agent i does not shift agent i's other draws.
    name = FIRST_NAMES[i % len(FIRST_NAMES)] + (
        "" if i < len(FIRST_NAMES) else f"-{i // len(FIRST_NAMES)}"
    )
    age = int(rng.integers(18, 81))
    home = world.locations[int(rng.integers(len(world.locations)))]
    goal = world.goals[int(rng.integers(len(world.goals)))]
    coefs = [round(float(v), 2) for v in rng.uniform(-trait_range, trait_range, size=len(TRAITS))]
    if persona is not None:
        name = persona.name
        age = persona.age
        home = persona.home or home
        goal = persona.goal or goal
        coefs = [getattr(persona, t) for t in TRAITS]
    return AgentState(
        id=f"agent-{i:03d}",
        index=i,
        name=name,
        age=age,
        home=home,
        location=home,
        goal=goal,
        traits=Traits.from_sequence(coefs),
    )

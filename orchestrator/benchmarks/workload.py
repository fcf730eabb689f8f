"""The requests of one busy tick, as the engine would build them: real agent
prompts (names, places, goals, companions, memories, random traits), seeded,
so that every benchmark and the batch-equivalence tests generate from the same
work. Knows nothing about backends or timing."""

from __future__ import annotations

import random

from agents.prompting import action_request
from agents.typing import Request, Traits

NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea"]
PLACES = ["home", "cafe", "park", "community_center", "library", "market"]
GOALS = ["open a small bakery", "finish writing a novel", "make new friends", "learn to paint"]


def tick_requests(n: int, max_new_tokens: int, seed: int = 0) -> list[Request]:
    """`n` action requests of tick 3, a mix of encounters and solo decisions."""
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        name = NAMES[i % len(NAMES)]
        loc = rng.choice(PLACES)
        mates = rng.sample([x for x in NAMES if x != name], rng.randint(0, 2))
        reqs.append(
            action_request(
                name=name,
                age=rng.randint(20, 70),
                home=rng.choice(PLACES),
                goal=rng.choice(GOALS),
                plan=None,
                places=PLACES,
                tick=3,
                location=loc,
                companions=mates,
                memories=[f"Talked with {m} at the {loc}." for m in mates],
                traits=Traits.from_sequence([rng.uniform(-1, 1) for _ in range(5)]),
                max_new_tokens=max_new_tokens,
                seed=seed * 1000 + i,
                kind="encounter" if mates else "solo",
            )
        )
    return reqs

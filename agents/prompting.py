"""Builds the chat prompt of one agent for one event. The prompt never names
the agent's personality: that is the steering's job, and naming it would
contaminate the verification of steering."""

from __future__ import annotations

from collections.abc import Sequence

from agents.grammar import action_grammar
from agents.typing import Message, Request, RequestKind, Traits


def persona_prompt(*, name: str, age: int, home: str, goal: str, plan: str | None) -> str:
    """Who the agent is and what it is after: the system turn without the
    action instructions (an interview asks it other things)."""
    lines = [
        f"You are {name}, a {age}-year-old who lives in a small town; your home is the {home}.",
        f"Your goal: {goal}.",
    ]
    if plan:
        lines.append(f"Your current plan: {plan}")
    return "\n".join(lines)


def system_prompt(
    *, name: str, age: int, home: str, goal: str, plan: str | None, places: Sequence[str]
) -> str:
    persona = persona_prompt(name=name, age=age, home=home, goal=goal, plan=plan)
    return persona + "\n" + action_grammar(tuple(places)).help_text()


def situation_prompt(
    *, tick: int, location: str, companions: Sequence[str], memories: Sequence[str]
) -> str:
    lines = [f"Time step {tick}. You are at the {location.replace('_', ' ')}."]
    if companions:
        lines.append(f"With you: {', '.join(companions)}.")
    else:
        lines.append("You are alone here.")
    if memories:
        lines.append("You remember:")
        lines.extend(f"- {m}" for m in memories)
    lines.append("What do you do?")
    return "\n".join(lines)


def action_request(
    *,
    name: str,
    age: int,
    home: str,
    goal: str,
    plan: str | None,
    places: Sequence[str],
    tick: int,
    location: str,
    companions: Sequence[str],
    memories: Sequence[str],
    traits: Traits,
    max_new_tokens: int,
    seed: int,
    kind: RequestKind,
) -> Request:
    return Request(
        prompt=(
            Message(
                role="system",
                content=system_prompt(
                    name=name, age=age, home=home, goal=goal, plan=plan, places=places
                ),
            ),
            Message(
                role="user",
                content=situation_prompt(
                    tick=tick, location=location, companions=companions, memories=memories
                ),
            ),
        ),
        traits=traits,
        max_new_tokens=max_new_tokens,
        seed=seed,
        kind=kind,
        grammar=action_grammar(tuple(places)),
    )

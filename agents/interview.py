"""An agent interviewed in its own context: the chat an interview puts to an
agent (its persona with goal and plan as the system turn; the memories it
recalls and the question as the user turn), the batched requests for free
answers, and the statement scorer that fits a backend.

Knows nothing about runs, checkpoints or dumps: the caller (orchestrator
.experiments.interview) says who the agent is and what it remembers."""

from __future__ import annotations

from dataclasses import dataclass

from agents.seeding import derive_seed
from agents.typing import Backend, Message, Request, StatementScorer, Traits

INTERVIEW = 5  # seeding stream of interview answers (agents.seeding: never reuse)


@dataclass(frozen=True, kw_only=True)
class AgentContext:
    """Where an agent stands when it is interviewed."""

    agent_id: str
    index: int  # the agent's position in the population (its seed stream)
    name: str
    persona: str  # agents.prompting.persona_prompt: identity, goal, plan
    memories: tuple[str, ...]  # what it recalls, best first
    traits: Traits  # its steering coefficients (applied as the run applied them)


def interview_messages(ctx: AgentContext, question: str) -> tuple[Message, ...]:
    """The chat for one question: persona as system turn; memories, then the question."""
    lines = []
    if ctx.memories:
        lines.append("You remember:")
        lines.extend(f"- {m}" for m in ctx.memories)
        lines.append("")
    lines.append(question)
    return (
        Message(role="system", content=ctx.persona),
        Message(role="user", content="\n".join(lines)),
    )


def answer_request(
    ctx: AgentContext,
    question: str,
    *,
    question_index: int,
    run_seed: int,
    tick: int,
    max_new_tokens: int,
) -> Request:
    """A free-text request for one (agent, question); the caller sends all of
    them in ONE batched generate. Seeded from (run seed, INTERVIEW, tick,
    agent, question), so an answer does not depend on its batch mates."""
    return Request(
        prompt=interview_messages(ctx, question),
        traits=ctx.traits,
        max_new_tokens=max_new_tokens,
        seed=derive_seed(run_seed, INTERVIEW, tick, ctx.index, question_index),
        kind="interview",
        grammar=None,
    )


def statement_scorer(backend: Backend) -> StatementScorer:
    """The statement-likelihood measure for this backend: the backend itself
    where it has one (the mock), else the model's own (an HF backend)."""
    if isinstance(backend, StatementScorer):
        return backend
    model = getattr(backend, "model", None)
    tokenizer = getattr(backend, "tokenizer", None)
    if model is None or tokenizer is None:
        raise TypeError(f"{type(backend).__name__} cannot score statements")
    from agents.steering.statements import HFStatementScorer  # torch loads here

    return HFStatementScorer(model, tokenizer, getattr(backend, "hooks", None))

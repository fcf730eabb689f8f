"""Lazy reflection (after Park et al. 2023): every `reflect_every_n_ticks`
ticks, and optionally when the importance an agent has lived through since it
last reflected passes a threshold, each agent that has new memories looks at
its recent ones and writes a PLAN line and a few INSIGHT lines (the shape is
agents.grammar.ReflectionGrammar's; with constrained decoding the answer
always has it, so the plan is always a plan). All agents due
in a tick reflect in ONE batched generate. Insights become reflection memories;
the plan goes back to the caller, which keeps it in the world so that the
agent's next prompts show it.

This module owns who is due, the reflection prompt and the parsing of its
answer (which never raises: a small model's output can be anything). It knows
nothing about the world, the dumps or the tick loop.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass

from agents.actions import clean_text
from agents.grammar import MAX_INSIGHTS, MAX_LINE_CHARS, ReflectionGrammar
from agents.seeding import REFLECTION, derive_seed
from agents.typing import Backend, Generation, Message, Person, ReflectiveMemory, Request

log = logging.getLogger(__name__)

GRAMMAR = ReflectionGrammar(max_insights=MAX_INSIGHTS)
RECENT_MEMORIES = 12  # memories shown in a reflection prompt

_INTENT_RE = re.compile(
    r"^(?:i will|i'll|i am going to|i'm going to|i plan to|i am planning to|i'm planning to"
    r"|you will|tomorrow i)\b",
    re.IGNORECASE,
)
_SECOND_PERSON_RE = re.compile(r"^you will\b", re.IGNORECASE)
_SENTENCE_RE = re.compile(r"^.+?[.!?](?=\s|$)")
_TAG_RE = re.compile(
    r"^[\s>*#\-\d.)]*(?:\*\*)?(INSIGHTS?|PLAN)\b(?:\*\*)?\s*([:\-.]?)\s*(.*)$", re.IGNORECASE
)


@dataclass(frozen=True, kw_only=True)
class Reflection:
    """One agent's reflection of one tick."""

    agent_id: str
    insights: tuple[str, ...]
    plan: str | None  # None: keep the previous plan
    parse_ok: bool  # the answer followed the INSIGHT/PLAN format
    generation: Generation
    prompt: tuple[Message, ...] = ()  # what the model was shown


@dataclass(frozen=True, kw_only=True)
class ReflectionBatch:
    """The reflection requests of the agents due after `tick`, made before they
    are generated: a caller can send them in a batch of its own (the tick
    engine sends them with the next tick's actions) and hand the answers to
    Reflector.absorb."""

    people: tuple[Person, ...]
    requests: tuple[Request, ...]
    tick: int  # the tick reflected on: memories up to it; the agents are marked reflected at it
    made_at: int  # the tick whose batch generates them: their insights are its memories


def is_periodic_tick(tick: int, every_n: int) -> bool:
    """Ticks every_n-1, 2*every_n-1, ...: after every full every_n ticks of experience."""
    return every_n > 0 and (tick + 1) % every_n == 0


def clean_line(text: str) -> str:
    """One line of valid text, no control characters, at most MAX_LINE_CHARS."""
    return clean_text(text, MAX_LINE_CHARS).rstrip()


def _usable(body: str) -> bool:
    """Not an echoed placeholder ("<what you will do next>", "...") and not a
    degenerate loop ("no. no. no. ..."): small models produce both."""
    if "<" in body and ">" in body or not any(ch.isalpha() for ch in body):
        return False
    if body.endswith(("...", "…")) and len(body.rstrip(".… ").split()) <= 2:
        return False  # the prompt's own "I will ..." echoed back
    words = body.lower().split()
    return len(words) < 10 or len(set(words)) >= 0.4 * len(words)


def _first_sentence(text: str) -> str:
    m = _SENTENCE_RE.match(text)
    return m.group(0).strip() if m else text


def parse_reflection(text: str) -> tuple[tuple[str, ...], str | None, bool]:
    """(insights, plan, parse_ok) from a reflection answer; never raises.

    Lines tagged INSIGHT or PLAN count (upper case, or any case with a colon
    or dash; after a bullet or bold markers); the first usable PLAN wins (or,
    failing one, an insight that states an intention) and at most MAX_INSIGHTS
    distinct insights are kept; placeholders and degenerate loops are dropped.
    parse_ok says the answer followed that format. An answer without tags
    yields no insights (untagged text is too often noise to remember), but its
    first sentence that states an intention ("I will ...", "You will ...")
    becomes the plan: small models often answer that way."""
    insights: list[str] = []
    plan: str | None = None
    intention: str | None = None
    for raw in str(text or "").splitlines():
        m = _TAG_RE.match(raw)
        if m is not None and not m.group(2) and not m.group(1).isupper():
            m = None  # "Plan for the week ..." is prose, "PLAN ..." or "Plan: ..." a tag
        if m is None:
            line = clean_line(raw)
            if intention is None and _INTENT_RE.match(line) and _usable(line):
                intention = _first_sentence(line)
            continue
        body = clean_line(m.group(3).strip(" *"))
        if not body or not _usable(body):
            continue
        if m.group(1).upper() == "PLAN":
            plan = plan or body
        elif body not in insights and len(insights) < MAX_INSIGHTS:
            insights.append(body)
    if insights and plan is None:  # "INSIGHT: I will ..." is a plan by another name
        plan = next((i for i in insights if _INTENT_RE.match(i)), None)
    if insights or plan:
        return tuple(insights), plan, True
    if intention:
        return (), _SECOND_PERSON_RE.sub("I will", intention, count=1), False
    return (), None, False


def reflection_prompt(person: Person, memories: Sequence[str], tick: int) -> tuple[Message, ...]:
    """The chat prompt of one reflection. Like the action prompt, it never names
    the personality: steering alone carries it."""
    system = [
        f"You are {person.name}, a {person.age}-year-old who lives in a small town.",
        f"Your goal: {person.goal}.",
    ]
    if person.plan:
        system.append(f"Your current plan: {person.plan}")
    user = [f"Time step {tick}. Your recent memories:"]
    user.extend(f"- {m}" for m in memories)
    if not memories:
        user.append("- (nothing notable)")
    user += ["What will you do next, and what do these memories tell you?", GRAMMAR.help_text()]
    return (
        Message(role="system", content="\n".join(system)),
        Message(role="user", content="\n".join(user)),
    )


class Reflector:
    """Decides who is due and runs one batched reflection for them."""

    def __init__(
        self,
        *,
        backend: Backend,
        memory: ReflectiveMemory,
        run_seed: int,
        every_n_ticks: int,
        max_new_tokens: int,
        importance_threshold: float | None = None,
        recent_memories: int = RECENT_MEMORIES,
    ) -> None:
        self.backend, self.memory = backend, memory
        self.run_seed = run_seed
        self.every_n, self.threshold = every_n_ticks, importance_threshold
        self.max_new_tokens, self.recent_memories = max_new_tokens, recent_memories

    def due(self, people: Sequence[Person], tick: int) -> list[Person]:
        """Those who reflect this tick: anyone with new memories since their last
        reflection, on a periodic tick or past the importance threshold."""
        periodic = is_periodic_tick(tick, self.every_n)
        if not periodic and self.threshold is None:
            return []
        counts, importance = self.memory.reflection_stats([p.id for p in people])
        due = counts > 0
        if not periodic:
            due &= importance >= self.threshold
        return [p for p, d in zip(people, due.tolist(), strict=True) if d]

    def prepare(
        self, people: Sequence[Person], tick: int, made_at: int | None = None
    ) -> ReflectionBatch:
        """The requests of everyone in `people` reflecting on their memories up
        to `tick` (those stored or queued now), to be generated in tick
        `made_at`'s batch (default: `tick`)."""
        requests = tuple(
            Request(
                prompt=reflection_prompt(p, self.memory.recent(p.id, self.recent_memories), tick),
                traits=p.traits,
                max_new_tokens=self.max_new_tokens,
                seed=derive_seed(self.run_seed, REFLECTION, tick, p.index),
                kind="reflection",
                grammar=GRAMMAR,
            )
            for p in people
        )
        made = tick if made_at is None else made_at
        return ReflectionBatch(people=tuple(people), requests=requests, tick=tick, made_at=made)

    def absorb(self, batch: ReflectionBatch, gens: Sequence[Generation]) -> list[Reflection]:
        """The answers to `batch`: stores the insights as reflection memories of
        tick `made_at` (queued: the caller's end_tick stores them) and marks
        each agent reflected at `tick`. Returns the reflections in `people`
        order."""
        if len(gens) != len(batch.requests):
            raise RuntimeError(
                f"backend returned {len(gens)} generations for {len(batch.requests)} reflections"
            )
        out = []
        for p, gen, req in zip(batch.people, gens, batch.requests, strict=True):
            insights, plan, ok = parse_reflection(gen.text)
            for insight in insights:
                self.memory.add(p.id, batch.made_at, insight, "reflection")
            self.memory.mark_reflected(p.id, batch.tick)
            out.append(
                Reflection(
                    agent_id=p.id,
                    insights=insights,
                    plan=plan,
                    parse_ok=ok,
                    generation=gen,
                    prompt=req.prompt,
                )
            )
        failed = sum(not r.parse_ok for r in out)
        if failed:
            log.debug(
                "tick %d: %d of %d reflections had no INSIGHT/PLAN line",
                batch.tick,
                failed,
                len(out),
            )
        return out

    def reflect(self, people: Sequence[Person], tick: int) -> list[Reflection]:
        """prepare, one generate for everyone in `people`, absorb."""
        if not people:
            return []
        batch = self.prepare(people, tick)
        return self.absorb(batch, self.backend.generate(list(batch.requests)))

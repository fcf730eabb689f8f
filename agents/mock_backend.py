"""A language backend without a model: deterministic per request seed,
instant, and honest about steering. Its answers are sentences of the
request's grammar (agents.grammar): actions for the world's locations, PLAN
and INSIGHT lines for a reflection.

Steering works as in a real backend, through coefficient x strength: with
steering on, extraversion raises SAY, conscientiousness WORK, openness MOVE
and neuroticism REST (ACTION_GAIN log-odds per unit of coefficient x
strength), and the traits colour what is said; with steering off, or at
strength 0, every agent behaves alike and the recorded steer_* are 0. It reads
the goal and the companions from the prompt, as a model would. Without a
grammar constraint (inference.constrained: false) a small share of answers is
malformed, like a small model's, so that the parser's safety net is exercised."""

from __future__ import annotations

import hashlib
import math
import random
import re
import time
from collections.abc import Sequence

import numpy as np

from agents.config import SteeringConfig
from agents.grammar import ActionGrammar, ReflectionGrammar
from agents.paths import existing_file
from agents.typing import TRAITS, Generation, KeyedStatement, Message, Request, Traits

# what a default config builds its vectors from
_DEFAULT_BUILD = (SteeringConfig().pairs, SteeringConfig().method)

_GOAL_RE = re.compile(r"^Your goal: (.+?)\.?$", re.MULTILINE)
_WITH_RE = re.compile(r"^With you: (.+?)\.$", re.MULTILINE)

# Log-odds per unit of coefficient x strength: at the default strength 0.17
# a trait at +-1 moves its action's log-odds by about +-1.7.
ACTION_GAIN = 10.0
MALFORMED_RATE = 0.03  # share of malformed answers without a grammar constraint
_FREE = ReflectionGrammar()

_WARM = [
    "It's so good to see you!",
    "How can I help with your plans?",
    "You did a great job yesterday.",
    "Let's do this together.",
    "I brought some extra coffee for everyone.",
]
_COLD = [
    "I'd rather be left alone.",
    "That's not my problem.",
    "Frankly, your idea won't work.",
    "Don't expect me to help.",
]
_OPEN = [
    "What if we tried something completely new?",
    "I read about an odd idea last night.",
    "Imagine this place covered in murals!",
]
_ANXIOUS = [
    "I'm worried it will all go wrong.",
    "I couldn't sleep last night, thinking about it.",
    "Do you think people are upset with me?",
]
_CALM = ["Things are fine, really.", "No need to hurry."]
_SMALL_TALK = ["Nice weather today.", "The market was busy this morning.", "Have you eaten yet?"]


# Statement scores (steersim interview): the log-probability gained per unit of
# tanh(coefficient x strength x ACTION_GAIN) by a statement keyed to that pole.
STATEMENT_GAIN = 1.0
_MEMORY_RE = re.compile(r"^- (.+)$", re.MULTILINE)


def _hash01(text: str) -> float:
    """A stable number in [0, 1) from text (the same in every process)."""
    digest = hashlib.blake2b(text.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


def _unit(x: float) -> float:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) / 2.0


class MockBackend:
    name = "mock"

    def __init__(
        self,
        *,
        steering: SteeringConfig | None = None,
        constrained: bool = True,
        malformed_rate: float | None = None,
    ) -> None:
        steering = steering if steering is not None else SteeringConfig()
        if steering.enabled and steering.vectors is not None:
            # never read, but refused as the HF backend refuses it: a config that runs
            # on the mock must not fail only once a model has loaded
            existing_file(steering.vectors, "steering.vectors")
        elif steering.enabled and (steering.pairs, steering.method) != _DEFAULT_BUILD:
            # the same for the pairs the HF backend would build from (the defaults ship
            # and are valid); imported here because agents.steering loads torch, which
            # the default mock run never needs
            from agents.steering.data import config_pairs

            config_pairs(steering.pairs, steering.method)
        self.steering_enabled = steering.enabled
        self.strength = steering.strength if steering.enabled else 0.0
        self.constrained = constrained
        self.malformed_rate = (
            malformed_rate if malformed_rate is not None else 0.0 if constrained else MALFORMED_RATE
        )
        self.calls = 0  # generate() calls, for tests that check batching

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.calls += 1
        out = []
        for req in requests:
            start = time.perf_counter()
            text = self._respond(req)
            words = text.split(" ")
            if len(words) > req.max_new_tokens:  # honour the token budget (a word a token)
                text = " ".join(words[: max(1, req.max_new_tokens)])
            out.append(
                Generation(
                    text=text,
                    prompt_tokens=len(req.prompt_text().split()),
                    completion_tokens=min(len(words), req.max_new_tokens),
                    latency_s=time.perf_counter() - start,
                    steer=req.traits if self.steering_enabled else Traits(),
                )
            )
        return out

    def describe(self) -> dict:
        return {
            "backend": self.name,
            "constrained": self.constrained,
            "steering": {"enabled": self.steering_enabled, "strength": self.strength},
        }

    def close(self) -> None:
        pass

    def statement_logprobs(
        self,
        prompts: Sequence[tuple[Message, ...]],
        statements: Sequence[KeyedStatement],
        traits: Sequence[Traits],
    ) -> np.ndarray:
        """agents.typing.StatementScorer without a model: a statement's base
        likelihood (from its text), a small context term (from the whole chat)
        and, under steering, STATEMENT_GAIN x key x the steered pole of the
        trait it measures. Deterministic; flat in the traits with steering off."""
        out = np.empty((len(prompts), len(statements)))
        for i, (prompt, t) in enumerate(zip(prompts, traits, strict=True)):
            tone = dict(zip(TRAITS, (math.tanh(x) for x in self.effective(t)), strict=True))
            context = "\n".join(m.content for m in prompt)
            for j, s in enumerate(statements):
                base = -2.0 - 2.0 * _hash01(s.text)
                jitter = 0.2 * (_hash01(context + "\0" + s.text) - 0.5)
                out[i, j] = base + jitter + STATEMENT_GAIN * s.key * tone.get(s.trait, 0.0)
        return out

    def effective(self, traits: Traits) -> tuple[float, ...]:
        """Per trait, coefficient x strength x ACTION_GAIN: what steering does
        to this agent (all 0 with steering off)."""
        return tuple(ACTION_GAIN * self.strength * v for v in traits.as_tuple())

    def action_weights(self, traits: Traits, kind: str) -> dict[str, float]:
        """Unnormalised probabilities of SAY, WORK, MOVE, REST for one request."""
        e, _a, c, o, n = self.effective(traits)
        logits = {
            "SAY": e + (1.0 if kind == "encounter" else -1.0),
            "WORK": c,
            "MOVE": o - 0.3,
            "REST": n - 0.7,
        }
        top = max(logits.values())
        return {k: math.exp(v - top) for k, v in logits.items()}

    def _respond(self, req: Request) -> str:
        rng = random.Random(req.seed)
        tone = tuple(math.tanh(x) for x in self.effective(req.traits))  # (E, A, C, O, N) in (-1, 1)
        prompt = req.prompt_text()
        goal = (_GOAL_RE.search(prompt) or [None, "my goal"])[1]
        if req.kind == "reflection":
            grammar = req.grammar if isinstance(req.grammar, ReflectionGrammar) else _FREE
            return self._reflect(tone, goal, grammar)
        if req.kind == "interview":
            return self._answer(rng, tone, prompt)
        if rng.random() < self.malformed_rate * (1.5 - _unit(tone[2])):
            return rng.choice(["hmm... not sure", "", "I think that I would maybe", "MOVE nowhere"])
        grammar = req.grammar if isinstance(req.grammar, ActionGrammar) else None
        weights = self.action_weights(req.traits, req.kind)
        if grammar is None:  # no locations known: nowhere to go
            weights["MOVE"] = 0.0
        kind = rng.choices(list(weights), weights=list(weights.values()))[0]
        if kind == "SAY":
            text = self._speech(rng, tone, prompt)
        elif kind == "WORK":
            if rng.random() < _unit(tone[2]):
                text = f"I keep working on my plan to {goal}."
            else:
                text = f"I start on {goal}, but get distracted."
        elif kind == "MOVE":
            text = rng.choice(grammar.locations)
        else:
            text = ""
        return grammar.format(kind, text) if grammar is not None else f"{kind} {text}".strip()

    def _answer(self, rng: random.Random, tone: tuple[float, ...], prompt: str) -> str:
        """A free interview answer: trait-coloured talk, and what it remembers first."""
        memories = _MEMORY_RE.findall(prompt)
        said = self._speech(rng, tone, "")
        return f"{said} I keep thinking of this: {memories[0]}" if memories else said

    def _speech(self, rng: random.Random, tone: tuple[float, ...], prompt: str) -> str:
        e, a, _c, o, n = tone
        companions = (_WITH_RE.search(prompt) or [None, ""])[1].split(", ")
        count = 1 + round(3 * _unit(e) + rng.random())
        pools = [
            (_WARM if a >= 0 else _COLD, 0.5 + 2 * abs(a)),
            (_OPEN, 0.2 + 2 * max(o, 0.0)),
            (_ANXIOUS if n >= 0 else _CALM, 0.2 + 2 * abs(n)),
            (_SMALL_TALK, 0.5),
        ]
        sentences: list[str] = []
        for _ in range(count):
            pool = rng.choices([p for p, _ in pools], weights=[w for _, w in pools])[0]
            fresh = [s for s in pool if s not in sentences]
            if fresh:
                sentences.append(rng.choice(fresh))
        who = rng.choice(companions) if companions[0] else ""
        greeting = f"{who}, " if who and e > 0 else ""
        return greeting + " ".join(sentences)

    def _reflect(self, tone: tuple[float, ...], goal: str, grammar: ReflectionGrammar) -> str:
        _e, a, c, _o, n = tone
        mood = "uneasy" if n > 0 else "hopeful"
        social = "People here matter to me." if a >= 0 else "I should rely on myself."
        plan = f"make real progress on: {goal}." if c >= 0 else f"maybe get to {goal} later."
        return grammar.format(plan, [f"I feel {mood} about how things are going.", social])

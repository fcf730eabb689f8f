"""A language backend without a model: deterministic per request seed,
instant, and its output follows the action grammar and visibly depends on the
traits (extraverts talk more and longer, conscientious agents keep working on
their goal, open agents wander, agreeable and neurotic agents sound like it).
It reads the places, goal and companions from the prompt, as a model would."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Sequence

from agents.typing import Generation, Request

_PLACES_RE = re.compile(r"go to one of: (.+)$", re.MULTILINE)
_GOAL_RE = re.compile(r"^Your goal: (.+?)\.?$", re.MULTILINE)
_WITH_RE = re.compile(r"^With you: (.+?)\.$", re.MULTILINE)

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


def _unit(x: float) -> float:
    """[-1, 1] -> [0, 1]."""
    return (x + 1.0) / 2.0


class MockBackend:
    name = "mock"

    def __init__(self, *, malformed_rate: float = 0.03) -> None:
        self.malformed_rate = malformed_rate
        self.calls = 0  # generate() calls, for tests that check batching

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        self.calls += 1
        out = []
        for req in requests:
            start = time.perf_counter()
            text = self._respond(req)
            words = text.split()
            words = words[: max(1, req.max_new_tokens)]  # honour the token budget
            text = " ".join(words) if len(words) < len(text.split()) else text
            out.append(
                Generation(
                    text=text,
                    prompt_tokens=len(req.prompt_text().split()),
                    completion_tokens=len(words),
                    latency_s=time.perf_counter() - start,
                    steer=req.traits,
                )
            )
        return out

    def describe(self) -> dict:
        return {"backend": self.name}

    def close(self) -> None:
        pass

    def _respond(self, req: Request) -> str:
        rng = random.Random(req.seed)
        t = req.traits
        prompt = req.prompt_text()
        goal = (_GOAL_RE.search(prompt) or [None, "my goal"])[1]
        if req.kind == "reflection":
            return self._reflect(rng, t, goal)
        if rng.random() < self.malformed_rate * (1.5 - _unit(t.C)):
            return rng.choice(["hmm... not sure", "", "I think that I would maybe", "MOVE nowhere"])
        places = [p.strip() for p in (_PLACES_RE.search(prompt) or [None, "home"])[1].split(",")]
        talk = 0.5 + 3.0 * _unit(t.E) + (1.5 if req.kind == "encounter" else -0.3)
        work = 0.3 + 2.5 * _unit(t.C)
        move = 0.2 + 1.8 * _unit(t.O)
        rest = 0.1 + 1.2 * _unit(t.N) * (1.0 - 0.5 * _unit(t.E))
        kind = rng.choices(["SAY", "WORK", "MOVE", "REST"], weights=[talk, work, move, rest])[0]
        if kind == "SAY":
            return "SAY " + self._speech(rng, req, prompt)
        if kind == "WORK":
            if rng.random() < _unit(t.C):
                return f"WORK I keep working on my plan to {goal}."
            return f"WORK I start on {goal}, but get distracted."
        if kind == "MOVE":
            return f"MOVE {rng.choice(places)}"
        return "REST"

    def _speech(self, rng: random.Random, req: Request, prompt: str) -> str:
        t = req.traits
        companions = (_WITH_RE.search(prompt) or [None, ""])[1].split(", ")
        n = 1 + round(3 * _unit(t.E) + rng.random())
        pools = [
            (_WARM if t.A >= 0 else _COLD, 0.5 + 2 * abs(t.A)),
            (_OPEN, 0.2 + 2 * max(t.O, 0.0)),
            (_ANXIOUS if t.N >= 0 else _CALM, 0.2 + 2 * abs(t.N)),
            (_SMALL_TALK, 0.5),
        ]
        sentences: list[str] = []
        for _ in range(n):
            pool = rng.choices([p for p, _ in pools], weights=[w for _, w in pools])[0]
            fresh = [s for s in pool if s not in sentences]
            if fresh:
                sentences.append(rng.choice(fresh))
        who = rng.choice(companions) if companions[0] else ""
        greeting = f"{who}, " if who and t.E > 0 else ""
        return greeting + " ".join(sentences)

    def _reflect(self, rng: random.Random, t, goal: str) -> str:
        mood = "hopeful" if t.N < 0 else "uneasy"
        social = "People here matter to me." if t.A > 0 else "I should rely on myself."
        focus = (
            f"Tomorrow I will make real progress on: {goal}."
            if t.C > 0
            else f"Maybe I will get to {goal} later."
        )
        return f"INSIGHT I feel {mood} about how things are going.\nINSIGHT {social}\nPLAN {focus}"

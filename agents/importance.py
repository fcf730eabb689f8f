"""Importance of a memory on a 1-10 scale (1 mundane, 10 life-changing), for
the memory stream's retrieval score and the reflection trigger. Both scorers
implement agents.typing.ImportanceScorer and score a whole tick's new memories
in one call:

- HeuristicImportance: deterministic word lists; no model. Used with the mock
  backend and for models that fail the check below.
- ModelImportance: the model's own rating, read without generation as the
  expected digit after a rating prompt, through the backend's
  `digit_expectation(prompts, digits=...)` (ONE batched forward pass per call).

`CHECK_SET` is a small hand-labelled set of mundane and notable memories;
`check_scorer` says whether a scorer orders them correctly, and
`select_importance` uses it to decide, for `memory.importance: auto`, whether
a model's ratings can be trusted. This module knows nothing about agents,
embeddings or storage.
"""

from __future__ import annotations

import logging
import re
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from agents.errors import ModelError
from agents.typing import DigitRater, ImportanceScorer, Message

log = logging.getLogger(__name__)

ImportanceKind = Literal["auto", "model", "heuristic"]

# Word stems that make a memory notable, with the points each adds (matched at word starts).
_NOTABLE: dict[str, float] = {
    # life events
    "job": 3, "hired": 4, "fired": 4, "offer": 3, "promot": 4, "married": 5, "marry": 5,
    "wedding": 4, "engaged": 4, "pregnan": 5, "baby": 3, "born": 3, "died": 6, "death": 6,
    "funeral": 5, "divorce": 5, "broke up": 5, "accident": 5, "hospital": 4, "sick": 2,
    "injur": 4, "fire": 3, "stole": 4, "robbed": 4, "police": 3, "arrest": 4, "moved": 2,
    "accepted": 3, "rejected": 3, "won": 3, "lost": 3, "prize": 3, "award": 3,
    "graduat": 3, "exam": 2, "opened": 2, "closed": 2, "bakery": 1, "novel": 1,
    "festival": 2, "marathon": 1,
    # relationships and conflict
    "love": 3, "kiss": 3, "friend": 1, "argue": 3, "argument": 3, "fight": 3, "fought": 3, "angry": 2,
    "insult": 3, "betray": 4, "secret": 3, "apolog": 2, "promise": 2, "thank": 1, "help": 1,
    "hate": 3, "alone": 1, "trust": 2,
    # feelings
    "worried": 2, "afraid": 2, "scared": 2, "cried": 3, "crying": 3, "upset": 2, "happy": 1,
    "excited": 2, "proud": 2, "ashamed": 3, "hope": 1, "wrong": 1,
}  # fmt: skip
# Stems of routine, low-stakes moments.
_MUNDANE: dict[str, float] = {
    "ate": 2, "breakfast": 2, "lunch": 2, "dinner": 1, "coffee": 1, "tea": 1, "brush": 2,
    "teeth": 2, "shower": 2, "slept": 1, "nap": 2, "rested": 2, "took a break": 2,
    "walked": 1, "weather": 2, "nothing": 2, "idle": 2, "made my bed": 3, "dishes": 2,
    "laundry": 2, "groceries": 1, "waited": 1, "sat": 1, "went from": 1, "left for": 1,
}  # fmt: skip


def _stem_pattern(stems: dict[str, float]) -> re.Pattern[str]:
    """Stems of 5+ letters match word starts ("promot" in "promoted"); shorter ones
    only whole words or plurals, so "won" does not fire on "wonderful"."""
    alternatives = sorted(stems, key=len, reverse=True)  # longest first: "fired" before "fire"
    pieces = [re.escape(s) + ("" if len(s) >= 5 else r"s?(?![\w'])") for s in alternatives]
    return re.compile(r"\b(?:" + "|".join(pieces) + ")")


def _points(pattern: re.Pattern[str], table: dict[str, float], text: str) -> float:
    """Sum of the points of the distinct stems found in `text` (already lower case)."""
    found = {m if m in table else m[:-1] for m in pattern.findall(text)}  # "jobs" -> "job"
    return sum(table[m] for m in found)


_NOTABLE_RE, _MUNDANE_RE = _stem_pattern(_NOTABLE), _stem_pattern(_MUNDANE)


class HeuristicImportance:
    """Deterministic rating from word lists: start at 3, add the points of notable
    stems (each stem counted once), subtract those of mundane ones, +1 for speech
    (a quote) and +1 for an exclamation, clip to [1, 10]. Crude, but it orders
    "ate breakfast" below "was offered a job", costs microseconds and never
    changes between runs."""

    name = "heuristic"

    def score(self, texts: Sequence[str]) -> list[float]:
        return [self._one(t) for t in texts]

    @staticmethod
    def _one(text: str) -> float:
        low = text.lower()
        s = 3.0
        s += _points(_NOTABLE_RE, _NOTABLE, low)
        s -= _points(_MUNDANE_RE, _MUNDANE, low)
        s += 1.0 if '"' in text else 0.0
        s += 1.0 if "!" in text else 0.0
        return float(min(10.0, max(1.0, s)))


RATING_SYSTEM = "You rate how important memories are. Answer with a single digit."
RATING_USER = (
    "On a scale of 1 to 9, where 1 is purely mundane (e.g., brushing teeth, making the bed) "
    "and 9 is extremely poignant (e.g., a break up, being offered a job), rate the likely "
    "poignancy of the following memory.\n"
    "Memory: {text}\n"
    "Rating (one digit):"
)
DIGITS = "123456789"  # single tokens in every common tokenizer; "10" would be two


def rating_prompt(text: str) -> tuple[Message, ...]:
    """The chat prompt whose next-token digit distribution is the rating (after Park et al.)."""
    return (
        Message(role="system", content=RATING_SYSTEM),
        Message(role="user", content=RATING_USER.format(text=text)),
    )


class ModelImportance:
    """The model rates each memory; the expected digit (1..9) is mapped linearly
    onto 1..10. Distinct texts are rated once (a bounded cache), and every
    score() call makes exactly one digit_expectation call (none if all cached)."""

    name = "model"

    def __init__(self, backend: DigitRater, *, cache_size: int = 20_000) -> None:
        self.backend = backend
        self.cache_size = cache_size
        self._cache: OrderedDict[str, float] = OrderedDict()

    def score(self, texts: Sequence[str]) -> list[float]:
        new = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if new:
            expected = self.backend.digit_expectation(
                [rating_prompt(t) for t in new], digits=DIGITS
            )
            if len(expected) != len(new):
                raise RuntimeError(
                    f"digit_expectation returned {len(expected)} values for {len(new)} prompts"
                )
            for t, e in zip(new, expected, strict=True):
                self._cache[t] = float(min(10.0, max(1.0, 1.0 + (float(e) - 1.0) * 9.0 / 8.0)))
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return [self._cache[t] for t in texts]


# Hand-labelled check set: (memory, notable?). Everyday routine vs events a person
# would still think about a week later; phrased the way the simulation writes memories.
CHECK_SET: tuple[tuple[str, bool], ...] = (
    ("I ate breakfast at home.", False),
    ("I brushed my teeth.", False),
    ("I made my bed.", False),
    ("I rested at the cafe.", False),
    ("I walked to the park.", False),
    ("Ada said: \"Nice weather today.\"", False),
    ("I bought groceries at the market.", False),
    ("I had a cup of coffee at the cafe.", False),
    ("I was offered a job at the bakery.", True),
    ("My best friend told me she is getting married.", True),
    ("Ben and I had a bitter argument and he stopped talking to me.", True),
    ("I heard that my grandmother died last night.", True),
    ("I was fired from my job today.", True),
    ("Clara told me a secret: she is leaving town for good.", True),
    ("I won first prize at the town festival.", True),
    ("There was a fire at the community center and people were hurt.", True),
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class ImportanceCheck:
    """How a scorer did on CHECK_SET."""

    pairwise_accuracy: float  # share of (mundane, notable) pairs ordered right; ties count half
    mean_mundane: float
    mean_notable: float
    passed: bool
    scores: tuple[float, ...]


def check_scorer(
    scorer: ImportanceScorer,
    *,
    items: Sequence[tuple[str, bool]] = CHECK_SET,
    min_accuracy: float = 0.85,
) -> ImportanceCheck:
    """Score the check set in one call and compare every mundane with every notable
    memory. Passing needs `min_accuracy` of the pairs right and a clear gap (at
    least one point) between the two means, so a scorer that rates everything
    about the same fails even if noise happens to order the pairs."""
    texts = [t for t, _ in items]
    scores = [float(s) for s in scorer.score(texts)]
    low = [s for s, (_, notable) in zip(scores, items, strict=True) if not notable]
    high = [s for s, (_, notable) in zip(scores, items, strict=True) if notable]
    if not low or not high:
        raise ValueError("the check set needs both mundane and notable memories")
    right = sum(1.0 if h > m else 0.5 if h == m else 0.0 for m in low for h in high)
    acc = right / (len(low) * len(high))
    mean_low, mean_high = sum(low) / len(low), sum(high) / len(high)
    return ImportanceCheck(
        pairwise_accuracy=acc,
        mean_mundane=mean_low,
        mean_notable=mean_high,
        passed=acc >= min_accuracy and mean_high - mean_low >= 1.0,
        scores=tuple(scores),
    )


def select_importance(kind: ImportanceKind, backend: object) -> ImportanceScorer:
    """`memory.importance` -> a scorer.

    heuristic: always the word lists. model: the backend's rating (an error if it
    cannot rate). auto: the model's rating if the backend can rate AND it passes
    check_scorer (one batched forward pass over CHECK_SET at start-up), else the
    heuristic. In practice the embedded SmolLM2-135M and the mock backend get the
    heuristic; instruct models of about 1B parameters and up get their own ratings.
    """
    if kind == "heuristic":
        return HeuristicImportance()
    can_rate = isinstance(backend, DigitRater)
    if kind == "model":
        if not can_rate:
            raise ModelError(
                f"memory.importance: model needs a backend that can rate memories; "
                f"the {getattr(backend, 'name', type(backend).__name__)} backend cannot "
                "(use memory.importance: heuristic or auto)"
            )
        return ModelImportance(backend)  # type: ignore[arg-type]
    if not can_rate:
        return HeuristicImportance()
    scorer = ModelImportance(backend)  # type: ignore[arg-type]
    result = check_scorer(scorer)
    log.info(
        "importance check: model pairwise accuracy %.2f (mundane %.1f, notable %.1f) -> %s",
        result.pairwise_accuracy,
        result.mean_mundane,
        result.mean_notable,
        "model ratings" if result.passed else "heuristic",
    )
    return scorer if result.passed else HeuristicImportance()

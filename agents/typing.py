"""Contracts shared by the run side and the minds: the records that cross
module borders and the Protocols with several implementations. Nothing here
knows about torch, Rich or Parquet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np

TRAITS: tuple[str, ...] = ("E", "A", "C", "O", "N")
TRAIT_NAMES: dict[str, str] = {
    "E": "extraversion",
    "A": "agreeableness",
    "C": "conscientiousness",
    "O": "openness",
    "N": "neuroticism",
}

# interview: a question put to an agent after (or outside) the run (steersim interview)
RequestKind = Literal["solo", "encounter", "reflection", "interview"]


@dataclass(frozen=True, kw_only=True)
class Traits:
    """Big-Five steering coefficients, each in [-1, 1]."""

    E: float = 0.0
    A: float = 0.0
    C: float = 0.0
    O: float = 0.0  # noqa: E741 - the trait's conventional letter
    N: float = 0.0

    def __post_init__(self) -> None:
        for t in TRAITS:
            v = getattr(self, t)
            if not -1.0 <= v <= 1.0:
                raise ValueError(f"trait {t} must be in [-1, 1], got {v}")

    def as_tuple(self) -> tuple[float, float, float, float, float]:
        return (self.E, self.A, self.C, self.O, self.N)

    @classmethod
    def from_sequence(cls, values: Sequence[float]) -> Traits:
        return cls(**dict(zip(TRAITS, (float(v) for v in values), strict=True)))

    def scaled(self, factor: float) -> Traits:
        return Traits.from_sequence([v * factor for v in self.as_tuple()])

    def label(self, threshold: float = 0.05) -> str:
        """Compact form for the live view: `[C:+0.9, E:+0.5]`, strongest first."""
        parts = sorted(
            ((t, v) for t, v in zip(TRAITS, self.as_tuple(), strict=True) if abs(v) >= threshold),
            key=lambda tv: -abs(tv[1]),
        )
        return "[" + ", ".join(f"{t}:{v:+.1f}" for t, v in parts) + "]"


@dataclass(frozen=True, kw_only=True)
class Message:
    """One chat turn."""

    role: Literal["system", "user", "assistant"]
    content: str


@runtime_checkable
class OutputGrammar(Protocol):
    """The form an answer must take (agents.grammar's ActionGrammar and
    ReflectionGrammar): a backend that can, constrains its decoding to it."""

    def lark(self) -> str:
        """The grammar in llguidance's Lark dialect."""
        ...

    def matches(self, text: str) -> bool:
        """Whether `text` is exactly a sentence of the grammar."""
        ...


@dataclass(frozen=True, kw_only=True)
class Request:
    """One generation asked of a backend: a chat prompt, the personality to
    steer it with, a token budget, the seed that makes it reproducible and
    the grammar its answer must follow (None: free text)."""

    prompt: tuple[Message, ...]
    traits: Traits
    max_new_tokens: int
    seed: int
    kind: RequestKind = "solo"
    grammar: OutputGrammar | None = None

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError("max_new_tokens must be >= 1")

    def prompt_text(self) -> str:
        return "\n".join(m.content for m in self.prompt)


@dataclass(frozen=True, kw_only=True)
class Generation:
    """What a backend returns for one Request, in the same order."""

    text: str
    prompt_tokens: int
    completion_tokens: int
    latency_s: float
    steer: Traits = field(default_factory=Traits)  # coefficients actually applied
    steer_layers: tuple[int, ...] = ()


@runtime_checkable
class Backend(Protocol):
    """A language model behind one batched call per tick."""

    name: str

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        """Generate all requests in one batched pass; the result is in request order."""
        ...

    def describe(self) -> dict[str, Any]:
        """The manifest's record of the model (and steering): enough to reload it."""
        ...

    def close(self) -> None:
        """Release the model (memory, hooks)."""
        ...


@runtime_checkable
class ImportanceScorer(Protocol):
    """Rates memories 1..10 for the memory stream (batched)."""

    def score(self, texts: Sequence[str]) -> list[float]: ...


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length vectors for relevance retrieval."""

    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...


MemoryKind = Literal["observation", "action", "reflection"]


@runtime_checkable
class MemoryStore(Protocol):
    """Each agent's memories. The engine adds what happened during a tick,
    calls end_tick once (so scoring can be batched), and retrieves for all
    acting agents of the next tick at once."""

    def add(self, agent_id: str, tick: int, text: str, kind: MemoryKind) -> None: ...

    def end_tick(self, tick: int) -> None: ...

    def retrieve(self, queries: dict[str, str], tick: int) -> dict[str, list[str]]:
        """For each agent id, the texts of its most useful memories for the query."""
        ...

    def get_state(self) -> dict: ...

    def set_state(self, state: dict) -> None: ...


@dataclass(frozen=True, kw_only=True)
class Recalled:
    """One agent's retrieved memories, best first: texts with their memory ids
    and retrieval scores (recency + importance + relevance, each min-max scaled)."""

    texts: list[str]
    ids: list[int]
    scores: list[float]


@dataclass(frozen=True, kw_only=True)
class StoredMemory:
    """A memory as it was first stored: its id is stable for the run (a repeat
    of a remembered sentence refreshes that memory and keeps its id)."""

    id: int
    agent_id: str
    tick: int  # the tick it was made
    text: str
    importance: float  # 1..10
    kind: MemoryKind


@runtime_checkable
class RecordedMemory(Protocol):
    """What the run's recording needs of a memory store beyond MemoryStore
    (agents.memory_stream.MemoryStream has it): retrieval with ids and scores,
    and the memories stored since the last call."""

    def retrieve_scored(self, queries: dict[str, str], tick: int) -> dict[str, Recalled]: ...

    def take_stored(self) -> list[StoredMemory]: ...


class Person(Protocol):
    """The agent facts a reflection prompt uses (orchestrator.world.AgentState fits)."""

    id: str
    index: int
    name: str
    age: int
    goal: str
    plan: str | None
    traits: Traits


@runtime_checkable
class ReflectiveMemory(Protocol):
    """What reflection needs of a memory store beyond agents.typing.MemoryStore
    (agents.memory_stream.MemoryStream has it)."""

    def add(self, agent_id: str, tick: int, text: str, kind: MemoryKind) -> None: ...

    def recent(self, agent_id: str, n: int) -> list[str]: ...

    def reflection_stats(self, agent_ids: Sequence[str]) -> tuple[np.ndarray, np.ndarray]: ...

    def last_reflection(self, agent_id: str) -> int: ...

    def mark_reflected(self, agent_id: str, tick: int) -> None: ...


class KeyedStatement(Protocol):
    """A questionnaire statement (agents.steering.data.QuestionnaireItem fits):
    its text, the trait it measures and its key (+1: agreeing means high)."""

    text: str
    trait: str
    key: int


@runtime_checkable
class StatementScorer(Protocol):
    """The statement-likelihood measure in any context: for each row, the mean
    per-token log-probability of each statement as the assistant's reply to
    that row's chat, under that row's steering. Only the statements' text
    reaches a model; the mock backend, which has no model, uses their
    trait and key instead."""

    def statement_logprobs(
        self,
        prompts: Sequence[tuple[Message, ...]],
        statements: Sequence[KeyedStatement],
        traits: Sequence[Traits],
    ) -> np.ndarray:
        """(len(prompts), len(statements)) float64."""
        ...


@runtime_checkable
class DigitRater(Protocol):
    """What a backend must offer for model ratings: one batched forward pass
    returning, per prompt, the expected value of the next token over `digits`
    (probabilities renormalised over those digit tokens)."""

    def digit_expectation(
        self, prompts: Sequence[tuple[Message, ...]], digits: str = "123456789"
    ) -> list[float]: ...


@dataclass(frozen=True, kw_only=True)
class KeyedRows:
    """Rows of a large array where each row is a pure function of its key (an
    embedding of its text). A checkpoint may then store each key's row once
    and refer to it afterwards instead of rewriting the whole array per tick."""

    store: str  # which row store: one per kind of row (e.g. "embeddings")
    keys: list[str]  # (N,)
    rows: np.ndarray  # (N, D)

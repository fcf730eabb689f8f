"""Loads the steering data that ships in agents/data/: the contrastive pairs
that build the vectors and the held-out questionnaire that measures them. The
two sets never mix: vectors are built from pairs only, and every measurement
uses questionnaire items only. Knows nothing about models or tokenizers."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Literal

from agents.typing import TRAITS

TraitName = Literal["E", "A", "C", "O", "N"]


@dataclass(frozen=True, kw_only=True)
class ContrastivePair:
    """One trait, two persona system prompts, one shared user turn and
    assistant continuation; the residual at the continuation's last token is
    read under both personas."""

    trait: TraitName
    high: str
    low: str
    user: str
    continuation: str
    framing: Literal["desirable_high", "desirable_low"] = (
        "desirable_high"  # which pole sounds better
    )

    def __post_init__(self) -> None:
        if self.trait not in TRAITS:
            raise ValueError(f"unknown trait {self.trait!r}")


@dataclass(frozen=True, kw_only=True)
class QuestionnaireItem:
    """A first-person statement; key +1 if agreeing means high on the trait."""

    trait: TraitName
    key: Literal[1, -1]
    text: str

    def __post_init__(self) -> None:
        if self.trait not in TRAITS or self.key not in (1, -1):
            raise ValueError(f"bad questionnaire item {self}")


@dataclass(frozen=True, kw_only=True)
class Questionnaire:
    system: str | None  # a trait-neutral system turn (None: the template's default)
    prompt: str  # the neutral user turn the statements answer
    items: tuple[QuestionnaireItem, ...]
    reference_prompt: str  # user turn before the neutral fluency texts
    reference_texts: tuple[str, ...]


def _read(name: str) -> bytes:
    return resources.files("agents").joinpath("data", name).read_bytes()


@cache
def load_pairs() -> tuple[ContrastivePair, ...]:
    doc = json.loads(_read("contrastive_pairs.json"))
    return tuple(ContrastivePair(**p) for p in doc["pairs"])


@cache
def load_questionnaire() -> Questionnaire:
    doc = json.loads(_read("questionnaire.json"))
    return Questionnaire(
        system=doc.get("system"),
        prompt=doc["prompt"],
        items=tuple(QuestionnaireItem(**i) for i in doc["items"]),
        reference_prompt=doc["reference_prompt"],
        reference_texts=tuple(doc["reference_texts"]),
    )


def pairs_hash(pairs: tuple[ContrastivePair, ...] | None = None) -> str:
    """Content hash of the pairs: part of the vector cache key."""
    pairs = load_pairs() if pairs is None else pairs
    blob = json.dumps([p.__dict__ for p in pairs], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]

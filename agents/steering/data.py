"""Loads the steering data that ships in agents/data/, three disjoint item sets
with one job each: the contrastive pairs that build the vectors
(contrastive_pairs.json), the DEV questionnaire on which every steering choice
is made (questionnaire_dev.json, read by the sweep) and the TEST questionnaire
that only reports (questionnaire_test.json: 117 public-domain IPIP-NEO items,
read by evaluate_steering and the run verification). A test checks that the
three share no item text. Knows nothing about models or tokenizers."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Literal

from agents.errors import ModelError, one_line
from agents.json_files import read_json, records, text_field
from agents.typing import TRAITS

TraitName = Literal["E", "A", "C", "O", "N"]
Split = Literal["dev", "test"]
SPLITS: tuple[Split, ...] = ("dev", "test")


@dataclass(frozen=True, kw_only=True)
class ContrastivePair:
    """One trait, a high and a low side, one shared user turn; the residual at
    the last token is read for both sides. Of `kind` "persona" (the shipped
    pairs): `high` and `low` are two persona system prompts, each followed by
    the user turn and the shared assistant `continuation`. Of `kind`
    "statement": one shared `system` turn (None: the template's default) and
    user turn, then the assistant says `continuation` + `high` or + `low`, two
    first-person statements of the two poles."""

    trait: TraitName
    high: str
    low: str
    user: str
    continuation: str
    framing: Literal["desirable_high", "desirable_low"] = (
        "desirable_high"  # which pole sounds better
    )
    kind: Literal["persona", "statement"] = "persona"
    system: str | None = None  # statement pairs only

    def __post_init__(self) -> None:
        if self.trait not in TRAITS:
            raise ValueError(f"unknown trait {self.trait!r}")
        if self.kind not in ("persona", "statement"):
            raise ValueError(f"unknown pair kind {self.kind!r}")
        if self.kind == "persona" and self.system is not None:
            raise ValueError("a persona pair's system turns are its high and low sides")

    def hashed(self) -> dict[str, object]:
        """The fields that identify the pair; the two later fields only when
        not at their defaults, so the shipped pairs keep the hash their
        calibration entries are filed under."""
        d = dict(self.__dict__)
        if self.kind == "persona":
            del d["kind"], d["system"]
        return d


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
    split: str  # "dev" (choices are made on it) or "test" (reporting only)
    system: str | None  # a trait-neutral system turn (None: the template's default)
    prompt: str  # the neutral user turn the statements answer
    items: tuple[QuestionnaireItem, ...]
    reference_prompt: str  # user turn before the neutral fluency texts
    reference_texts: tuple[str, ...]


def _read(name: str) -> bytes:
    return resources.files("agents").joinpath("data", name).read_bytes()


PAIR_FIELDS = ("trait", "high", "low", "user", "continuation", "framing", "kind", "system")
_REQUIRED_FIELDS = ("trait", "high", "low", "user", "continuation")
_FRAMINGS = ("desirable_high", "desirable_low")
MAX_PAIRS_BYTES = 1 << 24  # the largest shipped set is 240 kB


def _pairs_from(doc: object, where: str) -> tuple[ContrastivePair, ...]:
    try:
        return _parse_pairs(doc)
    except ValueError as exc:
        raise ValueError(f"{where}: not a contrastive-pairs file ({one_line(str(exc))})") from None


def _parse_pairs(doc: object) -> tuple[ContrastivePair, ...]:
    """The pairs of a parsed file, each field checked: a number, an empty
    side, an unknown framing or a misspelt key ("sytem", dropped, so the
    default took its place) was taken as it was and failed, if at all, only
    once the model had loaded; a repeated pair was silently counted twice."""
    out: list[ContrastivePair] = []
    seen: dict[str, int] = {}
    top_keys = ("description", "version", "pairs")
    for i, (at, p) in enumerate(
        records(
            doc,
            "pairs",
            top_keys,
            "pair",
            fields=PAIR_FIELDS,
            required=_REQUIRED_FIELDS,
            strict=True,
        )
    ):
        sides = {k: text_field(p[k], f"{at}: {k}") for k in ("high", "low", "user")}
        if sides["high"] == sides["low"]:  # no contrast: a zero difference
            raise ValueError(f"{at}: high and low are the same text")
        framing = p.get("framing", "desirable_high")
        if framing not in _FRAMINGS:
            raise ValueError(
                f"{at}: framing must be one of {', '.join(_FRAMINGS)}, got {framing!r}"
            )
        system = p.get("system")
        system = None if system is None else text_field(system, f"{at}: system")
        continuation = text_field(p["continuation"], f"{at}: continuation", blank_ok=True)
        try:
            pair = ContrastivePair(
                trait=p["trait"],
                framing=framing,
                kind=p.get("kind", "persona"),
                system=system,
                continuation=continuation,  # "" in statement pairs: the statement alone
                **sides,
            )
        except ValueError as exc:  # an unknown trait or kind, a persona pair with a system
            raise ValueError(f"{at}: {exc}") from None
        key = json.dumps(pair.hashed(), sort_keys=True)
        if key in seen:
            raise ValueError(f"{at} repeats pair {seen[key]}")
        seen[key] = i
        out.append(pair)
    return tuple(out)


@cache
def load_pairs() -> tuple[ContrastivePair, ...]:
    """The shipped pairs (agents/data/contrastive_pairs.json)."""
    return _pairs_from(json.loads(_read("contrastive_pairs.json")), "contrastive_pairs.json")


def load_pairs_file(path: str | Path) -> tuple[ContrastivePair, ...]:
    """Pairs from another file of the same format (a candidate set in a sweep).
    Only a regular file of bounded size is read (agents.json_files)."""
    try:
        doc = read_json(Path(path), max_bytes=MAX_PAIRS_BYTES)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read pairs ({one_line(str(exc))})") from None
    return _pairs_from(doc, str(path))


SHIPPED_PAIRS = "shipped"


def pair_set(name: str) -> tuple[ContrastivePair, ...]:
    """The pairs `steering.pairs` names: "shipped", a candidate set under
    agents/data/pair_sets/ by its name (e.g. "statement_con"), or a pairs
    file. ValueError naming it when it is none of these or cannot be read."""
    if name == SHIPPED_PAIRS:
        return load_pairs()
    if re.fullmatch(r"[A-Za-z0-9_]+", name):
        shipped = resources.files("agents").joinpath("data", "pair_sets", f"{name}.json")
        if shipped.is_file():
            return _pairs_from(json.loads(shipped.read_bytes()), f"pair set {name}")
    return load_pairs_file(name)


def check_gradient_pairs(pairs: Sequence[ContrastivePair]) -> None:
    """ValueError unless method gradient can read `pairs`: some statement
    pairs, and no trait with pairs of both kinds."""
    if not any(p.kind == "statement" for p in pairs):
        raise ValueError("method gradient needs statement pairs; these are all persona pairs")
    for t in TRAITS:
        if len({p.kind for p in pairs if p.trait == t}) > 1:
            raise ValueError(
                f"method gradient: trait {t} has both persona and statement pairs; "
                "give each trait pairs of one kind"
            )


def config_pairs(name: str, method: str) -> tuple[ContrastivePair, ...]:
    """The pairs of `steering.pairs` for `steering.method`; a ModelError naming
    the key when they cannot be read or the method cannot read them."""
    try:
        pairs = pair_set(name)
    except (OSError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else one_line(str(exc))
        raise ModelError(f"steering.pairs {name!r}: {reason}") from None
    if missing := [t for t in TRAITS if not any(p.trait == t for p in pairs)]:
        raise ModelError(f"steering.pairs {name!r}: no pairs for trait {missing[0]}")
    if method == "gradient":
        try:
            check_gradient_pairs(pairs)
        except ValueError as exc:
            raise ModelError(f"steering.pairs {name!r}: {exc}") from None
    return pairs


@cache
def load_questionnaire(split: Split = "test") -> Questionnaire:
    """The DEV or the TEST questionnaire (see the module docstring)."""
    if split not in SPLITS:
        raise ValueError(f"questionnaire split must be one of {SPLITS}, got {split!r}")
    doc = json.loads(_read(f"questionnaire_{split}.json"))
    return Questionnaire(
        split=split,
        system=doc.get("system"),
        prompt=doc["prompt"],
        items=tuple(
            QuestionnaireItem(trait=i["trait"], key=i["key"], text=i["text"]) for i in doc["items"]
        ),
        reference_prompt=doc["reference_prompt"],
        reference_texts=tuple(doc["reference_texts"]),
    )


def pairs_hash(pairs: tuple[ContrastivePair, ...] | None = None) -> str:
    """Content hash of the pairs: part of the vector cache key."""
    pairs = load_pairs() if pairs is None else pairs
    blob = json.dumps([p.hashed() for p in pairs], sort_keys=True).encode()
    return hashlib.sha256(blob).hexdigest()[:12]

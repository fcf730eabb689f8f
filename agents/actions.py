"""The lenient parser of actions. Any text becomes an Action: text that does
not follow the action grammar (agents.grammar, which owns the verbs and their
arguments) becomes a recorded fallback (parse_ok=False), never an exception.

With constrained decoding every output is a sentence of the grammar and parses;
the parser is the safety net for free text (inference.constrained: false, or a
backend without constraints) and keeps counting failures. It is more lenient
than the grammar: any case, an "Action:" prefix, "GO" for MOVE, "the Community
Center." for community_center, the first line with a verb among other lines.
Fallback: free text becomes SAY (parse_ok=False); empty text becomes IDLE."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from agents.grammar import (
    ACTION_KINDS,
    MAX_CONTENT_CHARS,
    VERBS,
    ActionKind,
    action_grammar,
    verb,
)

__all__ = ["ACTION_KINDS", "MAX_CONTENT_CHARS", "Action", "clean_text", "match_location", "parse"]

_SPELLINGS = "|".join(n.lower() for v in VERBS for n in (v.name, *v.aliases))
_VERB_RE = re.compile(
    rf"^[\W_]*(?:action\s*[:\-]\s*)?({_SPELLINGS})\b[\s*:\-]*(.*)$", re.IGNORECASE
)
_MOVE_FILLER = re.compile(r"^(?:to\s+)?(?:the\s+)?", re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class Action:
    kind: ActionKind
    target: str | None  # MOVE: the location
    content: str
    parse_ok: bool


def clean_text(text: str, limit: int = MAX_CONTENT_CHARS) -> str:
    """Valid UTF-8, no control characters, single-spaced, at most `limit` chars."""
    if not text.isprintable():  # control, format or surrogate characters somewhere
        text = text.encode("utf-8", "replace").decode("utf-8", "replace")
        text = "".join(" " if unicodedata.category(ch).startswith("C") else ch for ch in text)
    text = " ".join(text.split())
    return text[:limit]


def parse(text: str, locations: Sequence[str]) -> Action:
    """Turn model output into an Action; never raises. A sentence of the
    grammar (what constrained decoding produces) is read exactly as the
    grammar means it; anything else goes through the lenient reading."""
    raw = text if isinstance(text, str) else str(text)
    exact = _exact(raw, locations)
    if exact is not None:
        return exact
    for line in raw[: 20 * MAX_CONTENT_CHARS].splitlines():
        m = _VERB_RE.match(line.strip())
        if not m:
            continue
        v, arg = verb(m.group(1)), clean_text(m.group(2)).strip("\"' ")
        if v.argument == "place":
            target = match_location(arg, locations)
            if target is not None:
                return Action(kind=v.name, target=target, content="", parse_ok=True)
        elif v.argument == "none" or arg or v.argument == "optional_text":
            content = "" if v.argument == "none" else arg
            return Action(kind=v.name, target=None, content=content, parse_ok=True)
        break  # a verb with a bad argument: the whole text is the fallback
    content = clean_text(raw)
    if content:
        return Action(kind="SAY", target=None, content=content, parse_ok=False)
    return Action(kind="IDLE", target=None, content="", parse_ok=False)


def _exact(raw: str, locations: Sequence[str]) -> Action | None:
    if len(raw) > 2 * MAX_CONTENT_CHARS + 32 or not locations:
        return None  # too long to be one reply line worth a regex; the lenient path caps it
    try:
        grammar = action_grammar(tuple(locations))
    except ValueError:  # locations the grammar cannot hold: only the lenient path
        return None
    if not grammar.matches(raw):
        return None
    name, _, arg = raw.rstrip("\n").partition(" ")
    v = verb(name)
    if v.argument == "place":
        return Action(kind=v.name, target=arg, content="", parse_ok=True)
    words = clean_text(arg)
    content = "" if v.argument == "none" else words.strip("\"' ") or words
    return Action(kind=v.name, target=None, content=content, parse_ok=True)


def match_location(arg: str, locations: Sequence[str]) -> str | None:
    """'the Community Center.' -> 'community_center'; None if no location fits."""
    words = _MOVE_FILLER.sub("", arg.lower()).strip(" .!,;")
    key = re.sub(r"[\s\-]+", "_", words)
    if key in locations:
        return key
    # "park and read a book" / "community center now": the longest location the text starts with
    starts = [loc for loc in locations if key.startswith(loc)]
    return max(starts, key=len) if starts else None

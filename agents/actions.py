"""The action grammar and its parser. Any text becomes an Action: text that
does not follow the grammar becomes a recorded fallback (parse_ok=False),
never an exception.

Grammar (one line, verb case-insensitive, optional "Action:" prefix):
    MOVE <location>      go to one of the world's locations
    SAY <text>           speak to the agents in the same event
    WORK <text>          work on one's goal
    REST                 do nothing for a while
Fallback: free text becomes SAY (parse_ok=False); empty text becomes IDLE."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ActionKind = Literal["MOVE", "SAY", "WORK", "REST", "IDLE"]
ACTION_KINDS: tuple[str, ...] = ("MOVE", "SAY", "WORK", "REST", "IDLE")
MAX_CONTENT_CHARS = 500
_VERB_RE = re.compile(
    r"^[\W_]*(?:action\s*[:\-]\s*)?(move|go|say|work|rest)\b[\s*:\-]*(.*)$", re.IGNORECASE
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
    """Turn model output into an Action; never raises."""
    raw = text if isinstance(text, str) else str(text)
    for line in raw[: 20 * MAX_CONTENT_CHARS].splitlines():
        m = _VERB_RE.match(line.strip())
        if not m:
            continue
        verb, arg = m.group(1).upper(), clean_text(m.group(2)).strip("\"' ")
        if verb in ("MOVE", "GO"):
            target = match_location(arg, locations)
            if target is not None:
                return Action(kind="MOVE", target=target, content="", parse_ok=True)
        elif verb == "SAY" and arg:
            return Action(kind="SAY", target=None, content=arg, parse_ok=True)
        elif verb == "WORK":
            return Action(kind="WORK", target=None, content=arg, parse_ok=True)
        elif verb == "REST":
            return Action(kind="REST", target=None, content="", parse_ok=True)
        break  # a verb with a bad argument: the whole text is the fallback
    content = clean_text(raw)
    if content:
        return Action(kind="SAY", target=None, content=content, parse_ok=False)
    return Action(kind="IDLE", target=None, content="", parse_ok=False)


def match_location(arg: str, locations: Sequence[str]) -> str | None:
    """'the Community Center.' -> 'community_center'; None if no location fits."""
    words = _MOVE_FILLER.sub("", arg.lower()).strip(" .!,;")
    key = re.sub(r"[\s\-]+", "_", words)
    if key in locations:
        return key
    # "park and read a book" / "community center now": the longest location the text starts with
    starts = [loc for loc in locations if key.startswith(loc)]
    return max(starts, key=len) if starts else None

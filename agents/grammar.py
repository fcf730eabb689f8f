"""The grammars of what an agent may answer, in one place: the action verbs
and their arguments, the world's locations, the reflection's INSIGHT/PLAN
shape and the length limits. Everything else is derived from here:

- the prompt's help text (agents.prompting, agents.reflection),
- the decoder's constraint: a Lark grammar for llguidance (agents.constraint),
- the lenient parser of free text (agents.actions, agents.reflection),
- the strict check of "is this text a sentence of the grammar" (analysis, tests),
- the mock backend's output (agents.mock_backend).

This module knows nothing about models, tokens or the world's state; a
grammar is a small frozen value that a Request carries.

Length is deliberately NOT part of the Lark grammars: a bounded repetition
such as /[^\\n]{1,200}/ makes llguidance's per-step mask about 12x slower
than /[^\\n]+/. The token budget (inference.max_new_tokens_by_action) limits
length, and the parsers cap what they keep (MAX_CONTENT_CHARS, MAX_LINE_CHARS).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Literal

# The world's locations: lowercase identifiers, so they are safe in a prompt,
# a Lark string literal and a folder-free key (orchestrator.config_schema reuses both).
LOCATION_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
DEFAULT_LOCATIONS = ("home", "cafe", "park", "community_center", "library", "market")

MAX_CONTENT_CHARS = 500  # what the parser keeps of a SAY / WORK text
MAX_LINE_CHARS = 200  # what the reflection parser keeps of one INSIGHT / PLAN line
MAX_INSIGHTS = 3  # INSIGHT lines of one reflection

ArgumentKind = Literal["place", "text", "optional_text", "none"]


@dataclass(frozen=True, kw_only=True)
class Verb:
    """One action verb: its argument and how the prompt explains it."""

    name: str  # upper case, as the grammar spells it
    argument: ArgumentKind
    placeholder: str  # the help text's name of the argument, "" for none
    meaning: str  # the help text's explanation; {places} is filled in
    aliases: tuple[str, ...] = ()  # other spellings the lenient parser accepts


VERBS: tuple[Verb, ...] = (
    Verb(
        name="MOVE",
        argument="place",
        placeholder="<place>",
        meaning="go to one of: {places}",
        aliases=("GO",),
    ),
    Verb(
        name="SAY", argument="text", placeholder="<words>", meaning="speak to the people with you"
    ),
    # WORK alone means "work on my goal": the argument says on what, if anything
    Verb(
        name="WORK",
        argument="optional_text",
        placeholder="<what you do>",
        meaning="work on your goal",
    ),
    Verb(name="REST", argument="none", placeholder="", meaning="take a break"),
)
VERB_NAMES: tuple[str, ...] = tuple(v.name for v in VERBS)
ACTION_KINDS: tuple[str, ...] = (*VERB_NAMES, "IDLE")  # IDLE: no action could be read
ActionKind = Literal["MOVE", "SAY", "WORK", "REST", "IDLE"]

# One line of free text: no control characters (so no line breaks, tabs or
# carriage returns), not starting with a space. Unbounded on purpose (see the
# module docstring); as cheap per step as /[^\n]+/ (measured: 0.4 ms at B=16).
_TEXT_RE = r"[^\x00-\x20\x7f][^\x00-\x1f\x7f]*"
_TEXT_LARK = f"/{_TEXT_RE}/"
# A plan's words: as _TEXT, and not opening with "...", "…" or "<": SmolLM2
# otherwise copies the prompt's "PLAN: I will ..." template as its plan.
_PLAN_RE = r"[^\x00-\x20\x7f.\u2026<][^\x00-\x1f\x7f]*"


def verb(name: str) -> Verb:
    """The verb named `name` or one of its aliases (case-insensitive)."""
    key = name.upper()
    for v in VERBS:
        if key == v.name or key in v.aliases:
            return v
    raise KeyError(name)


def check_location(name: str) -> str:
    if not re.fullmatch(LOCATION_PATTERN, name):
        raise ValueError(f"invalid location {name!r}: use a lowercase identifier like 'cafe'")
    return name


@dataclass(frozen=True, kw_only=True)
class ActionGrammar:
    """One action on one line: MOVE <location> | SAY <words> | WORK [<what>] | REST.
    A trailing newline may end the line; nothing may follow it."""

    locations: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.locations:
            raise ValueError("an action grammar needs at least one location")
        for loc in self.locations:
            check_location(loc)
        if len(set(self.locations)) != len(self.locations):
            raise ValueError("locations must not repeat")

    def help_text(self) -> str:
        """The prompt's explanation of the grammar."""
        places = ", ".join(self.locations)
        lines = ["Reply with exactly one action on one line, one of:"]
        for v in VERBS:
            head = f"{v.name} {v.placeholder}".rstrip()
            lines.append(f"{head} - {v.meaning.format(places=places)}")
        return "\n".join(lines)

    def lark(self) -> str:
        """The decoder's constraint (llguidance's Lark dialect)."""
        alternatives = []
        for v in VERBS:
            if v.argument == "place":
                alternatives.append(f'"{v.name} " PLACE')
            elif v.argument == "text":
                alternatives.append(f'"{v.name} " TEXT')
            elif v.argument == "optional_text":
                alternatives.append(f'"{v.name}" (" " TEXT)?')
            else:
                alternatives.append(f'"{v.name}"')
        places = " | ".join(f'"{loc}"' for loc in self.locations)
        return (
            'start: action "\\n"?\n'
            f"action: {' | '.join(alternatives)}\n"
            f"PLACE: {places}\n"
            f"TEXT: {_TEXT_LARK}\n"
        )

    def pattern(self) -> re.Pattern[str]:
        """The same language as lark(), as a Python regex (for matches())."""
        alternatives = []
        places = "|".join(re.escape(loc) for loc in self.locations)
        for v in VERBS:
            if v.argument == "place":
                alternatives.append(f"{v.name} (?:{places})")
            elif v.argument == "text":
                alternatives.append(f"{v.name} {_TEXT_RE}")
            elif v.argument == "optional_text":
                alternatives.append(f"{v.name}(?: {_TEXT_RE})?")
            else:
                alternatives.append(v.name)
        return re.compile(f"(?:{'|'.join(alternatives)})\\n?")

    def matches(self, text: str) -> bool:
        """Whether `text` is exactly a sentence of this grammar."""
        return self.pattern().fullmatch(text) is not None

    def format(self, verb_name: str, argument: str = "") -> str:
        """The sentence for a verb and its argument (the mock backend's output)."""
        v = verb(verb_name)
        arg = " ".join(argument.split())  # one line
        if v.argument == "place":
            if arg not in self.locations:
                raise ValueError(f"unknown location {arg!r}")
            return f"{v.name} {arg}"
        if v.argument == "text" and not arg:
            raise ValueError(f"{v.name} needs text")
        if v.argument == "none" or not arg:
            return v.name
        return f"{v.name} {arg}"


@dataclass(frozen=True, kw_only=True)
class ReflectionGrammar:
    """A reflection: one PLAN line, then up to `max_insights` INSIGHT lines.

    The plan comes first, so that a token budget can cut an insight short but
    never leave an agent without a plan, and it starts with "I will", so that
    the plan is always an intention, never a description."""

    max_insights: int = MAX_INSIGHTS

    PLAN_TAG = "PLAN: "
    INSIGHT_TAG = "INSIGHT: "
    PLAN_OPENING = "I will "

    def __post_init__(self) -> None:
        if self.max_insights < 0:
            raise ValueError("max_insights must be >= 0")

    def help_text(self) -> str:
        """The prompt's explanation of the shape."""
        n = self.max_insights
        plan = f"{self.PLAN_TAG}{self.PLAN_OPENING}..."
        head = f'Answer with one line "{plan}" (what you will do next)'
        if n:
            head += f', then up to {n} lines "{self.INSIGHT_TAG}..." (what your memories tell you)'
        lines = [head + ":", plan]
        if n:
            lines.append(f"{self.INSIGHT_TAG}I ...")
        return "\n".join(lines)

    def lark(self) -> str:
        insights = ""
        for _ in range(self.max_insights):  # (i (i i?)?)?: at most max_insights, no ranges
            insights = f"(insight {insights})?" if insights else "insight?"
        return (
            f'start: plan {insights} "\\n"?\n'
            f'plan: "{self.PLAN_TAG}{self.PLAN_OPENING}" PLAN_TEXT\n'
            f'insight: "\\n{self.INSIGHT_TAG}" TEXT\n'
            f"PLAN_TEXT: /{_PLAN_RE}/\n"
            f"TEXT: {_TEXT_LARK}\n"
        )

    def pattern(self) -> re.Pattern[str]:
        plan = re.escape(self.PLAN_TAG + self.PLAN_OPENING) + _PLAN_RE
        insight = "\\n" + re.escape(self.INSIGHT_TAG) + _TEXT_RE
        return re.compile(f"{plan}(?:{insight}){{0,{self.max_insights}}}\\n?")

    def matches(self, text: str) -> bool:
        return self.pattern().fullmatch(text) is not None

    def format(self, plan: str, insights: tuple[str, ...] | list[str] = ()) -> str:
        """The answer for a plan ("I will ..." or what follows it) and insights."""
        body = " ".join(plan.split())
        if body.lower().startswith(self.PLAN_OPENING.lower()):
            body = body[len(self.PLAN_OPENING) :]
        if not body:
            raise ValueError("a plan needs text")
        lines = [f"{self.PLAN_TAG}{self.PLAN_OPENING}{body}"]
        for insight in list(insights)[: self.max_insights]:
            if " ".join(insight.split()):
                lines.append(f"{self.INSIGHT_TAG}{' '.join(insight.split())}")
        return "\n".join(lines)


@functools.lru_cache(maxsize=64)
def action_grammar(locations: tuple[str, ...]) -> ActionGrammar:
    """The action grammar of a world (one shared value per set of locations)."""
    return ActionGrammar(locations=locations)

"""The action parser: grammar, fallbacks, and that no text makes it raise."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.actions import ACTION_KINDS, MAX_CONTENT_CHARS, parse

PLACES = ("home", "cafe", "park", "community_center", "library", "market")


@pytest.mark.parametrize(
    ("text", "kind", "target", "content"),
    [
        ("MOVE community_center", "MOVE", "community_center", ""),
        ("move to the Community Center.", "MOVE", "community_center", ""),
        ("Action: GO park", "MOVE", "park", ""),
        ("I think...\nMOVE library now", "MOVE", "library", ""),
        ('SAY "Hello there!"', "SAY", None, "Hello there!"),
        ("say: good morning", "SAY", None, "good morning"),
        ("**WORK** on the bakery plan", "WORK", None, "on the bakery plan"),
        ("WORK", "WORK", None, ""),
        ("REST", "REST", None, ""),
    ],
)
def test_grammar(text, kind, target, content):
    action = parse(text, PLACES)
    assert (action.kind, action.target, action.content, action.parse_ok) == (
        kind,
        target,
        content,
        True,
    )


@pytest.mark.parametrize(
    ("text", "kind", "content"),
    [
        ("", "IDLE", ""),
        ("   \n\t ", "IDLE", ""),
        ("I like turtles", "SAY", "I like turtles"),
        ("MOVE to the moon", "SAY", "MOVE to the moon"),
        ("SAY", "SAY", "SAY"),
        ("bad\x00bytes\udcff here", "SAY", "bad bytes? here"),
    ],
)
def test_fallback_is_recorded_not_raised(text, kind, content):
    action = parse(text, PLACES)
    assert action.parse_ok is False
    assert (action.kind, action.content) == (kind, content)


def test_enormous_output_is_capped():
    action = parse("SAY " + "blah " * 100_000, PLACES)
    assert action.parse_ok and len(action.content) <= MAX_CONTENT_CHARS


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=400))
def test_arbitrary_text_never_raises(text):
    action = parse(text, PLACES)
    assert action.kind in ACTION_KINDS
    assert len(action.content) <= MAX_CONTENT_CHARS
    action.content.encode("utf-8")  # always valid UTF-8 for Parquet
    if action.kind == "MOVE":
        assert action.target in PLACES

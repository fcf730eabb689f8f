"""The one action / reflection grammar and what is derived from it: the Lark
constraint and the strict regex accept the same texts, every sentence of the
grammar parses back to what was meant, the help text names every verb and
place, and the mock backend speaks the grammar."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agents.actions import parse
from agents.grammar import (
    DEFAULT_LOCATIONS,
    VERBS,
    ActionGrammar,
    ReflectionGrammar,
    action_grammar,
)
from agents.mock_backend import MockBackend
from agents.prompting import action_request
from agents.reflection import parse_reflection
from agents.typing import Request, Traits

llguidance = pytest.importorskip("llguidance")
pytest.importorskip("transformers")

from llguidance.hf import from_tokenizer  # noqa: E402

from agents.random_models import byte_tokenizer  # noqa: E402

ACTIONS = action_grammar(DEFAULT_LOCATIONS)
REFLECTION = ReflectionGrammar()
TOKENIZER = byte_tokenizer()
LL_TOKENIZER = from_tokenizer(TOKENIZER, n_vocab=264)

# words that include the grammar's own pieces, so random texts are often near-misses
PIECES = [
    "MOVE ",
    "SAY ",
    "WORK",
    "WORK ",
    "REST",
    "PLAN: I will ",
    "\nINSIGHT: ",
    "\n",
    " ",
    "cafe",
    "community_center",
    "moon",
    "hello",
    "é",
    "\t",
    "\r",
    "say",
    "PLAN: ",
    ".",
    "...",
    "…",
    "<x>",
]


def accepted_by_lark(grammar, text: str) -> bool:
    matcher = llguidance.LLMatcher(LL_TOKENIZER, grammar.lark(), log_level=0)
    assert not matcher.is_error(), matcher.get_error()
    return matcher.consume_tokens(TOKENIZER.encode(text)) and matcher.is_accepting()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=6), st.sampled_from(["action", "reflection"]))
def test_lark_and_regex_accept_the_same_texts(pieces, which) -> None:
    grammar = ACTIONS if which == "action" else REFLECTION
    text = "".join(pieces)
    assert accepted_by_lark(grammar, text) == grammar.matches(text)


@pytest.mark.parametrize(
    "text,ok",
    [
        ("MOVE cafe", True),
        ("MOVE community_center\n", True),
        ("SAY Hello there!", True),
        ("WORK", True),
        ("WORK on the bakery plan", True),
        ("REST", True),
        ("MOVE the cafe", False),
        ("SAY ", False),
        ("SAY  two spaces", False),
        ("REST now", False),
        ("say hi", False),
        ("SAY one\nSAY two", False),
        ("SAY tab\there", False),
    ],
)
def test_action_sentences(text: str, ok: bool) -> None:
    assert ACTIONS.matches(text) is ok
    assert accepted_by_lark(ACTIONS, text) is ok


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(VERBS),
    st.sampled_from(DEFAULT_LOCATIONS),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("C",)), max_size=60),
)
def test_every_sentence_parses_to_what_it_says(verb, place, words) -> None:
    arg = place if verb.argument == "place" else " ".join(words.split())
    if verb.argument == "text" and not arg:
        with pytest.raises(ValueError):
            ACTIONS.format(verb.name, arg)
        return
    text = ACTIONS.format(verb.name, arg)
    assert ACTIONS.matches(text) and accepted_by_lark(ACTIONS, text)
    action = parse(text, DEFAULT_LOCATIONS)
    assert action.parse_ok and action.kind == verb.name
    if verb.argument == "place":
        assert action.target == place
    elif verb.argument != "none":
        assert action.content == (arg.strip("\"' ") or arg)


def test_help_text_names_every_verb_and_place() -> None:
    grammar = ActionGrammar(locations=("home", "old_mill"))
    help_text = grammar.help_text()
    assert all(v.name in help_text for v in VERBS)
    assert "home, old_mill" in help_text
    assert "old_mill" in grammar.lark() and "cafe" not in grammar.lark()
    prompt = action_request(
        name="Ada",
        age=30,
        home="home",
        goal="paint",
        plan=None,
        places=["home", "old_mill"],
        tick=0,
        location="home",
        companions=(),
        memories=(),
        traits=Traits(),
        max_new_tokens=8,
        seed=1,
        kind="solo",
    )
    assert help_text in prompt.prompt[0].content and prompt.grammar == grammar


@pytest.mark.parametrize("bad", [(), ("Cafe",), ("a b",), ('x"y',), ("cafe", "cafe")])
def test_bad_locations_are_refused(bad) -> None:
    with pytest.raises(ValueError):
        ActionGrammar(locations=bad)


def test_reflection_shape_and_parse() -> None:
    text = REFLECTION.format("go to the park tomorrow.", ["I like Ben.", "Work is slow."])
    assert text.splitlines()[0] == "PLAN: I will go to the park tomorrow."
    assert REFLECTION.matches(text) and accepted_by_lark(REFLECTION, text)
    insights, plan, ok = parse_reflection(text)
    assert ok and plan == "I will go to the park tomorrow."
    assert insights == ("I like Ben.", "Work is slow.")
    assert not REFLECTION.matches("INSIGHT: x\nPLAN: I will y")  # the plan comes first
    assert not REFLECTION.matches("PLAN: relax")  # a plan is an intention
    assert not REFLECTION.matches("PLAN: I will ...")  # not the prompt's template echoed
    assert not accepted_by_lark(REFLECTION, "PLAN: I will …")
    four = REFLECTION.format("x", ["a", "b", "c", "d"])
    assert four.count("INSIGHT") == REFLECTION.max_insights and REFLECTION.matches(four)
    assert "PLAN: I will" in REFLECTION.help_text()


def test_mock_answers_are_sentences_of_their_grammar() -> None:
    backend = MockBackend()
    reqs = [
        Request(
            prompt=action_request(
                name="Ada",
                age=30,
                home="home",
                goal="paint",
                plan=None,
                places=DEFAULT_LOCATIONS,
                tick=0,
                location="cafe",
                companions=("Ben",),
                memories=(),
                traits=Traits(E=e, C=-e),
                max_new_tokens=48,
                seed=s,
                kind="encounter",
            ).prompt,
            traits=Traits(E=e, C=-e),
            max_new_tokens=48,
            seed=s,
            kind=kind,
            grammar=ACTIONS if kind != "reflection" else REFLECTION,
        )
        for s in range(60)
        for e in (-1.0, 1.0)
        for kind in ("encounter", "reflection")
    ]
    gens = backend.generate(reqs)
    assert all(r.grammar.matches(g.text) for r, g in zip(reqs, gens, strict=True))
    kinds = {
        parse(g.text, DEFAULT_LOCATIONS).kind
        for r, g in zip(reqs, gens, strict=True)
        if r.kind != "reflection"
    }
    assert kinds == {"MOVE", "SAY", "WORK", "REST"}

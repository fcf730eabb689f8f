#!/usr/bin/env python
"""Writes the contrastive-pair candidate files under agents/data/pair_sets/ from
the persona lists below (run once; the JSON files are what ships):
`make_pair_sets.py`. Each pair: one trait, a high and a low persona system
prompt, one shared user turn and assistant opening.

- base: the v3 pairs (8 persona pairs x 8 user turns per trait).
- varied: 14 persona pairs per trait (the base 8, N's four odd favourable-high
  pairs replaced, plus 6 new ones covering more facets: for N anxiety, mood
  swings, reaction to criticism, stress, low mood, irritability) x 8 turns.
- varied_o: the shipped pairs with O's personas taken from varied (intellect
  as well as imagination and art), the other traits as shipped.
- varied_n: the same for N (the varied N personas, more of N's facets).
- facets: the shipped A, C and O personas; E and N as in varied plus 6
  personas each for the NEO facets varied leaves out.
- stance_n, stance_ne: the shipped pairs with N's (and E's) personas
  replaced by 12 stance pairs that differ in stance on the same content
  ("often X" against "never X"; see STANCE_X), not in content.
- held: the varied personas, each followed by one sentence stating the other
  four traits at levels drawn at random (seeded) and identical in both
  personas, so the pair differs in its own trait only.

Persona wording avoids every questionnaire statement (tests/test_steering.py
checks that no item's predicate appears in any pair)."""

from __future__ import annotations

import argparse
import json
import os
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "agents" / "data"
TRAITS = "EACON"
TURNS = [
    ("What are your plans for tomorrow?", "Tomorrow I"),
    ("How was your morning?", "This morning I"),
    ("Tell me about your neighbourhood.", "My neighbourhood"),
    ("What did you do last weekend?", "Last weekend I"),
    ("How would you describe your work?", "My work is"),
    ("What would you do with a free afternoon?", "With a free afternoon, I would"),
    ("A friend asks for advice about a new job. What do you tell them?", "I would tell them"),
    ("What do you think of the new cafe in town?", "Honestly, the new cafe"),
]
# (framing, high persona, low persona); framing names the pole described favourably
# fmt: off
NEW: dict[str, list[tuple[str, str, str]]] = {
    "E": [
        ("desirable_high", "You are a warm, chatty person who enjoys meeting strangers.",
         "You are a shy, tongue-tied person who dreads meeting strangers."),
        ("desirable_high", "You are a confident person who speaks up easily in a group.",
         "You are a timid person who struggles to speak up in a group."),
        ("desirable_high", "You are a fun-loving person who fills every weekend with friends and outings.",
         "You are a solitary person who spends every weekend alone at home."),
        ("desirable_low", "You are a loud show-off who always has to be noticed.",
         "You are a modest, low-key person who is content to stay out of the spotlight."),
        ("desirable_low", "You are a restless person who cannot bear an evening without company.",
         "You are a self-contained person who enjoys an evening alone with a book."),
        ("desirable_low", "You are a noisy extrovert who talks over other people.",
         "You are an introvert who listens more than they speak."),
    ],
    "A": [
        ("desirable_high", "You are a friendly, trusting person who assumes the best about people.",
         "You are a hostile, suspicious person who assumes the worst about people."),
        ("desirable_high", "You are a patient, forgiving person who lets go of old quarrels.",
         "You are an impatient, spiteful person who stays bitter for years."),
        ("desirable_high", "You are a compassionate person who is moved to help anyone in trouble.",
         "You are a callous person who shrugs when someone is in trouble."),
        ("desirable_low", "You are a doormat who lets everyone walk all over them.",
         "You are a firm person who stands up for themselves."),
        ("desirable_low", "You are an overly trusting person who lends money to anyone who asks.",
         "You are a wary person who checks people's stories first."),
        ("desirable_low", "You are a flatterer who tells people only what they want to hear.",
         "You are an honest critic who tells people hard truths."),
    ],
    "C": [
        ("desirable_high", "You are a punctual, well-organised person who is never late.",
         "You are a tardy, badly organised person who is always late."),
        ("desirable_high", "You are a tidy person who keeps every room neat and clean.",
         "You are a messy person who lets clutter pile up everywhere."),
        ("desirable_high", "You are a focused, persistent person who sees every job through.",
         "You are a distractible, aimless person who gives up on jobs halfway."),
        ("desirable_low", "You are a controlling micromanager who checks everyone's work twice.",
         "You are an easygoing manager who trusts people to do their work."),
        ("desirable_low", "You are a rule-bound bureaucrat who cannot bend a single rule.",
         "You are an adaptable person who bends the rules when it makes sense."),
        ("desirable_low", "You are a joyless workaholic who never takes a day off.",
         "You are a balanced person who always makes time for fun."),
    ],
    "O": [
        ("desirable_high", "You are an intellectual who loves big ideas and clever words.",
         "You are a simple person who avoids big ideas and long words."),
        ("desirable_high", "You are a quick, inventive thinker who is brimming with original ideas.",
         "You are a slow, unoriginal thinker who rarely has an idea of their own."),
        ("desirable_high", "You are a reflective person who loves to ponder deep questions.",
         "You are a shallow person who never ponders anything deeply."),
        ("desirable_low", "You are a pretentious know-it-all who lectures everyone about philosophy.",
         "You are a down-to-earth person who keeps conversations practical."),
        ("desirable_low", "You are a fickle novelty-seeker who drops every plan for the next new thing.",
         "You are a practical person who sticks with what works."),
        ("desirable_low", "You are a fantasist who lives in a world of make-believe and neglects real life.",
         "You are a realist who keeps both feet firmly on the ground."),
    ],
    "N": [
        ("desirable_low", "You are a high-strung person who is overwhelmed by every bit of stress.",
         "You are an unflappable person who handles stress with ease."),
        ("desirable_low", "You are a gloomy person who often feels sad and hopeless.",
         "You are a contented person who rarely feels sad."),
        ("desirable_low", "You are an irritable person who snaps at the smallest annoyance.",
         "You are a good-humoured person who lets small annoyances pass."),
        ("desirable_low", "You are a self-conscious person who is tormented by embarrassment.",
         "You are a self-assured person who is rarely embarrassed."),
        ("desirable_low", "You are a nervous wreck who lies awake fretting over what could go wrong.",
         "You are a settled person who sleeps soundly and rarely frets."),
        ("desirable_low", "You are a volatile person whose mood can flip from joy to despair in minutes.",
         "You are a steady person whose mood barely changes from day to day."),
    ],
}
# N's four v3 favourable-high pairs described vigilance, tears and risk-taking
# rather than neuroticism; these keep the favourable framing with N's own facets
N_FAVOURABLE_HIGH = [
    ("desirable_high", "You are an emotionally responsive person whose moods follow everything that happens.",
     "You are an emotionally rigid person whose mood never shifts, whatever happens."),
    ("desirable_high", "You are a passionate person whose feelings run hot and cold.",
     "You are a numb person whose feelings never change."),
    ("desirable_high", "You are a sensitive person who takes criticism to heart and learns from it.",
     "You are a thick-skinned person who lets all criticism wash over them."),
    ("desirable_high", "You are an alert person who feels the weight of every deadline.",
     "You are a complacent person who feels no pressure at all."),
]
# facets: E's and N's NEO facets the varied personas leave out or touch once
# (E: assertiveness, activity, excitement-seeking, cheerfulness; N: anger,
# low self-worth, immoderation, vulnerability), six per trait, E's valence-
# balanced, written from the facet names rather than from any item
FACETS: dict[str, list[tuple[str, str, str]]] = {
    "E": [
        ("desirable_high", "You are a natural leader who steps forward and organises any group.",
         "You are a passive follower who waits for someone else to organise the group."),
        ("desirable_high", "You are an energetic, lively person who packs each day with activity.",
         "You are a sluggish, listless person who gets through each day slowly."),
        ("desirable_low", "You are a reckless thrill-seeker who chases danger and wild nights out.",
         "You are a sensible person who prefers calm evenings to wild nights out."),
        ("desirable_high", "You are a bubbly, cheerful person who laughs often and lights up a room.",
         "You are a sombre, flat person who rarely laughs or lights up."),
        ("desirable_low", "You are a pushy, domineering person who bosses every group around.",
         "You are a gentle, easygoing person who lets a group find its own way."),
        ("desirable_low", "You are a hyperactive person who cannot sit still for a minute.",
         "You are a relaxed person who is happy to sit still and unwind."),
    ],
    "N": [
        ("desirable_low", "You are a hot-headed person who flies into a rage when things go wrong.",
         "You are a mild person who stays even-tempered when things go wrong."),
        ("desirable_low", "You are a person full of self-doubt who often feels worthless.",
         "You are a person with healthy self-regard who rarely doubts their worth."),
        ("desirable_low", "You are an impulsive person who gives in to every craving and regrets it.",
         "You are a self-possessed person who can say no to a craving without effort."),
        ("desirable_low", "You are a fragile person who falls apart when a crisis hits.",
         "You are a resilient person who stays composed when a crisis hits."),
        ("desirable_high", "You are a spirited person who lets it show when something makes them angry.",
         "You are a passive person who never shows anger, even when treated unfairly."),
        ("desirable_high", "You are an indulgent person who savours life's pleasures without holding back.",
         "You are an austere person who denies themselves every small pleasure."),
    ],
}
# fmt: on
# stance: pairs that differ in stance on the same content, not in content
# (session 8, after the dev-only by-key diagnosis: the shipped N direction adds
# negative-affect content and leaves reverse-keyed items unchanged). Every
# persona is "You are a person who often/never <X>.": in the first six pairs X
# is high-trait content (affirmed by the high persona, denied by the low one),
# in the last six X is low-trait content (denied by the high persona, affirmed
# by the low one), so the content and the words "often" and "never" appear on
# both sides equally and cancel in the mean difference; what is left is the
# stance. Six facets each, written from the facet names, not from any item.
STANCE_X: dict[str, list[str]] = {
    "N": [
        # high-trait content: anxiety, anger, depression, self-consciousness,
        # immoderation, vulnerability
        "lies awake over small setbacks",
        "loses their temper when a queue moves slowly",
        "sinks into gloom on grey days",
        "blushes and squirms when all eyes turn to them",
        "gives in to a craving for sweets or a shopping spree",
        "falls to pieces when plans go wrong",
        # low-trait content, same facets
        "feels at ease before an exam or an interview",
        "keeps their cool when someone is rude",
        "feels hopeful about the week ahead",
        "manages to laugh off a small blunder in public",
        "resists a second helping or an impulse buy",
        "stays steady when a crisis hits",
    ],
    "E": [
        # high-trait content: warmth, gregariousness, assertiveness, activity,
        # excitement-seeking, cheerfulness
        "chats with strangers on the bus",
        "throws big dinners for the whole street",
        "takes the lead when a group needs a plan",
        "packs a free day with one outing after another",
        "jumps at the chance of a wild night out",
        "laughs out loud at a silly joke",
        # low-trait content, same facets
        "spends a whole evening alone with a book",
        "slips away early from a party",
        "lets someone else speak for the group",
        "takes a slow, unhurried route through the day",
        "stays silent through a whole meeting",
        "stays at the edge of a crowd",
    ],
}


def stance_personas(trait: str) -> list[tuple[str, str, str]]:
    """12 (framing, high, low) stance pairs: the high persona affirms high-trait
    content or denies low-trait content. For N every high persona is the
    unfavourable one; E's pairs are labelled by the same rule (the high persona
    takes the trait's favourable side)."""
    xs = STANCE_X[trait]
    framing = "desirable_low" if trait == "N" else "desirable_high"
    out = []
    for i, x in enumerate(xs):
        often, never = f"You are a person who often {x}.", f"You are a person who never {x}."
        out.append((framing, often, never) if i < len(xs) // 2 else (framing, never, often))
    return out


# other-trait wording for the held-explicit set: (high, low)
OTHER = {
    "E": ("sociable", "reserved"),
    "A": ("kind", "blunt"),
    "C": ("organised", "disorganised"),
    "O": ("curious", "conventional"),
    "N": ("anxious", "even-tempered"),
}


def base_personas() -> dict[str, list[tuple[str, str, str]]]:
    doc = json.loads((OUT / "contrastive_pairs.json").read_text())
    out: dict[str, list[tuple[str, str, str]]] = {t: [] for t in TRAITS}
    for p in doc["pairs"]:
        row = (p["framing"], p["high"], p["low"])
        if row not in out[p["trait"]]:
            out[p["trait"]].append(row)
    return out


def expand(personas: dict[str, list[tuple[str, str, str]]], held: bool) -> list[dict]:
    rng = random.Random(11)
    pairs = []
    for t in TRAITS:
        for framing, high, low in personas[t]:
            for user, cont in TURNS:
                extra = ""
                if held:
                    others = [OTHER[o][rng.random() < 0.5] for o in TRAITS if o != t]
                    extra = f" You are also {', '.join(others[:-1])} and {others[-1]}."
                pairs.append(
                    {"trait": t, "framing": framing, "high": high + extra, "low": low + extra,
                     "user": user, "continuation": cont}
                )  # fmt: skip
    return pairs


def main(argv: list[str] | None = None) -> None:
    # no options: `--help` prints this docstring and a stray argument exits 2,
    # both before any file under agents/data/ is touched
    argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    ).parse_args(argv)
    base = base_personas()
    varied = {t: list(base[t]) + NEW[t] for t in TRAITS}
    varied["N"] = [p for p in base["N"] if p[0] == "desirable_low"] + N_FAVOURABLE_HIGH + NEW["N"]
    sets = {
        "varied": (varied, False, "14 persona pairs per trait x 8 user turns: the v3 personas "
                   "(N's favourable-high ones replaced) plus 6 new ones per trait."),
        "held": (varied, True, "the varied personas, each followed by one sentence naming the "
                 "other four traits at random (seeded) levels, the same in both personas."),
        "varied_o": ({**base, "O": varied["O"]}, False, "the shipped personas, except O's: the "
                     "14 varied ones, whose 6 new personas add intellect (ideas, words, "
                     "pondering) to imagination and art."),
        "facets": ({**base, "E": varied["E"] + FACETS["E"], "N": varied["N"] + FACETS["N"]},
                   False, "the shipped personas for A, C and O; E's and N's are the 14 varied "
                   "ones plus 6 that cover the NEO facets those leave out (E: assertiveness, "
                   "activity, excitement-seeking, cheerfulness; N: anger, self-worth, "
                   "immoderation, vulnerability)."),
        "varied_n": ({**base, "N": varied["N"]}, False, "the shipped personas, except N's: the "
                     "14 varied ones (anxiety, mood swings, criticism, stress, low mood, "
                     "irritability)."),
        "stance_n": ({**base, "N": stance_personas("N")}, False, "the shipped personas, "
                     "except N's: 12 stance pairs, 'You are a person who often X.' against "
                     "'... never X.' on the same content X, six with high-N content (affirmed "
                     "by the high persona) and six with low-N content (denied by it), over "
                     "N's six facets."),
        "stance_ne": ({**base, "N": stance_personas("N"), "E": stance_personas("E")}, False,
                      "the shipped personas, except N's and E's: 12 stance pairs each, 'You are "
                      "a person who often X.' against '... never X.' on the same content X, "
                      "six with high-trait content (affirmed by the high persona) and six with "
                      "low-trait content (denied by it), over the trait's six facets."),
    }  # fmt: skip
    (OUT / "pair_sets").mkdir(exist_ok=True)
    for name, (personas, held, what) in sets.items():
        doc = {
            "description": f"Candidate contrastive pairs '{name}': {what} Written by "
            "scripts/make_pair_sets.py; compared on the DEV questionnaire by "
            "scripts/steering_sweep.py --pairs. Never used to measure steering.",
            "version": 1,
            "pairs": expand(personas, held),
        }
        path = OUT / "pair_sets" / f"{name}.json"
        tmp = path.with_name(f".tmp-{path.name}")  # a shipped file is never half-written
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
        os.replace(tmp, path)
        print(path, len(doc["pairs"]))


if __name__ == "__main__":
    main()

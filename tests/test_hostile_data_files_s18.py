"""Bad data files a user names: a contrastive-pairs file (`steering.pairs`), a
questionnaire (`interview --items`) and a calibration file
(`scripts/steering_by_key.py --calibration`). Each is one line on stderr
naming the option or key and the file, exit code 2, and nothing written;
before, numbers, empty or repeated texts, unknown framings, misspelt keys and
NaN were taken as they were (a traceback after the model loaded, or a
silently different result), and a FIFO blocked for ever."""

from __future__ import annotations

import json
import os
import runpy
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from agents.typing import TRAITS
from tests.helpers import cli_exit, small_mock_runs

REPO = Path(__file__).resolve().parents[1]


def _within(seconds: float, call: Callable[[], object]) -> BaseException | None:
    """What `call` raised, run in a thread; fails the test when it blocks."""
    errors: list[BaseException] = []

    def target() -> None:
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    worker = threading.Thread(target=target, daemon=True)
    worker.start()
    worker.join(timeout=seconds)
    assert not worker.is_alive(), "blocked reading a FIFO"
    return errors[0] if errors else None


# --- steering.pairs ------------------------------------------------------------


def _pair(trait: str, **changes: object) -> dict[str, object]:
    return {
        "trait": trait, "kind": "statement", "high": f"I am very {trait}.",
        "low": f"I am not {trait} at all.", "user": "Tell me about yourself.",
        "continuation": "", **changes,
    }  # fmt: skip


GOOD_PAIRS = [_pair(t) for t in TRAITS]


def _pairs_doc(first: dict[str, object]) -> str:
    return json.dumps({"pairs": [first, *GOOD_PAIRS[1:]]})


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        (_pairs_doc(_pair("E", high=5)), "pair 0: high must be a string, got int"),
        (_pairs_doc(_pair("E", user=None)), "pair 0: user must be a string, got null"),
        (_pairs_doc(_pair("E", low="   ")), "pair 0: low is empty"),
        (_pairs_doc(_pair("E", low="I am very E.")), "pair 0: high and low are the same text"),
        (_pairs_doc(_pair("E", framing="bogus")), "framing must be one of desirable_high"),
        (
            _pairs_doc(_pair("E", sytem="You are Bob.")),
            "unknown key 'sytem'; did you mean 'system'",
        ),
        (_pairs_doc(_pair("E", System="You are Bob.")), "unknown key 'System'; did you mean"),
        (_pairs_doc(_pair("E", system=3)), "pair 0: system must be a string, got int"),
        (_pairs_doc(_pair("E", high="a\x00b")), "pair 0: high contains a NUL character"),
        (json.dumps({"pairs": GOOD_PAIRS + GOOD_PAIRS[:1]}), "pair 5 repeats pair 0"),
        (_pairs_doc(_pair("E"))[:-2] + ', {"trait": NaN}]}', "NaN is not a JSON number"),
        ('{"pairs": [], "pairs": ' + json.dumps(GOOD_PAIRS) + "}", "key 'pairs' is given twice"),
        (json.dumps(GOOD_PAIRS), "the file must be an object, got list"),
    ],
)
def test_a_bad_pairs_file_is_one_line_before_the_run(tmp_path, capsys, raw, says) -> None:
    # before: each ran (on the mock) or reached the tokenizer after the model loaded;
    # a repeat, a misspelt `system` or an unknown framing silently changed the vectors
    pairs = tmp_path / "pairs.json"
    pairs.write_text(raw, encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(
        "ticks: 1\nmax_events_per_tick: 2\npopulation: {agents: 2}\nmodel: {backend: mock}\n"
        f"steering: {{pairs: {pairs}, method: gradient}}\nstorage: {{root: {tmp_path / 'st'}}}\n"
    )
    code, err = cli_exit([str(config)], capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert err.startswith(f"error: steering.pairs '{pairs}': ") and says in err
    assert not (tmp_path / "st").exists()


def test_a_good_pairs_file_still_runs(tmp_path, capsys) -> None:
    from agents.steering.data import config_pairs

    pairs = tmp_path / "pairs.json"
    pairs.write_text(json.dumps({"description": "mine", "version": 1, "pairs": GOOD_PAIRS}))
    assert len(config_pairs(str(pairs), "gradient")) == 5


def test_a_pairs_fifo_device_or_huge_file_is_not_read(tmp_path) -> None:
    from agents.errors import ModelError
    from agents.steering.data import MAX_PAIRS_BYTES, config_pairs

    fifo = tmp_path / "pairs.json"
    os.mkfifo(fifo)  # before: blocked the run for ever, waiting for a writer
    err = _within(20, lambda: config_pairs(str(fifo), "gradient"))
    assert isinstance(err, ModelError) and str(err).endswith("(not a regular file)")
    with pytest.raises(ModelError, match=r"\(not a regular file\)$"):
        config_pairs("/dev/zero", "gradient")  # before: read until killed for memory
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(MAX_PAIRS_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(ModelError, match=r"\(larger than 16,777,216 bytes\)$"):
        config_pairs(str(big), "gradient")


# --- interview --items ---------------------------------------------------------


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory) -> Path:
    return small_mock_runs(tmp_path_factory.mktemp("hostile_s18"))


def _item(trait: str, key: int, **changes: object) -> dict[str, object]:
    return {
        "trait": trait,
        "key": key,
        "text": f"I am {'' if key > 0 else 'not '}{trait}.",
        **changes,
    }


GOOD_ITEMS = [_item(t, k) for t in TRAITS for k in (1, -1)]


def _items_doc(first: dict[str, object] | None = None, **top: object) -> str:
    items = GOOD_ITEMS if first is None else [first, *GOOD_ITEMS[1:]]
    return json.dumps({"prompt": "Describe yourself.", "items": items, **top})


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        # before: a traceback (pyarrow cannot write a bool key beside ints), an empty folder
        (_items_doc(_item("E", True)), "item 0: key must be 1 or -1, got True"),
        (_items_doc(_item("E", 1.0)), "item 0: key must be 1 or -1, got 1.0"),  # before: kept
        # before: each was scored like any other statement
        (_items_doc(_item("E", 1, text="")), "item 0: text is empty"),
        (_items_doc(_item("E", 1, text=" \n\t")), "item 0: text is empty"),
        (_items_doc(_item("E", 1, text="a\x00b")), "item 0: text contains a NUL character"),
        (json.dumps({"items": [*GOOD_ITEMS, GOOD_ITEMS[0]]}), "item 10 repeats the text of item 0"),
        (
            json.dumps({"items": [*GOOD_ITEMS, _item("E", -1, text="I am E.")]}),
            "item 10 repeats the text of item 0",
        ),
        # before: silently the default prompt
        (_items_doc(prompt=""), "prompt is empty"),
        (_items_doc(prompt="   "), "prompt is empty"),
        (json.dumps({"Prompt": "Who are you?", "items": GOOD_ITEMS}), "unknown key 'Prompt'"),
        (_items_doc(_item("E", 1, Text="x")), "item 0: unknown key 'Text'; did you mean 'text'"),
        (_items_doc(system=""), "system is empty"),
        ('{"items": [], "items": ' + json.dumps(GOOD_ITEMS) + "}", "key 'items' is given twice"),
        (_items_doc()[:-1] + ', "x": Infinity}', "Infinity is not a JSON number"),
        (_items_doc(_item("e", 1)), "item 0: trait must be one of E, A, C, O, N, got 'e'"),
        (json.dumps({"items": {"E": GOOD_ITEMS}}), "items must be a list, got dict"),
    ],
)
def test_a_bad_questionnaire_is_one_line_and_writes_nothing(
    small_runs, tmp_path, capsys, raw, says
) -> None:
    items, out = tmp_path / "items.json", tmp_path / "out"
    items.write_text(raw, encoding="utf-8")
    code, err = cli_exit(
        ["interview", "a", "--storage-root", str(small_runs), "--items", str(items)]
        + ["--permutations", "100", "--out", str(out)],
        capsys,
    )
    assert code == 2 and "\n" not in err and "Traceback" not in err
    assert err.startswith(f"error: --items {items}: ") and says in err
    assert not out.exists()


def test_a_questionnaire_with_notes_and_no_prompt_still_reads(tmp_path) -> None:
    from orchestrator.experiments.interview import DEFAULT_ITEMS_PROMPT, load_items

    path = tmp_path / "items.json"
    notes = [{**i, "facet": "x", "stem": "y"} for i in GOOD_ITEMS]
    path.write_text(json.dumps({"description": "mine", "items": notes, "prompt": None}))
    got = load_items(str(path))
    assert got.prompt == DEFAULT_ITEMS_PROMPT and got.system is None and len(got.items) == 10
    for shipped in ("questionnaire_test.json", "questionnaire_dev.json"):  # a copy still reads
        assert load_items(str(REPO / "agents" / "data" / shipped)).items


# --- scripts/steering_by_key.py --calibration ----------------------------------


def test_a_calibration_fifo_does_not_block(tmp_path) -> None:
    read_calibration = runpy.run_path(str(REPO / "scripts" / "steering_by_key.py"))[
        "read_calibration"
    ]
    fifo = tmp_path / "calibration.json"
    os.mkfifo(fifo)  # before: the script waited for a writer for ever
    err = _within(20, lambda: read_calibration(fifo))
    assert isinstance(err, ValueError) and "not a regular file" in str(err)
    dup = tmp_path / "dup.json"
    dup.write_text('{"calibrations": [], "calibrations": []}')
    with pytest.raises(ValueError, match="given twice"):
        read_calibration(dup)

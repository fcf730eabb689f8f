"""Config input that would eat memory, the stack or the run: alias bombs,
deep nesting, self-references, huge counts, non-strict types, oversized or
special files. Each is one ConfigError line; documented limits can be raised."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings

from orchestrator.checkpoint import config_hash
from orchestrator.config_loader import MAX_CONFIG_BYTES, load_config, validate
from orchestrator.errors import ConfigError
from tests.config_fuzz import hostile_document, hostile_override
from tests.conftest import CONFIGS
from tests.helpers import cli

BOMB = "a0: &a0 [lol, lol]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 12)
)


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (BOMB + "world: {goals: *a11}\n", "once aliases are expanded"),
        ("population: " + "{a: " * 40 + "1" + "}" * 40 + "\n", "nested deeper than 32"),
        ("ticks: " + "[" * 1000 + "]" * 1000 + "\n", "nesting depth|nested deeper"),
        ("x: &a [1, *a]\n", "refers to a collection holding it"),
        ("x: &a {k: *a}\n", "refers to a collection holding it"),
        ("population: {agents: 10000000}\n", "limits.agents"),
        ("ticks: 100000000\n", "limits.ticks"),
        ("inference: {max_new_tokens: 1000000}\n", "limits.new_tokens"),
        ("memory: {max_items: 10000000}\n", "limits.memory_items"),
        ("ticks: true\n", "valid integer"),
        ("ticks: '5'\n", "valid integer"),
        ("ticks: 5.0\n", "valid integer"),
        ("steering: {enabled: 1}\n", "valid boolean"),
        ("seed: " + "9" * 5000 + "\n", "cannot be read"),
        ("run_id: 2001-13-45\n", "cannot be read"),
        ("world: {locations: [" + ", ".join(["cafe"] * 50_000) + "]}\n", "duplicate location"),
        ("world: {goals: ['" + "g" * 600 + "']}\n", "at most 500 characters"),
        (
            "steering: {layers: [3]}\nticks: 2\nsteering: {strength: 0.3}\n",
            "'steering' is given twice",
        ),
        ("population: {agents: 2, agents: 3}\n", "'agents' is given twice"),
    ],
    ids=[
        "alias-bomb",
        "deep-mapping",
        "deep-list",
        "self-alias-list",
        "self-alias-map",
        "agents",
        "ticks",
        "tokens",
        "memory",
        "bool-as-int",
        "str-as-int",
        "float-as-int",
        "int-as-bool",
        "huge-int",
        "bad-date",
        "many-duplicates",
        "long-goal",
        "duplicate-section",  # the loader kept the last block: the first's keys were lost
        "duplicate-key",
    ],
)
def test_hostile_config_is_one_line(write_yaml, text, fragment):
    with pytest.raises(ConfigError, match=fragment) as info:
        load_config(write_yaml("c.yaml", text))
    assert "\n" not in str(info.value)


def test_limits_are_raised_by_an_explicit_key(write_yaml):
    cfg = load_config(
        write_yaml("c.yaml", "population: {agents: 200000}\nlimits: {agents: 200000}\n")
    ).config
    assert cfg.population.agents == 200_000


def test_limits_change_no_config_hash(write_yaml):
    a = load_config(write_yaml("a.yaml", "ticks: 5\n")).as_dict()
    b = load_config(write_yaml("b.yaml", "ticks: 5\nlimits: {ticks: 10}\n")).as_dict()
    assert a["limits"] != b["limits"] and config_hash(a) == config_hash(b)


def test_ints_still_pass_for_floats(write_yaml):
    cfg = load_config(write_yaml("c.yaml", "inference: {temperature: 1}\n")).config
    assert cfg.inference.temperature == 1.0


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        ("ticks=true", "valid integer"),
        ("population.agents=10000000", "limits.agents"),
        ("world.goals=" + "[" * 100 + "]" * 100, "nested deeper"),
        ("a." * 40 + "b=1", "nested deeper"),
        ("x=&a [1, *a]", "holding it"),
    ],
)
def test_hostile_override_is_one_line(override, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_config(CONFIGS / "run.fast.yaml", [override])


def test_oversized_config_file_is_refused_unread(tmp_path):
    path = tmp_path / "big.yaml"
    path.write_text("# " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match="larger than"):
        load_config(path)


def test_fifo_config_is_refused_without_hanging(tmp_path):
    path = tmp_path / "pipe.yaml"
    os.mkfifo(path)
    proc = cli(str(path), "--mock-model", timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_stored_config_with_an_unknown_top_level_key_is_one_line():
    """validate() with no provenance (a resumed run's manifest) once looped forever."""
    with pytest.raises(ConfigError, match="unknown key"):
        validate({"nonsense": 1}, {}, "manifest.json")


# --- fuzz: 100 documents here; scripts/reliability_check.py runs 1,000 and times them

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@FUZZ
@given(doc=hostile_document())
def test_fuzzed_hostile_documents(tmp_path, doc):
    path = tmp_path / "fuzz.yaml"
    path.write_text(doc)
    try:
        load_config(path)
    except ConfigError as exc:
        assert "\n" not in str(exc)


@FUZZ
@given(overrides=hostile_override().map(lambda o: [o]))
def test_fuzzed_hostile_overrides(overrides):
    try:
        load_config(CONFIGS / "run.fast.yaml", overrides)
    except ConfigError as exc:
        assert "\n" not in str(exc)

"""Config resolution: templates, merging, cycles, overrides, validation errors."""

from __future__ import annotations

import pytest

from orchestrator.config_loader import deep_merge, load_config
from orchestrator.errors import ConfigError
from tests.conftest import CONFIGS


def test_shipped_configs_resolve():
    fast = load_config(CONFIGS / "run.fast.yaml").config
    small = load_config(CONFIGS / "run.small.yaml").config
    medium = load_config(CONFIGS / "run.medium.yaml").config
    demo = load_config(CONFIGS / "run.demo.yaml").config
    assert (small.population.agents, small.ticks) == (32, 200)
    assert medium.population.agents == 100
    assert demo.ticks < fast.ticks
    # small inherits everything it does not override
    assert small.world == fast.world and small.memory == fast.memory


def test_template_chain_merges_deeply(write_yaml):
    write_yaml(
        "base.yaml", "seed: 1\nmodel: {backend: mock, dtype: float32}\nsteering: {layers: [1, 2]}\n"
    )
    write_yaml("mid.yaml", "template: base.yaml\nmodel: {dtype: bfloat16}\n")
    top = write_yaml("sub/top.yaml", "template: ../mid.yaml\nsteering: {layers: [5]}\n")
    # sub/ escapes to its parent: refused (templates stay under the named file's folder)
    with pytest.raises(ConfigError, match="escapes"):
        load_config(top)
    top = write_yaml("top.yaml", "template: mid.yaml\nsteering: {layers: [5]}\n")
    cfg = load_config(top).config
    assert cfg.seed == 1
    assert cfg.model.backend == "mock" and cfg.model.dtype == "bfloat16"  # mapping merged
    assert cfg.steering.layers == [5]  # list replaced, not appended


def test_template_relative_to_including_file(write_yaml):
    write_yaml("a/base.yaml", "ticks: 7\n")
    write_yaml("a/mid.yaml", "template: base.yaml\n")
    top = write_yaml("top.yaml", "template: a/mid.yaml\n")
    assert load_config(top).config.ticks == 7


def test_deep_merge_rules():
    assert deep_merge({"a": {"b": 1, "c": 2}, "l": [1]}, {"a": {"b": 3}, "l": [2]}) == {
        "a": {"b": 3, "c": 2},
        "l": [2],
    }


def test_overrides_apply_last_with_yaml_values(write_yaml):
    path = write_yaml("c.yaml", "ticks: 5\nsteering: {layers: [3]}\n")
    cfg = load_config(
        path,
        ["inference.max_new_tokens=32", "steering.layers=[12,16]", "model.backend=mock", "ticks=9"],
    ).config
    assert cfg.inference.max_new_tokens == 32
    assert cfg.steering.layers == [12, 16]
    assert cfg.ticks == 9


@pytest.mark.parametrize(
    ("files", "overrides", "source", "key", "fragment"),
    [
        ({"c.yaml": "ticks: [1\n"}, [], "c.yaml", None, "YAML syntax error at line"),
        (
            {"c.yaml": "template: d.yaml\n", "d.yaml": "template: c.yaml\n"},
            [],
            "d.yaml",
            "template",
            "cycle",
        ),
        ({"c.yaml": "template: c.yaml\n"}, [], "c.yaml", "template", "cycle"),
        ({"c.yaml": "template: nope.yaml\n"}, [], "c.yaml", "template", "not found"),
        ({"c.yaml": "template: /etc/passwd\n"}, [], "c.yaml", "template", "relative"),
        (
            {"c.yaml": "populaton: {agents: 3}\n"},
            [],
            "c.yaml",
            "populaton",
            "did you mean 'population'",
        ),
        (
            {"c.yaml": "memory: {weights: {recncy: 1}}\n"},
            [],
            "c.yaml",
            "memory.weights.recncy",
            "did you mean 'recency'",
        ),
        ({"c.yaml": "ticks: many\n"}, [], "c.yaml", "ticks", "valid integer"),
        (
            {"c.yaml": "population: {agents: 0}\n"},
            [],
            "c.yaml",
            "population.agents",
            "greater than 0",
        ),
        (
            {"c.yaml": "max_events_per_tick: -3\n"},
            [],
            "c.yaml",
            "max_events_per_tick",
            "greater than 0",
        ),
        ({"c.yaml": "run_id: ../evil\n"}, [], "c.yaml", "run_id", "invalid run id"),
        ({"c.yaml": "run_id: a/b\n"}, [], "c.yaml", "run_id", "path separators"),
        (
            {"c.yaml": "population: {agents: 2, traits: [{name: Z, home: moon}]}\n"},
            [],
            "c.yaml",
            "population.traits[0].home",
            "unknown location 'moon'",
        ),
        ({"c.yaml": "ticks: 3\n"}, ["ticks=0"], "--set", "ticks", "greater than 0"),
        ({"c.yaml": "ticks: 3\n"}, ["nonsense"], "--set", None, "KEY=VALUE"),
        ({"c.yaml": "ticks: 3\n"}, ["ticks.x=1"], "--set", "ticks.x", "not a mapping"),
        ({"c.yaml": "- a\n- b\n"}, [], "c.yaml", None, "mapping"),
    ],
)
def test_bad_input_names_file_and_key(
    write_yaml, tmp_path, files, overrides, source, key, fragment
):
    for name, text in files.items():
        write_yaml(name, text)
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "c.yaml", overrides)
    err = info.value
    assert err.source.endswith(source)
    assert err.key == key
    assert fragment in str(err)
    assert "\n" not in str(err)


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


def test_personas_fill_first_agents(write_yaml):
    path = write_yaml(
        "p.yaml",
        "population: {agents: 3, traits: [{name: Zed, home: cafe, E: 0.9, C: -0.5}]}\n",
    )
    from orchestrator.population import build_agents

    cfg = load_config(path).config
    agents = build_agents(cfg.population, cfg.world, cfg.seed)
    assert agents[0].name == "Zed" and agents[0].home == "cafe"
    assert agents[0].traits.E == 0.9 and agents[0].traits.C == -0.5
    assert len(agents) == 3
    # persona for agent 0 does not change agents 1, 2
    plain = build_agents(
        cfg.population.model_copy(update={"traits": "random"}), cfg.world, cfg.seed
    )
    assert agents[1:] == plain[1:]


def test_exponent_floats_read_as_numbers_everywhere(write_yaml):
    """`1e-3` is a float in a config file, a --set value and a --grid value
    (YAML 1.1 read it as a string, refused as "not a valid number"); a string
    that looks like one is written quoted, so a resolved config reads back."""
    from orchestrator import yaml_dialect
    from orchestrator.experiments.grid import parse_axis, yaml_text

    path = write_yaml("c.yaml", "model: {backend: mock}\nsteering: {strength: 2E-1}\n")
    assert load_config(path).config.steering.strength == 0.2
    cfg = load_config(path, ["steering.strength=1e-1", "memory.recency_decay=.99e0"]).config
    assert cfg.steering.strength == 0.1 and cfg.memory.recency_decay == 0.99
    assert parse_axis("steering.strength=1e-1,15e-2").values == (0.1, 0.15)
    for text in ("1e5", "2E-3", ".5e1"):  # strings stay strings through a round trip
        assert yaml_dialect.load(yaml_text(text)) == text
        assert yaml_dialect.load(yaml_dialect.dump({"k": text})) == {"k": text}
    resolved = load_config(path, ["population.traits=[{name: '1e5'}]", "world.goals=['2e3']"])
    again = yaml_dialect.load(resolved.to_yaml())
    assert again["population"]["traits"][0]["name"] == "1e5" and again["world"]["goals"] == ["2e3"]


@pytest.mark.parametrize("value", ["1e5", "123", "yes"])
def test_a_number_where_text_goes_says_to_quote_it(write_yaml, value):
    path = write_yaml("c.yaml", "model: {backend: mock}\n")
    with pytest.raises(ConfigError, match=r"^--set: run_id: .*quote it to mean text$"):
        load_config(path, [f"run_id={value}"])
    assert load_config(path, [f"run_id='{value}'"]).config.run_id == value

"""Hypothesis strategies for hostile config documents and overrides: anchors
and aliases (bombs and self-references included), deep nesting, huge and odd
numbers, tags, merge keys, all placed under the config's real keys. Used by
tests/test_reliability_config.py and scripts/reliability_check.py."""

from __future__ import annotations

from hypothesis import strategies as st

REAL_KEYS = [
    "ticks",
    "seed",
    "run_id",
    "max_events_per_tick",
    "population",
    "population.agents",
    "population.traits",
    "world.locations",
    "world.goals",
    "world.max_group_size",
    "inference.max_new_tokens",
    "inference.max_prompt_tokens",
    "memory.max_items",
    "memory.top_k",
    "steering.layers",
    "steering.enabled",
    "limits.agents",
    "limits.ticks",
    "template",
    "storage.root",
]

SCALARS = st.sampled_from(
    [
        "1",
        "0",
        "-1",
        "true",
        "false",
        "null",
        "~",
        "yes",
        "1.5",
        "1e3",
        "1.0e999",
        ".nan",
        "-.inf",
        "10000000",
        "100000000000000000000000000000",
        "9" * 5000,
        "0x1F",
        "0o17",
        "2001-12-14",
        "2001-13-45",
        "'0042'",
        '"\\e]0;title\\a"',
        '"a\\nTICK 999"',
        '"\\u202eevil"',
        "'[bold red]x[/]'",
        "!!binary aGVsbG8=",
        "!!binary ???",
        "!!python/object/apply:os.system ['true']",
        "!!set {a, b}",
        "cafe",
        "home",
        "Ada",
    ]
)


@st.composite
def flow_value(draw, depth: int = 0, anchors: list[str] | None = None) -> str:
    """A YAML flow value; some collections carry anchors that later values alias
    (and, now and then, that their own children alias: a self-reference)."""
    anchors = [] if anchors is None else anchors
    kinds = ["scalar", "list", "map"] + (["alias", "alias"] if anchors else [])
    kind = draw(st.sampled_from(kinds)) if depth < 6 else "scalar"
    if kind == "scalar":
        return draw(SCALARS)
    if kind == "alias":
        return "*" + draw(st.sampled_from(anchors))
    name = None
    if draw(st.integers(0, 3)) == 0:
        name = f"a{len(anchors)}"
        if draw(st.integers(0, 4)) == 0:
            anchors.append(name)  # visible to its own children: self-reference
    items = [draw(flow_value(depth + 1, anchors)) for _ in range(draw(st.integers(0, 6)))]
    if kind == "list":
        body = "[" + ", ".join(items) + "]"
    else:
        keys = [
            draw(st.sampled_from(["k", "name", "agents", "<<", "E", "x"])) + str(i)
            for i in range(len(items))
        ]
        if items and draw(st.booleans()) and anchors:
            keys[0] = "<<"  # a merge key
            items[0] = "*" + draw(st.sampled_from(anchors))
        body = "{" + ", ".join(f"{k}: {v}" for k, v in zip(keys, items, strict=True)) + "}"
    if name is not None:
        if name not in anchors:
            anchors.append(name)
        body = f"&{name} {body}"
    return body


@st.composite
def nested(draw) -> str:
    """A value wrapped in up to 1,200 levels of lists or mappings."""
    depth = draw(st.sampled_from([0, 1, 5, 31, 32, 33, 64, 200, 1200]))
    inner = draw(SCALARS)
    if draw(st.booleans()):
        return "[" * depth + inner + "]" * depth
    return "{a: " * depth + inner + "}" * depth


@st.composite
def bomb(draw) -> str:
    """A billion-laughs document body: each level aliases the previous one k times."""
    levels, width = draw(st.integers(2, 30)), draw(st.integers(2, 10))
    lines = ["l0: &l0 [lol, lol]"]
    for i in range(1, levels):
        lines.append(f"l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]")
    return "\n".join(lines) + "\n"


def _under(key: str, value: str) -> str:
    """`a.b.c: v` as nested flow mappings."""
    parts = key.split(".")
    text = value
    for part in reversed(parts[1:]):
        text = "{" + part + ": " + text + "}"
    return f"{parts[0]}: {text}"


@st.composite
def hostile_document(draw) -> str:
    """A whole config document."""
    anchors: list[str] = []
    lines = []
    if draw(st.integers(0, 4)) == 0:
        lines.append(draw(bomb()))
        anchors = [a for a in ("l0", "l1", "l2") if f"&{a} " in lines[-1]]
    for _ in range(draw(st.integers(1, 4))):
        key = draw(st.sampled_from(REAL_KEYS))
        value = draw(st.one_of(flow_value(0, anchors), nested(), SCALARS))
        lines.append(_under(key, value))
    return "\n".join(lines) + "\n"


@st.composite
def hostile_override(draw) -> str:
    key = draw(st.sampled_from(REAL_KEYS) | st.text(max_size=12))
    return f"{key}={draw(st.one_of(flow_value(), nested(), SCALARS))}"

"""A sweep's points: `--grid KEY=V1,V2,...` options expanded into their
Cartesian product (times the seeds), each point a set of `--set` overrides
with a stable run id.

Values are YAML, as with `--set`: `steering.strength=0,0.1,0.2` gives three
floats, `steering.layers=[12,16],[20]` two lists, `model.backend=mock,hf` two
strings (the list is read as the YAML flow sequence `[V1,V2,...]`, so a comma
inside brackets or quotes stays inside its value). Knows nothing about
running, configs or the index."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

from orchestrator import yaml_dialect
from orchestrator.config_loader import refuse_unusable
from orchestrator.config_schema import check_run_id
from orchestrator.errors import ConfigError

SEED_KEY = "seed"
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
MAX_POINTS = 10_000  # a typo in a grid should not start a million runs


@dataclass(frozen=True, kw_only=True)
class Axis:
    """One swept key and its values, in the order given."""

    key: str
    values: tuple[Any, ...]


@dataclass(frozen=True, kw_only=True)
class Point:
    """One run of a sweep: the swept keys' values (in axis order) and its seed."""

    index: int  # position in the sweep's order (first axis slowest, seed fastest)
    run_id: str
    values: tuple[tuple[str, Any], ...]  # ((key, value), ...) without the seed
    seed: int | None  # None: the config's own seed (no seeds swept)

    def overrides(self) -> list[str]:
        """The point as `--set KEY=VALUE` arguments (values as YAML flow text)."""
        out = [f"{k}={yaml_text(v)}" for k, v in self.values]
        if self.seed is not None:
            out.append(f"{SEED_KEY}={self.seed}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return dict(self.values)


def yaml_text(value: Any) -> str:
    """A value as one line of YAML that reads back as the same value."""
    return (
        yaml_dialect.dump(value, default_flow_style=True, width=10**6)
        .strip()
        .removesuffix("...")
        .strip()
    )


def parse_axis(text: str) -> Axis:
    """`KEY=V1,V2,...` -> Axis; ConfigError (one line, exit 2) when malformed."""
    key, sep, values_text = text.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.match(key) or not values_text.strip():
        raise ConfigError("--grid", None, f"expected KEY=V1,V2,... with a dotted key, got {text!r}")
    try:
        values = yaml_dialect.load(f"[{values_text}]")
    except yaml.YAMLError:
        raise ConfigError("--grid", key, f"values {values_text!r} are not valid YAML") from None
    if not isinstance(values, list) or not values:
        raise ConfigError("--grid", key, f"no values in {values_text!r}")
    for value in values:  # NaN, an infinity, a NUL: the grid's own fault, named as such
        refuse_unusable({key: value}, {}, "--grid")
    canon = [json.dumps(v, sort_keys=True, default=str) for v in values]
    if len(set(canon)) != len(canon):
        raise ConfigError("--grid", key, f"a value is repeated in {values_text!r}")
    return Axis(key=key, values=tuple(values))


def seeds_for(axes: list[Axis], repeat_seeds: int | None) -> tuple[list[Axis], list[int | None]]:
    """The seeds to run: `--repeat-seeds N` gives 1..N; a `seed` axis may be
    given instead (not both); neither keeps the config's seed."""
    seed_axes = [a for a in axes if a.key == SEED_KEY]
    rest = [a for a in axes if a.key != SEED_KEY]
    if seed_axes and repeat_seeds is not None:
        raise ConfigError(
            "--grid", SEED_KEY, "give the seeds with --grid seed=... or --repeat-seeds, not both"
        )
    if seed_axes:
        seeds = list(seed_axes[0].values)
        if not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
            raise ConfigError("--grid", SEED_KEY, f"seeds must be integers >= 0, got {seeds}")
        return rest, seeds
    if repeat_seeds is not None:
        if repeat_seeds < 1:
            raise ConfigError("--repeat-seeds", None, f"must be >= 1, got {repeat_seeds}")
        if repeat_seeds > MAX_POINTS:  # before the list: --repeat-seeds 100000000 is a typo
            raise ConfigError(
                "--repeat-seeds", None, f"{repeat_seeds} seeds; at most {MAX_POINTS} per sweep"
            )
        return rest, list(range(1, repeat_seeds + 1))
    return rest, [None]


def expand(name: str, axes: list[Axis], repeat_seeds: int | None = None) -> list[Point]:
    """Every combination of the axes' values, times the seeds, in a fixed order."""
    keys = [a.key for a in axes]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise ConfigError("--grid", dupes[0], "is swept twice; give its values in one --grid")
    axes, seeds = seeds_for(axes, repeat_seeds)
    # counted, not built: a typo of 20 axes x 3 values would be billions of tuples
    count = math.prod(len(a.values) for a in axes) * len(seeds)
    if count > MAX_POINTS:
        raise ConfigError("--grid", None, f"{count} points; at most {MAX_POINTS} per sweep")
    combos = list(itertools.product(*(a.values for a in axes), seeds))
    points = []
    for i, combo in enumerate(combos):
        values = tuple(zip((a.key for a in axes), combo[:-1], strict=True))
        seed = combo[-1]
        points.append(Point(index=i, run_id=_run_id(name, values, seed), values=values, seed=seed))
    if len({p.run_id for p in points}) != len(points):  # two keys end alike, or a value clash
        points = [
            Point(
                index=p.index,
                run_id=f"{name}-{p.index:04d}-{_digest(p.values, p.seed)}",
                values=p.values,
                seed=p.seed,
            )
            for p in points
        ]
    return points


def _run_id(name: str, values: tuple[tuple[str, Any], ...], seed: int | None) -> str:
    """Readable and stable: `<name>-strength0.1-seed2` (last key part + value);
    a hash where the value does not make a safe name."""
    parts = [name]
    for key, value in values:
        text = _UNSAFE.sub("_", yaml_text(value)).strip("_.")
        if not text or len(text) > 24 or ".." in text:
            text = _digest(((key, value),), None)
        parts.append(key.rsplit(".", 1)[-1] + text)
    if seed is not None:
        parts.append(f"seed{seed}")
    run_id = "-".join(parts)
    try:
        check_run_id(run_id)
    except ValueError:
        run_id = f"{name}-{_digest(values, seed)}"
    return run_id


def _digest(values: Any, seed: int | None) -> str:
    blob = json.dumps([values, seed], sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:8]

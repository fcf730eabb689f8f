"""The YAML that configs, --set, --grid and --slurm-param values are read in,
and that resolved configs and grid values are written in: YAML 1.1's safe
schema (PyYAML's) plus YAML 1.2's exponent floats.

Why: YAML 1.1 reads `1e-3` and `2E5` as strings (its floats need a dot and a
signed exponent), so `strength: 1e-3` was refused as "not a valid number".
The writer knows the same rule, so a string such as `"1e5"` is quoted and
reads back as a string."""

from __future__ import annotations

import re
from typing import Any

import yaml

_BASE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when present: fast
# an exponent float without a dot or without a sign: a string in YAML 1.1, a float in 1.2
_EXP_FLOAT = re.compile(r"^[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+$")
_FIRST = list("-+.0123456789")


class Loader(_BASE_LOADER):  # type: ignore[misc, valid-type]
    """The safe loader, exponent floats included."""


class Dumper(yaml.SafeDumper):
    """The safe dumper, quoting strings the Loader would read as floats."""


for _cls in (Loader, Dumper):
    _cls.add_implicit_resolver("tag:yaml.org,2002:float", _EXP_FLOAT, _FIRST)


def load(text: str) -> Any:
    """`text` read as YAML (safe: plain data only)."""
    return yaml.load(text, Loader=Loader)  # noqa: S506 - a safe loader


def dump(value: Any, **options: Any) -> str:
    """`value` as YAML that `load` reads back as the same value."""
    return yaml.dump(value, Dumper=Dumper, **options)

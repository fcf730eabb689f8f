"""Reads the JSON data files a user names (a contrastive-pairs file for
`steering.pairs`, a questionnaire for `interview --items`) and checks their
fields, so that a bad file is one ValueError saying what is wrong instead of
a hang, a traceback after the model loads, or a silently different result.
Knows nothing about what the files mean: the callers check their own keys
and name the file in the message."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Collection, Iterator, Mapping
from difflib import get_close_matches
from pathlib import Path
from typing import Any


def read_json(path: Path, *, max_bytes: int) -> Any:
    """The parsed JSON of the regular file `path`, of at most `max_bytes`.
    OSError when it cannot be opened; ValueError when it is a folder, a FIFO
    or a device (a FIFO blocked for ever, /dev/zero read until the process was
    killed for memory), too large, not UTF-8, not JSON, nested too deeply,
    holding NaN or Infinity (not JSON, but Python's parser takes them) or a
    key twice in one object (the parser kept the last silently)."""
    if not path.is_file():  # stat, not open: opening a FIFO blocks; ENOENT from stat
        path.stat()
        raise ValueError("is a folder" if path.is_dir() else "not a regular file")
    # O_NONBLOCK: should the file be swapped for a FIFO after the check, open
    # does not wait for a writer, and fstat below refuses it
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError("not a regular file")
        raw = fh.read(max_bytes + 1)  # bounded even if it grows while read
    if len(raw) > max_bytes:
        raise ValueError(f"larger than {max_bytes:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})"
        ) from None
    try:
        return json.loads(text, parse_constant=_no_constant, object_pairs_hook=_unique_keys)
    except RecursionError:  # thousands of nested brackets
        raise ValueError("the JSON is nested too deeply") from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number; give a finite number")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"key {key!r} is given twice in one object")
        out[key] = value
    return out


def mapping(value: Any, where: str) -> Mapping[str, Any]:
    """`value` if it is a JSON object; else ValueError naming `where`."""
    if not isinstance(value, dict):
        raise ValueError(f"{where} must be an object, got {_kind(value)}")
    return value


def array(value: Any, where: str) -> list[Any]:
    """`value` if it is a JSON array; else ValueError naming `where`."""
    if not isinstance(value, list):
        raise ValueError(f"{where} must be a list, got {_kind(value)}")
    return value


def records(
    doc: Any,
    list_key: str,
    top_keys: Collection[str],
    label: str,
    *,
    fields: Collection[str],
    required: Collection[str],
    strict: bool,
) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """(where, object) for each object of the file's `list_key` list: the top
    level an object with its keys checked (not strictly), the list present,
    each entry an object whose keys are `fields` (strictly or not) and that has
    every `required` one. `where` is "`label` i" for the caller's messages."""
    top = mapping(doc, "the file")
    check_keys(top, top_keys, "the file", strict=False)
    if list_key not in top:
        raise ValueError(f"no key {list_key!r}")
    for i, raw in enumerate(array(top[list_key], list_key)):
        at = f"{label} {i}"
        obj = mapping(raw, at)
        check_keys(obj, fields, at, strict=strict)
        if missing := [k for k in required if k not in obj]:
            raise ValueError(f"{at}: no key {missing[0]!r}")
        yield at, obj


def check_keys(obj: Mapping[str, Any], known: Collection[str], where: str, *, strict: bool) -> None:
    """ValueError for a key of `obj` not in `known`: any such key when `strict`,
    else only one that is a known key in another case ("Text", "PROMPT"),
    which was ignored, so the default or nothing took its place."""
    lowered = {k.casefold(): k for k in known}
    for key in obj:
        if key in known:
            continue
        if key.casefold() in lowered:
            raise ValueError(
                f"{where}: unknown key {key!r}; did you mean {lowered[key.casefold()]!r}?"
            )
        if strict:
            near = get_close_matches(key, list(known), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f" (known: {', '.join(known)})"
            raise ValueError(f"{where}: unknown key {key!r}{hint}")


def text_field(value: Any, where: str, *, blank_ok: bool = False) -> str:
    """`value` if it is a string without NUL characters, and (unless `blank_ok`)
    not empty or only whitespace; else ValueError naming `where`. An empty
    statement or prompt was scored or built from as if it said something."""
    if not isinstance(value, str):
        raise ValueError(f"{where} must be a string, got {_kind(value)}")
    if "\x00" in value:
        raise ValueError(f"{where} contains a NUL character")
    if not blank_ok and not value.strip():
        raise ValueError(f"{where} is empty")
    return value


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__  # "dict", "list", "int", ...

"""Turns a YAML file plus CLI overrides into a validated RunConfig.

Order: the file's `template:` chain is resolved (paths relative to the
including file, recursive, mappings merged deeply, lists and scalars replaced,
cycles refused), then `--set key=value` overrides, then validation against
config_schema. Every failure is a ConfigError naming the file and dotted key.

Security rule: a template must lie inside the directory of the config file the
user named (or below it); absolute paths and `..` escapes out of it are
refused. Only the safe loader is used, and bounded: a file of at most
MAX_CONFIG_BYTES, nesting at most MAX_DEPTH deep and at most MAX_NODES values
once aliases are expanded (an alias bomb is refused while it is parsed, before
anything is built), no alias inside its own anchor, no key twice in one
mapping (the loader would keep the last silently). Validation is strict
(`ticks: true` is not 1). Every walk over the document is linear in its size."""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from orchestrator import yaml_dialect
from orchestrator.config_schema import CrossFieldError, RunConfig
from orchestrator.errors import ConfigError, one_line

OVERRIDE_SOURCE = "--set"
_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")
MAX_TEMPLATE_DEPTH = 16
MAX_CONFIG_BYTES = 1 << 20  # 10,000 personas take about 0.5 MB
MAX_DEPTH = 32  # nested mappings and lists; a run config needs 4
MAX_NODES = 100_000  # keys and values, aliases expanded (10,000 personas: ~90,000)


@dataclass(frozen=True, kw_only=True)
class ResolvedConfig:
    """A validated config with where it came from."""

    config: RunConfig
    source: Path  # the file the user named
    files: tuple[Path, ...]  # the template chain, base first

    def as_dict(self) -> dict[str, Any]:
        return self.config.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml_dialect.dump(self.as_dict(), sort_keys=False, allow_unicode=True)


def load_config(
    path: str | Path,
    overrides: list[str] | None = None,
    *,
    options: Mapping[str, str] | Sequence[tuple[str, str]] | None = None,
) -> ResolvedConfig:
    """Resolve templates and overrides and validate; raises ConfigError.
    `overrides` are --set KEY=VALUE items; `options` are the KEY=VALUE items
    that other command-line options stand for ({"--run-id": "run_id=x"}, or
    (option, item) pairs when an option is repeated: a sweep's --grid),
    applied after them: a fault in one is reported under its option's name."""
    src = Path(path)
    display = str(path)
    try:
        is_file = src.is_file()
    except OSError as exc:  # pathlib lets ENAMETOOLONG through: a name over 255 bytes
        raise ConfigError(display, None, f"cannot read: {exc.strerror or exc}") from None
    if not is_file:
        raise ConfigError(display, None, _not_a_file(src))
    root = src.resolve().parent
    provenance: dict[str, str] = {}
    files: list[Path] = []
    raw = _load_with_templates(src.resolve(), display, root, (), provenance, files)
    for item in overrides or []:
        _apply_override(raw, item, provenance)
    pairs = options.items() if isinstance(options, Mapping) else options or ()
    for option, item in pairs:
        _apply_override(raw, item, provenance, source=option)
    config = validate(raw, provenance, display)
    return ResolvedConfig(config=config, source=src, files=tuple(files))


def _not_a_file(path: Path) -> str:
    """Why CONFIG cannot be read: 'not found' for a folder sends the user looking
    for a file that is there."""
    if path.is_dir():
        return "is a folder, not a config file"
    return "not a regular file" if path.exists() else "config file not found"


def validate(raw: dict[str, Any], provenance: dict[str, str], default_source: str) -> RunConfig:
    refuse_unusable(raw, provenance, default_source)
    try:
        return RunConfig.model_validate(raw, strict=True)  # no bool-as-int, no "3"-as-int
    except ValidationError as exc:
        # The deepest location is the most specific: for a union such as
        # `"random" | list[Persona]` it is the branch that matched the input's shape.
        err = max(exc.errors(), key=lambda e: len(e["loc"]))
        loc = tuple(err["loc"])
        ctx_err = (err.get("ctx") or {}).get("error")
        if isinstance(ctx_err, CrossFieldError):
            key, msg = ctx_err.key, str(ctx_err)
        else:
            key, msg = _dotted(loc), _describe(err, loc)
        raise ConfigError(_source_of(key, provenance, default_source), key or None, msg) from None


def refuse_unusable(raw: dict[str, Any], provenance: dict[str, str], default: str) -> None:
    """Values no setting can mean, refused with their key before validation.
    NaN and infinities (`.nan`, `.inf`, `1.0e+999`): several bounds are one-sided
    (memory weights, timeouts, memory limits), so an infinity would pass them and
    break the run later (a traceback mid-run, a manifest whose JSON holds null).
    A NUL character: no path or text takes one, and the OS refuses it in a path
    only once the run has started. One visit per value, no recursion."""
    stack: list[tuple[str, Any]] = [("", raw)]
    while stack:
        key, node = stack.pop()
        problem = None
        if isinstance(node, float) and not math.isfinite(node):
            problem = f"{node} is not a finite number"
        elif isinstance(node, str) and "\0" in node:
            problem = "contains a NUL character"
        if problem:
            raise ConfigError(_source_of(key, provenance, default), key or None, problem)
        if isinstance(node, dict):
            stack.extend((f"{key}.{k}" if key else str(k), v) for k, v in node.items())
        elif isinstance(node, list):
            stack.extend((f"{key}[{i}]", v) for i, v in enumerate(node))


def _load_yaml(path: Path, display: str) -> dict[str, Any]:
    try:
        if not path.is_file():  # a FIFO or device would block or never end
            raise ConfigError(display, None, "not a regular file")
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(display, None, f"larger than {MAX_CONFIG_BYTES:,} bytes")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, f"cannot read: {exc.__class__.__name__}") from None
    data = safe_yaml(text, display)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(display, None, "the top level must be a mapping of keys")
    for k in data:
        if not isinstance(k, str):
            raise ConfigError(display, str(k), "keys must be strings")
    return data


class _Unbounded(ValueError):
    """The document is too deep, too big once expanded, self-referencing, or
    names a key twice in one mapping."""


def safe_yaml(text: str, source: str, key: str | None = None) -> Any:
    """`text` read in the config YAML dialect (orchestrator.yaml_dialect) within
    the bounds above; any fault is one ConfigError."""
    if len(text) > MAX_CONFIG_BYTES:
        raise ConfigError(source, key, f"larger than {MAX_CONFIG_BYTES:,} characters")
    try:
        check_shape(text)
        return yaml_dialect.load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}: " if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        if isinstance(exc, yaml.reader.ReaderError):  # no mark: read 'at invalid YAML'
            where, problem = _reader_fault(text, exc)
        if key is not None:  # a --set value
            raise ConfigError(
                source, key, f"value {text!r} is not valid YAML ({problem})"
            ) from None
        raise ConfigError(source, key, f"YAML syntax error at {where}{problem}") from None
    except _Unbounded as exc:
        raise ConfigError(source, key, str(exc)) from None
    except (ValueError, OverflowError, RecursionError) as exc:
        # e.g. an integer of more than 4,300 digits, a timestamp with month 13
        raise ConfigError(source, key, f"a value cannot be read ({one_line(str(exc))})") from None


def _reader_fault(text: str, exc: yaml.reader.ReaderError) -> tuple[str, str]:
    """Where and what for a character YAML does not take (a control character):
    the reader error has a character position, not a line mark."""
    pos = exc.position if isinstance(exc.position, int) else 0
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    char = exc.character if isinstance(exc.character, int) else ord(str(exc.character)[:1] or "?")
    return f"line {line}, column {column}: ", f"character #x{char:04x}: {exc.reason}"


def check_shape(text: str) -> None:
    """One pass over the YAML events (nothing is built): refuse nesting deeper
    than MAX_DEPTH, more than MAX_NODES values once aliases are expanded (the
    expanded size of each anchor is known when its alias appears, so a bomb is
    refused after reading a few lines), and an alias inside its own anchor."""
    # open collections: [anchor, expanded size, height, keys seen (None: a list), next is a key]
    stack: list[list[Any]] = []
    anchors: dict[str, tuple[int, int]] = {}  # anchor -> (expanded size, height)
    total = 0

    def enter(event: Any) -> None:
        """A node starts: in a mapping every other node is a key. A key given
        twice is refused: the loader would keep the last silently, so a second
        `steering:` block would drop the whole first one."""
        if not stack or stack[-1][3] is None:
            return
        top = stack[-1]
        if top[4] and isinstance(event, yaml.ScalarEvent) and event.value != "<<":
            if event.value in top[3]:
                raise _Unbounded(
                    f"key {event.value!r} is given twice in one mapping{_at(event.start_mark)}; "
                    "the second would silently replace the first"
                )
            top[3].add(event.value)
        top[4] = not top[4]

    def add(size: int, height: int, mark: Any) -> None:
        nonlocal total
        total += size
        if total > MAX_NODES:
            raise _Unbounded(f"more than {MAX_NODES:,} values once aliases are expanded{_at(mark)}")
        if len(stack) + height > MAX_DEPTH:
            raise _Unbounded(f"nested deeper than {MAX_DEPTH} levels{_at(mark)}")
        if stack:
            top = stack[-1]
            top[1] += size
            top[2] = max(top[2], height + 1)

    for event in yaml.parse(text, Loader=yaml_dialect.Loader):
        if isinstance(event, yaml.NodeEvent):  # a scalar, an alias or a collection's start
            enter(event)
        if isinstance(event, yaml.CollectionStartEvent):
            keys = set() if isinstance(event, yaml.MappingStartEvent) else None
            stack.append([event.anchor, 1, 1, keys, True])
            if len(stack) > MAX_DEPTH:
                raise _Unbounded(f"nested deeper than {MAX_DEPTH} levels{_at(event.start_mark)}")
        elif isinstance(event, yaml.CollectionEndEvent):
            anchor, size, height, _, _ = stack.pop()
            if anchor is not None:
                anchors[anchor] = (size, height)
            total -= size - 1  # its children were counted as they came
            add(size, height, event.start_mark)
        elif isinstance(event, yaml.ScalarEvent):
            if event.anchor is not None:
                anchors[event.anchor] = (1, 0)
            add(1, 0, event.start_mark)
        elif isinstance(event, yaml.AliasEvent):
            if any(entry[0] == event.anchor for entry in stack):
                raise _Unbounded(f"alias *{event.anchor} refers to a collection holding it")
            size, height = anchors.get(event.anchor, (1, 0))  # undefined: the loader says so
            add(size, height, event.start_mark)


def _at(mark: Any) -> str:
    return f" (line {mark.line + 1})" if mark is not None else ""


def _load_with_templates(
    path: Path,
    display: str,
    root: Path,
    chain: tuple[Path, ...],
    provenance: dict[str, str],
    files: list[Path],
) -> dict[str, Any]:
    if len(chain) >= MAX_TEMPLATE_DEPTH:
        raise ConfigError(display, "template", f"templates nested deeper than {MAX_TEMPLATE_DEPTH}")
    data = _load_yaml(path, display)
    template = data.pop("template", None)
    merged: dict[str, Any] = {}
    if template is not None:
        if not isinstance(template, str) or not template.strip():
            raise ConfigError(display, "template", "must be a file name (string)")
        tpath = _template_path(path, template, root, display)
        if tpath in (*chain, path):
            cycle = " -> ".join(p.name for p in (*chain, path, tpath))
            raise ConfigError(display, "template", f"template cycle: {cycle}")
        tdisplay = str(Path(display).parent / template)
        merged = _load_with_templates(tpath, tdisplay, root, (*chain, path), provenance, files)
    files.append(path)
    _record(data, "", display, provenance)
    return deep_merge(merged, data)


def _template_path(including: Path, template: str, root: Path, display: str) -> Path:
    if Path(template).is_absolute():
        raise ConfigError(display, "template", "must be a path relative to the including file")
    if "\0" in template:  # resolve() raised ValueError: a traceback
        raise ConfigError(display, "template", "contains a NUL character")
    target = (including.parent / template).resolve()
    if not target.is_relative_to(root):
        raise ConfigError(
            display, "template", f"{template!r} escapes the config's folder {root}; copy it there"
        )
    try:
        found = target.is_file()
    except OSError as exc:  # pathlib lets ENAMETOOLONG through: a name over 255 bytes
        raise ConfigError(display, "template", f"cannot read: {exc.strerror or exc}") from None
    if not found:  # a folder or a FIFO is not 'not found': say what is there
        raise ConfigError(display, "template", f"template file {template!r}: {_not_a_file(target)}")
    return target


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge recursively; lists and scalars in `over` replace."""
    out = dict(base)
    for k, v in over.items():
        if isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = deep_merge(out[k], v)
        else:
            out[k] = v
    return out


def _record(data: Any, prefix: str, source: str, provenance: dict[str, str]) -> None:
    """Note `source` for every dotted key under `prefix`: one visit per value
    (an explicit stack, no recursion), so linear in the bounded document."""
    stack = [(prefix, data)]
    while stack:
        key, node = stack.pop()
        if isinstance(node, dict):
            for k, v in node.items():
                child = f"{key}.{k}" if key else str(k)
                provenance[child] = source
                stack.append((child, v))


def _apply_override(
    raw: dict[str, Any], item: str, provenance: dict[str, str], source: str = OVERRIDE_SOURCE
) -> None:
    key, sep, value_text = item.partition("=")
    key = key.strip()
    if not sep or not _KEY_RE.match(key):
        raise ConfigError(
            source,
            key if sep and key else None,
            f"expected KEY=VALUE with a dotted key, got {item!r}",
        )
    value = safe_yaml(value_text, source, key) if value_text.strip() else None
    parts = key.split(".")
    if len(parts) > MAX_DEPTH:
        raise ConfigError(source, None, f"key nested deeper than {MAX_DEPTH} levels")
    node = raw
    for i, part in enumerate(parts[:-1]):
        prefix = ".".join(parts[: i + 1])
        if part not in node:  # a mapping this override makes: an unknown key in it is the --set's
            node[part] = {}
            provenance[prefix] = source
        child = node[part]
        if not isinstance(child, dict):
            raise ConfigError(source, key, f"{prefix} is not a mapping")
        node = child
    node[parts[-1]] = value
    provenance[key] = source
    _record(value, key, source, provenance)


def _dotted(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("list[Persona]", "literal['random']") or str(part).startswith(
            ("function-", "list[", "literal[")
        ):
            continue  # union branch labels pydantic puts in the location
        else:
            out += f".{part}" if out else str(part)
    return out


def _source_of(key: str, provenance: dict[str, str], default: str) -> str:
    probe = key
    while probe:
        if probe in provenance:
            return provenance[probe]
        parent = re.sub(r"(\.[^.\[]+|\[\d+\])$", "", probe)
        if parent == probe:  # a top-level key no file named (e.g. a stored manifest's)
            break
        probe = parent
    return default


def _describe(err: dict[str, Any], loc: tuple[Any, ...]) -> str:
    kind = err["type"]
    if kind == "extra_forbidden":
        fields = _fields_at(loc[:-1])
        hint = difflib.get_close_matches(str(loc[-1]), fields, n=1, cutoff=0.6)
        suggestion = (
            f"; did you mean {hint[0]!r}?" if hint else f"; valid keys: {', '.join(fields)}"
        )
        return f"unknown key{suggestion}"
    value = err.get("input")
    shown = "" if isinstance(value, dict | list) else f" (got {value!r})"
    msg = err["msg"]
    msg = msg.removeprefix("Value error, ")
    if kind == "string_type" and isinstance(value, int | float | bool):
        shown += "; YAML read it as a number or boolean: quote it to mean text"
    return f"{msg}{shown}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] | None = RunConfig
    for part in loc:
        if model is None or isinstance(part, int) or "[" in str(part):
            continue  # list indices and union branch tags such as 'list[Persona]'
        field = model.model_fields.get(str(part))
        if field is None:
            return []
        model = _model_in(field.annotation)
    return sorted(model.model_fields) if model else []


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found:
            return found
    return None

"""Text from configs, dumps and models, made safe to show: persona names,
goals, locations, model output and run ids reach a terminal or a markdown
report only through these functions.

What is neutralised, and why:
- control characters (C0, DEL, C1): ESC/OSC sequences clear the screen or set
  the window title, a newline forges a `TICK 999` line, a carriage return
  overwrites what came before. They are shown escaped (`\\x1b`, `\\n`).
- format characters, bidi controls included (U+202E RIGHT-TO-LEFT OVERRIDE
  reorders the rest of the line), and line/paragraph separators: escaped
  (`\\u202e`). ZWJ and ZWNJ stay: emoji and Persian or Indic words are spelled
  with them, and they reorder nothing.
- Rich markup (`[bold red]`, `[link=...]`): `text()` returns a rich Text, which
  Rich never parses for markup; `markup()` escapes for the APIs that do.
- markdown syntax in report cells (`|` would split a table row): `md()`.

The dumps keep the text as the run cleaned it; this module only changes what
is displayed. It knows nothing about runs."""

from __future__ import annotations

import unicodedata

from rich.markup import escape as _rich_escape
from rich.text import Text

_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_KEEP = frozenset({"\u200c", "\u200d"})  # ZWNJ, ZWJ
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_MD_SPECIAL = frozenset("\\`*_[]<>|#")


def visible(value: object, limit: int | None = None) -> str:
    """`value` as one line of harmless characters (unsafe ones escaped), cut to
    `limit` characters with an ellipsis."""
    s = "" if value is None else str(value)
    if not s.isprintable():  # the fast path: printable text has nothing to escape
        s = "".join(_escape(ch) for ch in s)
    if limit is not None and len(s) > limit:
        s = s[: max(limit - 1, 0)] + "…"
    return s


def text(value: object, style: str = "", limit: int | None = None) -> Text:
    """A rich Text of visible(value): shown literally, markup and all."""
    return Text(visible(value, limit), style=style)


def markup(value: object, limit: int | None = None) -> str:
    """visible(value) escaped for Rich APIs that parse markup in strings."""
    return _rich_escape(visible(value, limit))


def md(value: object, limit: int | None = None) -> str:
    """visible(value) for a markdown table cell or heading: markdown syntax escaped."""
    s = visible(value, limit)
    if any(ch in _MD_SPECIAL for ch in s):
        s = "".join("\\" + ch if ch in _MD_SPECIAL else ch for ch in s)
    return s


def _escape(ch: str) -> str:
    if ch in _KEEP or unicodedata.category(ch) not in _UNSAFE_CATEGORIES:
        return ch
    if ch in _NAMED:
        return _NAMED[ch]
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"

"""The replay page: one self-contained HTML file from orchestrator.replay.data's
parts and the template in assets/ (page.html, replay.css, replay.js).

Safety: every piece of run data is embedded as JSON inside
`<script type="application/json">` blocks, with `<`, `>` and `&` written as
\\u escapes so that no text (a persona named `</script><script>...`) can end
the block; the page script reads the blocks with JSON.parse and writes text
only with textContent. A Content-Security-Policy meta tag allows only the
page's own inline script and style (by hash), no network at all, and enforces
Trusted Types, so an HTML sink such as innerHTML would throw rather than parse.

Size: the per-tick parts are gzip-compressed and base64-encoded (the browser
inflates one with DecompressionStream when it shows that tick), about a fifth
of the JSON. The output is a pure function of the data: the same run gives
the same bytes.

It knows nothing about Parquet or run folders."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import re
from importlib import resources
from typing import Any

from orchestrator.replay.data import ReplayData

_MARKER = re.compile(r"<!--@([A-Z_]+)@-->")
_SCRIPT_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026"}


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> block: no '<', '>' or '&' appear
    (they are \\u escapes, which JSON.parse reads back), and ensure_ascii turns
    U+2028/2029 and lone surrogates into escapes too."""
    text = json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return re.sub(r"[<>&]", lambda m: _SCRIPT_ESCAPES[m.group(0)], text)


def pack(part: dict[str, Any]) -> str:
    """One tick's part as base64 of gzip-compressed JSON (mtime 0: reproducible)."""
    raw = json.dumps(part, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return base64.b64encode(gzip.compress(raw.encode("ascii"), compresslevel=6, mtime=0)).decode(
        "ascii"
    )


def _asset(name: str) -> str:
    return resources.files("orchestrator.replay").joinpath("assets", name).read_text("utf-8")


def _sha256(text: str) -> str:
    return (
        "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"
    )


def content_security_policy(script: str, style: str) -> str:
    """Only this page's own inline script and style; nothing from anywhere else."""
    return "; ".join(
        [
            "default-src 'none'",
            f"script-src {_sha256(script)}",
            f"style-src {_sha256(style)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
            "require-trusted-types-for 'script'",
            "trusted-types 'none'",
        ]
    )


def render(data: ReplayData) -> str:
    """The page's HTML."""
    script, style = _asset("replay.js"), _asset("replay.css")
    pieces = {
        "CSP": content_security_policy(script, style),
        "STYLE": style,
        "SCRIPT": script,
        "META": script_json(data.meta),
        # base64 needs no escaping; one tick's part is held at a time
        "TICKS": "[" + ",".join(f'"{pack(p)}"' for p in data.parts()) + "]",
    }
    # one pass over the template: inserted text is never searched for markers again
    return _MARKER.sub(lambda m: pieces[m.group(1)], _asset("page.html"))

"""What the analysis and benchmark command lines share at the terminal: their
consoles, running a typer app so that a SteersimError (bad input: a missing
run, an unreadable file) becomes one line on stderr and exit code 2, never a
traceback, and the one meaning of every `--json` option (write the result as
JSON to this path; `-` = stdout, the human output then goes to stderr).
Library modules never print; only the command lines use this."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from orchestrator.errors import SteersimError

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)

JSON_HELP = "Write the result as JSON to this file ('-' = stdout; the text then goes to stderr)."
STDOUT = "-"


def new_app(**settings: Any) -> typer.Typer:
    """A typer app with the project's CLI conventions (`settings` add to them)."""
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,
    )


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run `app`; SteersimError -> `error: ...` on stderr and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app(args=argv, standalone_mode=True)
    except SteersimError as exc:
        error_console.print(f"error: {exc}", markup=False)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        error_console.print("interrupted", markup=False)
        raise SystemExit(130) from None


def text_console(json_dest: str | None) -> Console:
    """Where a command's human output goes: stderr when its JSON goes to stdout."""
    return error_console if json_dest == STDOUT else console


def _strict(value: Any) -> Any:
    """NaN and infinities (undefined statistics) as null: strict JSON any reader takes."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _strict(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(v) for v in value]
    return value


def write_json(data: Any, dest: str) -> Path | None:
    """`data` as indented JSON to the file `dest` (folders made), or to stdout
    for `-`; returns the file written (None for stdout)."""
    text = json.dumps(_strict(data), indent=2, default=str) + "\n"
    if dest == STDOUT:
        typer.echo(text, nl=False)
        return None
    path = Path(dest).expanduser()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise SteersimError(f"cannot write {path}: {exc}") from None
    return path

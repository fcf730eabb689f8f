"""What the analysis scripts share at the terminal: their consoles, and
running a typer app so that a SteersimError (bad input: a missing run, an
unreadable file) becomes one line on stderr and exit code 2, never a
traceback. Library modules never print; only the scripts use this."""

from __future__ import annotations

import logging

import typer
from rich.console import Console

from orchestrator.errors import SteersimError

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)


def new_app() -> typer.Typer:
    """A single-command typer app with the project's CLI conventions."""
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
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

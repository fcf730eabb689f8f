"""What the analysis and benchmark command lines share at the terminal: their
consoles, running a typer app so that bad input (a SteersimError: a missing
run, an unreadable file; or a usage error: an unknown option, a value out of
range) becomes one line on stderr and exit code 2, never a traceback or a
usage block, and the one meaning of every `--json` option (write the result as
JSON to this path; `-` = stdout, the human output then goes to stderr).
Library modules never print; only the command lines use this."""

from __future__ import annotations

import json
import logging
import math
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from agents.paths import expand_home
from orchestrator.errors import ConfigError, SteersimError

console = Console(highlight=False, soft_wrap=True)
error_console = Console(stderr=True, highlight=False, soft_wrap=True)

JSON_HELP = "Write the result as JSON to this file ('-' = stdout; the text then goes to stderr)."
STDOUT = "-"


def path_text(value: str, option: str) -> str:
    """A path option's value, `~` expanded (agents.paths.expand_home). An empty
    value is refused, not read as '.' or as the option left out: `--json ''`
    wrote nothing with exit 0, `--storage-root ''` looked in the cwd and
    `--out-dir ''` wrote into it. ConfigError naming the option."""
    if not value.strip():
        raise ConfigError(option, None, "the value is empty; name a path, or leave the option out")
    try:
        return expand_home(value)
    except ValueError as exc:
        raise ConfigError(option, None, f"{value!r}: {exc}") from None


def path_parser(option: str) -> Callable[[str], Path]:
    """A typer `parser=` for a Path option: path_text's checks while the command
    line is parsed, so nothing runs or is written before a refusal."""
    return lambda value: Path(path_text(value, option))


def text_path_parser(option: str) -> Callable[[str], str]:
    """path_parser for an option kept as text (a run's --storage-root, --json;
    its '-' stays '-')."""
    return lambda value: path_text(value, option)


def json_dest(value: str) -> str:
    """--json's parser: path_text's checks, then whether the file can be made
    where it is named (not a folder; the nearest existing folder above it a
    folder: write_json makes the missing ones). Found only when the result was
    written, analyze had written its analysis folder, and interview its files
    after the model ran, before the command failed."""
    if value == STDOUT:
        return value
    path = Path(path_text(value, "--json"))
    try:
        if path.is_dir():
            raise ConfigError("--json", None, f"{value!r} is a folder; name a file")
        above = path.parent
        while not above.exists() and not above.is_symlink() and above != above.parent:
            above = above.parent
        if not above.is_dir():
            raise ConfigError("--json", None, f"{value!r}: {above} is not a folder")
    except OSError as exc:  # pathlib lets ENAMETOOLONG through
        raise ConfigError("--json", None, f"{value!r}: {exc.strerror or exc}") from None
    return str(path)


JsonOption = Annotated[
    str | None,
    typer.Option("--json", metavar="PATH", help=JSON_HELP, parser=json_dest),
]


def new_app(**settings: Any) -> typer.Typer:
    """A typer app with the project's CLI conventions (`settings` add to them)."""
    return typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        context_settings={"help_option_names": ["-h", "--help"]},
        **settings,
    )


def _click_base(name: str) -> type[Exception]:
    """click's exception class `name` as the installed typer raises it: typer
    0.2x vendors click (typer._click), older typer uses click itself, and
    typer's public BadParameter derives from both UsageError and
    ClickException in either."""
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


USAGE_ERROR, CLICK_ERROR = _click_base("UsageError"), _click_base("ClickException")


def tolerate_narrow_terminals() -> None:
    """A stdout or stderr whose encoding cannot hold the output's characters
    (PYTHONIOENCODING=ascii, a Latin-1 locale, output redirected on Windows)
    shows them as escapes (\\u2713) instead of ending the command with a
    UnicodeEncodeError traceback after its work is done: the check marks,
    dashes and arrows of the reports, and persona names from configs."""
    for stream in (sys.stdout, sys.stderr):
        encoding = (getattr(stream, "encoding", None) or "").lower().replace("_", "-")
        reconfigure = getattr(stream, "reconfigure", None)
        if encoding.startswith("utf") or reconfigure is None:
            continue
        try:
            reconfigure(errors="backslashreplace")
        except (ValueError, OSError):  # closed or detached: nothing will be shown anyway
            pass


def invoke(app: typer.Typer, argv: list[str] | None = None, prog_name: str | None = None) -> None:
    """Run `app` as the process's command line and exit with its code. click's
    usage errors (an unknown option, `--agents 0` below an option's `min`)
    print as one line naming the option, like every other bad input, instead
    of click's usage block, e.g. `error: No such option: --bogus (see
    steersim run -h)`, exit 2."""
    tolerate_narrow_terminals()
    try:
        # not standalone: click's errors come here instead of being printed by click
        code = app(args=argv, prog_name=prog_name, standalone_mode=False)
    except USAGE_ERROR as exc:
        where = exc.ctx.command_path if exc.ctx is not None else prog_name or Path(sys.argv[0]).name
        error_console.print(f"error: {exc.format_message()} (see {where} -h)", markup=False)
        raise SystemExit(exc.exit_code) from None
    except CLICK_ERROR as exc:  # e.g. a click.File option that cannot be opened
        error_console.print(f"error: {exc.format_message()}", markup=False)
        raise SystemExit(exc.exit_code) from None
    except typer.Abort:  # click's prompt closed (EOF)
        error_console.print("aborted", markup=False)
        raise SystemExit(1) from None
    # an Exit (typer.Exit, --help, Ctrl+C as Exit(130)) comes back as its code;
    # a command that returns normally returns None: success
    raise SystemExit(code if isinstance(code, int) else 0)


def run_app(app: typer.Typer, argv: list[str] | None = None) -> None:
    """Run `app`; SteersimError -> `error: ...` on stderr and exit 2."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        invoke(app, argv)
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

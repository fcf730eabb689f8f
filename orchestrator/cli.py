"""`steersim`, the one command line (also `python -m orchestrator.cli`):

    steersim run CONFIG [options]          a simulation (the default command:
                                           `steersim CONFIG` and `--resume ID` still work)
    steersim view|analyze|verify RUN       look at, report on and verify one run
    steersim replay RUN                    one run as a self-contained HTML page
    steersim sweep CONFIG --grid K=a,b     a grid of runs, one folder each, an index
    steersim compare RUN... | --sweep N    runs stacked into one table per kind, plots
    steersim interview RUN                 questionnaires and questions to a run's agents
    steersim benchmark ...                 the benchmarks
    steersim --version

This module only builds the command group and turns every SteersimError into
one line on stderr with exit code 2; each command lives in its own module
(orchestrator/commands/, orchestrator/analysis/commands.py,
orchestrator/benchmarks/cli.py). A module added to orchestrator/commands/
with a typer `app` is registered under its module name."""

# ruff: noqa: E402 (the imports below come after the Ctrl+C guard on purpose)
from __future__ import annotations

import sys
from pathlib import Path

if __name__ == "__main__" or Path(sys.argv[0]).name in ("steersim", "__main__.py"):
    # This process is the command line: until main() can catch KeyboardInterrupt,
    # a Ctrl+C during the imports below (a few hundred ms) exits 130 quietly.
    from orchestrator.interrupts import exit_quietly_on_interrupt

    exit_quietly_on_interrupt()

import copy
import importlib
import logging
import pkgutil
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import error_console, invoke, new_app
from orchestrator.errors import SteersimError

DEFAULT_COMMAND = "run"

app = new_app(
    no_args_is_help=True,
    help="Simulations of LLM agents with steered Big-Five personalities, and experiments "
    "across runs. `steersim CONFIG` is short for `steersim run CONFIG`.",
)


def _version(value: bool) -> None:
    if value:
        from importlib import metadata

        try:
            version = metadata.version("steersim")
        except metadata.PackageNotFoundError:  # a checkout that was never installed
            version = "unknown (not installed)"
        typer.echo(f"steersim {version}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_version, help="Print the version."),
    ] = False,
) -> None:
    """Simulations of LLM agents with steered Big-Five personalities."""


def _register(sub: typer.Typer, name: str, help: str | None = None) -> None:
    """A one-command app becomes the command `name`; a group app becomes the group."""
    if len(sub.registered_commands) == 1 and not sub.registered_groups:
        info = copy.copy(sub.registered_commands[0])
        info.name = name
        app.registered_commands.append(info)
    else:
        app.add_typer(sub, name=name, help=help)


def _command_modules() -> list[str]:
    """orchestrator/commands/*.py, `run` first (the default command)."""
    import orchestrator.commands as package

    names = [m.name for m in pkgutil.iter_modules(package.__path__) if not m.name.startswith("_")]
    return sorted(names, key=lambda n: (n != DEFAULT_COMMAND, n))


def _build() -> None:
    from orchestrator.analysis import commands as analysis
    from orchestrator.benchmarks.cli import app as benchmark_app

    for name in _command_modules():
        module = importlib.import_module(f"orchestrator.commands.{name}")
        if isinstance(getattr(module, "app", None), typer.Typer):
            _register(module.app, getattr(module, "COMMAND_NAME", name))
    _register(analysis.view_app, "view")
    _register(analysis.analyze_app, "analyze")
    _register(analysis.verify_app, "verify")
    _register(benchmark_app, "benchmark", help="The benchmarks: engine, batching, memory, gpu.")


_build()
# --help lists the commands in the order a user meets them; a new module goes last
ORDER = ("run", "sweep", "compare", "interview", "view", "analyze", "verify", "replay")
app.registered_commands.sort(key=lambda c: ORDER.index(c.name) if c.name in ORDER else len(ORDER))


def command_names() -> set[str]:
    return {c.name for c in app.registered_commands} | {g.name for g in app.registered_groups}


def with_default_command(argv: list[str]) -> list[str]:
    """`steersim CONFIG ...` and `steersim --resume ID ...` (the CLI before
    subcommands existed) mean `steersim run ...`."""
    if not argv or argv[0] in command_names() or argv[0] in ("--version", "-h", "--help"):
        return argv
    return [DEFAULT_COMMAND, *argv]


def main(argv: list[str] | None = None) -> None:
    from orchestrator.interrupts import default_interrupts, ignore_late_signals, silence_stdout

    default_interrupts()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    args = with_default_command(list(sys.argv[1:] if argv is None else argv))
    try:
        invoke(app, args, prog_name="steersim")
    except SteersimError as exc:
        error_console.print(f"error: {exc}", markup=False)
        raise SystemExit(exc.exit_code) from None
    except KeyboardInterrupt:
        ignore_late_signals()
        error_console.print("interrupted", markup=False)
        raise SystemExit(130) from None
    except SystemExit as exc:
        if exc.code == 130:  # a stopped run: everything is written
            ignore_late_signals()
        raise
    except BrokenPipeError:  # stdout closed by the reader (`... | head`): stop quietly
        silence_stdout()
        raise SystemExit(141) from None  # 128 + SIGPIPE, as a shell reports it


if __name__ == "__main__":
    main()

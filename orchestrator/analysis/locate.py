"""One way to name a run on every command line: RUN, a run id (looked up
under --storage-root, see dumps_reader.resolve_run) or a path to a run folder
(or to its messages/ folder). The old per-script flags (--dump-dir,
--messages-dir) still work as hidden aliases that print one deprecation line.

`python -m orchestrator.analysis.locate RUN [--storage-root DIR]` prints the
run folder, so shell scripts resolve runs exactly as the Python scripts do.
Bad input: one line on stderr, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import error_console, new_app, path_parser, run_app
from orchestrator.dumps_reader import DumpsError, resolve_run

RUN_METAVAR = "RUN"
RUN_HELP = "A run id (looked up under --storage-root) or a path to a run folder."
STORAGE_ROOT_HELP = (
    "Where a run id is looked up (<root>/dumps/<id>); default ./storage, then the repository's."
)

RunArgument = Annotated[
    str | None, typer.Argument(metavar=RUN_METAVAR, help=RUN_HELP, show_default=False)
]
StorageRootOption = Annotated[
    Path | None,
    typer.Option(
        "--storage-root",
        metavar="DIR",
        help=STORAGE_ROOT_HELP,
        parser=path_parser("--storage-root"),
    ),
]


def run_from_cli(
    run: str | None,
    storage_root: Path | None = None,
    *,
    aliases: dict[str, str | Path | None] | None = None,
) -> Path:
    """The run folder a command line names: the RUN argument, or else one of
    the deprecated `aliases` (flag -> value given). Naming it twice, or not at
    all, is bad input (DumpsError: one line, exit 2)."""
    given = {flag: value for flag, value in (aliases or {}).items() if value is not None}
    if run is not None and given:
        flags = " / ".join(given)
        raise DumpsError(f"name the run once: as RUN or with {flags}, not both")
    if len(given) > 1:
        raise DumpsError(f"name the run once, not with {' and '.join(given)}")
    if run is None:
        if not given:
            raise DumpsError(
                "missing RUN: give a run id (looked up under --storage-root, default "
                "./storage) or a path to a run folder"
            )
        flag, value = next(iter(given.items()))
        error_console.print(
            f"warning: {flag} is deprecated; pass the run as the first argument "
            "(a run id or a run folder)",
            markup=False,
        )
        run = str(value)
    return resolve_run(run, storage_root)


app = new_app()


@app.command(help="Print the run folder that RUN names (a run id or a path to a run folder).")
def main(run: RunArgument = None, storage_root: StorageRootOption = None) -> None:
    typer.echo(str(run_from_cli(run, storage_root)))


if __name__ == "__main__":
    run_app(app)

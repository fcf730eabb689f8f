"""`python -m orchestrator.analysis.locate RUN [--storage-root DIR]`: prints
the run directory that a run id or path names (dumps_reader.resolve_run), so
shell scripts resolve runs exactly as the Python scripts do. Bad input: one
line on stderr, exit 2."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import new_app, run_app

app = new_app()


@app.command(help="Print the run directory of RUN (a run id or a run directory).")
def main(
    run: Annotated[str, typer.Argument(metavar="RUN_ID_OR_DIR")],
    storage_root: Annotated[Path | None, typer.Option("--storage-root")] = None,
) -> None:
    from orchestrator.dumps_reader import resolve_run

    typer.echo(str(resolve_run(run, storage_root)))


if __name__ == "__main__":
    run_app(app)

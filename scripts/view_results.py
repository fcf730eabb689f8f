#!/usr/bin/env python
"""A run's messages in a Rich table with summary counts:
`view_results.py RUN_ID_OR_DIR [--agent NAME] [--tick N] [--action A] [--limit N]`.
A thin command line over orchestrator.dumps_reader and orchestrator.analysis.viewer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

import typer  # noqa: E402

from orchestrator.analysis.cli_support import console, new_app, run_app  # noqa: E402

app = new_app()


@app.command(
    help=(
        "Show a run's messages as a table, with summary counts of the rows that match the "
        "filters. RUN is a run directory or a run id (looked up under <storage root>/dumps)."
    )
)
def main(
    run: Annotated[str, typer.Argument(metavar="RUN_ID_OR_DIR", help="Run id or run directory.")],
    agent: Annotated[
        str | None, typer.Option("--agent", metavar="NAME", help="Only this agent (name or id).")
    ] = None,
    tick: Annotated[int | None, typer.Option("--tick", metavar="N", help="Only this tick.")] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action", metavar="A", help="Only this action (MOVE, SAY, WORK, REST, IDLE)."
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", metavar="N", min=0, help="Rows shown in the table (0 = all)."),
    ] = 50,
    storage_root: Annotated[
        Path | None,
        typer.Option(
            "--storage-root",
            help="Where a run id is looked up (<root>/dumps/<id>); default ./storage, then the repo's.",
        ),
    ] = None,
) -> None:
    from orchestrator.analysis.viewer import MessageFilter, render
    from orchestrator.dumps_reader import load_run, resolve_run

    dumps = load_run(resolve_run(run, storage_root))
    matched = MessageFilter(agent=agent, tick=tick, action=action).apply(dumps.messages)
    console.print(render(matched, len(dumps.messages), limit or None, title=f"run {dumps.run_id}"))


if __name__ == "__main__":
    run_app(app)

#!/usr/bin/env python
"""Report and figures for one run: `analyze_simulation.py --dump-dir storage/dumps/RUN`.
A thin command line over orchestrator.analysis (stats, report, plots)."""

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
        "Analyse a run's dumps: action distribution, agent activity, token usage, steering "
        "profiles, temporal dynamics and parse rates. Prints the report and saves report.md, "
        "report.json, action_distribution.png, steering_heatmap.png and activity_over_time.png "
        "in the output folder (default <storage root>/analysis/<run_id>)."
    )
)
def main(
    dump_dir: Annotated[
        str,
        typer.Option(
            "--dump-dir",
            metavar="DIR_OR_RUN_ID",
            help="The run directory (storage/dumps/RUN) or a run id.",
        ),
    ],
    storage_root: Annotated[
        Path | None,
        typer.Option(
            "--storage-root",
            help="Where a run id is looked up (<root>/dumps/<id>); default ./storage, then the repo's.",
        ),
    ] = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            help="Folder for the report and figures; default <storage root>/analysis/<run_id>.",
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Save the files; print only where they are.")
    ] = False,
) -> None:
    from rich.markdown import Markdown

    from orchestrator.analysis.pipeline import analyse_run
    from orchestrator.dumps_reader import resolve_run

    run_dir = resolve_run(dump_dir, storage_root)
    result = analyse_run(run_dir, out_dir)
    if not quiet:
        console.print(Markdown(result.markdown))
    console.print(f"report and figures saved in {result.out_dir}", markup=False)


if __name__ == "__main__":
    run_app(app)

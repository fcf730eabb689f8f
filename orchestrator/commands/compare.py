"""`steersim compare RUN... | --sweep NAME`: several runs stacked into one data
set with plots and a summary table (orchestrator/experiments/compare.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import new_app, path_parser
from orchestrator.analysis.locate import StorageRootOption

app = new_app()


@app.command(
    help=(
        "Compare runs: stack their agents, messages and perf tables with run_id, the keys "
        "that differ between them (a sweep's swept keys) and the seed as columns (agents/"
        "messages/perf.parquet), one row per run in runs.parquet and summary.md, and plots: "
        "action shares against each key, each trait's behavioural effect against "
        "steering.strength (when available), seconds per tick. Output: the sweep's folder "
        "with --sweep, else --out (default <root>/comparisons/<run ids>)."
    )
)
def compare(
    runs: Annotated[
        list[str] | None,
        typer.Argument(metavar="RUN...", help="Run ids or run folders.", show_default=False),
    ] = None,
    sweep: Annotated[
        str | None,
        typer.Option("--sweep", metavar="NAME", help="Compare the runs of sweep NAME."),
    ] = None,
    storage_root: StorageRootOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="DIR", help="Where the files go.", parser=path_parser("--out")
        ),
    ] = None,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Tables only.")] = False,
) -> None:
    from rich.console import Console

    from orchestrator.dumps_reader import candidate_roots
    from orchestrator.errors import SteersimError
    from orchestrator.experiments import compare as cmp

    if (sweep is None) == (not runs):
        raise SteersimError("name the runs, or give --sweep NAME (not both)")
    if sweep is not None:
        from orchestrator.experiments.sweep import check_sweep_name

        check_sweep_name(sweep, "--sweep")
    if out is not None:
        _check_out(out)
    root = Path(storage_root) if storage_root else _sweep_root(sweep, candidate_roots(None))
    if sweep is not None:
        refs, keys = cmp.runs_of_sweep(root, sweep)
    else:
        refs, keys = cmp.runs_of_refs(list(runs or []), storage_root)
    comparison = cmp.compare(refs, keys)
    folder = out or cmp.default_out(root, sweep, refs)
    written = cmp.write(comparison, folder)
    console = Console(highlight=False, soft_wrap=True)
    console.print(cmp.summary_markdown(comparison), markup=False)
    if not no_plots:
        from orchestrator.experiments.compare_plots import draw_all

        for path in draw_all(comparison.summary, keys, folder):
            written[path.stem] = path
    rows = ", ".join(f"{k} {len(v)}" for k, v in comparison.tables.items())
    console.print(f"rows stacked: {rows}; {len(written)} files in {folder}", markup=False)


def _sweep_root(sweep: str | None, roots: list[Path]) -> Path:
    """Where a sweep (or a comparison's output) lives: the first root that has it."""
    if sweep is not None:
        for root in roots:
            if (root / "sweeps" / sweep).is_dir():
                return root
    return roots[0]


def _check_out(out: Path) -> None:
    """--out must not be a run folder: the comparison's agents.parquet and
    perf.parquet would replace the run's own."""
    from orchestrator.dumps_reader import is_run_dir
    from orchestrator.errors import SteersimError

    try:
        taken = is_run_dir(out)
    except OSError:  # e.g. a name too long: make_output_folder says so in one line
        return
    if taken:
        raise SteersimError(
            f"--out {out} is a run folder; its agents.parquet and perf.parquet would be "
            "replaced: name another folder"
        )

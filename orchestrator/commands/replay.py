"""`steersim replay RUN [--out FILE]` (also scripts/replay.py): writes the
run's replay page, one self-contained replay.html to open in a browser. Parses
options and prints; the work is in orchestrator.replay."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import new_app, path_parser, run_app
from orchestrator.errors import SteersimError

app = new_app()


@app.command(
    help=(
        "Write RUN's replay page: one self-contained HTML file (no server, no network) with a "
        "tick slider, a map of where every agent was, each tick's events, and per agent its "
        "traits, goal, plan and the prompt and memories behind each action. Default "
        "<run folder>/replay.html. RUN is a run id (looked up under --storage-root) or a run folder."
    )
)
def replay(
    run: Annotated[
        str,
        typer.Argument(
            metavar="RUN", help="A run id (looked up under --storage-root) or a run folder."
        ),
    ],
    storage_root: Annotated[
        Path | None,
        typer.Option(
            "--storage-root",
            metavar="DIR",
            help="Where a run id is looked up (<root>/dumps/<id>); default ./storage.",
            parser=path_parser("--storage-root"),
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out", metavar="FILE", help="Where to write the page.", parser=path_parser("--out")
        ),
    ] = None,
) -> None:
    from orchestrator.dumps_reader import resolve_run
    from orchestrator.replay import write_replay
    from orchestrator.storage import why

    run_dir = resolve_run(run, storage_root)
    if out is not None:
        _check_out(out)
    try:
        written = write_replay(run_dir, out)
    except OSError as exc:  # e.g. a file name longer than the file system takes
        raise SteersimError(f"cannot write the replay page {out or run_dir}: {why(exc)}") from None
    typer.echo(
        f"replay of {written.agents} agents x {written.ticks} ticks: {written.path} "
        f"({written.bytes / 1e6:.1f} MB); open it in a browser"
    )


def _check_out(out: Path) -> None:
    """--out names a file in an existing folder; anything else is one line."""
    from orchestrator.storage import why

    try:
        if out.is_dir():
            raise SteersimError(
                f"--out {out} is a folder; name the file, e.g. {out / 'replay.html'}"
            )
        if out.exists() and not out.is_file():
            # the page is renamed into place: a device, FIFO or socket there (or a link
            # to one, such as /dev/stdout) would itself be replaced by a plain file
            raise SteersimError(f"--out {out} is not a regular file; name a file to write")
        if not out.parent.is_dir():
            what = "is not a folder" if out.parent.exists() else "does not exist"
            raise SteersimError(f"--out {out}: {out.parent} {what}")
    except OSError as exc:  # pathlib lets ENAMETOOLONG through
        raise SteersimError(f"--out {out}: {why(exc)}") from None


def main() -> None:
    run_app(app)


if __name__ == "__main__":
    main()

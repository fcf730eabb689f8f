"""`steersim run CONFIG [options]` (also `python -m orchestrator.cli CONFIG`):
parses the run options, resolves the config and hands it to the runner.
SteersimError is turned into one line by orchestrator/cli.py."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import new_app, text_path_parser

app = new_app()


@app.command(
    help=(
        "Run a steersim simulation described by the YAML file CONFIG. "
        "Outputs go to <storage.root>/dumps/<run_id>/ (messages/tick_*.parquet, "
        "agents.parquet, perf.parquet, manifest.json)."
    )
)
def run(
    config: Annotated[
        Path | None,
        typer.Argument(
            help="Run config (YAML). May name a `template:` to inherit from. "
            "Optional with --resume (the run's own config is used)."
        ),
    ] = None,
    live: Annotated[
        bool, typer.Option("--live", help="Print every tick's events as they happen (Rich).")
    ] = False,
    no_color: Annotated[
        bool,
        typer.Option("--no-color", help="Plain text without colours or styles, for log files."),
    ] = False,
    mock_model: Annotated[
        bool,
        typer.Option(
            "--mock-model",
            help="Use the mock backend (no model, instant); same as --set model.backend=mock.",
        ),
    ] = False,
    max_events: Annotated[
        int | None,
        typer.Option(
            "--max-events", metavar="N", help="Cap events per tick (overrides max_events_per_tick)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            metavar="KEY=VALUE",
            help="Override a config key by dotted path with a YAML value, e.g. --set inference.max_new_tokens=32 "
            "--set steering.layers=[12,16]. Repeatable; applied after templates.",
        ),
    ] = None,
    run_id: Annotated[
        str | None,
        typer.Option(
            "--run-id", metavar="ID", help="Name of the output folder (overrides run_id)."
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option("--overwrite", help="Replace an existing run directory with the same run id."),
    ] = False,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            metavar="RUN_ID",
            help="Continue run RUN_ID after its last complete tick. With CONFIG, the config must "
            "match the run's unless --force.",
        ),
    ] = None,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="With --resume: accept a changed config or different steering vectors."
        ),
    ] = False,
    storage_root: Annotated[
        str | None,
        typer.Option(
            "--storage-root",
            metavar="PATH",
            help="Where runs live: a new run's storage.root (instead of the config's); with "
            "--resume, where the run's dumps are (default: CONFIG's storage.root, else storage).",
            parser=text_path_parser("--storage-root"),  # `--storage-root=~/x` expanded too
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the resolved, validated config as YAML and exit, writing nothing. "
            "With --resume: the config the resume would run with (the run's own, or CONFIG "
            "once it matches the run's or --force).",
        ),
    ] = False,
) -> None:
    from orchestrator.config_loader import load_config
    from orchestrator.errors import ConfigError

    overrides = list(set_ or [])
    options: dict[str, str] = {}  # what each other option sets: an error names the option
    if mock_model:
        options["--mock-model"] = "model.backend=mock"
    if max_events is not None:
        options["--max-events"] = f"max_events_per_tick={max_events}"
    if run_id is not None:
        options["--run-id"] = f"run_id={_yaml_string(run_id)}"
    given = storage_root  # expanded, never empty (text_path_parser)
    if given and resume is None:  # every command takes it as where runs live; a new run too
        options["--storage-root"] = f"storage.root={_yaml_string(given)}"
    if config is None and resume is None:
        raise ConfigError(
            "command line", None, "give a CONFIG file, or --resume RUN_ID (see --help)"
        )
    resolved = load_config(config, overrides, options=options) if config is not None else None
    root = None
    if resume is not None:
        changes = (["--set"] if overrides else []) + list(options)
        if config is None and changes:
            raise ConfigError(
                changes[0], None, "overrides need a CONFIG file; give it with --resume and --force"
            )
        from orchestrator.config_schema import check_run_id

        try:
            check_run_id(resume)
        except ValueError as exc:
            raise ConfigError("--resume", None, str(exc)) from None
        root = given or (resolved.config.storage.root if resolved else "storage")
    if dry_run:  # what the run (or the resume) would run with; nothing is written
        if resume is not None:
            from orchestrator.assemble import resumed_config

            resolved = resumed_config(resume, storage_root=root, resolved=resolved, force=force)
        sys.stdout.write(resolved.to_yaml())
        return

    from orchestrator.live_view import ConsoleView
    from orchestrator.runner import resume_simulation, run_simulation

    view = ConsoleView(live=live, no_color=no_color)
    from orchestrator.distributed.entry import Invocation, dispatch

    invocation = Invocation(
        resolved=resolved,
        resume=resume,
        storage_root=root,
        overwrite=overwrite,
        force=force,
        live=live,
        no_color=no_color,
    )
    code = dispatch(invocation)  # None: this one process runs it (not distributed)
    if code is not None:  # a rank's part, or the launcher's, is done
        raise typer.Exit(code)
    if resume is not None:
        summary = resume_simulation(resume, view, storage_root=root, resolved=resolved, force=force)
    else:
        summary = run_simulation(resolved, view, overwrite=overwrite)
    if summary.status == "interrupted":
        raise typer.Exit(130)


def _yaml_string(value: str) -> str:
    """Quote a CLI string so YAML keeps it a string ('007' stays '007')."""
    return "'" + value.replace("'", "''") + "'"

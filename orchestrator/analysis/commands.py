"""The analysis command lines, one typer app per script (scripts/ holds only
shims that run them):

    view_results.py RUN [--agent NAME] [--tick N] [--action A] [--limit N] [--json PATH]
    analyze_simulation.py RUN [--out-dir DIR] [--quiet] [--json PATH]
    verify_steering.py RUN [--control RUN] [--num-files N] [--skip-behavioural] [--skip-text] [--save] [--json PATH]

RUN is a run id or a path to a run folder, the same everywhere (locate.py);
every one takes --storage-root and a `--json PATH` of one meaning
(cli_support.write_json). The commands parse options and print; the work is
in viewer, pipeline and verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal

import typer

from orchestrator.analysis.behavioural import MAX_RANDOM, MIN_RANDOM
from orchestrator.analysis.cli_support import (
    JsonOption,
    new_app,
    path_parser,
    run_app,
    text_console,
    write_json,
)
from orchestrator.analysis.locate import RunArgument, StorageRootOption, run_from_cli
from orchestrator.errors import SteersimError


def _deprecated(flag: str) -> object:
    return typer.Option(flag, hidden=True, help=f"Deprecated: pass the run as RUN ({flag}).")


# -- view_results -----------------------------------------------------------------

view_app = new_app()


@view_app.command(
    help=(
        "Show a run's messages as a table, with summary counts of the rows that match the "
        "filters. RUN is a run id (looked up under --storage-root) or a run folder."
    )
)
def view(
    run: RunArgument = None,
    agent: Annotated[
        str | None, typer.Option("--agent", metavar="NAME", help="Only this agent (name or id).")
    ] = None,
    tick: Annotated[int | None, typer.Option("--tick", metavar="N", help="Only this tick.")] = None,
    action: Annotated[
        str | None,
        typer.Option(
            "--action",
            metavar="A",
            help="Only this action, in any case: MOVE, SAY, WORK, REST, IDLE or REFLECT.",
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option("--limit", metavar="N", min=0, help="Rows shown (and in --json) (0 = all)."),
    ] = 50,
    storage_root: StorageRootOption = None,
    json_dest: JsonOption = None,
    dump_dir: Annotated[str | None, _deprecated("--dump-dir")] = None,
) -> None:
    from dataclasses import asdict

    from orchestrator.analysis.viewer import MessageFilter, render, summarise
    from orchestrator.dumps_reader import load_run
    from orchestrator.records import ROW_ACTIONS

    if action is not None and action.upper() not in ROW_ACTIONS:
        raise SteersimError(
            f"--action {action!r}: no such action; give one of {', '.join(ROW_ACTIONS)} (any case)"
        )
    dumps = load_run(run_from_cli(run, storage_root, aliases={"--dump-dir": dump_dir}))
    matched = MessageFilter(agent=agent, tick=tick, action=action).apply(dumps.messages)
    title = f"run {dumps.run_id}"
    text_console(json_dest).print(render(matched, len(dumps.messages), limit or None, title=title))
    if json_dest:
        shown = matched if not limit else matched.head(limit)
        rows = json.loads(shown.to_json(orient="records", double_precision=6))  # plain JSON values
        summary = asdict(summarise(matched, len(dumps.messages)))
        write_json({"run_id": dumps.run_id, "summary": summary, "rows": rows}, json_dest)


# -- analyze_simulation -----------------------------------------------------------

analyze_app = new_app()


@analyze_app.command(
    help=(
        "Analyse a run's dumps: action distribution, agent activity, token usage, steering "
        "profiles, temporal dynamics and parse rates. Prints the report and saves report.md, "
        "report.json, action_distribution.png, steering_heatmap.png, activity_over_time.png "
        "and behaviour_by_trait.png (action shares against each trait's coefficient) in the "
        "output folder (default <storage root>/analysis/<run_id>)."
    )
)
def analyze(
    run: RunArgument = None,
    storage_root: StorageRootOption = None,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir",
            metavar="DIR",
            help="Folder for the report and figures; default <storage root>/analysis/<run_id>.",
            parser=path_parser("--out-dir"),
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Save the files; print only where they are.")
    ] = False,
    json_dest: JsonOption = None,
    dump_dir: Annotated[str | None, _deprecated("--dump-dir")] = None,
) -> None:
    from rich.markdown import Markdown

    from orchestrator.analysis.pipeline import analyse_run

    run_dir = run_from_cli(run, storage_root, aliases={"--dump-dir": dump_dir})
    result = analyse_run(run_dir, out_dir)
    out = text_console(json_dest)
    if not quiet:
        out.print(Markdown(result.markdown))
    out.print(f"report and figures saved in {result.out_dir}", markup=False)
    if json_dest:
        write_json(result.report.to_dict(), json_dest)


# -- verify_steering --------------------------------------------------------------

verify_app = new_app()

EmbedderChoice = Literal["minilm", "hashing"]


@verify_app.command(
    help=(
        "Verify a run's steering. (1) Log checks on the steering columns: present, varying, "
        "diverse across agents, one profile per agent, equal to agents.parquet. "
        "(2) Action check: per trait, how each action's share changes with the coefficient "
        "across agents (effect sizes with bootstrap CIs), permutation test over shuffled "
        "trait vectors; with --control, the same on a steering-off run, which must show none. "
        "(3) Behavioural check: loads the run's model and vectors (manifest.json) and measures "
        "the TEST questionnaire (117 IPIP-NEO items) under steering; skipped for mock runs. "
        "(4) Text check: per trait, correlation across agents between coefficient and the "
        "trait score of the agent's messages (sentence embeddings). "
        "Exit 0 when no check fails, 1 when one fails, 2 on bad input."
    )
)
def verify(
    run: RunArgument = None,
    storage_root: StorageRootOption = None,
    control: Annotated[
        str | None,
        typer.Option(
            "--control",
            metavar="RUN",
            help="The action check's control: the same config run with "
            "steering.enabled=false (run id or folder).",
        ),
    ] = None,
    num_files: Annotated[
        int | None,
        typer.Option("--num-files", metavar="N", min=1, help="Read only the first N tick files."),
    ] = None,
    skip_behavioural: Annotated[
        bool,
        typer.Option(
            "--skip-behavioural", help="Leave out the behavioural check (no model on this machine)."
        ),
    ] = False,
    skip_text: Annotated[
        bool, typer.Option("--skip-text", help="Leave out the text check.")
    ] = False,
    embedder: Annotated[
        str,
        typer.Option(
            "--embedder",
            help="Sentence embedder of the text check: minilm (packaged all-MiniLM-L6-v2) "
            "or hashing (bag of words, no model; weaker).",
        ),
    ] = "minilm",
    device: Annotated[
        str,
        typer.Option(
            "--device",
            help="Device for the behavioural check's model and the text check's embedder: "
            "auto, cpu, cuda, cuda:N.",
        ),
    ] = "auto",
    text_max_per_agent: Annotated[
        int,
        typer.Option(
            "--text-max-per-agent",
            metavar="N",
            min=1,
            help="Texts per agent embedded by the text check (spread over the run).",
        ),
    ] = 50,
    n_random: Annotated[
        int,
        typer.Option(
            "--n-random",
            metavar="K",
            min=MIN_RANDOM,
            help=f"Random-direction controls in the behavioural check ({MIN_RANDOM} to "
            f"{MAX_RANDOM:,}; the pass rule's interval is meant for 100; each costs two "
            "passes over the questionnaire).",
        ),
    ] = 100,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Also write verification.json (and behavioural_check.txt) into the analysis "
            "folder (--out-dir, default <storage root>/analysis/<run_id>).",
        ),
    ] = False,
    out_dir: Annotated[
        Path | None,
        typer.Option(
            "--out-dir", metavar="DIR", help="Folder for --save.", parser=path_parser("--out-dir")
        ),
    ] = None,
    json_dest: JsonOption = None,
    messages_dir: Annotated[str | None, _deprecated("--messages-dir")] = None,
) -> None:
    from functools import partial

    from orchestrator.analysis.behavioural import check_n_random, run_behavioural
    from orchestrator.analysis.render_checks import render_verification
    from orchestrator.analysis.verify import verify_run
    from orchestrator.dumps_reader import default_analysis_dir

    check_n_random(n_random)
    if embedder not in ("minilm", "hashing"):
        raise SteersimError(f"--embedder must be minilm or hashing, got {embedder!r}")
    _check_device(device)
    run_dir = run_from_cli(run, storage_root, aliases={"--messages-dir": messages_dir})
    control_dir = run_from_cli(control, storage_root) if control is not None else None
    report = verify_run(
        run_dir,
        num_files=num_files,
        control_dir=control_dir,
        embedder=None if skip_text else _embedder_factory(embedder, device),  # type: ignore[arg-type]
        behavioural=None
        if skip_behavioural
        else partial(run_behavioural, device=device, n_random=n_random),
        text_max_per_agent=text_max_per_agent,
    )
    out = text_console(json_dest)
    out.print(render_verification(report))
    if save:
        path = report.save(out_dir or default_analysis_dir(report.run_dir, report.run_id))
        out.print(f"saved {path}", markup=False)
    if json_dest:
        write_json(report.to_dict(), json_dest)
    raise typer.Exit(0 if report.passed else 1)


def _check_device(device: str) -> None:
    """--device by the run config's own rule (model.device), before any check
    runs: torch refused 'tpu', or 'cuda' on a machine without CUDA, only once
    the text check built its embedder (a traceback after the action check)."""
    import torch
    from pydantic import ValidationError

    from agents.config import ModelConfig

    try:
        ModelConfig(device=device)
    except ValidationError:
        raise SteersimError(
            f"--device must be auto, cpu, mps, cuda or cuda:N, got {device!r}"
        ) from None
    index = int(device.partition(":")[2] or 0)
    if device.startswith("cuda") and not index < torch.cuda.device_count():
        raise SteersimError(f"--device {device}: no such CUDA device here; use auto or cpu")
    if device == "mps" and not torch.backends.mps.is_available():
        raise SteersimError("--device mps: MPS is not available here; use auto or cpu")


def _embedder_factory(kind: EmbedderChoice, device: str):
    def build():
        from agents.embedding import HashingEmbedder, MiniLMEmbedder

        if kind == "minilm":
            from transformers.utils import logging as hf_logging

            hf_logging.disable_progress_bar()  # the terminal shows the checks, not loading bars
            if device == "auto":
                import torch

                return MiniLMEmbedder(device="cuda" if torch.cuda.is_available() else "cpu")
            return MiniLMEmbedder(device=device)
        return HashingEmbedder()

    return build


def main_view() -> None:
    run_app(view_app)


def main_analyze() -> None:
    run_app(analyze_app)


def main_verify() -> None:
    run_app(verify_app)

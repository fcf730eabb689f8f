#!/usr/bin/env python
"""Verify that a run's personality steering was applied and worked:
`verify_steering.py --messages-dir storage/dumps/RUN/messages [--num-files N] [--skip-behavioural]`.
A thin command line over orchestrator.analysis.verify; exit 0 only when no check fails."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Literal

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

import typer  # noqa: E402

from orchestrator.analysis.cli_support import console, new_app, run_app  # noqa: E402

app = new_app()

EmbedderChoice = Literal["minilm", "hashing"]


@app.command(
    help=(
        "Verify a run's steering. (1) Log checks on the steering columns: present, varying, "
        "diverse across agents, one profile per agent, equal to agents.parquet. "
        "(2) Behavioural check: loads the run's model and vectors (manifest.json) and measures "
        "the held-out questionnaire under steering; skipped for mock runs. "
        "(3) Text check: per trait, correlation across agents between coefficient and the "
        "trait score of the agent's messages (sentence embeddings). "
        "Exit 0 when no check fails, 1 when one fails, 2 on bad input."
    )
)
def main(
    messages_dir: Annotated[
        Path,
        typer.Option(
            "--messages-dir",
            help="The run's messages folder (storage/dumps/RUN/messages) or its run directory.",
        ),
    ],
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
            "--n-random", min=20, help="Random-direction controls in the behavioural check (>= 20)."
        ),
    ] = 20,
    save: Annotated[
        bool,
        typer.Option(
            "--save",
            help="Also write verification.json (and behavioural_check.txt) into the analysis "
            "folder (--out-dir, default <storage root>/analysis/<run_id>).",
        ),
    ] = False,
    out_dir: Annotated[Path | None, typer.Option("--out-dir", help="Folder for --save.")] = None,
) -> None:
    from functools import partial

    from orchestrator.analysis.behavioural import run_behavioural
    from orchestrator.analysis.render_checks import render_verification
    from orchestrator.analysis.verify import verify_run
    from orchestrator.dumps_reader import DumpsError, default_analysis_dir, messages_dir_of

    if embedder not in ("minilm", "hashing"):
        raise DumpsError(f"--embedder must be minilm or hashing, got {embedder!r}")
    messages = messages_dir_of(messages_dir)
    report = verify_run(
        messages.parent,
        num_files=num_files,
        embedder=None if skip_text else _embedder_factory(embedder, device),  # type: ignore[arg-type]
        behavioural=None
        if skip_behavioural
        else partial(run_behavioural, device=device, n_random=n_random),
        text_max_per_agent=text_max_per_agent,
    )
    console.print(render_verification(report))
    if save:
        path = report.save(out_dir or default_analysis_dir(report.run_dir, report.run_id))
        console.print(f"saved {path}", markup=False)
    raise typer.Exit(0 if report.passed else 1)


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


if __name__ == "__main__":
    run_app(app)

"""`steersim interview RUN [--tick N] [--items test|dev|FILE] [--ask QUESTION]`:
a run's agents questioned in their own context (orchestrator/experiments/interview.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.analysis.cli_support import (
    JsonOption,
    new_app,
    path_parser,
    text_console,
    write_json,
)
from orchestrator.analysis.locate import RunArgument, StorageRootOption, run_from_cli

app = new_app()


@app.command(
    help=(
        "Put each agent of RUN back in its own context (persona, goal and plan, the memories "
        "it recalls, its steering) at a tick, and (a) score questionnaire items by statement "
        "likelihood, giving each agent a measured Big-Five profile that is correlated across "
        "agents with the coefficients set in the config (Pearson and Spearman, permutation "
        "p-values), in its context and under the questionnaire's bare prompt; (b) with --ask, "
        "generate every agent's answer in one batched call. Writes interviews.parquet, "
        "interview_profiles.parquet, interview_contexts.parquet, interview_summary.md and "
        "interview.json (default folder <root>/analysis/<run_id>/interview-tick<N>)."
    )
)
def interview(
    run: RunArgument = None,
    storage_root: StorageRootOption = None,
    tick: Annotated[
        int | None,
        typer.Option(
            "--tick",
            metavar="N",
            help="Interview after tick N (default: the last complete tick, from the "
            "checkpoint; earlier ticks use the recorded prompts).",
        ),
    ] = None,
    items: Annotated[
        str,
        typer.Option(
            "--items",
            metavar="test|dev|FILE",
            help="The questionnaire: the shipped test (117 IPIP-NEO items) or dev set, or a JSON file "
            '{"prompt": ..., "items": [{"trait", "key", "text"}]}.',
        ),
    ] = "test",
    ask: Annotated[
        list[str] | None,
        typer.Option(
            "--ask", metavar="QUESTION", help="A free question to every agent. Repeatable."
        ),
    ] = None,
    max_new_tokens: Annotated[
        int,
        typer.Option(
            "--max-new-tokens",
            metavar="N",
            help="Budget of an answer to --ask, 1 to 8192 tokens (as limits.new_tokens).",
        ),
    ] = 64,
    permutations: Annotated[
        int,
        typer.Option(
            "--permutations",
            metavar="N",
            min=100,
            help="Permutations per p-value (100 to 1,000,000).",
        ),
    ] = 10_000,
    no_bare: Annotated[
        bool, typer.Option("--no-bare", help="Skip the items under the bare prompt.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Output folder.", parser=path_parser("--out")),
    ] = None,
    json_dest: JsonOption = None,
) -> None:
    from rich.markdown import Markdown

    from orchestrator.dumps_reader import default_analysis_dir
    from orchestrator.experiments.interview import (
        InterviewPlan,
        result_dict,
        summary_markdown,
        write,
    )
    from orchestrator.experiments.interview import interview as run_interview

    plan = InterviewPlan(  # checks its options before the run is looked up
        tick=tick,
        items=items,
        questions=tuple(ask or ()),
        max_new_tokens=max_new_tokens,
        permutations=permutations,
        bare=not no_bare,
    )
    run_dir = run_from_cli(run, storage_root)
    result = run_interview(run_dir, plan)
    folder = out or default_analysis_dir(run_dir, result.run_id) / f"interview-tick{result.tick}"
    paths = write(result, folder)
    console = text_console(json_dest)
    console.print(Markdown(summary_markdown(result)))
    answers = result.rows[result.rows["kind"] == "question"]
    for row in answers.to_dict(orient="records"):
        console.print(f"{row['agent_name']} — {row['text']}\n  {row['answer']}", markup=False)
    console.print(f"saved in {folder} ({', '.join(p.name for p in paths.values())})", markup=False)
    if json_dest:
        write_json(result_dict(result), json_dest)

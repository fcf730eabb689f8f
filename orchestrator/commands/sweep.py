"""`steersim sweep CONFIG --grid KEY=V1,V2,... [--grid ...]`: one run per point
of the grid (orchestrator/experiments/sweep.py does the work)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from orchestrator.analysis.cli_support import new_app

app = new_app()


@app.command(
    help=(
        "Run CONFIG once per point of a grid: the Cartesian product of every --grid (values "
        "are YAML, as with --set), times the seeds. Each run is a normal run folder "
        "<root>/dumps/<name>-<key><value>...; <root>/sweeps/<name>/index.parquet lists them "
        "(swept keys as columns, status, wall time) and is updated as runs finish. Running "
        "the same command again resumes the sweep: complete runs are skipped, interrupted "
        "ones resumed, failed ones tried again. Exit 0 when every run is complete, 1 when "
        "one failed, 130 when stopped."
    )
)
def sweep(
    config: Annotated[Path, typer.Argument(help="Run config (YAML) every point starts from.")],
    grid: Annotated[
        list[str],
        typer.Option(
            "--grid",
            metavar="KEY=V1,V2,...",
            help="A swept key and its values, e.g. --grid steering.strength=0,0.1,0.2 or "
            "--grid steering.layers=[12],[16,20]. Repeatable: the grids multiply.",
        ),
    ],
    repeat_seeds: Annotated[
        int | None,
        typer.Option(
            "--repeat-seeds",
            metavar="N",
            help="Run every point with seeds 1..N (or sweep seeds with --grid seed=...).",
        ),
    ] = None,
    jobs: Annotated[
        int,
        typer.Option(
            "--jobs",
            "-j",
            metavar="J",
            help="Runs at a time (1 to 10000), each its own process; with GPUs each job gets "
            "its own (CUDA_VISIBLE_DEVICES).",
        ),
    ] = 1,
    name: Annotated[
        str | None,
        typer.Option(
            "--name", metavar="NAME", help="The sweep's name (default: the config file's name)."
        ),
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", metavar="KEY=VALUE", help="Override a key for every run."),
    ] = None,
    mock_model: Annotated[
        bool, typer.Option("--mock-model", help="Every run on the mock backend.")
    ] = False,
    gpus: Annotated[
        str | None,
        typer.Option(
            "--gpus",
            metavar="IDS",
            help="GPUs for the jobs, e.g. 0,1 (default: CUDA_VISIBLE_DEVICES, else all "
            "that nvidia-smi lists; none: 'none').",
        ),
    ] = None,
    print_commands: Annotated[
        bool,
        typer.Option(
            "--print-commands",
            help="Print one `steersim run` line per run (for any cluster scheduler) and exit.",
        ),
    ] = False,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run", help="List the points and what would happen to each; run nothing."
        ),
    ] = False,
    slurm: Annotated[
        bool,
        typer.Option(
            "--slurm",
            help="Submit the runs as a SLURM job array through submitit (pip install "
            "'steersim[slurm]'); waits for them and keeps the index.",
        ),
    ] = False,
    slurm_param: Annotated[
        list[str] | None,
        typer.Option(
            "--slurm-param",
            metavar="KEY=VALUE",
            help="A submitit executor parameter, e.g. slurm_partition=gpu, timeout_min=120, "
            "gpus_per_node=1 (values are YAML). Repeatable.",
        ),
    ] = None,
) -> None:
    from orchestrator.experiments.launchers import LocalLauncher, SubmititLauncher
    from orchestrator.experiments.sweep import plan_sweep, run_state, run_sweep
    from orchestrator.experiments.sweep import print_commands as command_lines

    gpu_list = _gpus(gpus)  # checked before anything of the sweep is planned or written
    _check_jobs(jobs)
    params = _slurm_params(slurm, slurm_param or [])
    overrides = list(set_ or [])
    if mock_model:
        overrides.append("model.backend=mock")
    plan = plan_sweep(config, grid, name=name, repeat_seeds=repeat_seeds, overrides=overrides)
    out = Console(highlight=False, soft_wrap=True)
    if print_commands:
        for line in command_lines(plan):
            typer.echo(line)
        return
    if dry_run:
        out.print(f"sweep {plan.spec.name}: {len(plan.runs)} runs -> {plan.folder}", markup=False)
        for run in plan.runs:
            state = (
                "invalid: " + run.invalid
                if run.invalid
                else run_state(plan.run_dir(run.point.run_id), run.config_hash)[0]
            )
            sets = " ".join(run.point.overrides())
            out.print(f"  {run.point.run_id}  {sets}  [{state}]", markup=False)
        return
    if slurm:
        launcher = SubmititLauncher(plan.folder / "submitit", params)
    else:
        launcher = LocalLauncher(jobs, gpu_list)
    total = len(plan.runs)
    done = [0]

    def progress(kind: str, record: dict) -> None:
        if kind == "start":
            out.print(f"start  {record['run_id']}", markup=False)
            return
        done[0] += 1
        wall = record.get("wall_s")
        took = f" {wall:.1f} s" if kind == "end" and wall == wall else ""
        why = f": {record['error']}" if record.get("error") else ""
        label = "skip" if kind == "skip" else record["status"]
        out.print(f"[{done[0]}/{total}] {label} {record['run_id']}{took}{why}", markup=False)

    index = run_sweep(plan, launcher, on_event=progress)
    counts = index.counts()
    summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
    out.print(
        f"sweep {plan.spec.name}: {summary}; index: {plan.folder / 'index.parquet'}", markup=False
    )
    if counts.get("interrupted") or counts.get("pending") or counts.get("running"):
        raise typer.Exit(130)
    if counts.get("failed"):
        raise typer.Exit(1)


# what CUDA_VISIBLE_DEVICES takes: an index, a GPU UUID or a MIG instance
_GPU_ID = re.compile(r"\d+|GPU-[0-9A-Fa-f-]+|MIG-[\w./-]+")


def _gpus(text: str | None) -> list[str] | None:
    """--gpus: None (the visible GPUs), [] for 'none', else the ids. A job given
    a garbled id would see no GPU and run on the CPU without a word."""
    from orchestrator.errors import ConfigError

    if text is None or text == "none":
        return None if text is None else []
    ids = [g.strip() for g in text.split(",")]
    if bad := [g for g in ids if not _GPU_ID.fullmatch(g)]:
        raise ConfigError(
            "--gpus", None, f"{bad[0]!r} is not a GPU; give indices such as 0,1, UUIDs or none"
        )
    return ids


def _check_jobs(jobs: int) -> None:
    """--jobs from 1 to the most runs a sweep can have: a slip such as an extra
    zero once hung filling a slot queue of that many entries (after the sweep
    folder was written), and 0 passed a --dry-run without a word."""
    from orchestrator.errors import ConfigError
    from orchestrator.experiments.grid import MAX_POINTS

    if not 1 <= jobs <= MAX_POINTS:
        raise ConfigError("--jobs", None, f"give 1 to {MAX_POINTS} runs at a time, got {jobs}")


def _slurm_params(slurm: bool, items: list[str]) -> dict:
    """--slurm-param's executor parameters, checked before anything is planned,
    in a dry run too; without --slurm they were dropped silently and the sweep
    ran locally."""
    from orchestrator.errors import ConfigError

    if items and not slurm:
        raise ConfigError("--slurm-param", None, "only with --slurm")
    return _params(items)


def _params(items: list[str]) -> dict:
    import yaml

    from orchestrator import yaml_dialect
    from orchestrator.errors import ConfigError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError("--slurm-param", None, f"expected KEY=VALUE, got {item!r}")
        try:
            out[key.strip()] = yaml_dialect.load(value)
        except yaml.YAMLError:
            raise ConfigError("--slurm-param", key, f"{value!r} is not valid YAML") from None
    return out

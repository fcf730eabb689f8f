"""`python scripts/benchmark.py {engine,batching,memory,gpu} [options]`: the
benchmarks' one command line. Each subcommand runs one benchmark module,
prints its numbers and, with `--json PATH`, writes them as JSON (`-` =
stdout). None asserts a target; the targets and results are in docs/."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated, Any

import typer

from orchestrator.analysis.cli_support import (
    JsonOption,
    new_app,
    run_app,
    text_console,
    text_path_parser,
    write_json,
)
from orchestrator.errors import SteersimError

app = new_app(no_args_is_help=True, help=__doc__)
# where converted models live; an empty value or an unknown ~user is refused (path_text)
StorageOption = Annotated[
    str,
    typer.Option(
        "--storage-root",
        "--storage",
        help="Where converted models live.",
        parser=text_path_parser("--storage-root"),
    ),
]


def _ints(text: str, option: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        values = []
    if not values or min(values) < 1:
        raise SteersimError(f"{option} takes positive integers separated by commas, got {text!r}")
    return values


def _emit(result: dict[str, Any], json_dest: str | None, table: list[str] | None = None) -> None:
    """The result as `key: value` lines (or the given table), then --json."""
    out = text_console(json_dest)
    lines = table or [f"{k:>24}: {v}" for k, v in result.items() if not isinstance(v, list)]
    for line in lines:
        out.print(line, markup=False)
    if json_dest:
        path = write_json(result, json_dest)
        if path:
            out.print(f"saved {path}", markup=False)


@app.command()
def engine(
    agents: Annotated[int, typer.Option(min=1, help="Agents in the mock run.")] = 100,
    ticks: Annotated[int, typer.Option(min=1, help="Ticks of the mock run.")] = 200,
    max_events: Annotated[int, typer.Option(min=1, help="Events per tick at most.")] = 24,
    no_save_prompts: Annotated[
        bool,
        typer.Option("--no-save-prompts", help="storage.save_prompts: false (no prompts/)."),
    ] = False,
    json_dest: JsonOption = None,
) -> None:
    """The engine's own overhead: a mock run (no model, no live view); target < 20 s."""
    from orchestrator.benchmarks.engine import bench_engine

    result = bench_engine(
        agents=agents, ticks=ticks, max_events=max_events, save_prompts=not no_save_prompts
    )
    _emit(result, json_dest)


@app.command()
def batching(
    model: Annotated[str, typer.Option(help="Model folder, or the embedded default.")] = (
        "smollm2-135m"
    ),
    storage_root: StorageOption = "storage",
    requests: Annotated[int, typer.Option(min=1, help="Requests in the tick.")] = 16,
    max_new_tokens: Annotated[int, typer.Option(min=1)] = 48,
    no_steering: Annotated[bool, typer.Option("--no-steering")] = False,
    json_dest: JsonOption = None,
) -> None:
    """One tick of agent requests in ONE batched call vs one at a time (SmolLM2 on CPU)."""
    from orchestrator.benchmarks.batching import bench_batching

    result = bench_batching(
        model=model,
        storage_root=storage_root,
        requests=requests,
        max_new_tokens=max_new_tokens,
        steering=not no_steering,
    )
    _emit(result, json_dest)


@app.command()
def memory(
    agents: Annotated[int, typer.Option(min=1, help="Agents in the retrieval test.")] = 1000,
    memories: Annotated[int, typer.Option(min=10, help="Memories per agent.")] = 500,
    dims: Annotated[str, typer.Option(help="Embedding sizes, comma separated.")] = "384,256",
    ticks: Annotated[int, typer.Option(min=1, help="Timed retrieval ticks.")] = 20,
    run_agents: Annotated[int, typer.Option(min=1, help="Agents in the footprint run.")] = 100,
    run_ticks: Annotated[int, typer.Option(min=1, help="Ticks of the footprint run.")] = 1000,
    skip_run: Annotated[bool, typer.Option("--skip-run", help="No footprint run.")] = False,
    skip_retrieval: Annotated[
        bool, typer.Option("--skip-retrieval", help="Only the footprint run.")
    ] = False,
    json_dest: JsonOption = None,
) -> None:
    """Retrieval time at 1,000 agents x 500 memories; the RSS of a long mock run."""
    from orchestrator.benchmarks.memory import bench_memory

    result = bench_memory(
        agents=agents,
        memories=memories,
        dims=_ints(dims, "--dims"),
        ticks=ticks,
        run_agents=run_agents,
        run_ticks=run_ticks,
        retrieval=not skip_retrieval,
        footprint=not skip_run,
    )
    table = [
        f"retrieval {r['agents']} agents x {r['memories']} memories, dim {r['dim']}: "
        f"median {r['median_ms']} ms/tick (min {r['min_ms']}); relevance {r['relevance_ms']}, "
        f"scores {r['scores_ms']}, top-k {r['topk_ms']} ms"
        for r in result["retrieval"]
    ]
    if f := result["footprint"]:
        table.append(
            f"mock run {f['agents']} agents x {f['ticks']} ticks: {f['wall_s']} s wall, "
            f"{f['tick_ms']} ms/tick (memory {f['memory_ms_per_tick']} ms); RSS first "
            f"{f['rss_first_mb']} MB, at 10% {f['rss_at_10pct_mb']} MB, last "
            f"{f['rss_last_mb']} MB, max {f['rss_max_mb']} MB"
        )
    _emit(result, json_dest, table)


@app.command()
def gpu(
    arch: Annotated[str, typer.Option(help="tiny, smollm2-135m, llama-1b or llama-8b.")] = (
        "llama-8b"
    ),
    batches: Annotated[str, typer.Option(help="Batch sizes, comma separated.")] = (
        "1,16,32,64,128"
    ),
    new_tokens: Annotated[int, typer.Option(min=1)] = 48,
    repeats: Annotated[int, typer.Option(min=1)] = 3,
    device: Annotated[str | None, typer.Option(help="Default: cuda when present.")] = None,
    quant_arch: Annotated[
        str, typer.Option(help="Arch of the bf16 vs NF4 comparison ('' = skip).")
    ] = "llama-1b",
    tokenizer: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Tokenizer folder; default storage/models/smollm2-135m-instruct (the "
            "converted SmolLM2), else a byte-level one with ~3x longer prompts.",
        ),
    ] = None,
    classic: Annotated[
        bool,
        typer.Option("--classic", help="The tick-throughput table (steering on/off, bf16 vs NF4)."),
    ] = False,
    small_arch: Annotated[
        str, typer.Option(help="Decode benchmark: the second shape ('' = skip).")
    ] = "llama-1b",
    small_batches: Annotated[str, typer.Option(help="Its batch sizes.")] = "256",
    grammar_batch: Annotated[
        int, typer.Option(min=0, help="Batch of the grammar-mask cost (0 = skip).")
    ] = 128,
    offload_arch: Annotated[
        str, typer.Option(help="Shape of the offload (steering) run ('' = skip).")
    ] = "llama-1b",
    json_dest: JsonOption = None,
) -> None:
    """On CUDA: the decode step against its memory-bandwidth floor per batch
    size (prefill, step, floor, graph capture, reference loop and one request
    at a time as ratios, steering cost, grammar masks, offload). With
    --classic or on the CPU (`--arch tiny --batches 1,4 --device cpu` is a
    smoke run): tick throughput, steering on and off, bf16 vs NF4."""
    import torch

    from agents.random_models import ARCHS
    from orchestrator.benchmarks.gpu import bench_gpu

    for name, value in (
        ("--arch", arch),
        ("--quant-arch", quant_arch),
        ("--small-arch", small_arch),
        ("--offload-arch", offload_arch),
    ):
        if value and value not in ARCHS:
            raise SteersimError(f"{name} must be one of {', '.join(ARCHS)}, got {value!r}")
    if not classic and (device or "cuda").startswith("cuda") and torch.cuda.is_available():
        from orchestrator.benchmarks.decode import bench_decode
        from orchestrator.benchmarks.decode import table as decode_table

        result = bench_decode(
            arch=arch,
            batches=_ints(batches, "--batches"),
            small_arch=small_arch or None,
            small_batches=_ints(small_batches, "--small-batches"),
            new_tokens=new_tokens,
            repeats=repeats,
            grammar_batch=grammar_batch or None,
            offload_arch=offload_arch or None,
            tokenizer=tokenizer,
        )
        _emit(result, json_dest, decode_table(result))
        return
    result = bench_gpu(
        arch=arch,
        batches=_ints(batches, "--batches"),
        new_tokens=new_tokens,
        repeats=repeats,
        device=device,
        quant_arch=quant_arch or None,
        tokenizer=tokenizer,
    )
    table = [
        f"tokenizer: {result['tokenizer']}",
        f"{'config':34} {'batch':>5} {'prompt':>7} {'tick s':>8} {'tok/s':>9} "
        f"{'x one-at-a-time':>16} {'GiB':>6}",
    ]
    table += [
        f"{r['config']:34} {r['batch']:>5} {r['prompt_tokens_mean']:>7} {r['tick_s']:>8} "
        f"{r['tokens_per_s']:>9} {r['speedup_vs_one_at_a_time'] or '':>16} "
        f"{r['peak_gpu_gib'] or '':>6}"
        for r in result["rows"]
    ]
    _emit(result, json_dest, table)


@app.command()
def distributed(
    cases: Annotated[
        str, typer.Option(help="Cases, comma separated: data-1b, tensor-8b, tensor-70b.")
    ] = "data-1b,tensor-8b,tensor-70b",
    new_tokens: Annotated[int, typer.Option(min=1)] = 128,
    repeats: Annotated[int, typer.Option(min=1)] = 2,
    device: Annotated[str | None, typer.Option(help="Default: cuda when present.")] = None,
    arch: Annotated[
        str | None, typer.Option(help="Override every case's architecture (e.g. tiny).")
    ] = None,
    requests: Annotated[
        int | None, typer.Option(min=1, help="Override every case's requests per tick.")
    ] = None,
    tokenizer: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Tokenizer folder (as for the gpu benchmark)."),
    ] = None,
    profile: Annotated[
        bool,
        typer.Option(
            "--profile", help="Add rank 0's GPU kernel times of one more tick to the JSON."
        ),
    ] = False,
    trace: Annotated[
        Path | None,
        typer.Option(
            metavar="DIR",
            help="Every rank writes a Chrome trace (host and GPU) of one more tick "
            "to DIR/<case>-<n>ranks-rank<r>.json.gz (open it in Perfetto).",
        ),
    ] = None,
    json_dest: JsonOption = None,
) -> None:
    """Distributed runs: s/tick on 1 rank vs 2 (data mode, 1B shape, 512 requests;
    tensor mode, 8B shape, 32 requests) and a 70B shape on 2 ranks
    (`--arch tiny --device cpu --requests 8 --new-tokens 4` is a CPU smoke run)."""
    from orchestrator.benchmarks.distributed import CASES, bench_distributed

    names = [c.strip() for c in cases.split(",") if c.strip()]
    unknown = [c for c in names if c not in CASES]
    if unknown or not names:
        raise SteersimError(f"--cases takes {', '.join(CASES)}; got {cases!r}")
    if trace is not None:
        try:
            trace.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SteersimError(
                f"--trace {trace}: cannot make that folder ({exc.strerror})"
            ) from None
    result = bench_distributed(
        cases=names,
        new_tokens=new_tokens,
        repeats=repeats,
        device=device,
        tokenizer=tokenizer,
        arch=arch,
        requests=requests,
        profile=profile,
        trace=trace,
    )
    table = [
        f"{result['gpu_name'] or result['device']}, tokenizer {result['tokenizer']}",
        f"{'case':11} {'arch':10} {'req':>4} {'ranks':>5} {'s/tick':>8} {'tok/s':>9} "
        f"{'x 1 rank':>8} {'comm s':>7} {'GiB':>6}",
    ]
    for r in result["rows"]:
        head = f"{r['name']:11} {r['arch']:10} {r['requests']:>4} {r['world_size']:>5}"
        if "tick_s" not in r:
            table.append(f"{head} {r.get('skipped') or r.get('error')}")
            continue
        table.append(
            f"{head} {r['tick_s']:>8} {r['tokens_per_s']:>9} {r.get('speedup_vs_1') or '':>8} "
            f"{r['comm_s_per_tick']:>7} {r['peak_gpu_gib'] or '':>6}"
        )
    _emit(result, json_dest, table)


@app.command()
def constrained(
    model: Annotated[
        str, typer.Option(help="Model folder, or the embedded default (real weights).")
    ] = "smollm2-135m",
    arch: Annotated[
        str | None,
        typer.Option(help="A random-weight shape instead (e.g. llama-8b on a GPU)."),
    ] = None,
    batch: Annotated[int, typer.Option(min=1, help="Requests in the tick.")] = 16,
    new_tokens: Annotated[int, typer.Option(min=1)] = 32,
    repeats: Annotated[int, typer.Option(min=1)] = 3,
    device: Annotated[str | None, typer.Option(help="Default: cuda when present.")] = None,
    storage_root: StorageOption = "storage",
    tokenizer: Annotated[
        Path | None,
        typer.Option(metavar="DIR", help="Tokenizer folder for --arch (as for gpu)."),
    ] = None,
    json_dest: JsonOption = None,
) -> None:
    """The grammar mask's cost per decode step as a share of the step, and the
    share of outputs inside the grammar with and without it (SmolLM2 on CPU at
    B=16; `--arch llama-8b --batch 128` on a GPU)."""
    from agents.random_models import ARCHS
    from orchestrator.benchmarks.constrained import bench_constrained

    if arch is not None and arch not in ARCHS:
        raise SteersimError(f"--arch must be one of {', '.join(ARCHS)}, got {arch!r}")
    result = bench_constrained(
        model=model,
        arch=arch,
        batch=batch,
        new_tokens=new_tokens,
        repeats=repeats,
        device=device,
        storage_root=storage_root,
        tokenizer=tokenizer,
    )
    parts = ", ".join(f"{k} {v}" for k, v in result["mask_ms_per_step"].items())
    table = [
        f"{result['model']} on {result['device']} ({result['threads']} threads), "
        f"B={result['batch']}, {result['grammar_library']}",
        f"mask per step: {result['mask_ms_per_step_total']} ms ({parts}) = "
        f"{result['mask_share_of_step']:.1%} of a {result['step_ms_constrained']} ms step",
        f"end to end: {result['step_ms_constrained']} ms/step constrained vs "
        f"{result['step_ms_free']} ms free ({result['end_to_end_share']:+.1%})",
    ]
    for mode in ("constrained", "free"):
        o = result[mode]
        table.append(
            f"{mode}: {o['inside_grammar']:.0%} inside the grammar, actions {o['actions']}"
        )
    _emit(result, json_dest, table)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    run_app(app)

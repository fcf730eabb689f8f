"""Scaling of distributed runs: one tick's batched generate through the real
DistributedBackend (split, scatter, every rank's generate, gather) on 1 and
N ranks, with random-weight models of real architectures (bf16 on GPUs).

Cases (each a separate launch of its ranks, through the built-in launcher):
- data-1b: data mode, Llama-3.2-1B shape, 512 requests per tick;
- tensor-8b: tensor mode, Llama-3.1-8B shape, 32 requests per tick;
- tensor-70b: tensor mode, a Llama-3.1-70B shape (about 141 GB in bf16, more
  than one H200 holds), 32 requests, on 2 ranks only.

One rank is a plain replica (the model built on its GPU). Tensor-parallel
ranks load through the real loader (agents.model_loading, tensor_parallel)
from a skeleton folder: config, tokenizer and one small tensor; transformers
initialises every missing weight at random, each rank only its own slice, so
a 70B shape needs no 141 GB checkpoint on disk. Steering is on (random unit
directions at 80% depth), sampling at T=0.8, top-p 0.9, grammar constraints
off, so the numbers compare with the single-GPU benchmark's. Each case is
warmed up with the same batch once, then timed `repeats` times (median).
On CUDA the ranks decode through the fast path (agents.decode: a captured
step, tensor-parallel on each rank's slices); each row says which path ran
and, for the fast one, its prefill time and decode ms per step. `trace`
has every rank write a Chrome trace (host and GPU) of one more tick.

Knows nothing about the world or the dumps."""

from __future__ import annotations

import json
import logging
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from orchestrator.frozen_heap import frozen_heap

log = logging.getLogger(__name__)

LLAMA_70B = dict(
    hidden_size=8192,
    intermediate_size=28672,
    num_hidden_layers=80,
    num_attention_heads=64,
    num_key_value_heads=8,
    vocab_size=128256,
)
CASES: dict[str, dict[str, Any]] = {
    "data-1b": {"mode": "data", "arch": "llama-1b", "requests": 512, "world_sizes": [1, 2]},
    "tensor-8b": {"mode": "tensor", "arch": "llama-8b", "requests": 32, "world_sizes": [1, 2]},
    "tensor-70b": {"mode": "tensor", "arch": "llama-70b", "requests": 32, "world_sizes": [2]},
}
STEERED_DEPTH = 0.8


def shape_of(arch: str) -> dict[str, int]:
    from agents.random_models import ARCHS

    return dict(LLAMA_70B) if arch == "llama-70b" else dict(ARCHS[arch])


def skeleton(folder: Path, arch: str, tokenizer: Any) -> Path:
    """A model folder whose only weight is the final norm: loading it gives
    random weights (each tensor-parallel rank initialises its own slice)."""
    import torch
    from safetensors.torch import save_file
    from transformers import GenerationConfig, LlamaConfig

    from agents.random_models import BOS_ID, EOS_ID, PAD_ID

    shape = shape_of(arch)
    cfg = LlamaConfig(
        pad_token_id=PAD_ID,
        bos_token_id=BOS_ID,
        eos_token_id=EOS_ID,
        tie_word_embeddings=False,
        max_position_embeddings=4096,
        rope_theta=500000.0,
        **shape,
    )
    folder.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(folder)
    GenerationConfig(eos_token_id=EOS_ID, pad_token_id=PAD_ID).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    norm = torch.ones(shape["hidden_size"], dtype=torch.bfloat16)
    save_file({"model.norm.weight": norm}, folder / "model.safetensors", metadata={"format": "pt"})
    return folder


def _inference() -> Any:
    from agents.config import InferenceConfig

    fields = InferenceConfig.model_fields
    extra = {"constrained": False} if "constrained" in fields else {}
    return InferenceConfig(temperature=0.8, top_p=0.9, **extra)


def _vectors(hidden: int, layer: int) -> Any:
    import torch

    from agents.steering.vectors import SteeringVectors

    g = torch.Generator().manual_seed(1)
    dirs = torch.nn.functional.normalize(torch.randn(1, 5, hidden, generator=g), dim=-1)
    return SteeringVectors(layers=(layer,), directions=dirs, norms=torch.full((1,), 10.0))


def _local_backend(case: dict[str, Any], world: int, device: str, tok: Any) -> Any:
    import torch

    from agents.config import ModelConfig, OptimizationConfig, SteeringConfig
    from agents.hf_backend import HFBackend
    from agents.model_loading import LoadedModel, load_model
    from agents.random_models import llama

    shape = shape_of(case["arch"])
    layer = int(shape["num_hidden_layers"] * STEERED_DEPTH)
    from agents.model_loading import resolve_dtype  # bf16 from Ampere on, fp16 before

    dtype = resolve_dtype("auto", torch.device(device))
    if case["mode"] == "tensor" and world > 1:
        lm = load_model(
            ModelConfig(
                name_or_path=case["skeleton"],
                dtype="bfloat16" if dtype == torch.bfloat16 else "float32",
                device="cuda" if device.startswith("cuda") else "cpu",
            ),
            OptimizationConfig(),
            case["skeleton"],
            tensor_parallel=True,
        )
    else:
        model = llama(
            device=device,
            dtype=dtype,
            max_position_embeddings=4096,
            rope_theta=500000.0,
            **shape,
        )
        lm = LoadedModel(
            model=model,
            tokenizer=tok,
            name_or_path="random",
            resolved_path="random",
            identity="random",
            dtype=str(dtype),
            device=device,
            quantized=False,
        )
    steering = SteeringConfig(enabled=True, layers=[layer], strength=0.2, trait_layers={})
    return HFBackend(
        lm,
        inference=_inference(),
        steering=steering,
        vectors=_vectors(shape["hidden_size"], layer),
    )


def _kernel_profile(generate: Any, reqs: list[Any], top: int = 25) -> list[list]:
    """Rank 0's GPU kernels over one more tick: [name, ms, launches], most time first."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        generate(reqs)
        torch.cuda.synchronize()
    rows = [
        [e.key[:80], round(e.device_time_total / 1e3, 3), e.count]
        for e in prof.key_averages()
        if e.device_time_total > 0
    ]
    return sorted(rows, key=lambda r: -r[1])[:top]


def trace_file(folder: str | Path, case: dict[str, Any], world: int, rank: int) -> Path:
    """Where rank `rank` of a case on `world` ranks writes its Chrome trace."""
    return Path(folder) / f"{case['name']}-{world}ranks-rank{rank}.json.gz"


def _traced(generate: Any, reqs: list[Any], dest: Path, cuda: bool) -> Any:
    """One generate under torch.profiler, host (Python ops, waits) and, on a
    GPU, device activity, written to `dest` as a Chrome trace (open it in
    Perfetto or chrome://tracing): where a rank's host and its GPU wait."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with profile(activities=activities, with_stack=True) as prof:  # Python frames too
        out = generate(reqs)
        if cuda:
            torch.cuda.synchronize()
    dest.parent.mkdir(parents=True, exist_ok=True)
    prof.export_chrome_trace(str(dest))
    return out


class _TraceCall:
    """A serving rank's backend that traces its `call`-th generate (1-based):
    the serving loop knows no tick numbers, but every rank gets one generate
    op per tick of rank 0's, so the count says which tick rank 0 traces."""

    def __init__(self, inner: Any, call: int, dest: Path, cuda: bool) -> None:
        self.inner, self.call, self.dest, self.cuda = inner, call, dest, cuda
        self.calls = 0

    def generate(self, requests: list[Any]) -> Any:
        self.calls += 1
        if self.calls != self.call:
            return self.inner.generate(requests)
        return _traced(self.inner.generate, requests, self.dest, self.cuda)

    def __getattr__(self, name: str) -> Any:  # describe, fast, close, ...
        return getattr(self.inner, name)


def rank_main(case: dict[str, Any], out_path: str) -> None:
    """One rank of one case (launched by bench_distributed)."""
    import torch

    from orchestrator.benchmarks.gpu import load_tokenizer
    from orchestrator.benchmarks.workload import tick_requests
    from orchestrator.distributed.backend import DistributedBackend, serve
    from orchestrator.distributed.ranks import Channel, rank_env

    logging.basicConfig(level=logging.WARNING)
    env = rank_env()
    assert env is not None, "run by bench_distributed"
    cuda = case["device"] == "cuda"
    if cuda:
        torch.backends.cuda.enable_cudnn_sdp(False)  # per-shape stalls (issue 13's profile)
    else:
        torch.set_num_threads(1)
    channel = Channel(env, timeout_s=900, use_cuda=cuda)
    device = f"cuda:{env.local_rank}" if cuda else "cpu"
    tok, _ = load_tokenizer(Path(case["tokenizer"]))
    t0 = time.perf_counter()
    local = _local_backend(case, env.world_size, device, tok)
    load_s = time.perf_counter() - t0
    profiled = bool(case.get("profile")) and cuda
    trace = case.get("trace")
    if env.rank != 0:
        if trace:  # the tick after the warm-up, the timed ones and the profiled one
            call = 1 + case["repeats"] + int(profiled) + 1
            dest = trace_file(trace, case, env.world_size, env.rank)
            local = _TraceCall(local, call, dest, cuda)
        serve(local, channel, mode=case["mode"])
        decode = _last_decode(local)
        if decode:  # this rank's own phases of the last tick, beside rank 0's
            Path(f"{out_path}.rank{env.rank}").write_text(json.dumps(decode), encoding="utf-8")
        local.close()
        channel.close()
        return
    backend = DistributedBackend(local, channel, mode=case["mode"])
    reqs = tick_requests(case["requests"], case["new_tokens"], seed=1)

    def timed() -> tuple[float, list[Any]]:
        if cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        gens = backend.generate(reqs)
        if cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - start, gens

    warm_s, _ = timed()
    backend.take_stats()
    times, gens = [], []
    with frozen_heap():  # as the other ranks serve (and as a run's tick loop)
        for _ in range(case["repeats"]):
            t, gens = timed()
            times.append(t)
    stats = backend.take_stats()
    tick_s = statistics.median(times)
    tokens = sum(g.completion_tokens for g in gens)
    result = {
        "world_size": env.world_size,
        "tick_s": round(tick_s, 3),
        "tick_s_all": [round(t, 3) for t in times],
        "warmup_s": round(warm_s, 3),
        "load_s": round(load_s, 1),
        "tokens_per_s": round(tokens / tick_s, 1),
        "prompt_tokens_mean": round(sum(g.prompt_tokens for g in gens) / len(gens), 1),
        "comm_s_per_tick": round(stats.comm_s / len(times), 4),
        "rank_requests": [r // len(times) for r in stats.requests],
        "rank_generate_s": [round(s / len(times), 3) for s in stats.generate_s],
        "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 1) if cuda else None,
        "decode_path": local.describe().get("decode_path"),  # fast (captured step) or reference
    }
    if profiled:
        result["kernels"] = _kernel_profile(backend.generate, reqs)
    if trace:
        dest = trace_file(trace, case, env.world_size, 0)
        _traced(backend.generate, reqs, dest, cuda)
        result["traces"] = [
            str(trace_file(trace, case, env.world_size, r)) for r in range(env.world_size)
        ]
    result.update(_last_decode(local))
    Path(out_path).write_text(json.dumps(result), encoding="utf-8")
    backend.close()


def _last_decode(local: Any) -> dict[str, Any]:
    """The phases of this rank's latest fast decode (prompts and prefill until
    the first token, then ms per step), or {} on the reference loop."""
    fast = getattr(local, "fast", None)
    last = getattr(fast, "last", None)
    if last is None or last.steps <= 1:
        return {}
    return {
        "prefill_s": round(last.prefill_s, 3),
        "prompts_s": round(last.prompts_s, 3),
        "decode_ms_per_step": round(1000 * last.decode_s / (last.steps - 1), 2),
        "captures_s": round(sum(s for _, s in fast.captures), 2),
    }


def bench_distributed(
    *,
    cases: list[str],
    new_tokens: int = 128,
    repeats: int = 2,
    device: str | None = None,
    tokenizer: Path | None = None,
    arch: str | None = None,
    requests: int | None = None,
    profile: bool = False,
    trace: Path | None = None,
) -> dict[str, Any]:
    """Every case on each of its world sizes; `arch`/`requests` override the
    cases' (e.g. `--arch tiny --device cpu` for a smoke run on CPU); `profile`
    adds rank 0's kernel times of one more tick (CUDA); `trace` (a folder)
    has every rank write a Chrome trace of one more tick there, host and GPU."""
    import torch

    from orchestrator.benchmarks.gpu import DEFAULT_TOKENIZER, load_tokenizer
    from orchestrator.distributed.launch import launch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    tok_folder = tokenizer or DEFAULT_TOKENIZER
    tok, tok_name = load_tokenizer(tok_folder)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="steersim-bench-") as tmp:
        tok_dir = Path(tmp) / "tokenizer"
        tok.save_pretrained(tok_dir)  # every rank loads the same one
        for name in cases:
            case = {
                **CASES[name],
                "name": name,
                "device": device,
                "new_tokens": new_tokens,
                "repeats": repeats,
                "tokenizer": str(tok_dir),
                "profile": profile,
                "trace": str(trace.resolve()) if trace else None,
            }
            if arch:
                case["arch"] = arch
            if requests:
                case["requests"] = requests
            if case["mode"] == "tensor" and max(case["world_sizes"]) > 1:
                case["skeleton"] = str(
                    skeleton(Path(tmp) / f"skeleton-{case['arch']}", case["arch"], tok)
                )
            for world in case["world_sizes"]:
                row = {k: case[k] for k in ("name", "mode", "arch", "requests")}
                if device == "cuda" and world > gpus:
                    rows.append({**row, "world_size": world, "skipped": f"{gpus} GPUs visible"})
                    continue
                out = Path(tmp) / f"{name}-{world}.json"
                t0 = time.perf_counter()
                code = launch(world, rank_main, (case, str(out)))
                wall = round(time.perf_counter() - t0, 1)
                if code == 0 and out.exists():
                    result = json.loads(out.read_text())
                    others = [Path(f"{out}.rank{r}") for r in range(1, world)]
                    if any(p.exists() for p in others):  # every rank's own phases, rank 0 first
                        result["rank_decode"] = [
                            {
                                k: result.get(k)
                                for k in ("prefill_s", "prompts_s", "decode_ms_per_step")
                            }
                        ] + [json.loads(p.read_text()) if p.exists() else None for p in others]
                    rows.append({**row, **result, "wall_s": wall})
                else:
                    rows.append({**row, "world_size": world, "error": f"exit code {code}"})
                log.info("%s", rows[-1])
    _add_speedups(rows)
    return {
        "benchmark": "distributed",
        "device": device,
        "gpus": gpus,
        "gpu_name": torch.cuda.get_device_name(0) if gpus else None,
        "torch": torch.__version__,
        "transformers": _version("transformers"),
        "tokenizer": tok_name,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "rows": rows,
    }


def _add_speedups(rows: list[dict[str, Any]]) -> None:
    """Each row's speed-up over the same case on one rank."""
    base = {r["name"]: r["tick_s"] for r in rows if r.get("world_size") == 1 and "tick_s" in r}
    for r in rows:
        if "tick_s" in r and r["name"] in base:
            r["speedup_vs_1"] = round(base[r["name"]] / r["tick_s"], 2)


def _version(package: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None

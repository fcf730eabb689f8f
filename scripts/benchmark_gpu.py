"""Throughput of the HF backend on a GPU with random-weight models of real
architectures (no weights can be downloaded there): one tick of B agent
requests in ONE batched call, against B single-request calls, with steering
on and off, and bf16 against 4-bit NF4 (bitsandbytes) when it is installed.

    python scripts/benchmark_gpu.py --arch llama-8b --batches 1,16,32,64,128
    python scripts/benchmark_gpu.py --arch tiny --batches 1,4 --device cpu     # a smoke run

Prompts are real agent prompts (about 300 tokens); every row decodes all its
new tokens (random weights almost never emit EOS), so the numbers are a worst
case for the decode length. Prints a table; --json writes the rows."""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.hf_backend import HFBackend  # noqa: E402
from agents.model_loading import LoadedModel, load_model  # noqa: E402
from agents.steering.vectors import SteeringVectors  # noqa: E402
from orchestrator.config_schema import (  # noqa: E402
    InferenceConfig,
    ModelConfig,
    OptimizationConfig,
    SteeringConfig,
)
from scripts.benchmark_batching import tick_requests  # noqa: E402

# Shapes of real checkpoints (from their config.json); vocab sizes included,
# since the LM head is a real part of each decode step's cost.
ARCHS = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=4,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
    ),
    "smollm2-135m": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        vocab_size=49152,
    ),
    "llama-1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
    ),
    "llama-8b": dict(
        hidden_size=4096,
        intermediate_size=14336,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=8,
        vocab_size=128256,
    ),
}


def tokenizer(folder: Path):
    """The tokenizer in `folder` (e.g. the converted SmolLM2's), else a byte-level one."""
    if (folder / "tokenizer.json").exists():
        from transformers import AutoTokenizer

        tok = AutoTokenizer.from_pretrained(folder)
        tok.padding_side = "left"
        return tok
    from tests.tiny_model import tiny_tokenizer

    return tiny_tokenizer()


def random_model(arch: str, device: str, dtype: torch.dtype):
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(
        **ARCHS[arch],
        max_position_embeddings=4096,
        rope_theta=500000.0,
        tie_word_embeddings=False,
        pad_token_id=0,
        eos_token_id=2,
        bos_token_id=1,
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(cfg).to(dtype).eval()
    return model


def backend_for(model, tok, *, layers: list[int], steer: bool, quantized=False) -> HFBackend:
    hidden, n = model.config.hidden_size, len(layers)
    g = torch.Generator().manual_seed(1)
    dirs = torch.nn.functional.normalize(torch.randn(n, 5, hidden, generator=g), dim=-1)
    vectors = SteeringVectors(layers=tuple(layers), directions=dirs, norms=torch.full((n,), 10.0))
    lm = LoadedModel(
        model=model,
        tokenizer=tok,
        name_or_path="random",
        resolved_path="random",
        identity="random",
        dtype=str(model.dtype),
        device=str(model.device),
        quantized=quantized,
    )
    return HFBackend(
        lm,
        inference=InferenceConfig(temperature=0.8, top_p=0.9),
        steering=SteeringConfig(enabled=steer, layers=layers, strength=0.2),
        vectors=vectors if steer else None,
    )


def timed(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        fn()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    backend: HFBackend, label: str, batches: list[int], new_tokens: int, repeats: int
) -> list[dict]:
    rows = []
    backend.generate(tick_requests(2, 4))  # warm-up: kernels, allocator
    single = None
    for b in batches:
        reqs = tick_requests(b, new_tokens, seed=b)
        t = timed(lambda reqs=reqs: backend.generate(reqs), repeats)
        if b == 1:
            single = t
        tokens = b * new_tokens
        rows.append(
            {
                "config": label,
                "batch": b,
                "tick_s": round(t, 3),
                "tokens_per_s": round(tokens / t, 1),
                "speedup_vs_one_at_a_time": round(single * b / t, 1) if single else None,
                "peak_gpu_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2)
                if torch.cuda.is_available()
                else None,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--arch", choices=sorted(ARCHS), default="llama-8b")
    ap.add_argument("--batches", default="1,16,32,64,128")
    ap.add_argument("--new-tokens", type=int, default=48)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument(
        "--quant-arch", default="llama-1b", help="arch for the bf16 vs NF4 comparison ('' = skip)"
    )
    ap.add_argument("--tokenizer", type=Path, default=Path("storage/models/smollm2-135m-instruct"))
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    batches = [int(x) for x in args.batches.split(",")]
    if 1 not in batches:
        batches = [1, *batches]
    dtype = torch.bfloat16 if args.device.startswith("cuda") else torch.float32
    tok = tokenizer(args.tokenizer)
    model = random_model(args.arch, args.device, dtype)
    layer = int(model.config.num_hidden_layers * 0.8)
    rows = []
    for steer in (True, False):
        backend = backend_for(model, tok, layers=[layer], steer=steer)
        rows += measure(
            backend, f"{args.arch} bf16 steer={steer}", batches, args.new_tokens, args.repeats
        )
        backend.close()
    del model
    if args.quant_arch and args.device.startswith("cuda"):
        rows += quantization(args.quant_arch, tok, batches, args.new_tokens, args.repeats)
    print(
        f"\n{'config':34} {'batch':>5} {'tick s':>8} {'tok/s':>9} {'x one-at-a-time':>16} {'GiB':>6}"
    )
    for r in rows:
        print(
            f"{r['config']:34} {r['batch']:>5} {r['tick_s']:>8} {r['tokens_per_s']:>9} "
            f"{r['speedup_vs_one_at_a_time'] or '':>16} {r['peak_gpu_gib'] or '':>6}"
        )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


def quantization(arch: str, tok, batches: list[int], new_tokens: int, repeats: int) -> list[dict]:
    """bf16 vs NF4 through the real loading path (save the random model, load it back)."""
    import importlib.util

    if importlib.util.find_spec("bitsandbytes") is None:
        print("bitsandbytes not installed: NF4 comparison skipped")
        return []
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        model = random_model(arch, "cuda", torch.bfloat16)
        model.save_pretrained(tmp)
        tok.save_pretrained(tmp)
        del model
        torch.cuda.empty_cache()
        layer = int(ARCHS[arch]["num_hidden_layers"] * 0.8)
        for quant in (False, True):
            torch.cuda.reset_peak_memory_stats()
            lm = load_model(
                ModelConfig(name_or_path=tmp, dtype="bfloat16", device="cuda"),
                OptimizationConfig(use_quantization=quant),
                tmp,
            )
            backend = backend_for(
                lm.model, lm.tokenizer, layers=[layer], steer=True, quantized=lm.quantized
            )
            label = f"{arch} {'nf4' if lm.quantized else 'bf16'} (loaded)"
            rows += measure(backend, label, batches, new_tokens, repeats)
            backend.close()
            del lm, backend
            torch.cuda.empty_cache()
    return rows


if __name__ == "__main__":
    main()

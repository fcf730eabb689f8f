"""The fast decode step under tensor parallelism against the reference loop,
on 2 ranks: what tests/test_fast_decode_tp.py asserts on CPU (gloo, the
PyTorch step, no graphs) and what a GPU run checks on CUDA (NCCL, the
Triton kernels and the captured graphs, as agents.hf_backend selects them):

    python -m tests.tp_fast_check cuda OUT.json     # exit 0 when every check holds

Each rank loads the tiny random Llama through the real loader with
transformers' own tensor parallelism (fp32), decodes the same left-padded,
steered batch greedily through the reference loop (transformers' sharded
forward, eager) and through the fast step on its slices, twice (the bucket
reused), then samples at T=0.8 through the fast step. A second case shards a
whole model by hand into plain local tensors with the collectives in its
modules (the layout of transformers versions without DTensors) and compares
the fast step against that model's reference loop and the one-process
reference loop. Rank 0 collects every rank's tokens."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

PROMPTS = [
    "Hi.",
    "You are at the cafe with Bob and Ann. What do you do now, exactly?",
    "Tell me something.",
    "A much longer prompt that has a lot of words in it so that the padding differs a lot.",
    "Go.",
]


def _requests(idx: range | list[int]) -> list[Any]:
    from agents.typing import Message, Request, Traits

    traits = [Traits(E=1.0, N=-0.5), Traits(), Traits(A=-1.0, O=0.7), Traits(C=0.4), Traits(N=1.0)]
    return [
        Request(
            prompt=(Message(role="user", content=PROMPTS[i]),),
            traits=traits[i],
            max_new_tokens=6 + 2 * i,
            seed=1000 + i,
        )
        for i in idx
    ]


def _backend(lm: Any) -> Any:
    import torch

    from agents.config import InferenceConfig, SteeringConfig
    from agents.hf_backend import HFBackend
    from agents.steering.vectors import SteeringVectors

    g = torch.Generator().manual_seed(0)
    dirs = torch.nn.functional.normalize(torch.randn(2, 5, 64, generator=g), dim=-1)
    vectors = SteeringVectors(layers=(1, 2), directions=dirs, norms=torch.full((2,), 8.0))
    return HFBackend(
        lm,
        inference=InferenceConfig(temperature=0.0, top_p=0.9, constrained=False),
        steering=SteeringConfig(enabled=True, layers=[1, 2], strength=1.0, trait_layers={}),
        vectors=vectors,
    )


def _decoder(backend: Any, cuda: bool, temperature: float = 0.0, fused: bool = False) -> Any:
    """On CUDA what hf_backend picks (fused, graphs); on CPU the PyTorch step,
    or with `fused` the Triton kernels in triton's interpreter (no graphs)."""
    from agents.decode.decoder import FastDecoder, fast_decoder_for, tensor_parallel_for

    kw = dict(
        pad_id=backend.pad_id,
        eos_ids=sorted(backend.eos_ids),
        temperature=temperature,
        top_p=0.9,
        hooks=backend.hooks,
    )
    if cuda:
        fast = fast_decoder_for(backend.model, quantized=False, **kw)
        assert fast is not None and fast.tp is not None, "fast decode declined the TP model"
        return fast
    tp = tensor_parallel_for(backend.model)
    if isinstance(tp, str) and "gloo" in tp:  # graphs need NCCL; the plain step runs on gloo
        from agents.decode.tensor_parallel import process_group_of

        tp = process_group_of(backend.model)
    assert tp is not None and not isinstance(tp, str), tp
    return FastDecoder(backend.model, graphs=False, fused=fused, tp=tp, **kw)


def _stacked(decoder: Any) -> bool:
    """Whether every layer runs q/k/v and gate/up as one product each."""
    return all(p.qkv is not None and p.gate_up is not None for p in decoder.step.parts)


def _texts(gens: list[Any]) -> list[list[Any]]:
    return [[g.text, g.completion_tokens] for g in gens]


def _hand_sharded(model: Any, rank: int, world: int) -> Any:
    """Emulate tensor parallelism without transformers: each weight replaced by
    this rank's Megatron slice as a plain tensor, the row-parallel layers, the
    embedding and the LM head given the collectives of their split (the
    layout of transformers versions without DTensors)."""
    import torch
    import torch.distributed as dist
    import torch.nn.functional as F
    from torch import nn

    def cut(t: torch.Tensor, dim: int) -> nn.Parameter:
        return nn.Parameter(
            t.detach().chunk(world, dim=dim)[rank].contiguous(), requires_grad=False
        )

    class RowParallel(nn.Module):
        def __init__(self, full: nn.Linear) -> None:
            super().__init__()
            self.weight, self.bias = cut(full.weight, 1), None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.linear(x, self.weight)
            dist.all_reduce(y)
            return y

    class GatheredHead(nn.Module):
        def __init__(self, full: nn.Linear) -> None:
            super().__init__()
            self.weight, self.bias = cut(full.weight, 0), None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = F.linear(x, self.weight).contiguous()
            parts = [torch.empty_like(y) for _ in range(world)]
            dist.all_gather(parts, y)
            return torch.cat(parts, dim=-1)

    class RowEmbedding(nn.Module):
        def __init__(self, full: nn.Embedding) -> None:
            super().__init__()
            self.weight = cut(full.weight, 0)
            self.offset = rank * self.weight.shape[0]

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            idx = ids - self.offset
            mine = (idx >= 0) & (idx < self.weight.shape[0])
            h = F.embedding(idx.clamp(0, self.weight.shape[0] - 1), self.weight)
            h = h * mine[..., None].to(h.dtype)
            dist.all_reduce(h)
            return h

    for layer in model.model.layers:
        a, m = layer.self_attn, layer.mlp
        for lin in (a.q_proj, a.k_proj, a.v_proj, m.gate_proj, m.up_proj):
            lin.weight = cut(lin.weight, 0)
        a.o_proj, m.down_proj = RowParallel(a.o_proj), RowParallel(m.down_proj)
    model.lm_head = GatheredHead(model.lm_head)
    model.model.embed_tokens = RowEmbedding(model.model.embed_tokens)
    model._tp_size = world
    return model


def rank_main(device: str, folder: str, out_dir: str) -> None:
    """One rank: every case, its tokens to out_dir/rank{R}.json."""
    import os

    import torch
    import torch.distributed as dist

    from agents.config import ModelConfig, OptimizationConfig
    from agents.decode.backend_path import generate_fast
    from agents.model_loading import LoadedModel, load_model
    from agents.random_models import byte_tokenizer, tiny_llama

    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device == "cuda"
    if not cuda:  # read when the kernels are defined: before the kernel modules load
        os.environ.setdefault("TRITON_INTERPRET", "1")
    if cuda:
        torch.cuda.set_device(local_rank)
    else:
        torch.set_num_threads(1)
    dist.init_process_group("nccl" if cuda else "gloo")
    world = dist.get_world_size()
    result: dict[str, Any] = {"rank": rank, "world": world}
    # transformers' own tensor parallelism
    lm = load_model(
        ModelConfig(name_or_path=folder, dtype="float32", device=device),
        OptimizationConfig(),
        folder,
        tensor_parallel=True,
    )
    backend = _backend(lm)
    backend.fast = None
    result["reference"] = _texts(backend.generate(_requests(range(5))))
    backend.fast = _decoder(backend, cuda)
    result["decode_path"] = backend.describe()["decode_path"]
    result["local_heads"] = [backend.fast.shape.q_heads, backend.fast.shape.kv_heads]
    result["stacked"] = _stacked(backend.fast)
    result["fast"] = _texts(generate_fast(backend, _requests(range(5))))
    result["fast_again"] = _texts(generate_fast(backend, _requests([3, 0, 1])))
    if not cuda:  # the fused kernels and the step's own tensor-parallel prefill
        backend.fast = _decoder(backend, cuda, fused=True)
        result["fused"] = _texts(generate_fast(backend, _requests(range(5))))
    else:  # the CUDA decoder above is the fused one
        result["fused"] = result["fast"]
    backend.fast = None
    result["reference_again"] = _texts(backend.generate(_requests([3, 0, 1])))
    backend.fast = _decoder(backend, cuda, temperature=0.8)
    result["sampled"] = _texts(generate_fast(backend, _requests(range(5))))
    result["graphs"] = bool(backend.fast.graphs)
    backend.close()
    # plain local slices cut by hand, against the one-process reference loop
    dev = f"cuda:{local_rank}" if cuda else "cpu"

    def loaded(model: Any) -> Any:
        return LoadedModel(
            model=model,
            tokenizer=byte_tokenizer(),
            name_or_path="tiny",
            resolved_path="tiny",
            identity="tiny",
            dtype="float32",
            device=dev,
            quantized=False,
        )

    whole = _backend(loaded(tiny_llama().to(dev)))
    whole.fast = None
    result["whole_reference"] = _texts(whole.generate(_requests(range(5))))
    whole.close()
    sharded = _backend(loaded(_hand_sharded(tiny_llama().to(dev), rank, world)))
    sharded.fast = None
    result["hand_sharded_reference"] = _texts(sharded.generate(_requests(range(5))))
    sharded.fast = _decoder(sharded, cuda)
    result["hand_sharded_stacked"] = _stacked(sharded.fast)
    result["hand_sharded_fast"] = _texts(generate_fast(sharded, _requests(range(5))))
    sharded.close()
    Path(out_dir, f"rank{rank}.json").write_text(json.dumps(result), encoding="utf-8")
    dist.barrier()
    dist.destroy_process_group()


def run(device: str, world: int = 2) -> dict[str, Any]:
    """Every rank's results and the checks over them."""
    from agents.random_models import save_tiny
    from orchestrator.distributed.launch import launch

    with tempfile.TemporaryDirectory(prefix="steersim-tp-check-") as tmp:
        folder = save_tiny(Path(tmp) / "tiny")
        code = launch(world, rank_main, (device, str(folder), tmp))
        ranks = [
            json.loads(Path(tmp, f"rank{r}.json").read_text())
            for r in range(world)
            if Path(tmp, f"rank{r}.json").exists()
        ]
    out: dict[str, Any] = {"device": device, "world": world, "exit_code": code, "ranks": ranks}
    if code != 0 or len(ranks) != world:
        out["ok"] = False
        return out
    first = ranks[0]
    keys = ("fast", "fast_again", "fused", "sampled", "hand_sharded_fast")
    out["checks"] = {
        "fast_equals_reference": all(r["fast"] == r["reference"] for r in ranks),
        "fused_equals_reference": all(r["fused"] == r["reference"] for r in ranks),
        "reused_bucket_equals_reference": all(
            r["fast_again"] == r["reference_again"] for r in ranks
        ),
        "hand_sharded_fast_equals_its_reference": all(
            r["hand_sharded_fast"] == r["hand_sharded_reference"] for r in ranks
        ),
        "hand_sharded_equals_one_process": all(
            r["hand_sharded_fast"] == r["whole_reference"] for r in ranks
        ),
        "ranks_identical": all(r[k] == first[k] for r in ranks for k in keys),
        "fast_path_selected": all(r["decode_path"] == "fast" for r in ranks),
        "projections_stacked": all(r["stacked"] and r["hand_sharded_stacked"] for r in ranks),
    }
    out["ok"] = all(out["checks"].values())
    return out


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = sys.argv[1] if len(sys.argv) > 1 else "cpu"
    result = run(device)
    if len(sys.argv) > 2:
        Path(sys.argv[2]).write_text(json.dumps(result, indent=1), encoding="utf-8")
    print(json.dumps({k: v for k, v in result.items() if k != "ranks"}, indent=1))
    for r in result["ranks"][:1]:
        print("rank 0 reference:", r["reference"])
        print("rank 0 fast:     ", r["fast"])
    sys.exit(0 if result["ok"] else 1)

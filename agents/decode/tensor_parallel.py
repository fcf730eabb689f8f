"""Tensor parallelism for the fast decode step: which process group a
tensor-parallel model (transformers' `tp_plan` / `DistributedConfig`) runs
on, the local slices of its weights, and the collectives the step needs.

transformers shards a Llama-family model as Megatron does: q/k/v and
gate/up are split by output rows (each rank holds num_heads / world query
heads, kv heads likewise, and intermediate / world MLP columns), o and down
by input columns (each rank's product is a partial sum, all-reduced), the
embedding by vocabulary rows or not at all, the LM head by vocabulary rows
(logits gathered). Depending on the transformers version the weights are
DTensors (`to_local()` is the slice) or plain local tensors; this module
reads the local shapes against the config, so either works, and declines
(with the reason) any layout it does not recognise. Norms and the rotary
table are whole on every rank, so the residual stream is full-size
everywhere and the steering deltas apply as they are.

Knows nothing about caches, sampling or the decode loop."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn


def local(t: torch.Tensor | None) -> torch.Tensor | None:
    """This rank's part of a (possibly DTensor) weight, as a plain tensor."""
    if t is None:
        return None
    to_local = getattr(t, "to_local", None)
    return (to_local() if callable(to_local) else t).detach()


def whole(t: torch.Tensor) -> torch.Tensor:
    """A model output as a plain tensor holding every element (DTensors gathered)."""
    full = getattr(t, "full_tensor", None)
    return full() if callable(full) else t


def is_tensor_parallel(model: nn.Module) -> bool:
    tp_size = getattr(model, "_tp_size", None)
    if isinstance(tp_size, int) and tp_size > 1:
        return True
    return any(type(p).__name__ == "DTensor" for p in model.parameters())


@dataclass(frozen=True, kw_only=True)
class TensorParallel:
    """The process group the model's slices live on, and this rank's place in it."""

    group: Any  # torch.distributed ProcessGroup
    rank: int
    world: int
    backend: str

    def all_reduce_(self, x: torch.Tensor) -> torch.Tensor:
        """x <- the sum of every rank's x (in place; capturable in a CUDA graph on NCCL)."""
        import torch.distributed as dist

        dist.all_reduce(x, group=self.group)
        return x

    def gather_columns(self, part: torch.Tensor, out: torch.Tensor) -> None:
        """out (B, world * C) <- every rank's part (B, C), rank r's at columns r*C.."""
        import torch.distributed as dist

        batch, cols = part.shape
        stacked = torch.empty((self.world * batch, cols), dtype=part.dtype, device=part.device)
        dist.all_gather_into_tensor(stacked, part.contiguous(), group=self.group)  # rank-major
        out.view(batch, self.world, cols).copy_(
            stacked.view(self.world, batch, cols).transpose(0, 1)
        )


def process_group_of(model: nn.Module) -> TensorParallel | str:
    """The model's tensor-parallel group, or why there is none to use."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return "tensor-parallel weights but no initialised process group"
    mesh = getattr(model, "_device_mesh", None) or getattr(model, "device_mesh", None)
    group = None
    if mesh is not None:
        names = tuple(getattr(mesh, "mesh_dim_names", None) or ())
        if "tp" in names:
            group = mesh.get_group("tp")
        elif mesh.ndim == 1:
            group = mesh.get_group()
    if group is None:
        group = dist.group.WORLD
    return TensorParallel(
        group=group,
        rank=dist.get_rank(group),
        world=dist.get_world_size(group),
        backend=str(dist.get_backend(group)),
    )


class LocalLinear:
    """x @ W_local^T (+ b_local): a column-parallel slice, or a row-parallel
    slice's partial sum (its bias is added once, after the all-reduce)."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        self.weight, self.bias = weight, bias

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class LocalNorm:
    """An RMSNorm over plain tensors, as transformers' Llama/Qwen2/Mistral
    RMSNorm computes it (float32 statistics, weight times the input-dtype result)."""

    def __init__(self, norm: nn.Module) -> None:
        self.weight = local(norm.weight)
        self.variance_epsilon = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.variance_epsilon)
        return self.weight * h.to(x.dtype)


@dataclass(frozen=True, kw_only=True)
class LayerSlices:
    """One decoder layer's callables on this rank."""

    q: Any
    k: Any
    v: Any
    o: Any
    gate: Any
    up: Any
    down: Any
    input_norm: Any
    post_norm: Any
    o_bias: torch.Tensor | None = None  # row-parallel biases: added after the all-reduce
    down_bias: torch.Tensor | None = None
    qkv: Any = None  # q, k, v as one product (agents.decode.fused_projections), if stacked
    gate_up: Any = None  # gate, up likewise


@dataclass(frozen=True, kw_only=True)
class Slices:
    """Every weight the step reads, as this rank holds it."""

    layers: list[LayerSlices]
    final_norm: Any
    embed: torch.Tensor  # (V or V/world, H)
    embed_offset: int | None  # the first vocabulary row this rank holds; None: all of them
    head: torch.Tensor  # (V or V/world, H)
    head_gathered: bool  # the head is split by vocabulary rows: gather the logits
    vocab: int
    q_heads: int  # this rank's
    kv_heads: int


def _norm_of(norm: nn.Module) -> Any:
    """The model's own norm where its weight is a plain tensor, else a local copy."""
    return norm if local(norm.weight) is norm.weight else LocalNorm(norm)


def slice_model(model: nn.Module, layers: list[nn.Module], tp: TensorParallel) -> Slices | str:
    """This rank's slices of a Megatron-style sharded Llama-family model, or
    why its layout is not one the step knows."""
    cfg = (
        model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    )
    w = tp.world
    hidden, inter = int(cfg.hidden_size), int(cfg.intermediate_size)
    heads, kv = int(cfg.num_attention_heads), int(cfg.num_key_value_heads)
    if heads % w or kv % w:
        return f"{heads} query / {kv} kv heads do not split over {w} ranks"
    d = int(layers[0].self_attn.head_dim)
    col = {"q_proj": heads * d // w, "k_proj": kv * d // w, "v_proj": kv * d // w}
    mlp_col = {"gate_proj": inter // w, "up_proj": inter // w}
    row = {"o_proj": heads * d // w, "down_proj": inter // w}
    out: list[LayerSlices] = []
    for i, layer in enumerate(layers):
        attn, mlp = layer.self_attn, layer.mlp
        parts: dict[str, Any] = {}
        for owner, sizes in ((attn, col), (mlp, mlp_col)):
            for name, rows in sizes.items():
                lin = getattr(owner, name)
                weight, bias = local(lin.weight), local(lin.bias)
                if tuple(weight.shape) != (rows, hidden):
                    return f"layer {i} {name} holds {tuple(weight.shape)}, not column slice ({rows}, {hidden})"
                if bias is not None and bias.shape[0] != rows:
                    return f"layer {i} {name}'s bias is not split like its weight"
                parts[name] = LocalLinear(weight, bias)
        biases: dict[str, torch.Tensor | None] = {}
        for owner, name in ((attn, "o_proj"), (mlp, "down_proj")):
            lin = getattr(owner, name)
            weight, bias = local(lin.weight), local(lin.bias)
            if tuple(weight.shape) != (hidden, row[name]):
                return f"layer {i} {name} holds {tuple(weight.shape)}, not row slice ({hidden}, {row[name]})"
            if bias is not None and bias.shape[0] != hidden:
                return f"layer {i} {name}'s bias is split"
            parts[name] = LocalLinear(weight, None)
            biases[name] = bias
        out.append(
            LayerSlices(
                q=parts["q_proj"],
                k=parts["k_proj"],
                v=parts["v_proj"],
                o=parts["o_proj"],
                gate=parts["gate_proj"],
                up=parts["up_proj"],
                down=parts["down_proj"],
                input_norm=_norm_of(layer.input_layernorm),
                post_norm=_norm_of(layer.post_attention_layernorm),
                o_bias=biases["o_proj"],
                down_bias=biases["down_proj"],
            )
        )
    embed_module, head_module = model.get_input_embeddings(), model.get_output_embeddings()
    embed, head = local(embed_module.weight), local(head_module.weight)
    rows, listed = (
        head.shape[0],
        int(head_module.weight.shape[0]),
    )  # a DTensor lists its global size
    if listed != rows:
        vocab = listed
    elif rows * w == int(cfg.vocab_size):  # plain local slices: the global size from the config
        vocab = int(cfg.vocab_size)
    else:
        vocab = rows
    if rows != vocab and rows * w != vocab:
        return f"LM head slice of {rows} rows for a vocabulary of {vocab}"
    if rows != vocab and getattr(head_module, "bias", None) is not None:
        return "a split LM head with a bias"
    if embed.shape[0] == vocab:
        embed_offset: int | None = None
    elif embed.shape[0] * w == vocab:
        embed_offset = tp.rank * embed.shape[0]
    else:
        return f"embedding slice of {embed.shape[0]} rows for a vocabulary of {vocab}"
    return Slices(
        layers=out,
        final_norm=_norm_of(model.model.norm),
        embed=embed,
        embed_offset=embed_offset,
        head=head,
        head_gathered=rows != vocab,
        vocab=vocab,
        q_heads=heads // w,
        kv_heads=kv // w,
    )

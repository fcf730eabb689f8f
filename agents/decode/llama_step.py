"""The one-token decode step of a Llama-family causal LM (Llama, Mistral
without a sliding window, Qwen2; SmolLM2 is a Llama) over a static K/V cache,
written against the model's own modules: its Linear layers are called as they
are (biases included), its norms' weights and rotary embedding are read, and
nothing is copied or changed in the model.

Per layer: norm, q/k/v projections, rotary + cache write, grouped decode
attention, o projection, residual + norm, gate/up, silu * up, down, residual
(+ the steering delta of a steered layer, as SteeringHooks adds it to the
block's output). With `fused=True` the elementwise parts run as Triton kernels
(agents.decode.kernels; about 13 launches a layer instead of about 35);
otherwise as PyTorch operations that mirror transformers' modules (CPU, tests).
Every operation has a fixed shape and reads positions and the cache slot from
device tensors, so the step can be captured in a CUDA graph.

Knows nothing about sampling, prompts or when the loop stops."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from agents.decode.attention import grouped_attention
from agents.steering.hooks import decoder_layers

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")


def _text_config(model: nn.Module):
    cfg = model.config
    return cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg


def unsupported_reason(model: nn.Module) -> str | None:
    """Why the fast step cannot run this model, or None when it can."""
    cfg = _text_config(model)
    kind = getattr(cfg, "model_type", None)
    if kind not in SUPPORTED_TYPES:
        return f"model type {kind!r} has no fast step (it supports {', '.join(SUPPORTED_TYPES)})"
    if getattr(cfg, "hidden_act", "silu") != "silu":
        return f"activation {cfg.hidden_act!r} (the fast step has silu)"
    if getattr(cfg, "sliding_window", None) and getattr(cfg, "use_sliding_window", True):
        return "sliding-window attention"
    try:
        layer = decoder_layers(model)[0]
        attn, mlp = layer.self_attn, layer.mlp
        needed = (attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj)
        needed += (mlp.gate_proj, mlp.up_proj, mlp.down_proj, layer.input_layernorm)
        needed += (layer.post_attention_layernorm, model.model.norm, model.model.rotary_emb)
        del needed
    except AttributeError as exc:
        return f"unexpected module layout ({exc})"
    if hasattr(attn, "q_norm"):
        return "per-head q/k norms"
    head_dim = attn.head_dim
    if head_dim < 16 or head_dim & (head_dim - 1):
        return f"head size {head_dim} (the attention kernel needs a power of two >= 16)"
    return None


@dataclass(frozen=True, kw_only=True)
class Shape:
    """The sizes a cache and a step need."""

    layers: int
    hidden: int
    q_heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    dtype: torch.dtype
    device: torch.device


@dataclass(kw_only=True)
class StepBuffers:
    """A bucket's device tensors that the step reads (the graph's inputs)."""

    tokens: torch.Tensor  # (B,) int64: the token each row feeds this step
    pos: torch.Tensor  # (B,) int64: its rotary position
    start: torch.Tensor  # (B,) int32: the row's first valid cache slot (after left padding)
    slot: torch.Tensor  # () int64: the cache slot this step writes
    keys: list[torch.Tensor]  # per layer (B, HKV, L, D)
    values: list[torch.Tensor]
    deltas: dict[int, torch.Tensor]  # steered layer -> (B, H) delta
    attn_work: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None  # kernel partials


class LlamaStep:
    """The weights (borrowed) and the one-token forward; see the module docstring."""

    def __init__(self, model: nn.Module, *, fused: bool) -> None:
        reason = unsupported_reason(model)
        if reason is not None:
            raise ValueError(reason)
        cfg = _text_config(model)
        self.model = model
        self.layers = decoder_layers(model)
        self.embed = model.get_input_embeddings()
        self.norm = model.model.norm
        self.lm_head = model.get_output_embeddings()
        self.rotary = model.model.rotary_emb
        attn = self.layers[0].self_attn
        self.scale = float(attn.scaling)
        weight = self.embed.weight
        self.shape = Shape(
            layers=len(self.layers),
            hidden=int(cfg.hidden_size),
            q_heads=int(cfg.num_attention_heads),
            kv_heads=int(cfg.num_key_value_heads),
            head_dim=int(attn.head_dim),
            vocab=int(self.lm_head.weight.shape[0]),
            dtype=weight.dtype,
            device=weight.device,
        )
        self.fused = fused
        if fused:
            from agents.decode import kernels

            self.kernels = kernels

    def rope_tables(self, length: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos, sin), each (length, D) float32: the model's rotary embedding at
        positions 0..length-1 (its own scaling rules and attention factor)."""
        pos = torch.arange(length, device=self.shape.device)[None]  # (1, L)
        probe = torch.zeros(1, device=self.shape.device, dtype=torch.float32)
        cos, sin = self.rotary(probe, pos)
        return cos[0].float().contiguous(), sin[0].float().contiguous()

    def attention_work(self, batch: int, splits: int) -> tuple[torch.Tensor, ...]:
        """The split partials of the fused attention for a bucket of `batch` rows."""
        s = self.shape
        n = batch * s.q_heads * splits
        dev = s.device
        return (
            torch.empty(n * s.head_dim, device=dev, dtype=torch.float32),
            torch.empty(n, device=dev, dtype=torch.float32),
            torch.empty(n, device=dev, dtype=torch.float32),
        )

    # -- the step ------------------------------------------------------------

    def forward(
        self, buf: StepBuffers, cos: torch.Tensor, sin: torch.Tensor, logits: torch.Tensor
    ) -> None:
        """Feed buf.tokens at buf.pos, write K/V at buf.slot, logits (B, V) <- the
        next-token logits."""
        h = self.embed(buf.tokens)  # (B, H): the residual stream
        normed = torch.empty_like(h)
        n = len(self.layers)
        first = self.layers[0].input_layernorm
        self._norm(h, None, first, normed, None)
        for i, layer in enumerate(self.layers):
            attn, mlp = layer.self_attn, layer.mlp
            q, k, v = attn.q_proj(normed), attn.k_proj(normed), attn.v_proj(normed)
            o = self._attend(i, q, k, v, buf, cos, sin)
            self._norm(attn.o_proj(o), h, layer.post_attention_layernorm, normed, None)
            down = mlp.down_proj(self._gated(mlp.gate_proj(normed), mlp.up_proj(normed)))
            after = self.layers[i + 1].input_layernorm if i + 1 < n else self.norm
            self._norm(down, h, after, normed, buf.deltas.get(i))
        if self.lm_head.bias is None:  # straight into the caller's buffer: no extra copy
            torch.mm(normed, self.lm_head.weight.t(), out=logits)
        else:
            logits.copy_(self.lm_head(normed))

    def _norm(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        norm: nn.Module,
        out: torch.Tensor,
        delta: torch.Tensor | None,
    ) -> None:
        """residual += x (+ delta); out = norm(residual). Without a residual, x is
        the stream itself (the embedding)."""
        eps = float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))
        if self.fused:
            self.kernels.add_rmsnorm(x, residual, norm.weight, eps, out, delta)
            return
        stream = x if residual is None else residual.add_(x)
        if delta is not None:
            stream.add_(delta.to(stream.dtype))
        out.copy_(norm(stream))

    def _gated(self, gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
        if self.fused:
            out = torch.empty_like(gate)
            self.kernels.silu_mul(gate, up, out)
            return out
        return F.silu(gate) * up

    def _attend(
        self,
        i: int,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        buf: StepBuffers,
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        s = self.shape
        kc, vc = buf.keys[i], buf.values[i]
        if self.fused:
            q_rot = torch.empty_like(q)
            self.kernels.rope_to_cache(q, k, v, cos, sin, buf.pos, buf.slot, q_rot, kc, vc)
            out = torch.empty_like(q)
            assert buf.attn_work is not None
            self.kernels.decode_attention(
                q_rot, kc, vc, buf.start, buf.slot, self.scale, out, buf.attn_work
            )
            return out
        batch = q.shape[0]
        c = cos.index_select(0, buf.pos).to(s.dtype)[:, None]  # (B, 1, D), as the model casts
        sn = sin.index_select(0, buf.pos).to(s.dtype)[:, None]
        qh = q.view(batch, s.q_heads, s.head_dim)
        kh = k.view(batch, s.kv_heads, s.head_dim)
        q_rot = qh * c + _rotate_half(qh) * sn
        k_rot = kh * c + _rotate_half(kh) * sn
        where = buf.slot.view(1)
        kc.index_copy_(2, where, k_rot[:, :, None].to(kc.dtype))
        vc.index_copy_(2, where, v.view(batch, s.kv_heads, 1, s.head_dim).to(vc.dtype))
        return grouped_attention(q_rot.reshape(batch, -1), kc, vc, buf.start, buf.slot, self.scale)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

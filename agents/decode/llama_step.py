"""The one-token decode step of a Llama-family causal LM (Llama, Mistral
without a sliding window, Qwen2; SmolLM2 is a Llama) over a static K/V cache,
written against the model's own modules: its Linear layers' weights are used
as they are (biases included), its norms' weights and rotary embedding are
read, and no weight is copied. (With `stacked=True`, q/k/v and gate/up each
run as one product: their weights move into one buffer per layer, of which
the model's parameters become views; values unchanged.)

Per layer: norm, q/k/v projections, rotary + cache write, grouped decode
attention, o projection, residual + norm, gate/up, silu * up, down, residual
(+ the steering delta of a steered layer, as SteeringHooks adds it to the
block's output). With `fused=True` the elementwise parts run as Triton kernels
(agents.decode.kernels; about 13 launches a layer instead of about 35);
otherwise as PyTorch operations that mirror transformers' modules (CPU, tests).
Every operation has a fixed shape and reads positions and the cache slot from
device tensors, so the step can be captured in a CUDA graph.

Under tensor parallelism (`tp`, agents.decode.tensor_parallel) each rank runs
the same step on its own slices: its query and kv heads, its MLP columns, an
all-reduce after the o and down projections (NCCL collectives can sit inside
a captured graph), the embedding and LM head as the model splits them (the
logits gathered), so the residual stream, the steering deltas and the logits
are whole and identical on every rank.

Knows nothing about sampling, prompts or when the loop stops."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from agents.decode.attention import grouped_attention
from agents.decode.fused_projections import StackedLinear, stack
from agents.decode.tensor_parallel import LayerSlices, TensorParallel, slice_model
from agents.steering.hooks import decoder_layers

SUPPORTED_TYPES = ("llama", "mistral", "qwen2")
# Tokens per prefill chunk (whole prompts): bounds the activations, e.g. the
# 8B shape's gate/up output at 32k tokens is 1.9 GB in bf16
_PREFILL_TOKENS = 32768


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

    def __init__(
        self,
        model: nn.Module,
        *,
        fused: bool,
        tp: TensorParallel | None = None,
        stacked: bool = True,
    ) -> None:
        """`fused`: Triton kernels for the elementwise parts; `stacked`: q/k/v and
        gate/up as one product each (the model's weights re-homed, see
        agents.decode.fused_projections)."""
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
        self.tp = tp
        q_heads, kv_heads = int(cfg.num_attention_heads), int(cfg.num_key_value_heads)
        vocab = int(self.lm_head.weight.shape[0])
        stacks = [self._stack(layer) if stacked else (None, None) for layer in self.layers]
        if tp is None:  # the model's own modules, called as they are
            self.parts = [_module_slices(layer) for layer in self.layers]
            self.final_norm = self.norm
            self.slices = None
        else:
            slices = slice_model(model, self.layers, tp)
            if isinstance(slices, str):
                raise ValueError(slices)
            self.slices, self.parts, self.final_norm = slices, slices.layers, slices.final_norm
            q_heads, kv_heads, vocab = slices.q_heads, slices.kv_heads, slices.vocab
        self.parts = [
            replace(part, qkv=qkv, gate_up=gate_up)
            for part, (qkv, gate_up) in zip(self.parts, stacks, strict=True)
        ]
        self.shape = Shape(
            layers=len(self.layers),
            hidden=int(cfg.hidden_size),
            q_heads=q_heads,  # this rank's, under tensor parallelism
            kv_heads=kv_heads,
            head_dim=int(attn.head_dim),
            vocab=vocab,  # the whole vocabulary: the logits are gathered
            dtype=weight.dtype,
            device=weight.device,
        )
        self.fused = fused
        if fused:
            from agents.decode import kernels

            self.kernels = kernels

    @staticmethod
    def _stack(layer: nn.Module) -> tuple[StackedLinear | None, StackedLinear | None]:
        attn, mlp = layer.self_attn, layer.mlp
        return stack([attn.q_proj, attn.k_proj, attn.v_proj]), stack([mlp.gate_proj, mlp.up_proj])

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
        h = self._embed(buf.tokens)  # (B, H): the residual stream, whole on every rank
        normed = torch.empty_like(h)
        parts = self.parts
        n = len(parts)
        self._norm(h, None, parts[0].input_norm, normed, None)
        for i, p in enumerate(parts):
            q, k, v = _qkv(p, normed)
            o = self._attend(i, q, k, v, buf, cos, sin)
            self._norm(self._reduce(p.o(o), p.o_bias), h, p.post_norm, normed, None)
            down = self._reduce(self._mlp(p, normed), p.down_bias)
            after = parts[i + 1].input_norm if i + 1 < n else self.final_norm
            self._norm(down, h, after, normed, buf.deltas.get(i))
        self._head(normed, logits)

    # -- the prompt ----------------------------------------------------------------

    def prefill(
        self,
        ids: torch.Tensor,
        lengths: Sequence[int],
        keys: list[torch.Tensor],
        values: list[torch.Tensor],
        deltas: dict[int, torch.Tensor],
        cos: torch.Tensor,
        sin: torch.Tensor,
        logits: torch.Tensor,
    ) -> None:
        """The prompts through the model with this step's kernels (fused only),
        instead of transformers' forward, whose float32 norms, rotary and SiLU,
        K/V repeats for the padding mask and cache concatenations were a third
        of an 8B prefill's GPU time.

        ids (n, T) left-padded on the device, lengths (n,) -> every layer's K/V
        of row b's tokens into keys/values[i][b, :, T - len_b : T], as the decode
        step expects; logits (n, V) <- each row's next-token logits.

        Inside, the real tokens of all prompts form one packed stream (no
        padding in the products, norms and rotary: a batch of mixed lengths
        pays for its tokens, not for n times the longest). Only the attention
        sees the prompts laid out (n, T), right-aligned (tokens first, padding
        after), so causal attention alone is exact for every real token and runs
        as sdpa's flash kernel on the grouped heads without a mask or a K/V
        copy. Each token adds its own prompt's steering delta, as the hooks do
        on real tokens. Long batches go in chunks of whole prompts. Under tensor
        parallelism each rank runs its own heads and MLP columns, with the
        step's all-reduces after o and down and its gathered LM head."""
        assert self.fused
        n, width = ids.shape
        per = max(1, _PREFILL_TOKENS // width)  # rows per chunk: bounded activations
        for lo in range(0, n, per):
            hi = min(n, lo + per)
            last = self._prefill_rows(
                ids[lo:hi], lengths[lo:hi], lo, keys, values, deltas, cos, sin
            )
            self._head(last, logits[lo:hi])

    def _prefill_rows(self, ids, lengths, row0, keys, values, deltas, cos, sin) -> torch.Tensor:
        """One chunk of whole prompts (rows row0.. of the cache); returns each
        row's final-normed hidden state at its last token (n, H)."""
        s, kern = self.shape, self.kernels
        n, width = ids.shape
        dev = ids.device
        # the packed stream, built on the host from the lengths (no device sync):
        # token j is row `row[j]`'s token `t[j]` (its position), at column
        # width - len + t of the left-padded ids and at slot (row, t) of the
        # right-aligned layout
        lens = torch.tensor(list(lengths), dtype=torch.int64)
        row = torch.repeat_interleave(torch.arange(n), lens)
        t = torch.arange(int(lens.sum())) - torch.repeat_interleave(lens.cumsum(0) - lens, lens)
        slot = width - lens[row] + t  # the cache slot: the decode step's left padding
        dense = row * width + t  # (n, T) right-aligned layout, flattened
        host = torch.stack([row + row0, t, slot, dense, row * width + slot])
        row_c, pos, slot, dense, src = host.to(dev, non_blocking=True)
        last = (lens.cumsum(0) - 1).to(dev, non_blocking=True)  # each row's last token
        tokens = int(lens.sum())
        h = self._embed(ids.view(-1).index_select(0, src))  # (N, H): the residual stream
        normed = torch.empty_like(h)
        parts = self.parts
        self._norm(h, None, parts[0].input_norm, normed, None)
        hd, hq, hkv = s.head_dim, s.q_heads, s.kv_heads
        laid = torch.zeros((n * width, (hq + 2 * hkv) * hd), dtype=h.dtype, device=dev)
        q_rot, k_rot, v_dense = laid.split([hq * hd, hkv * hd, hkv * hd], dim=1)
        q_tok = torch.empty((tokens, hq * hd), dtype=h.dtype, device=dev)
        k_tok = torch.empty((tokens, hkv * hd), dtype=h.dtype, device=dev)
        for i, p in enumerate(parts):
            q, k, v = _qkv(p, normed)
            kern.rope_to_cache(
                q, k, v, cos, sin, pos, slot, q_tok, keys[i], values[i], row_c, k_tok
            )
            q_rot.index_copy_(0, dense, q_tok)  # into the (n, T) layout for the attention
            k_rot.index_copy_(0, dense, k_tok)
            v_dense.index_copy_(0, dense, v)
            attn = F.scaled_dot_product_attention(
                q_rot.view(n, width, hq, hd).transpose(1, 2),
                k_rot.view(n, width, hkv, hd).transpose(1, 2),
                v_dense.view(n, width, hkv, hd).transpose(1, 2),
                is_causal=True,
                scale=self.scale,
                enable_gqa=hq != hkv,
            )  # (n, HQ, T, D)
            o = attn.transpose(1, 2).reshape(n * width, hq * hd).index_select(0, dense)
            self._norm(self._reduce(p.o(o), p.o_bias), h, p.post_norm, normed, None)
            down = self._reduce(self._mlp(p, normed), p.down_bias)
            after = parts[i + 1].input_norm if i + 1 < len(parts) else self.final_norm
            self._norm(down, h, after, normed, deltas.get(i), row_c)
        return normed.index_select(0, last)

    # -- tensor parallelism (identity without it) -----------------------------------

    def _embed(self, tokens: torch.Tensor) -> torch.Tensor:
        sl = self.slices
        if sl is None:
            return self.embed(tokens)
        if sl.embed_offset is None:  # every rank holds the whole table
            return F.embedding(tokens, sl.embed)
        # this rank's vocabulary rows; the others' tokens give zeros, summed across ranks
        rows = sl.embed.shape[0]
        idx = tokens - sl.embed_offset
        mine = (idx >= 0) & (idx < rows)
        h = F.embedding(idx.clamp(0, rows - 1), sl.embed) * mine[:, None].to(sl.embed.dtype)
        return self.tp.all_reduce_(h)

    def _reduce(self, x: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        """A row-parallel projection's partial sums -> the whole output (+ its bias)."""
        if self.tp is None:
            return x
        self.tp.all_reduce_(x)
        return x if bias is None else x.add_(bias)

    def _head_tp(self, normed: torch.Tensor, logits: torch.Tensor) -> None:
        sl = self.slices
        if not sl.head_gathered:
            torch.mm(normed, sl.head.t(), out=logits)
            bias = getattr(self.lm_head, "bias", None)
            if bias is not None:
                logits.add_(bias)
            return
        self.tp.gather_columns(torch.mm(normed, sl.head.t()), logits)

    def _norm(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None,
        norm: nn.Module,
        out: torch.Tensor,
        delta: torch.Tensor | None,
        delta_rows: torch.Tensor | None = None,
    ) -> None:
        """residual += x (+ delta); out = norm(residual). Without a residual, x is
        the stream itself (the embedding). Row r adds delta[delta_rows[r]] when
        delta_rows is given (the fused prefill), else delta[r]."""
        eps = _eps(norm)
        if self.fused:
            self.kernels.add_rmsnorm(x, residual, norm.weight, eps, out, delta, delta_rows)
            return
        assert delta_rows is None, "per-token delta rows: the fused kernels only"
        stream = x if residual is None else residual.add_(x)
        if delta is not None:
            stream.add_(delta.to(stream.dtype))
        out.copy_(norm(stream))

    def _mlp(self, p: LayerSlices, x: torch.Tensor) -> torch.Tensor:
        """down(silu(gate(x)) * up(x)), before any tensor-parallel reduce."""
        gate, up = p.gate_up(x) if p.gate_up else (p.gate(x), p.up(x))
        if self.fused:
            gated = torch.empty(gate.shape, dtype=gate.dtype, device=gate.device)
            self.kernels.silu_mul(gate, up, gated)
        else:
            gated = F.silu(gate) * up
        return p.down(gated)

    def _head(self, normed: torch.Tensor, logits: torch.Tensor) -> None:
        """logits (B, V) <- the LM head of the final-normed rows."""
        if self.slices is not None:
            self._head_tp(normed, logits)
        elif self.lm_head.bias is None:  # straight into the caller's buffer: no extra copy
            torch.mm(normed, self.lm_head.weight.t(), out=logits)
        else:
            logits.copy_(self.lm_head(normed))

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
            # q may be a column view of the stacked q/k/v product: fresh, contiguous outputs
            q_rot = torch.empty(q.shape, dtype=q.dtype, device=q.device)
            self.kernels.rope_to_cache(q, k, v, cos, sin, buf.pos, buf.slot, q_rot, kc, vc)
            out = torch.empty(q.shape, dtype=q.dtype, device=q.device)
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


def _module_slices(layer: nn.Module) -> LayerSlices:
    """A whole layer's own modules in the step's per-layer record."""
    attn, mlp = layer.self_attn, layer.mlp
    return LayerSlices(
        q=attn.q_proj,
        k=attn.k_proj,
        v=attn.v_proj,
        o=attn.o_proj,
        gate=mlp.gate_proj,
        up=mlp.up_proj,
        down=mlp.down_proj,
        input_norm=layer.input_layernorm,
        post_norm=layer.post_attention_layernorm,
    )


def _qkv(p: LayerSlices, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """q, k, v of x: one stacked product, or the three projections."""
    return p.qkv(x) if p.qkv else (p.q(x), p.k(x), p.v(x))


def _eps(norm: nn.Module) -> float:
    return float(getattr(norm, "variance_epsilon", getattr(norm, "eps", 1e-6)))


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)

"""Per-row activation steering through forward hooks. `SteeringHooks` is a
context manager that installs one hook per steered decoder layer and removes
it in `finally`; each hook adds row b's delta to every position whose token
mask is 1 (prompt padding stays untouched). The deltas live in preallocated
buffers that are updated in place, so a captured (compiled / CUDA-graph)
decode step keeps reading the current values.

It knows nothing about where the directions came from, about prompts or about
sampling; a caller sets coefficients (or raw deltas) and the token mask."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from agents.errors import ModelError
from agents.steering.vectors import SteeringVectors

_LAYER_PATHS = (
    "model.layers",  # Llama, Mistral, Qwen, Gemma, Phi-3, SmolLM
    "model.language_model.layers",
    "model.decoder.layers",  # OPT
    "transformer.h",  # GPT-2, GPT-J, Falcon
    "gpt_neox.layers",
)


def layer_container(model: nn.Module) -> tuple[nn.Module, str]:
    """(parent module, attribute name) of the model's decoder-block list."""
    for path in _LAYER_PATHS:
        *parents, attr = path.split(".")
        obj: object = model
        for part in parents:
            obj = getattr(obj, part, None)
            if obj is None:
                break
        if isinstance(getattr(obj, attr, None), nn.ModuleList):
            return obj, attr  # type: ignore[return-value]
    raise ModelError(
        f"cannot find the decoder layers of {type(model).__name__}; steering supports "
        "Llama/Mistral/Qwen/Gemma/GPT-2/NeoX-style models"
    )


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (block l's output is hidden_states[l+1])."""
    parent, attr = layer_container(model)
    return getattr(parent, attr)


def check_layers(model: nn.Module, layers: Sequence[int], key: str = "steering.layers") -> None:
    n = len(decoder_layers(model))
    bad = [layer for layer in layers if not 0 <= layer < n]
    if bad:
        raise ModelError(
            f"{key} {list(layers)}: layer {bad[0]} is out of range, the model has "
            f"{n} decoder layers (0..{n - 1})"
        )


class SteeringHooks:
    """Adds delta[l][b] to the output of block l for row b.

    Usage::

        hooks = SteeringHooks(model, vectors, strength)
        hooks.set_coefficients(coefs)        # (B, 5) trait coefficients
        hooks.set_token_mask(attention_mask)  # (B, T) for the prefill; None = every position
        with hooks:
            model(...)
    """

    def __init__(
        self, model: nn.Module, vectors: SteeringVectors, strength: float, max_batch: int = 1
    ) -> None:
        check_layers(model, vectors.layers)
        blocks = decoder_layers(model)
        hidden = model_hidden_size(model)
        if vectors.hidden_size != hidden:
            raise ModelError(
                f"steering vectors have hidden size {vectors.hidden_size} but the model's is "
                f"{hidden}; they were built for another model"
            )
        self.vectors = vectors
        self.strength = float(strength)
        self._blocks = [blocks[layer] for layer in vectors.layers]
        self._where = [_param_device_dtype(b) for b in self._blocks]
        self._delta: list[torch.Tensor] = []
        self._mask: torch.Tensor | None = None  # (B, T) 1 = real token, or None
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self.ensure_batch(max_batch)

    @property
    def layers(self) -> tuple[int, ...]:
        return self.vectors.layers

    def ensure_batch(self, batch: int) -> None:
        """Grow the buffers to hold `batch` rows (only between forward passes)."""
        if self._delta and self._delta[0].shape[0] >= batch:
            return
        h = self.vectors.hidden_size
        old = self._delta
        self._delta = [torch.zeros(batch, h, device=d, dtype=t) for d, t in self._where]
        for new, prev in zip(self._delta, old, strict=False):  # deltas already set survive
            new[: prev.shape[0]].copy_(prev)

    def set_coefficients(self, coefs: torch.Tensor) -> None:
        """coefs (B, 5) in [-1, 1] -> delta[l] = (coefs * strength * norm[l]) @ V[l]."""
        self.set_deltas(self.vectors.deltas(coefs.float().cpu(), self.strength))

    def set_deltas(self, deltas: torch.Tensor) -> None:
        """Raw deltas (L, B, H), e.g. random control directions."""
        n_layers, batch, _ = deltas.shape
        assert n_layers == len(self._blocks), "one delta per steered layer"
        self.ensure_batch(batch)
        for buf, d in zip(self._delta, deltas, strict=True):
            buf.zero_()
            buf[:batch].copy_(d)  # in place: hooks and captured graphs see the new values

    def delta_buffers(self) -> dict[int, torch.Tensor]:
        """{decoder layer: its (max_batch, H) delta buffer}, for a decode step that
        adds the deltas itself (agents.decode) rather than through the hooks. The
        buffers are replaced only when `ensure_batch` grows them."""
        return dict(zip(self.vectors.layers, self._delta, strict=True))

    def set_token_mask(self, mask: torch.Tensor | None) -> None:
        """(B, T) with 1 on real tokens and 0 on padding; None steers every position."""
        self._mask = mask

    def _make_hook(self, i: int):
        def hook(module: nn.Module, args: tuple, output):
            hidden = output[0] if isinstance(output, tuple) else output  # (B, T, H)
            batch, seq = hidden.shape[:2]
            # Follow the output: an offloaded block (accelerate) may run on another
            # device than the one its buffers were made for; a no-op when they agree.
            delta = self._delta[i][:batch, None, :].to(hidden.device, hidden.dtype)  # (B, 1, H)
            if self._mask is not None:
                mask = self._mask[:batch, -seq:, None].to(hidden.device, hidden.dtype)
                delta = delta * mask  # (B, T, H)
            hidden = hidden + delta
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        return hook

    def __enter__(self) -> SteeringHooks:
        try:
            for i, block in enumerate(self._blocks):
                self._handles.append(block.register_forward_hook(self._make_hook(i)))
        except BaseException:
            self._remove()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    def _remove(self) -> None:
        try:
            for handle in self._handles:
                handle.remove()
        finally:
            self._handles.clear()
            self._mask = None


def model_hidden_size(model: nn.Module) -> int:
    cfg = model.config
    cfg = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
    return int(getattr(cfg, "hidden_size", None) or cfg.n_embd)


def _param_device_dtype(block: nn.Module) -> tuple[torch.device, torch.dtype]:
    """Where the block's activations live: the device accelerate runs it on when
    it is dispatched (an offloaded block's parameters sit on `meta` between
    passes), else the device of its first floating parameter; and that float
    dtype (4-bit weights are uint8; their norms are not)."""
    params = list(block.parameters())
    floats = [p for p in params if p.dtype.is_floating_point]
    p = floats[0] if floats else params[0]
    device = _execution_device(block) or p.device
    if device.type == "meta":  # no values can live there; the hook moves them anyway
        device = torch.device("cpu")
    return device, p.dtype if p.dtype.is_floating_point else torch.float16


def _execution_device(block: nn.Module) -> torch.device | None:
    """accelerate's execution device for a dispatched block (an int means a CUDA index)."""
    dev = getattr(getattr(block, "_hf_hook", None), "execution_device", None)
    if dev is None:
        return None
    return torch.device("cuda", dev) if isinstance(dev, int) else torch.device(dev)

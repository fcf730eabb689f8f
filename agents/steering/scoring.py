"""Log-likelihood of many continuations after one shared prefix, under many
steering settings at once. All continuations are packed into ONE sequence
(prefix, cont_1, cont_2, ...) with a block attention mask: each continuation
sees the prefix and itself, never its neighbours, and its positions continue
from the prefix. Every batch row holds that same packed sequence under its own
steering delta, so one forward pass scores (settings x continuations).

Steering at layers >= s cannot change anything below block s, so the
unsteered input of block s is computed once and each steered pass runs only
blocks s..L-1 (checked against a full pass at construction; models where the
shortcut does not reproduce the full forward fall back to full passes).

Knows nothing about traits or questionnaires; it only scores token ids."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from agents.steering.hooks import SteeringHooks, decoder_layers, layer_container

log = logging.getLogger(__name__)


@contextlib.contextmanager
def _only_blocks_from(model: nn.Module, start: int) -> Iterator[None]:
    """Temporarily make the model's block list blocks[start:]."""
    parent, attr = layer_container(model)
    full = getattr(parent, attr)
    setattr(parent, attr, nn.ModuleList(list(full)[start:]))
    try:
        yield
    finally:
        setattr(parent, attr, full)


class PackedScorer:
    """Per-continuation log-likelihood sums for a fixed prefix and continuations."""

    def __init__(
        self,
        model: Any,
        prefix: Sequence[int],
        continuations: Sequence[Sequence[int]],
        *,
        start_layer: int = 0,
        row_chunk: int = 16,
    ) -> None:
        assert prefix and all(continuations), "prefix and continuations must be non-empty"
        self.model = model
        self.device = next(model.parameters()).device
        self.row_chunk = row_chunk
        ids, pos, owner = list(prefix), list(range(len(prefix))), [-1] * len(prefix)
        pred, tgt, which = [], [], []  # predicting position, target token, continuation index
        for j, cont in enumerate(continuations):
            for k, tok in enumerate(cont):
                pred.append(len(prefix) - 1 if k == 0 else len(ids) - 1)
                tgt.append(tok)
                which.append(j)
                ids.append(tok)
                pos.append(len(prefix) + k)
                owner.append(j)
        t = len(ids)
        own = torch.tensor(owner)
        idx = torch.arange(t)
        causal = idx[None, :] <= idx[:, None]  # (T, T) key <= query
        visible = (own[None, :] == -1) | (own[None, :] == own[:, None])  # prefix or same cont
        dtype = next(p for p in model.parameters() if p.dtype.is_floating_point).dtype
        mask = torch.zeros(t, t, dtype=dtype)
        mask[~(causal & visible)] = torch.finfo(dtype).min
        self.ids = torch.tensor(ids, device=self.device)[None]  # (1, T)
        self.pos = torch.tensor(pos, device=self.device)[None]  # (1, T)
        self.mask = mask[None, None].to(self.device)  # (1, 1, T, T) additive
        self.pred = torch.tensor(pred, device=self.device)  # (P,)
        self.tgt = torch.tensor(tgt, device=self.device)  # (P,)
        self.which = torch.tensor(which)  # (P,)
        self.lengths = torch.bincount(self.which, minlength=len(continuations))  # (C,)
        self.n_cont = len(continuations)
        self.start = start_layer
        self._base = self._block_input(start_layer) if start_layer > 0 else None
        if self._base is not None and not self._shortcut_ok():
            log.info("truncated forward does not match this model; using full passes")
            self._base = None

    @torch.no_grad()
    def _block_input(self, layer: int) -> torch.Tensor:
        """(1, T, H) unsteered input of decoder block `layer`."""
        seen: dict[str, torch.Tensor] = {}

        def grab(module, args, kwargs):
            seen["h"] = args[0] if args else kwargs["hidden_states"]

        handle = decoder_layers(self.model)[layer].register_forward_pre_hook(grab, with_kwargs=True)
        try:
            self.model(
                input_ids=self.ids,
                attention_mask=self.mask,
                position_ids=self.pos,
                use_cache=False,
                logits_to_keep=1,
            )
        finally:
            handle.remove()
        return seen["h"].detach()

    @torch.no_grad()
    def _hidden(self, rows: int, shortcut: bool) -> torch.Tensor:
        """(R, P, H) final hidden states at the predicting positions."""
        pos = self.pos.expand(rows, -1)
        if shortcut:
            body = self.model.base_model
            with _only_blocks_from(self.model, self.start):
                out = body(
                    inputs_embeds=self._base.expand(rows, -1, -1),
                    attention_mask=self.mask,
                    position_ids=pos,
                    use_cache=False,
                )
            return out.last_hidden_state[:, self.pred]
        body = self.model.base_model
        out = body(
            input_ids=self.ids.expand(rows, -1),
            attention_mask=self.mask,
            position_ids=pos,
            use_cache=False,
        )
        return out.last_hidden_state[:, self.pred]

    @torch.no_grad()
    def _sums(self, hidden: torch.Tensor) -> torch.Tensor:
        """(R, P, H) -> (R, C) summed log-probabilities per continuation."""
        head = self.model.get_output_embeddings()
        out = torch.zeros(hidden.shape[0], self.n_cont, dtype=torch.float64)
        for r in range(hidden.shape[0]):
            logp = torch.log_softmax(head(hidden[r]).float(), dim=-1)  # (P, V)
            tok = logp.gather(-1, self.tgt[:, None])[:, 0].double().cpu()  # (P,)
            out[r].index_add_(0, self.which, tok)
        return out

    def _shortcut_ok(self) -> bool:
        fast = self._sums(self._hidden(1, shortcut=True))
        full = self.model(
            input_ids=self.ids, attention_mask=self.mask, position_ids=self.pos, use_cache=False
        ).logits[0]  # (T, V)
        logp = torch.log_softmax(full.float(), dim=-1)[self.pred].gather(-1, self.tgt[:, None])[
            :, 0
        ]
        ref = torch.zeros(self.n_cont, dtype=torch.float64).index_add_(
            0, self.which, logp.double().cpu()
        )
        tol = 1e-3 if self.mask.dtype == torch.float32 else 5e-2  # model dtype
        return bool(((fast[0] - ref).abs() / self.lengths).max() < tol)

    @torch.no_grad()
    def score(
        self, hooks: SteeringHooks | None = None, deltas: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(R, C) summed log-probabilities; row r steered by deltas[:, r] (L, R, H).
        Without hooks: one unsteered row."""
        if hooks is None or deltas is None:
            return self._sums(self._hidden(1, shortcut=self._base is not None))
        if self._base is not None:
            assert min(hooks.layers) >= self.start, "scorer was built for a deeper start layer"
        rows = deltas.shape[1]
        parts = []
        for lo in range(0, rows, self.row_chunk):
            chunk = deltas[:, lo : lo + self.row_chunk]  # (L, r, H)
            hooks.set_deltas(chunk)
            hooks.set_token_mask(None)
            with hooks:
                parts.append(self._sums(self._hidden(chunk.shape[1], self._base is not None)))
        return torch.cat(parts)

    def mean_logprob(self, sums: torch.Tensor) -> torch.Tensor:
        """(R, C) sums -> (R, C) mean per-token log-probability."""
        return sums / self.lengths.double()

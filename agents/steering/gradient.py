"""The likelihood-gradient readout of statement pairs (method `gradient`).

For a statement pair (see ContrastivePair) and a layer l, the gradient, at
zero, of

    mean token log-probability of the high statement
  - mean token log-probability of the low statement

with respect to one vector added to the residual stream at every position of
both sequences at block l's output (where the steering hooks add). The mean of
these over a trait's pairs is, to first order, the unit-length addition that
most raises the trait's high statements over its low ones: the kind of
quantity the questionnaire measures, read on statements it does not contain.
An activation difference (mean_diff) is instead where the two sides' residuals
differ, which also carries what both sides share, e.g. the trait's topic
(docs/steering.md, session 12: such directions raise both keys of N's items).

Knows nothing about questionnaires or hooks' buffers; it only differentiates."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from agents.steering.chat import encode, left_pad, render_chat
from agents.steering.data import ContrastivePair
from agents.steering.hooks import check_layers, decoder_layers, model_hidden_size
from agents.typing import Message


def statement_sequences(
    tokenizer: Any, pair: ContrastivePair
) -> tuple[tuple[list[int], int], tuple[list[int], int]]:
    """(ids, statement start) of the high and the low side of a statement pair:
    the whole chat, and where the statement's tokens begin, as the
    questionnaire scores a statement after its prompt (where a tokenizer
    merges across the boundary, at the first token that differs from the
    prompt's own)."""
    if pair.kind != "statement":
        raise ValueError("the gradient readout needs statement pairs, not persona pairs")
    msgs = (Message(role="user", content=pair.user),)
    if pair.system is not None:
        msgs = (Message(role="system", content=pair.system), *msgs)
    text = render_chat(tokenizer, msgs, add_generation_prompt=True) + pair.continuation
    prompt = encode(tokenizer, text)
    out = []
    for side in (pair.high, pair.low):
        ids = encode(tokenizer, text + side)
        start = 0
        while start < min(len(prompt), len(ids) - 1) and ids[start] == prompt[start]:
            start += 1
        out.append((ids, max(start, 1)))  # the first token has nothing to predict it
    return out[0], out[1]


@contextlib.contextmanager
def _frozen(model: nn.Module) -> Iterator[None]:
    """No parameter records gradients inside: only the added vectors do, so
    autograd keeps nothing below the lowest steered layer. The flags are
    restored by name: accelerate replaces an offloaded block's parameter
    objects while it runs the block, so the objects seen on entry may no
    longer be the model's on exit."""
    flags = {name: p.requires_grad for name, p in model.named_parameters()}
    for p in model.parameters():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for name, p in model.named_parameters():
            p.requires_grad_(flags.get(name, p.requires_grad))


def _batch_gradients(
    model: nn.Module,
    rows: Sequence[tuple[list[int], int]],
    layers: Sequence[int],
    pad_id: int,
) -> torch.Tensor:
    """rows: (high, low) of B pairs, interleaved -> (B, L, H) per-pair gradients."""
    device = next(model.parameters()).device
    ids, mask, pos = (t.to(device) for t in left_pad([r[0] for r in rows], pad_id))  # (2B, T)
    width, n_pairs = ids.shape[1], len(rows) // 2
    hidden = model_hidden_size(model)
    # one zero vector per pair and layer, shared by the pair's two sides
    deltas = [torch.zeros(n_pairs, hidden, device=device, requires_grad=True) for _ in layers]
    real = mask[..., None]  # (2B, T, 1): padding gets nothing, as in SteeringHooks

    def make_hook(delta: torch.Tensor):
        def hook(module, args, output):
            h = output[0] if isinstance(output, tuple) else output
            h = h + (delta.repeat_interleave(2, 0)[:, None, :] * real).to(h.dtype)
            return (h, *output[1:]) if isinstance(output, tuple) else h

        return hook

    # which position predicts each statement token, and its weight (+-1 / length)
    row_of, at, target, weight = [], [], [], []
    for r, (seq, start) in enumerate(rows):
        offset, sign = width - len(seq), 1.0 if r % 2 == 0 else -1.0
        for j in range(start, len(seq)):
            row_of.append(r)
            at.append(offset + j - 1)
            target.append(seq[j])
            weight.append(sign / (len(seq) - start))
    blocks = decoder_layers(model)
    handles = [
        blocks[layer].register_forward_hook(make_hook(d))
        for layer, d in zip(layers, deltas, strict=True)
    ]
    try:
        out = model.base_model(
            input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=False
        ).last_hidden_state  # (2B, T, H)
    finally:
        for handle in handles:
            handle.remove()
    picked = out[torch.tensor(row_of, device=device), torch.tensor(at, device=device)]  # (n, H)
    logp = torch.log_softmax(model.get_output_embeddings()(picked).float(), dim=-1)
    tok = logp.gather(-1, torch.tensor(target, device=device)[:, None])[:, 0]  # (n,)
    contrast = (tok * torch.tensor(weight, device=device)).sum()  # sum over the B pairs
    grads = torch.autograd.grad(contrast, deltas)  # each (B, H): pair b's own gradient
    return torch.stack([g.float().cpu() for g in grads], dim=1)  # (B, L, H)


def pair_gradients(
    model: Any,
    tokenizer: Any,
    layers: Sequence[int],
    pairs: Sequence[ContrastivePair],
    *,
    batch_size: int = 16,
) -> torch.Tensor:
    """(P, L, H) gradient of each statement pair's likelihood contrast (module
    docstring) at each layer, float32; every pair must be a statement pair."""
    check_layers(model, layers)
    rows: list[tuple[list[int], int]] = []
    for pair in pairs:
        rows.extend(statement_sequences(tokenizer, pair))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    parts = []
    with _frozen(model), torch.enable_grad():
        for lo in range(0, len(rows), 2 * batch_size):
            parts.append(_batch_gradients(model, rows[lo : lo + 2 * batch_size], layers, pad))
    return torch.cat(parts)

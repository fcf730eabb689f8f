"""Builds steering vectors from the shipped contrastive pairs: for each pair
the residual stream at the last token is read for the high and the low side
(block l's output, i.e. hidden_states[l+1]): the continuation under either
persona, or either first-person statement (see ContrastivePair); the per-trait
direction is the mean of the differences (`mean_diff`), their first principal
component (`pca`), or the mean difference through a shrinkage-regularised
inverse covariance of the differences of all five traits (`lda`), or, for
statement pairs, the mean of each pair's likelihood gradient in place of its
difference (`gradient`, agents.steering.gradient), always unit-normalised and
signed so the high side projects positive. Each layer's
typical hidden-state norm (median over real, non-first tokens) is recorded so
a strength carries over between layers and models. `vectors_for` adds the
safetensors cache under <storage.root>/vectors/.

Knows nothing about hooks, generation or the questionnaire."""

from __future__ import annotations

import contextlib
import hashlib
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from agents.steering.calibrate import find_mixing
from agents.steering.chat import encode, left_pad, render_chat
from agents.steering.data import ContrastivePair, check_gradient_pairs, load_pairs, pairs_hash
from agents.steering.gradient import pair_gradients, statement_sequences
from agents.steering.hooks import check_layers, decoder_layers
from agents.steering.vectors import SteeringVectors, cache_path
from agents.typing import TRAITS, Message

log = logging.getLogger(__name__)

Method = Literal["mean_diff", "pca", "lda", "gradient"]
METHODS: tuple[str, ...] = ("mean_diff", "pca", "lda", "gradient")


class _Enough(Exception):
    """Raised by the deepest capture hook to end a forward pass early."""


def pair_prompts(tokenizer: Any, pair: ContrastivePair) -> tuple[list[int], list[int]]:
    """Token ids of the (high, low) versions of a pair: a persona pair ends on
    the continuation after either persona, a statement pair on either statement."""
    if pair.kind == "statement":
        (high, _), (low, _) = statement_sequences(tokenizer, pair)
        return high, low
    out = []
    for persona in (pair.high, pair.low):
        msgs = (Message(role="system", content=persona), Message(role="user", content=pair.user))
        text = render_chat(tokenizer, msgs, add_generation_prompt=True) + pair.continuation
        out.append(encode(tokenizer, text))
    return out[0], out[1]


@torch.no_grad()
def last_token_residuals(
    model: Any,
    sequences: Sequence[list[int]],
    layers: Sequence[int],
    *,
    batch_size: int = 32,
    pad_id: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run `sequences` (left-padded in batches) and return the residual stream at
    each sequence's last token, (N, L, H) float32, and each layer's median
    hidden-state norm over real positions except the first, (L,)."""
    blocks = decoder_layers(model)
    device = next(model.parameters()).device
    last: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    norms: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    state: dict[str, torch.Tensor] = {}
    deepest = max(layers)

    def make_hook(layer: int):
        def hook(module, args, output):
            h = (output[0] if isinstance(output, tuple) else output).float()  # (B, T, H)
            last[layer].append(h[:, -1].cpu())  # (B, H)
            keep = state["mask"].bool()  # (B, T): real tokens after each row's first
            norms[layer].append(h.norm(dim=-1)[keep].cpu())  # (n,)
            if layer == deepest:
                raise _Enough  # the blocks above and the LM head are not needed

        return hook

    handles = [blocks[layer].register_forward_hook(make_hook(layer)) for layer in layers]
    try:
        for start in range(0, len(sequences), batch_size):
            chunk = sequences[start : start + batch_size]
            ids, mask, pos = left_pad(chunk, pad_id)  # (B, T)
            state["mask"] = (mask.cumsum(-1) > 1).to(device)  # drop each row's first token
            with contextlib.suppress(_Enough):
                model(
                    input_ids=ids.to(device),
                    attention_mask=mask.to(device),
                    position_ids=pos.to(device),
                    use_cache=False,
                )
    finally:
        for handle in handles:
            handle.remove()
    acts = torch.stack([torch.cat(last[layer]) for layer in layers], dim=1)  # (N, L, H)
    med = torch.stack([torch.cat(norms[layer]).median() for layer in layers])  # (L,)
    return acts, med


def directions_from_diffs(diffs: torch.Tensor, method: Method) -> torch.Tensor:
    """diffs (P, L, H) high-minus-low -> (L, H) unit directions, high side positive."""
    mean = diffs.mean(0)  # (L, H)
    if method == "mean_diff":
        d = mean
    elif method == "pca":  # first right singular vector of the (uncentred) differences
        _, _, vh = torch.linalg.svd(diffs.transpose(0, 1), full_matrices=False)  # (L, k, H)
        d = vh[:, 0]  # (L, H)
        d = d * torch.sign((d * mean).sum(-1, keepdim=True))  # high side projects positive
    else:
        raise ValueError(f"unknown method {method!r}")
    return torch.nn.functional.normalize(d, dim=-1)


def ledoit_wolf(x: torch.Tensor, shrinkage: float | None = None) -> tuple[torch.Tensor, float]:
    """Shrunk covariance of centred samples x (n, H): (1 - a) S + a (tr S / H) I
    with the Ledoit-Wolf (2004) intensity a, the estimate that minimises the
    expected squared error, or a given `shrinkage` a in (0, 1]; needed because H
    (576) exceeds the samples (a few hundred pairs), where S itself is
    singular. a = 1 gives back the plain mean difference. Returns (cov, a)."""
    x = x.double()
    n, h = x.shape
    s = x.T @ x / n  # (H, H)
    mu = float(torch.trace(s)) / h
    eye = torch.eye(h, dtype=s.dtype)
    d2 = float(((s - mu * eye) ** 2).sum())
    # mean over samples of ||x x^T - S||_F^2 = ||x||^4 - 2 x^T S x + ||S||_F^2
    sq = (x * x).sum(1)  # (n,)
    xsx = ((x @ s) * x).sum(1)  # (n,)
    b2 = float((sq**2 - 2 * xsx + (s**2).sum()).mean()) / n
    a = 1.0 if d2 == 0 else min(b2, d2) / d2
    a = a if shrinkage is None else float(shrinkage)
    return (1 - a) * s + a * mu * eye, a


def lda_directions(
    diffs: torch.Tensor, trait_of: Sequence[str], shrinkage: float | None = None
) -> tuple[torch.Tensor, list]:
    """(P, L, H) differences -> (L, 5, H) whitened unit directions and each
    layer's shrinkage. Each trait's mean difference goes through the inverse of
    one covariance, that of all differences around their own trait's mean: the
    spread that is not any trait's signal (wording, valence framing, the user
    turn), so directions that vary a lot between pairs count less."""
    groups = [[i for i, tr in enumerate(trait_of) if tr == t] for t in TRAITS]
    means = torch.stack([diffs[g].mean(0) for g in groups], dim=1)  # (L, 5, H)
    centred = diffs.clone()
    for t, g in enumerate(groups):
        centred[g] -= means[:, t]
    out, shrink = [], []
    for layer in range(diffs.shape[1]):
        cov, a = ledoit_wolf(centred[:, layer], shrinkage)  # (H, H)
        w = torch.linalg.solve(cov, means[layer].double().T).T.float()  # (5, H)
        out.append(torch.nn.functional.normalize(w, dim=-1))
        shrink.append(round(a, 4))
    return torch.stack(out), shrink


def valence_directions(diffs: torch.Tensor, pairs: Sequence[ContrastivePair]) -> torch.Tensor:
    """(P, L, H) differences -> (L, H) unit "valence" direction: for each trait
    the mean difference of its favourable-high pairs minus that of its
    favourable-low pairs (what changes when the same contrast is described the
    other way round), normalised and averaged over the traits. The five
    traits' valence directions are close (cos 0.65-0.88 on SmolLM2 at layer
    21): it is one shared axis of social desirability."""
    per = []
    for t in TRAITS:
        hi = [i for i, p in enumerate(pairs) if p.trait == t and p.framing == "desirable_high"]
        lo = [i for i, p in enumerate(pairs) if p.trait == t and p.framing == "desirable_low"]
        if hi and lo:
            per.append(torch.nn.functional.normalize(diffs[hi].mean(0) - diffs[lo].mean(0), dim=-1))
    if not per:
        raise ValueError("no trait has pairs of both framings; valence is undefined")
    return torch.nn.functional.normalize(torch.stack(per).mean(0), dim=-1)  # (L, H)


def pair_activations(
    model: Any,
    tokenizer: Any,
    layers: Sequence[int],
    pairs: Sequence[ContrastivePair],
    *,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, L, H) high-minus-low differences of the pairs and the layers' typical
    norms (L,): the one expensive step, shared by every method."""
    check_layers(model, layers)
    seqs: list[list[int]] = []
    for pair in pairs:
        seqs.extend(pair_prompts(tokenizer, pair))
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    acts, norms = last_token_residuals(model, seqs, layers, batch_size=batch_size, pad_id=pad)
    return acts[0::2] - acts[1::2], norms


def readout_of(method: str) -> str:
    """What a method reads from the pairs: "gradient" or "activation"."""
    return "gradient" if method == "gradient" else "activation"


def pair_readouts(
    model: Any,
    tokenizer: Any,
    layers: Sequence[int],
    pairs: Sequence[ContrastivePair],
    readout: str = "activation",
    *,
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(P, L, H) per-pair readouts and the layers' typical norms (L,). The
    "activation" readout is pair_activations'; the "gradient" readout replaces
    each statement pair's difference by its likelihood gradient
    (agents.steering.gradient), while a trait given by persona pairs, which
    hold no statements to score, keeps its activation differences. A trait
    must not mix the two kinds there: their scales differ."""
    if readout == "gradient":
        check_gradient_pairs(pairs)
    # statement pairs are read here too: the layers' norms are taken over every pair
    diffs, norms = pair_activations(model, tokenizer, layers, pairs, batch_size=batch_size)
    if readout == "gradient":
        idx = [i for i, p in enumerate(pairs) if p.kind == "statement"]
        diffs[idx] = pair_gradients(model, tokenizer, layers, [pairs[i] for i in idx])
    return diffs, norms


def vectors_from_diffs(
    diffs: torch.Tensor,
    norms: torch.Tensor,
    layers: Sequence[int],
    pairs: Sequence[ContrastivePair],
    method: Method,
    shrinkage: float | None = None,
) -> SteeringVectors:
    """Directions by `method` from pair differences (see the module docstring);
    `shrinkage` fixes lda's shrinkage (None: Ledoit-Wolf)."""
    trait_of = [p.trait for p in pairs]
    for t in TRAITS:
        if t not in trait_of:
            raise ValueError(f"no contrastive pairs for trait {t}")
    meta = {"method": method, "data_hash": pairs_hash(tuple(pairs)), "n_pairs": str(len(pairs))}
    if method == "lda":
        directions, shrink = lda_directions(diffs, trait_of, shrinkage)
        meta["shrinkage"] = ",".join(map(str, shrink))
    else:  # gradient: the mean of the pairs' gradients (pair_readouts)
        directions = torch.stack(
            [
                directions_from_diffs(
                    diffs[[i for i, tr in enumerate(trait_of) if tr == t]],
                    "mean_diff" if method == "gradient" else method,
                )
                for t in TRAITS
            ],
            dim=1,
        )  # (L, 5, H)
    return SteeringVectors(layers=tuple(layers), directions=directions, norms=norms, meta=meta)


def build_vectors(
    model: Any,
    tokenizer: Any,
    layers: Sequence[int],
    *,
    method: Method = "mean_diff",
    pairs: Sequence[ContrastivePair] | None = None,
    batch_size: int = 32,
) -> SteeringVectors:
    """One unit direction per trait per layer from the contrastive pairs."""
    layers = sorted(layers)
    pairs = tuple(load_pairs() if pairs is None else pairs)
    diffs, norms = pair_readouts(
        model, tokenizer, layers, pairs, readout_of(method), batch_size=batch_size
    )
    return vectors_from_diffs(diffs, norms, layers, pairs, method)


def vectors_for(
    model: Any,
    tokenizer: Any,
    *,
    storage_root: str | Path,
    model_name: str,
    model_identity: str,
    layers: Sequence[int],
    method: Method = "mean_diff",
    orthogonalize: bool = False,
    trait_layers: Mapping[str, Sequence[int]] | None = None,
    calibrated: bool = False,
    gains: Mapping[str, float] | None = None,
    pairs: tuple[ContrastivePair, ...] | None = None,
) -> tuple[SteeringVectors, Path]:
    """Cached vectors for this model, layers, method and data; built on a miss.
    The file holds exactly what is applied: orthogonalised if asked; with
    `calibrated`, recombined by the shipped cross-talk calibration when one
    matches this model, data, method and placement (agents.steering.calibrate);
    with `trait_layers`, each trait's direction only at its own layers; with
    `gains`, trait t's direction times gains[t] (a per-trait strength). `pairs`
    (default: the shipped ones) are what the directions are built from."""
    data_hash = pairs_hash(pairs)
    if trait_layers or calibrated or gains:
        trait_layers = trait_layers or {}
        union = sorted({x for t in TRAITS for x in trait_layers.get(t, layers)})
        full = {t: list(trait_layers.get(t, layers)) for t in TRAITS}
        base, _ = vectors_for(
            model, tokenizer, storage_root=storage_root, model_name=model_name,
            model_identity=model_identity, layers=union, method=method, orthogonalize=orthogonalize,
            pairs=pairs,
        )  # fmt: skip
        variant = "t" + "".join(f"{t}{'_'.join(map(str, full[t]))}" for t in TRAITS)
        mixing = (
            find_mixing(
                model_identity=model_identity,
                data_hash=data_hash,
                method=method,
                orthogonalize=orthogonalize,
                layers_of=full,
                gains=gains,
            )  # fmt: skip
            if calibrated
            else None
        )
        if mixing is not None:  # each trait mixes the five directions at its own layers
            base = base.mixed(mixing)
            variant += "m" + hashlib.sha256(mixing.tobytes()).hexdigest()[:8]
        masked = base.for_traits(full)
        if gains:
            masked = masked.scaled(gains)
            variant += "g" + "_".join(f"{t}{gains[t]:g}" for t in TRAITS if t in gains)
        path = cache_path(
            storage_root, model_name=model_name, model_identity=model_identity, layers=union,
            method=method, data_hash=data_hash, orthogonalize=orthogonalize, variant=variant,
        )  # fmt: skip
        return masked, masked.save(path)
    key = dict(
        model_name=model_name, model_identity=model_identity, method=method, data_hash=data_hash
    )
    path = cache_path(storage_root, layers=layers, orthogonalize=orthogonalize, **key)
    if path.is_file():
        vecs = SteeringVectors.load(path)
        if vecs.layers == tuple(sorted(layers)):
            return vecs, path
    # a cached file covering more layers serves too (orthogonalisation is per layer)
    for orth in sorted({orthogonalize, False}, reverse=True):
        pattern = cache_path(storage_root, layers=None, orthogonalize=orth, **key)
        for cand in sorted(pattern.parent.glob(pattern.name)):
            vecs = SteeringVectors.load(cand)
            if set(layers) <= set(vecs.layers):
                vecs = vecs.select(layers)
                vecs = vecs.orthogonalized() if orthogonalize and not orth else vecs
                return vecs, vecs.save(path)
    log.info("building steering vectors for layers %s (%s)", list(layers), method)
    vecs = build_vectors(model, tokenizer, layers, method=method, pairs=pairs)
    if orthogonalize:
        vecs = vecs.orthogonalized()
    meta = {**vecs.meta, "model": model_name, "model_identity": model_identity}
    vecs = SteeringVectors(
        layers=vecs.layers, directions=vecs.directions, norms=vecs.norms, meta=meta
    )
    return vecs, vecs.save(path)

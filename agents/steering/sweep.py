"""Chooses steering settings on the DEV questionnaire, never on the test set:
`run_sweep` evaluates a list of `Setting`s (pair set, method, layers,
per-trait layers, strength, per-trait gains) with evaluate_steering on
questionnaire "dev" and appends one JSON line per setting, so partial results
survive an interrupted sweep.

Two things make a sweep affordable on a CPU: each pair set's activations are
read once for the union of all layers any setting needs, every method then
works from those differences; and the random controls, which depend only on
where and how hard a setting pushes (layers, per-layer norms, strength, gains),
not on the directions, are measured once and reused by every setting that
pushes the same way. Every candidate uses the layer norms of the first pair set
so that all are compared at the same absolute delta size.

Knows nothing about command lines or config files (the CLI in
orchestrator.analysis.steering_sweep builds the settings)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.steering.data import ContrastivePair, load_pairs, load_pairs_file
from agents.steering.evaluation import N_RANDOM, control_groups, evaluate_steering
from agents.steering.extract import Method, pair_activations, vectors_from_diffs
from agents.steering.vectors import SteeringVectors

log = logging.getLogger(__name__)

SHIPPED = "shipped"  # the pair set in agents/data/contrastive_pairs.json
SPLIT = "dev"  # the only questionnaire a sweep reads


@dataclass(frozen=True, kw_only=True)
class Setting:
    """One candidate: which pairs and method build the directions, where and
    how hard they are applied."""

    pairs: str = SHIPPED  # "shipped" or a pairs file
    method: Method = "mean_diff"
    shrinkage: float | None = None  # lda only; None = Ledoit-Wolf
    layers: tuple[int, ...] = (21,)  # every trait's layers unless trait_layers names it
    trait_layers: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    strength: float = 0.17
    gains: Mapping[str, float] = field(default_factory=dict)  # per-trait strength multiplier
    orthogonalize: bool = False
    label: str = ""

    def all_layers(self) -> list[int]:
        return sorted({*self.layers, *(x for v in self.trait_layers.values() for x in v)})

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["trait_layers"] = {t: list(v) for t, v in self.trait_layers.items()}
        d["gains"] = dict(self.gains)
        return d


def _pairs(name: str) -> tuple[ContrastivePair, ...]:
    return load_pairs() if name == SHIPPED else load_pairs_file(name)


class Sweep:
    """Holds the model, the per-pair-set differences and the control cache."""

    def __init__(self, model: Any, tokenizer: Any, *, n_random: int = N_RANDOM, seed: int = 0):
        self.model, self.tokenizer = model, tokenizer
        self.n_random, self.seed = n_random, seed
        self._diffs: dict[str, tuple[torch.Tensor, tuple[int, ...]]] = {}
        self._norms: torch.Tensor | None = None  # (L_all,) from the first pair set
        self._norm_layers: tuple[int, ...] = ()
        self._controls: dict[tuple, np.ndarray] = {}

    def prepare(self, settings: Sequence[Setting]) -> None:
        """Read every pair set's differences once, at the union of all layers."""
        layers = tuple(sorted({x for s in settings for x in s.all_layers()}))
        for name in dict.fromkeys(s.pairs for s in settings):
            if name in self._diffs and set(layers) <= set(self._diffs[name][1]):
                continue
            pairs = _pairs(name)
            t0 = time.perf_counter()
            diffs, norms = pair_activations(self.model, self.tokenizer, layers, pairs)
            log.info("pairs %s: %d pairs, layers %s, %.0fs", name, len(pairs), list(layers),
                     time.perf_counter() - t0)  # fmt: skip
            self._diffs[name] = (diffs, layers)
            if self._norms is None:
                self._norms, self._norm_layers = norms, layers

    def vectors(self, s: Setting) -> SteeringVectors:
        """The directions `s` applies: built, restricted, placed and scaled."""
        self.prepare([s])
        diffs, layers = self._diffs[s.pairs]
        assert self._norms is not None
        norms = self._norms[[self._norm_layers.index(x) for x in layers]]
        full = vectors_from_diffs(diffs, norms, layers, _pairs(s.pairs), s.method, s.shrinkage)
        full = full.orthogonalized() if s.orthogonalize else full
        v = full.select(s.all_layers())
        if s.trait_layers:
            v = v.for_traits({t: list(s.trait_layers.get(t, s.layers)) for t in "EACON"})
        if s.gains:
            v = v.scaled(s.gains)
        return v

    def evaluate(self, s: Setting, *, fluency: bool = True) -> dict[str, Any]:
        """One setting on the DEV questionnaire -> the report's dict plus the setting."""
        v = self.vectors(s)
        key = (
            v.layers,
            tuple(round(float(x), 3) for x in v.norms),
            s.strength,
            tuple(sorted((k, tuple(t)) for k, t in control_groups(v).items())),
        )
        t0 = time.perf_counter()
        rep = evaluate_steering(
            self.model, self.tokenizer, v, None, s.strength,
            n_random=self.n_random, seed=self.seed, fluency=fluency,
            random_effects=self._controls.get(key), questionnaire=SPLIT,
        )  # fmt: skip
        self._controls.setdefault(key, rep.random_effects)
        row = {"setting": s.describe(), **rep.to_dict(), "shrinkage": v.meta.get("shrinkage")}
        row["seconds"] = round(time.perf_counter() - t0, 1)
        log.info("%s\n%s\n", s.label or s.describe(), rep.to_text())
        return row


def run_sweep(
    model: Any,
    tokenizer: Any,
    settings: Sequence[Setting],
    out: str | Path,
    *,
    n_random: int = N_RANDOM,
    fluency: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate `settings` on the DEV set, appending each result to `out` (JSONL)."""
    sweep = Sweep(model, tokenizer, n_random=n_random)
    sweep.prepare(settings)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for s in settings:
        row = sweep.evaluate(s, fluency=fluency)
        with out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        rows.append(row)
    return rows

"""Chooses steering settings on the DEV questionnaire, never on the test set:
`run_sweep` evaluates a list of `Setting`s (pair set, method, layers,
per-trait layers, strength, per-trait gains, valence-axis removal, a 5x5
mixing) with evaluate_steering on questionnaire "dev" and appends one JSON
line per setting, so partial results survive an interrupted sweep;
`Sweep.calibrate` measures the dev cross-talk matrices and fits the mixing
(agents.steering.calibrate).

Two things make a sweep affordable on a CPU: each pair set's activations are
read once for the union of all layers any setting needs, every method then
works from those differences; and the random controls, which depend only on
where and how hard a trait is pushed (its layers, their norms, the strength and
its gain), not on the directions, are measured once per placement and reused
by every trait of every setting placed the same way. Every candidate uses the
layer norms of the first pair set so that all are compared at the same
absolute delta size.

Knows nothing about command lines or config files (the CLI in
orchestrator.analysis.steering_sweep builds the settings)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agents.steering.calibrate import bounded_mixing, predicted
from agents.steering.data import SHIPPED_PAIRS, pair_set, pairs_hash
from agents.steering.evaluation import N_RANDOM, ItemEffects, control_groups, evaluate_steering
from agents.steering.extract import (
    Method,
    pair_readouts,
    readout_of,
    valence_directions,
    vectors_from_diffs,
)
from agents.steering.reliability import trait_reliability
from agents.steering.vectors import SteeringVectors
from agents.typing import TRAITS

log = logging.getLogger(__name__)

SHIPPED = SHIPPED_PAIRS  # the pair set in agents/data/contrastive_pairs.json
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
    remove_valence: float = 0.0  # fraction of the pairs' valence axis taken out of each direction
    # 5x5 recombination of the directions (rows: new traits), see SteeringVectors.mixed
    mixing: tuple[tuple[float, ...], ...] | None = None
    label: str = ""

    def all_layers(self) -> list[int]:
        return sorted({*self.layers, *(x for v in self.trait_layers.values() for x in v)})

    def describe(self) -> dict[str, Any]:
        d = asdict(self)
        d["layers"] = list(self.layers)
        d["trait_layers"] = {t: list(v) for t, v in self.trait_layers.items()}
        d["gains"] = dict(self.gains)
        return d


class Sweep:
    """Holds the model, the per-pair-set differences and the control cache."""

    def __init__(self, model: Any, tokenizer: Any, *, n_random: int = N_RANDOM, seed: int = 0):
        self.model, self.tokenizer = model, tokenizer
        self.n_random, self.seed = n_random, seed
        # (pair set, readout) -> its per-pair readouts and their layers
        self._diffs: dict[tuple[str, str], tuple[torch.Tensor, tuple[int, ...]]] = {}
        self._norm_of: dict[int, float] = {}  # layer -> norm, from the first pair set read there
        # placement -> the controls' (n, 5) random effects on every measured trait
        # and their per-statement changes
        self._controls: dict[tuple, tuple[np.ndarray, ItemEffects | None]] = {}

    def prepare(self, settings: Sequence[Setting]) -> None:
        """Read every pair set once per readout, at the union of all layers."""
        layers = tuple(sorted({x for s in settings for x in s.all_layers()}))
        for key in dict.fromkeys((s.pairs, readout_of(s.method)) for s in settings):
            if key in self._diffs and set(layers) <= set(self._diffs[key][1]):
                continue
            pairs = pair_set(key[0])
            t0 = time.perf_counter()
            diffs, norms = pair_readouts(self.model, self.tokenizer, layers, pairs, key[1])
            log.info("pairs %s (%s): %d pairs, layers %s, %.0fs", *key, len(pairs), list(layers),
                     time.perf_counter() - t0)  # fmt: skip
            self._diffs[key] = (diffs, layers)
            for layer, norm in zip(layers, norms.tolist(), strict=True):
                self._norm_of.setdefault(layer, norm)

    def vectors(self, s: Setting) -> SteeringVectors:
        """The directions `s` applies: built, restricted, placed and scaled."""
        self.prepare([s])
        diffs, layers = self._diffs[(s.pairs, readout_of(s.method))]
        norms = torch.tensor([self._norm_of[x] for x in layers])
        full = vectors_from_diffs(diffs, norms, layers, pair_set(s.pairs), s.method, s.shrinkage)
        if s.remove_valence:
            axis = valence_directions(diffs, pair_set(s.pairs))  # (L, H)
            full = full.without(axis, s.remove_valence)
        full = full.orthogonalized() if s.orthogonalize else full
        v = full.select(s.all_layers())
        if s.mixing is not None:  # before placing: each trait mixes the directions of its layers
            v = v.mixed(s.mixing)
        if s.trait_layers:
            v = v.for_traits({t: list(s.trait_layers.get(t, s.layers)) for t in "EACON"})
        if s.gains:
            v = v.scaled(s.gains)
        return v

    def controls(self, v: SteeringVectors, strength: float) -> tuple[np.ndarray, np.ndarray | None]:
        """(n, 5) random effects for `v`: trait t's column measured with random
        directions at t's layers and size; and (n, C) the same per statement
        (each statement's column from its trait's controls). A placement not
        seen before is measured once, for all five measured traits, with every
        trait placed there (the controls do not depend on the directions)."""
        out = np.zeros((self.n_random, 5))
        per_item: np.ndarray | None = None
        for gkey, traits in control_groups(v).items():
            # (layer, its norm, strength x the trait's size there): what a control adds
            key = tuple(
                (layer, round(float(norm), 3), round(size * strength, 5))
                for layer, norm, size in zip(v.layers, v.norms, gkey, strict=True)
                if size != 0
            )
            if key not in self._controls:
                probe = SteeringVectors(
                    layers=v.layers,
                    directions=torch.tensor(gkey, dtype=torch.float32)[:, None, None]
                    * torch.nn.functional.normalize(torch.ones(1, 5, v.hidden_size), dim=-1),
                    norms=v.norms,
                )  # every trait at this placement; the directions themselves do not matter
                t0 = time.perf_counter()
                rep = evaluate_steering(
                    self.model, self.tokenizer, probe, None, strength, coefs=(-1, 0, 1),
                    n_random=self.n_random, seed=self.seed, fluency=False, questionnaire=SPLIT,
                )  # fmt: skip
                self._controls[key] = (rep.random_effects, rep.items)
                log.info("controls at %s: %.0fs", key, time.perf_counter() - t0)
            rand, items = self._controls[key]
            out[:, traits] = rand[:, traits]
            if items is not None:
                per_item = np.zeros_like(items.random) if per_item is None else per_item
                mine = np.isin(items.traits, traits)
                per_item[:, mine] = items.random[:, mine]
        return out, per_item

    def matrix(self, s: Setting) -> np.ndarray:
        """(5, 5) dev cross-talk of `s` (steered row, measured column); the matrix
        needs no controls, so none are measured."""
        rep = evaluate_steering(
            self.model, self.tokenizer, self.vectors(s), None, s.strength,
            random_effects=np.ones((3, len(TRAITS))), fluency=False, questionnaire=SPLIT,
        )  # fmt: skip
        return rep.matrix

    def calibrate(self, s: Setting, rho: float) -> dict[str, Any]:
        """The cross-talk calibration of `s` on the DEV set: the matrix and Gram
        matrix with every trait at each trait's layers (a multi-layer placement
        uses its layers' mean Gram matrix), then bounded_mixing(rho) for the
        setting's gains (the matrices are measured without them; the fit
        scales each trait's row by its gain). Returns the calibration-file
        entry, less the model fields; with gains, the entry names them and
        serves only runs with those gains."""
        layers_of = {t: tuple(s.trait_layers.get(t, s.layers)) for t in TRAITS}
        mats: dict[tuple[int, ...], np.ndarray] = {}
        grams: dict[tuple[int, ...], np.ndarray] = {}
        for ls in dict.fromkeys(layers_of.values()):
            probe = replace(s, layers=ls, trait_layers={}, mixing=None, gains={})
            mats[ls] = self.matrix(probe)
            grams[ls] = self.vectors(probe).cosines().mean(0).double().numpy()
        order = [layers_of[t] for t in TRAITS]
        gains = dict(s.gains)
        mixing = bounded_mixing(
            [mats[x] for x in order], [grams[x] for x in order], rho, gains=gains
        )
        r4 = lambda m: np.round(np.asarray(m), 4).tolist()  # noqa: E731
        return {
            "data_hash": pairs_hash(pair_set(s.pairs)),
            "method": s.method,
            "orthogonalize": s.orthogonalize,
            "layers_of": {t: list(x) for t, x in layers_of.items()},
            "strength": s.strength,
            "rho": rho,
            "mixing": r4(mixing),
            "dev_matrices": {",".join(map(str, ls)): r4(m) for ls, m in mats.items()},
            "predicted": r4(predicted([mats[x] for x in order], mixing, gains)),
            **({"gains": gains} if gains else {}),
        }

    def evaluate(self, s: Setting, *, fluency: bool = True) -> dict[str, Any]:
        """One setting on the DEV questionnaire -> the report's dict plus the setting."""
        v = self.vectors(s)
        rand, per_item = self.controls(v, s.strength)
        t0 = time.perf_counter()
        rep = evaluate_steering(
            self.model, self.tokenizer, v, None, s.strength, seed=self.seed, fluency=fluency,
            random_effects=rand, random_item_effects=per_item, questionnaire=SPLIT,
        )  # fmt: skip
        row = {"setting": s.describe(), **rep.to_dict(), "shrinkage": v.meta.get("shrinkage")}
        row["reliability"] = self.reliability(s)
        row["seconds"] = round(time.perf_counter() - t0, 1)
        log.info("%s\n%s\nsplit-half cosine of each trait's pairs: %s\n",
                 s.label or s.describe(), rep.to_text(), row["reliability"])  # fmt: skip
        return row

    def reliability(self, s: Setting) -> dict[str, dict[int, float | None]]:
        """Each trait's split-half cosine (agents.steering.reliability) at the
        trait's own layers in `s`: how much of its direction any half of its
        pairs' contents would give, before mixing, gains or valence removal."""
        self.prepare([s])
        diffs, layers = self._diffs[(s.pairs, readout_of(s.method))]
        every = trait_reliability(diffs, layers, pair_set(s.pairs))
        return {t: {x: every[t][x] for x in s.trait_layers.get(t, s.layers)} for t in TRAITS}


def run_sweep(
    model: Any,
    tokenizer: Any,
    settings: Sequence[Setting],
    out: str | Path,
    *,
    n_random: int = N_RANDOM,
    fluency: bool = True,
    sweep: Sweep | None = None,
) -> list[dict[str, Any]]:
    """Evaluate `settings` on the DEV set, appending each result to `out` (JSONL);
    `sweep` lends its pair differences and controls (and keeps them)."""
    sweep = sweep or Sweep(model, tokenizer, n_random=n_random)
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

"""Sweep steering settings on the held-out questionnaire to choose defaults
(the command line behind scripts/steering_sweep.py):

    python scripts/steering_sweep.py --layers 12 16 20 24 --strengths 0.1 0.2 0.3 \
        --out storage/analysis/steering_sweep.jsonl

Builds (or reuses from <storage>/vectors/) the vectors for every layer once,
then evaluates each (layer set, strength, variant) with
agents.steering.evaluation.evaluate_steering and appends one JSON line per
setting. `--per-trait E=20 A=24 ...` evaluates one layer per trait. Each
setting is also printed as the report's text."""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from agents.config import ModelConfig, OptimizationConfig
from agents.model_loading import load_model
from agents.steering.evaluation import evaluate_steering
from agents.steering.extract import vectors_for
from agents.steering.hooks import decoder_layers
from agents.steering.vectors import SteeringVectors
from agents.typing import TRAITS

log = logging.getLogger(__name__)


def parse_per_trait(items: list[str]) -> dict[str, int]:
    """["E=20", "A=24", ...] -> {"E": 20, "A": 24, ...}: one layer for each of the five traits."""
    spec: dict[str, int] = {}
    for item in items:
        trait, _, layer = item.partition("=")
        if trait not in TRAITS or not layer.isdigit():
            raise ValueError(f"--per-trait takes TRAIT=LAYER (traits {TRAITS}), got {item!r}")
        spec[trait] = int(layer)
    if missing := [t for t in TRAITS if t not in spec]:
        raise ValueError(f"--per-trait needs a layer for every trait; missing {missing}")
    return spec


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--storage", default="storage")
    ap.add_argument("--layers", type=int, nargs="*", default=[24], help="single layers to try")
    ap.add_argument("--layer-sets", nargs="*", default=[], help="comma lists, e.g. 20,24")
    ap.add_argument("--per-trait", nargs="*", default=[], help="E=20 A=24 C=24 O=18 N=24")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.2])
    ap.add_argument("--methods", nargs="+", default=["mean_diff"], choices=["mean_diff", "pca"])
    ap.add_argument("--orthogonalize", choices=["no", "yes", "both"], default="no")
    ap.add_argument("--n-random", type=int, default=20)
    ap.add_argument("--no-fluency", action="store_true")
    ap.add_argument("--vectors", type=Path, nargs="*", default=[], help="evaluate these files too")
    ap.add_argument("--no-build", action="store_true", help="only the --vectors files")
    ap.add_argument("--out", type=Path, default=Path("storage/analysis/steering_sweep.jsonl"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_grad_enabled(False)

    settings: list[tuple[str, list[int] | dict[str, int]]] = [("layers", [x]) for x in args.layers]
    settings += [("layers", [int(x) for x in s.split(",")]) for s in args.layer_sets]
    if args.per_trait:
        try:
            settings.append(("per_trait", parse_per_trait(args.per_trait)))
        except ValueError as exc:
            ap.error(str(exc))
    lm = load_model(ModelConfig(name_or_path=args.model), OptimizationConfig(), args.storage)
    all_layers = list(range(len(decoder_layers(lm.model))))
    orths = {"no": [False], "yes": [True], "both": [False, True]}[args.orthogonalize]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    controls: dict[tuple, np.ndarray] = {}  # (layer, strength, norm) -> (n, 5)

    def random_for(v: SteeringVectors, strength: float, layer_of: list[int]) -> np.ndarray:
        """Random-control effects, trait t measured with controls at layer_of[t]."""
        keys = [(x, strength, round(float(v.select([x]).norms[0]))) for x in layer_of]
        for key in set(keys):
            if key not in controls:
                controls[key] = evaluate_steering(
                    lm.model,
                    lm.tokenizer,
                    v.select([key[0]]),
                    None,
                    strength,
                    coefs=(-1, 0, 1),
                    n_random=args.n_random,
                    fluency=False,
                ).random_effects
        return np.stack([controls[k][:, t] for t, k in enumerate(keys)], 1)

    sources: list[tuple[str, SteeringVectors, Path]] = []
    for f in args.vectors:
        vf = SteeringVectors.load(f)
        sources.append((vf.meta.get("method", "mean_diff"), vf, f))
    for method in [] if args.no_build else args.methods:
        built, path = vectors_for(
            lm.model,
            lm.tokenizer,
            storage_root=args.storage,
            model_name=lm.name_or_path,
            model_identity=lm.identity,
            layers=all_layers,
            method=method,
        )
        sources.append((method, built, path))
    for method, base, path in sources:
        log.info("vectors: %s", path)
        for orth in orths:
            vecs = base.orthogonalized() if orth else base
            for kind, spec in settings:
                if kind == "per_trait":  # trait t steered only at its own layer
                    v = vecs.for_traits({t: [layer] for t, layer in spec.items()})
                else:
                    v = vecs.select(spec)
                if kind == "per_trait":
                    layer_of = [spec[t] for t in TRAITS]
                elif len(spec) == 1:
                    layer_of = [spec[0]] * len(TRAITS)
                else:
                    layer_of = None  # several layers at once: controls measured jointly
                for strength in args.strengths:
                    t0 = time.perf_counter()
                    rand = random_for(vecs, strength, layer_of) if layer_of else None
                    rep = evaluate_steering(
                        lm.model,
                        lm.tokenizer,
                        v,
                        None,
                        strength,
                        n_random=args.n_random,
                        fluency=not args.no_fluency,
                        random_effects=rand,
                    )
                    row = {"method": method, "orthogonalize": orth, "vectors": str(path)}
                    row.update({kind: spec, **rep.to_dict()})
                    row["seconds"] = round(time.perf_counter() - t0, 1)
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    log.info("%s orth=%s %s=%s\n%s\n", method, orth, kind, spec, rep.to_text())
    return 0

"""Choose steering settings on the DEV questionnaire (the command line behind
scripts/steering_sweep.py); the test questionnaire is never read here:

    python scripts/steering_sweep.py --pairs shipped agents/data/pair_sets/held.json \
        --methods mean_diff lda --layer-sets 21 18-24 --per-trait E=21 A=21 C=21 O=26 N=21 \
        --strengths 0.17 --out storage/analysis/steering_sweep.jsonl

Every combination of pair set x method x orthogonalisation x placement
(each --layer-sets entry for all traits, and the --per-trait placement) x
strength is one setting, evaluated by agents.steering.sweep on the dev set
with --n-random controls (100 by default, reused by settings that push the
same way) and appended as one JSON line; each is also logged as the report's
text. `--gains N=1.3` multiplies one trait's strength."""

from __future__ import annotations

import argparse
import itertools
import json
import logging
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from agents.config import ModelConfig, OptimizationConfig
from agents.errors import SteersimError
from agents.model_loading import load_model
from agents.steering.data import check_gradient_pairs, pair_set
from agents.steering.evaluation import N_RANDOM
from agents.steering.extract import METHODS
from agents.steering.sweep import SHIPPED, Setting, Sweep, run_sweep
from agents.typing import TRAITS
from orchestrator.analysis.behavioural import MAX_RANDOM
from orchestrator.analysis.cli_support import tolerate_narrow_terminals
from orchestrator.storage import make_output_folder

log = logging.getLogger(__name__)


def parse_layers(text: str) -> tuple[int, ...]:
    """ "21" -> (21,); "20,24" -> (20, 24); "18-24" -> (18, ..., 24)."""
    out: set[int] = set()
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        if not lo.isdigit() or (sep and not hi.isdigit()):
            raise ValueError(f"layers are N, N,M or N-M, got {text!r}")
        if sep and int(hi) < int(lo):  # an empty range would leave a trait unsteered
            raise ValueError(f"layers N-M need N <= M, got {text!r}")
        out.update(range(int(lo), int(hi) + 1) if sep else [int(lo)])
    return tuple(sorted(out))


def parse_per_trait(items: list[str]) -> dict[str, tuple[int, ...]]:
    """["E=20", "O=24-26", ...] -> {"E": (20,), "O": (24, 25, 26), ...}: every trait's layers."""
    spec: dict[str, tuple[int, ...]] = {}
    for item in items:
        trait, _, layers = item.partition("=")
        if trait not in TRAITS or not layers:
            raise ValueError(f"--per-trait takes TRAIT=LAYERS (traits {TRAITS}), got {item!r}")
        spec[trait] = parse_layers(layers)
    if missing := [t for t in TRAITS if t not in spec]:
        raise ValueError(f"--per-trait needs layers for every trait; missing {missing}")
    return spec


def parse_gains(items: list[str]) -> dict[str, float]:
    """["N=1.3"] -> {"N": 1.3}: per-trait strength multipliers."""
    gains: dict[str, float] = {}
    for item in items:
        trait, _, value = item.partition("=")
        try:
            gains[trait] = float(value)
        except ValueError:
            trait = ""
        if trait not in TRAITS or not 0 < gains[trait] < math.inf:  # nan fails both
            raise ValueError(f"--gains takes TRAIT=POSITIVE_NUMBER, got {item!r}")
    return gains


def check_numbers(args: argparse.Namespace) -> None:
    """The numeric options' ranges, checked before the model loads (argparse
    takes 'nan', 'inf' and negatives as floats)."""
    calibrate = [] if args.calibrate is None else [args.calibrate]
    checks = [
        ("--strengths", args.strengths, lambda v: v >= 0, "a number >= 0"),
        ("--shrinkage", args.shrinkage, lambda v: 0 < v <= 1, "a number in (0, 1]"),
        ("--remove-valence", args.remove_valence, lambda v: 0 <= v <= 1, "a number in [0, 1]"),
        ("--calibrate", calibrate, lambda v: v >= 0, "RHO >= 0"),
        # a spread needs two controls; fewer crashed in the bootstrap after the model ran.
        # Above verify's bound (orchestrator.analysis.behavioural.MAX_RANDOM) a sweep
        # ran for days or ran out of memory building the controls' deltas
        (
            "--n-random",
            [args.n_random],
            lambda v: 2 <= v <= MAX_RANDOM,
            f"a count 2-{MAX_RANDOM:,}",
        ),
    ]
    for option, values, ok, what in checks:
        for v in values:
            if not (math.isfinite(v) and ok(v)):
                raise ValueError(f"{option} takes {what}, got {v}")


def settings_from(args: argparse.Namespace) -> list[Setting]:
    placements: list[tuple[tuple[int, ...], dict[str, tuple[int, ...]]]] = [
        (parse_layers(s), {}) for s in args.layer_sets
    ]
    if args.per_trait:
        spec = parse_per_trait(args.per_trait)
        common = spec["E"]  # any trait's layers serve as `layers`; trait_layers hold the rest
        placements.append((common, {t: v for t, v in spec.items() if v != common}))
    gains = parse_gains(args.gains)
    orths = {"no": [False], "yes": [True], "both": [False, True]}[args.orthogonalize]
    methods = [  # lda once per --shrinkage value (none given: Ledoit-Wolf)
        (m, a) for m in args.methods for a in ((args.shrinkage or [None]) if m == "lda" else [None])
    ]
    return [
        Setting(
            pairs=pairs,
            method=method,
            shrinkage=shrink,
            remove_valence=valence,
            layers=layers,
            trait_layers=per,
            strength=strength,
            gains=gains,
            orthogonalize=orth,
            label=f"{pairs} {method}{'' if shrink is None else f' a={shrink}'}"
            f"{' orth' if orth else ''} {list(layers)} {per or ''} strength {strength} {gains or ''}"
            f"{f' valence removed {valence}' if valence else ''}",
        )
        for pairs, (method, shrink), orth, (layers, per), strength, valence in itertools.product(
            args.pairs, methods, orths, placements, args.strengths, args.remove_valence
        )
    ]


def main(argv: list[str] | None = None) -> int:
    tolerate_narrow_terminals()
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--storage", default="storage")
    ap.add_argument(
        "--pairs",
        nargs="+",
        default=[SHIPPED],
        help="'shipped', a set under agents/data/pair_sets/ by name, or pair files",
    )
    ap.add_argument("--methods", nargs="+", default=["mean_diff"], choices=METHODS)
    ap.add_argument("--shrinkage", type=float, nargs="*", default=[], help="lda: fixed values")
    ap.add_argument("--orthogonalize", choices=["no", "yes", "both"], default="no")
    ap.add_argument(
        "--remove-valence", type=float, nargs="+", default=[0.0],
        help="fractions of the pairs' valence axis to take out of each direction",
    )  # fmt: skip
    ap.add_argument("--layer-sets", nargs="*", default=[], help="e.g. 21  20,24  18-24")
    ap.add_argument("--per-trait", nargs="*", default=[], help="E=21 A=21 C=21 O=26 N=18-22")
    ap.add_argument("--strengths", type=float, nargs="+", default=[0.17])
    ap.add_argument("--gains", nargs="*", default=[], help="per-trait multipliers, e.g. N=1.3")
    ap.add_argument(
        "--calibrate", type=float, default=None, metavar="RHO",
        help="also calibrate each setting's cross-talk on dev (bound RHO; --gains inside the "
        "fit), evaluate the mixed directions and write the calibration entries to "
        "OUT.calibration.json",
    )  # fmt: skip
    ap.add_argument(
        "--n-random",
        type=int,
        default=N_RANDOM,
        help=f"random-direction controls per placement, 2-{MAX_RANDOM:,} (default {N_RANDOM})",
    )
    ap.add_argument("--no-fluency", action="store_true")
    ap.add_argument("--out", type=Path, default=Path("storage/analysis/steering_sweep.jsonl"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        check_numbers(args)
        if Path(args.storage).exists() and not Path(args.storage).is_dir():
            raise ValueError(f"--storage {args.storage} is not a folder")  # models live under it
        settings = settings_from(args)
        readable = {}  # a bad pair file is one line now, not after the model loads
        for name in args.pairs:
            pairs = pair_set(name)
            readable[name] = any(p.kind == "statement" for p in pairs)
            if readable[name] and "gradient" in args.methods:
                check_gradient_pairs(pairs)
    except ValueError as exc:
        ap.error(str(exc))
    for name in [n for n, ok in readable.items() if not ok and "gradient" in args.methods]:
        log.warning("method gradient skips %s: it has no statement pairs", name)
    settings = [s for s in settings if s.method != "gradient" or readable[s.pairs]]
    if not settings:
        ap.error(
            "nothing to evaluate: give at least one placement (--layer-sets and/or --per-trait)"
            + (
                " and, for --methods gradient, pairs with statement pairs"
                if args.methods == ["gradient"]
                else ""
            )
        )
    try:
        make_output_folder(args.out.parent)
        torch.set_grad_enabled(False)
        lm = load_model(ModelConfig(name_or_path=args.model), OptimizationConfig(), args.storage)
        log.info("%d settings on the dev questionnaire -> %s", len(settings), args.out)
        sweep = Sweep(lm.model, lm.tokenizer, n_random=args.n_random)
        run_sweep(
            lm.model, lm.tokenizer, settings, args.out,
            n_random=args.n_random, fluency=not args.no_fluency, sweep=sweep,
        )  # fmt: skip
        if args.calibrate is not None:
            calibrate_settings(lm, sweep, settings, args)
    except SteersimError as exc:  # bad input found on the way (a model, a layer): one line
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    return 0


def calibrate_settings(
    lm: Any, sweep: Sweep, settings: list[Setting], args: argparse.Namespace
) -> None:
    """Calibrate every setting on dev, evaluate it mixed, write the entries."""
    entries = []
    for s in settings:
        entry = {
            "model": args.model,
            "model_identity": lm.identity,
            **sweep.calibrate(s, args.calibrate),
        }
        mixed = replace(s, mixing=tuple(map(tuple, entry["mixing"])), label=f"{s.label} mixed")
        row = sweep.evaluate(mixed, fluency=not args.no_fluency)
        with args.out.open("a") as f:
            f.write(json.dumps(row) + "\n")
        entries.append(entry)
    path = args.out.with_suffix(".calibration.json")
    path.write_text(json.dumps({"calibrations": entries}, indent=1) + "\n")
    log.info("calibrations -> %s (copy an entry into agents/data/steering_calibration.json)", path)

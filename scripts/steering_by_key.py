#!/usr/bin/env python
"""Per-key item effects of steering on the DEV questionnaire (never the test
set): for each given pair set (raw, and mixed by its calibration entry when
--calibration names a sweep's OUT.calibration.json), steer each of --traits
to -1 and to +1 and report, per trait, key and subset (all, the IPIP-NEO-300
items, the others), the mean and SD over the trait's items of the per-item
effect (mean token log-probability at +1 minus at -1) and the share of items
that move the way their key says. The form of the session-7 diagnostic:

    python scripts/steering_by_key.py --pairs shipped agents/data/pair_sets/stance_n.json \
        --calibration OUT.calibration.json --out by_key.json

Vectors are built as scripts/steering_sweep.py builds them (agents.steering.sweep,
layer norms of the first pair set), at the per-trait placement given."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from agents.config import ModelConfig, OptimizationConfig  # noqa: E402
from agents.errors import SteersimError, one_line  # noqa: E402
from agents.json_files import read_json  # noqa: E402
from agents.model_loading import load_model  # noqa: E402
from agents.steering.data import (  # noqa: E402
    check_gradient_pairs,
    load_questionnaire,
    pair_set,
    pairs_hash,
)
from agents.steering.extract import METHODS  # noqa: E402
from agents.steering.hooks import SteeringHooks  # noqa: E402
from agents.steering.questionnaire import TraitMeasure  # noqa: E402
from agents.steering.sweep import SHIPPED, SPLIT, Setting, Sweep  # noqa: E402
from agents.typing import TRAITS  # noqa: E402
from orchestrator.analysis.steering_sweep import parse_per_trait  # noqa: E402
from orchestrator.storage import atomic_write, make_output_folder  # noqa: E402

log = logging.getLogger(__name__)
DEV_FILE = Path(__file__).resolve().parents[1] / "agents" / "data" / "questionnaire_dev.json"


def rows_for(label: str, eff: np.ndarray, items, neo: set[str], trait: str) -> list[dict]:
    """eff: (C,) per-item effect of steering `trait` -1 -> +1."""
    out = []
    for key in (1, -1):
        idx = [i for i, it in enumerate(items) if it.trait == trait and it.key == key]
        for subset, keep in (
            ("all", idx),
            ("IPIP-NEO 300", [i for i in idx if items[i].text in neo]),
            ("other", [i for i in idx if items[i].text not in neo]),
        ):
            e = eff[keep]
            out.append({
                "candidate": label, "trait": trait, "key": key, "subset": subset,
                "n": len(keep), "mean": round(float(e.mean()), 4),
                "sd": round(float(e.std(ddof=1)), 4) if len(e) > 1 else None,
                "share_in_key_direction": round(float(np.mean(key * e > 0)), 3),
            })  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--storage", default="storage")
    ap.add_argument("--pairs", nargs="+", default=[SHIPPED])
    ap.add_argument("--calibration", type=Path, default=None)
    ap.add_argument("--method", default="mean_diff", choices=METHODS)
    ap.add_argument("--traits", default="NE")
    ap.add_argument("--per-trait", nargs=5, default=["E=21", "A=21", "C=21", "O=26", "N=21"])
    ap.add_argument("--strength", type=float, default=0.17)
    ap.add_argument("--out", type=Path, required=True)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    torch.set_grad_enabled(False)
    entries = {}
    try:  # bad arguments are one line, before the model loads
        if not 0 <= args.strength <= 4:  # SteeringConfig's bounds; nan fails too
            raise ValueError(f"--strength takes a number in [0, 4], got {args.strength}")
        if Path(args.storage).exists() and not Path(args.storage).is_dir():
            raise ValueError(f"--storage {args.storage} is not a folder")  # models live under it
        spec = parse_per_trait(args.per_trait)
        if bad := [t for t in args.traits if t not in TRAITS]:
            raise ValueError(f"--traits takes letters of {TRAITS}, got {bad}")
        for name in args.pairs:
            pairs = pair_set(name)
            if args.method == "gradient":
                check_gradient_pairs(pairs)
        if args.calibration:
            entries = read_calibration(args.calibration)
        make_output_folder(args.out.parent)  # last: once the model ran, a bad --out lost it all
    except (OSError, KeyError, TypeError, ValueError, RecursionError, SteersimError) as exc:
        ap.error(f"{type(exc).__name__}: {one_line(str(exc))}")  # JSONDecodeError: a ValueError
    try:
        rows = measure_rows(args, spec, entries)
    except SteersimError as exc:  # found on the way (the model, a layer): one line
        ap.exit(2, f"{ap.prog}: error: {exc}\n")
    doc = {
        "machine": "2-core CPU, SmolLM2-135M-Instruct fp32",
        "note": "dev only; per-item effect = mean token logprob at +1 minus at -1 of the "
        f"steered trait; method {args.method}, placement {args.per_trait}, strength "
        f"{args.strength}; mixed = the "
        f"calibration entry in {args.calibration}",
        "rows": rows,
    }
    text = json.dumps(doc, indent=1) + "\n"
    atomic_write(args.out, lambda p: p.write_text(text, encoding="utf-8"))  # never half-written
    for r in rows:
        if r["subset"] == "all":
            print(r["candidate"], r["trait"], r["key"], r["mean"], r["share_in_key_direction"])
    return 0


MAX_CALIBRATION_BYTES = 1 << 24  # the shipped one is 9 kB


def read_calibration(path: Path) -> dict[str, Any]:
    """{(data_hash, method): mixing} of a calibration file; ValueError naming the file."""
    try:
        # a regular file of bounded size: a FIFO here blocked the script for ever
        doc = read_json(path, max_bytes=MAX_CALIBRATION_BYTES)["calibrations"]
        return {(e["data_hash"], e.get("method", "mean_diff")): e["mixing"] for e in doc}
    except (OSError, KeyError, TypeError, ValueError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else one_line(str(exc))
        raise ValueError(
            f"--calibration {path}: not a calibration file ({type(exc).__name__}: {reason})"
        ) from None


def measure_rows(
    args: argparse.Namespace, spec: dict[str, tuple[int, ...]], entries: dict[str, Any]
) -> list[dict]:
    """Every candidate's per-item effects (loads the model)."""
    q = load_questionnaire(SPLIT)
    neo = {i["text"] for i in json.loads(DEV_FILE.read_text())["items"] if "neo300_item" in i}
    lm = load_model(ModelConfig(name_or_path=args.model), OptimizationConfig(), args.storage)
    sweep = Sweep(lm.model, lm.tokenizer, n_random=0)
    base = [
        Setting(pairs=p, method=args.method, layers=spec["E"],
                trait_layers={t: v for t, v in spec.items()}, strength=args.strength)
        for p in args.pairs
    ]  # fmt: skip
    sweep.prepare(base)  # norms from the first pair set, as in the sweep
    measure = TraitMeasure(
        lm.model, lm.tokenizer, start_layer=min(min(v) for v in spec.values()), questionnaire=q
    )
    rows = []
    for s in base:
        pairs = pair_set(s.pairs)
        variants = [("raw", s)]
        if (mix := entries.get((pairs_hash(pairs), s.method))) is not None:
            variants.append(("mixed", replace(s, mixing=tuple(map(tuple, mix)))))
        for tag, setting in variants:
            v = sweep.vectors(setting)
            hooks = SteeringHooks(lm.model, v, args.strength)
            for trait in args.traits:
                coefs = torch.zeros(2, len(TRAITS))
                coefs[:, TRAITS.index(trait)] = torch.tensor([-1.0, 1.0])
                lp = measure.item_logprobs(hooks, v.deltas(coefs, args.strength)).numpy()
                label = f"{Path(s.pairs).stem} {tag}"
                rows += rows_for(label, lp[1] - lp[0], q.items, neo, trait)
                log.info("%s %s done", label, trait)
    return rows


if __name__ == "__main__":
    raise SystemExit(main())

"""One tick's worth of agent requests generated in ONE batched call versus one
request at a time (the old way), on the same backend, in one process.

    python scripts/benchmark_batching.py                 # SmolLM2 on CPU, 16 x 48 tokens
    python scripts/benchmark_batching.py --requests 32 --json storage/analysis/bench.json

Both modes produce the same text (a row does not depend on its batch mates),
which the script checks; it prints the wall times, tokens/s and the ratio."""

from __future__ import annotations

import argparse
import json
import logging
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.hf_backend import build_hf_backend  # noqa: E402
from agents.prompting import action_request  # noqa: E402
from agents.typing import Request, Traits  # noqa: E402
from orchestrator.config_schema import RunConfig  # noqa: E402

NAMES = ["Ada", "Ben", "Cleo", "Dev", "Eli", "Fay", "Gus", "Hana", "Ivo", "Jo", "Kai", "Lea"]
PLACES = ["home", "cafe", "park", "community_center", "library", "market"]
GOALS = ["open a small bakery", "finish writing a novel", "make new friends", "learn to paint"]


def tick_requests(n: int, max_new_tokens: int, seed: int = 0) -> list[Request]:
    rng = random.Random(seed)
    reqs = []
    for i in range(n):
        loc = rng.choice(PLACES)
        mates = rng.sample([x for x in NAMES if x != NAMES[i % len(NAMES)]], rng.randint(0, 2))
        reqs.append(
            action_request(
                name=NAMES[i % len(NAMES)],
                age=rng.randint(20, 70),
                home=rng.choice(PLACES),
                goal=rng.choice(GOALS),
                plan=None,
                places=PLACES,
                tick=3,
                location=loc,
                companions=mates,
                memories=[f"Talked with {m} at the {loc}." for m in mates],
                traits=Traits.from_sequence([rng.uniform(-1, 1) for _ in range(5)]),
                max_new_tokens=max_new_tokens,
                seed=seed * 1000 + i,
                kind="encounter" if mates else "solo",
            )
        )
    return reqs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--storage", default="storage")
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--no-steering", action="store_true")
    ap.add_argument("--json", type=Path, default=None, help="also write the numbers here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = RunConfig.model_validate(
        {
            "model": {"name_or_path": args.model},
            "steering": {"enabled": not args.no_steering},
            "storage": {"root": args.storage},
        }
    )
    backend = build_hf_backend(cfg)
    reqs = tick_requests(args.requests, args.max_new_tokens)
    backend.generate(reqs[:2])  # warm-up

    t0 = time.perf_counter()
    batched = backend.generate(reqs)
    t_batch = time.perf_counter() - t0
    t0 = time.perf_counter()
    single = [backend.generate([r])[0] for r in reqs]
    t_single = time.perf_counter() - t0

    same = sum(a.text == b.text for a, b in zip(batched, single, strict=True))
    tokens = sum(g.completion_tokens for g in batched)
    out = {
        "device": backend.describe()["device"],
        "requests": len(reqs),
        "max_new_tokens": args.max_new_tokens,
        "completion_tokens": tokens,
        "prompt_tokens_mean": sum(g.prompt_tokens for g in batched) / len(reqs),
        "batched_s": round(t_batch, 2),
        "one_at_a_time_s": round(t_single, 2),
        "speedup": round(t_single / t_batch, 2),
        "batched_tok_s": round(tokens / t_batch, 1),
        "one_at_a_time_tok_s": round(tokens / t_single, 1),
        "identical_outputs": f"{same}/{len(reqs)}",
    }
    print(json.dumps(out, indent=1))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

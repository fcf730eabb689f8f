"""Benchmark of the memory stream.

1. Retrieval: N agents x M memories each, one query per agent per tick, all
   agents at once (MemoryStream.retrieve), embeddings of --dim dimensions
   (384 = MiniLM, the default for real runs; 256 = the hashing embedder of mock
   runs). Query embedding is excluded (cached, as repeated queries are in a
   run): this times the scoring, the partial top-k and the access update.
2. Footprint: a 100-agent, 1,000-tick mock run through the CLI; reads rss_mb
   from its perf.parquet.

    python scripts/benchmark_memory.py                 # both
    python scripts/benchmark_memory.py --skip-run      # retrieval only
"""

from __future__ import annotations

import argparse
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.memory_stream import MemoryStream, retrieval_scores, top_k  # noqa: E402

log = logging.getLogger("benchmark_memory")
REPO = Path(__file__).resolve().parents[1]


class RandomEmbedder:
    """Random unit vectors; small batches (the queries) are remembered per text,
    large ones (filling the stream) are fresh and forgotten."""

    def __init__(self, dim: int, seed: int = 0) -> None:
        self.dim, self.rng, self.cache = dim, np.random.default_rng(seed), {}

    def _random(self, n: int) -> np.ndarray:
        v = self.rng.standard_normal((n, self.dim), dtype=np.float32)  # (n, D)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) > 5000:
            return self._random(len(texts))
        for t in texts:
            if t not in self.cache:
                self.cache[t] = self._random(1)[0]
        return np.stack([self.cache[t] for t in texts]) if texts else self._random(0)


class RandomImportance:
    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)

    def score(self, texts: Sequence[str]) -> list[float]:
        return self.rng.integers(1, 11, size=len(texts)).astype(float).tolist()


def build(agents: int, memories: int, dim: int, per_tick: int) -> MemoryStream:
    stream = MemoryStream(
        embedder=RandomEmbedder(dim),
        scorer=RandomImportance(),
        top_k=8,
        max_items=memories,
        prompt_token_budget=200,
    )
    ids = [f"agent-{i:04d}" for i in range(agents)]
    for t in range(memories // per_tick):
        for a in ids:
            for j in range(per_tick):
                stream.add(a, t, f"{a} memory {t}.{j}", "observation")
        stream.end_tick(t)
    return stream


def bench_retrieval(agents: int, memories: int, dim: int, ticks: int) -> dict[str, float]:
    t0 = time.perf_counter()
    stream = build(agents, memories, dim, per_tick=10)
    log.info(
        "filled %d agents x %d memories (dim %d) in %.1f s; embeddings %.0f MB",
        agents,
        stream.size("agent-0000"),
        dim,
        time.perf_counter() - t0,
        stream._emb.nbytes / 2**20,
    )
    queries = {f"agent-{i:04d}": f"query of agent {i}" for i in range(agents)}
    start_tick = memories // 10
    stream.retrieve(queries, start_tick)  # warm-up (query embeddings cached)
    times = []
    for t in range(ticks):
        t0 = time.perf_counter()
        out = stream.retrieve(queries, start_tick + 1 + t)
        times.append(time.perf_counter() - t0)
    assert all(len(v) == 8 for v in out.values())

    # Where the time goes, with the same arrays (one tick).
    n = len(stream._ids)
    rows = np.arange(n)
    qv = stream.embedder.embed(list(queries.values()))
    t0 = time.perf_counter()
    rel = stream._relevance(rows, qv)
    t_rel = time.perf_counter() - t0
    t0 = time.perf_counter()
    scores = retrieval_scores(
        relevance=rel,
        importance=stream._imp[:n],
        age=start_tick + ticks - stream._last[:n],
        valid=stream._valid[:n],
        decay=stream.decay,
        weights=stream.weights,
    )
    t_score = time.perf_counter() - t0
    t0 = time.perf_counter()
    top_k(scores, 8)
    t_topk = time.perf_counter() - t0
    return {
        "median_ms": 1000 * statistics.median(times),
        "min_ms": 1000 * min(times),
        "relevance_ms": 1000 * t_rel,
        "scores_ms": 1000 * t_score,
        "topk_ms": 1000 * t_topk,
    }


def bench_run(agents: int, ticks: int) -> dict[str, float]:
    import pandas as pd

    with tempfile.TemporaryDirectory() as root:
        cmd = [
            sys.executable, "-m", "orchestrator.cli", "configs/run.fast.yaml", "--mock-model",
            "--set", f"population.agents={agents}", "--set", f"ticks={ticks}",
            "--set", f"storage.root={root}", "--overwrite",
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        perf = pd.read_parquet(Path(root) / "dumps" / "fast" / "perf.parquet")
    rss = perf["rss_mb"]
    tenth = max(1, len(rss) // 10)
    return {
        "wall_s": wall,
        "rss_first_mb": float(rss.iloc[0]),
        "rss_at_10pct_mb": float(rss.iloc[tenth]),
        "rss_last_mb": float(rss.iloc[-1]),
        "rss_max_mb": float(rss.max()),
        "memory_ms_per_tick": 1000 * float(perf["memory_s"].mean()),
        "tick_ms": 1000 * float(perf["tick_s"].mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--agents", type=int, default=1000)
    p.add_argument("--memories", type=int, default=500)
    p.add_argument("--dims", type=int, nargs="+", default=[384, 256])
    p.add_argument("--ticks", type=int, default=20, help="timed retrieval ticks")
    p.add_argument("--run-agents", type=int, default=100)
    p.add_argument("--run-ticks", type=int, default=1000)
    p.add_argument("--skip-run", action="store_true", help="no mock run (footprint)")
    p.add_argument("--skip-retrieval", action="store_true", help="only the mock run")
    args = p.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stdout)

    for dim in [] if args.skip_retrieval else args.dims:
        r = bench_retrieval(args.agents, args.memories, dim, args.ticks)
        log.info(
            "retrieval %d agents x %d memories, dim %d: median %.1f ms/tick (min %.1f); "
            "relevance %.1f, scores %.1f, top-k %.1f ms",
            args.agents, args.memories, dim, r["median_ms"], r["min_ms"],
            r["relevance_ms"], r["scores_ms"], r["topk_ms"],
        )  # fmt: skip
    if not args.skip_run:
        r = bench_run(args.run_agents, args.run_ticks)
        log.info(
            "mock run %d agents x %d ticks: %.0f s wall, %.1f ms/tick (memory %.1f ms); "
            "RSS first %.0f MB, at 10%% %.0f MB, last %.0f MB, max %.0f MB",
            args.run_agents, args.run_ticks, r["wall_s"], r["tick_ms"], r["memory_ms_per_tick"],
            r["rss_first_mb"], r["rss_at_10pct_mb"], r["rss_last_mb"], r["rss_max_mb"],
        )  # fmt: skip


if __name__ == "__main__":
    main()

"""The memory stream at scale.

1. Retrieval: N agents x M memories each, one query per agent per tick, all
   agents at once (MemoryStream.retrieve), embeddings of `dim` dimensions
   (384 = MiniLM, the default for real runs; 256 = the hashing embedder of
   mock runs). Query embedding is excluded (cached, as repeated queries are in
   a run): this times the scoring, the partial top-k and the access update,
   then splits one tick into relevance, scores and top-k.
2. Footprint: a long mock run through the CLI in a fresh process; reads
   rss_mb from its perf.parquet.
"""

from __future__ import annotations

import logging
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from agents.memory_stream import MemoryStream, retrieval_scores, top_k
from orchestrator.benchmarks import FAST_CONFIG, REPO

log = logging.getLogger(__name__)
TOP_K = 8


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


def filled_stream(agents: int, memories: int, dim: int, per_tick: int = 10) -> MemoryStream:
    """A stream holding `memories` memories for each of `agents` agents."""
    stream = MemoryStream(
        embedder=RandomEmbedder(dim),
        scorer=RandomImportance(),
        top_k=TOP_K,
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


def bench_retrieval(agents: int, memories: int, dim: int, ticks: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    stream = filled_stream(agents, memories, dim)
    log.info(
        "filled %d agents x %d memories (dim %d) in %.1f s",
        agents,
        stream.size("agent-0000"),
        dim,
        time.perf_counter() - t0,
    )
    queries = {f"agent-{i:04d}": f"query of agent {i}" for i in range(agents)}
    start_tick = memories // 10
    stream.retrieve(queries, start_tick)  # warm-up (query embeddings cached)
    times = []
    for t in range(ticks):
        t0 = time.perf_counter()
        out = stream.retrieve(queries, start_tick + 1 + t)
        times.append(time.perf_counter() - t0)
    assert all(len(v) == TOP_K for v in out.values()), "retrieval returned too few memories"

    # Where the time goes, with the stream's own arrays (one tick).
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
    top_k(scores, TOP_K)
    t_topk = time.perf_counter() - t0
    return {
        "agents": agents,
        "memories": memories,
        "dim": dim,
        "embeddings_mb": round(stream._emb.nbytes / 2**20, 1),
        "median_ms": round(1000 * statistics.median(times), 2),
        "min_ms": round(1000 * min(times), 2),
        "relevance_ms": round(1000 * t_rel, 2),
        "scores_ms": round(1000 * t_score, 2),
        "topk_ms": round(1000 * t_topk, 2),
    }


def bench_footprint(agents: int, ticks: int) -> dict[str, Any]:
    """A mock run in a fresh process (its RSS is the run's alone)."""
    import pandas as pd

    with tempfile.TemporaryDirectory() as root:
        cmd = [
            sys.executable, "-m", "orchestrator.cli", str(FAST_CONFIG), "--mock-model",
            "--set", f"population.agents={agents}", "--set", f"ticks={ticks}",
            "--set", f"storage.root={root}", "--set", "run_id=bench", "--overwrite",
        ]  # fmt: skip
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=REPO, check=True, capture_output=True)
        wall = time.perf_counter() - t0
        perf = pd.read_parquet(Path(root) / "dumps" / "bench" / "perf.parquet")
    rss = perf["rss_mb"]
    tenth = max(1, len(rss) // 10)
    return {
        "agents": agents,
        "ticks": ticks,
        "wall_s": round(wall, 1),
        "tick_ms": round(1000 * float(perf["tick_s"].mean()), 2),
        "memory_ms_per_tick": round(1000 * float(perf["memory_s"].mean()), 2),
        "rss_first_mb": round(float(rss.iloc[0]), 1),
        "rss_at_10pct_mb": round(float(rss.iloc[min(tenth, len(rss) - 1)]), 1),
        "rss_last_mb": round(float(rss.iloc[-1]), 1),
        "rss_max_mb": round(float(rss.max()), 1),
    }


def bench_memory(
    *,
    agents: int = 1000,
    memories: int = 500,
    dims: Sequence[int] = (384, 256),
    ticks: int = 20,
    run_agents: int = 100,
    run_ticks: int = 1000,
    retrieval: bool = True,
    footprint: bool = True,
) -> dict[str, Any]:
    """Retrieval at each of `dims` and the footprint run (either may be left out)."""
    return {
        "benchmark": "memory",
        "retrieval": [bench_retrieval(agents, memories, d, ticks) for d in dims]
        if retrieval
        else [],
        "footprint": bench_footprint(run_agents, run_ticks) if footprint else None,
    }

"""Keeps Python's cyclic garbage collector off the objects that live for the
whole run (the model's modules, tokenizer, world, memories loaded at start).

A full collection walks every tracked object: with torch and transformers
loaded that is a quarter to half a million objects and 0.15-0.3 s on the
2-core CPU, and it fires once enough new objects have survived (in a mock
run of 100 agents x 200 ticks, once, during a tick), on whichever rank
happens to allocate. In a run split over ranks the slowest rank sets the
tick, so such a pause on any rank is a pause for all. `gc.freeze()` moves the
objects alive at the start of the loop to a permanent generation that
collections skip; what ticks allocate is still collected as before
(benchmarks/results/gc_pauses_session8_cpu_2core.json).

Knows nothing about runs or backends."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0  # nested blocks freeze and unfreeze once, at the outermost


@contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect once, freeze what is alive for the block, unfreeze after (so a
    process that runs again, e.g. tests, frees what the block left behind)."""
    global _depth
    if _depth == 0:
        gc.collect()  # garbage frozen now would never be collected
        gc.freeze()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0:
            gc.unfreeze()

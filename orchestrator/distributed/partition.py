"""Splits one batched call's requests across ranks so that every rank's
share costs about the same: greedy longest-first assignment of each request
to the least loaded rank. The cost of a request is its token budget (decode
steps dominate a batched call) plus its prompt's estimated tokens at a
tenth of that weight (a prefill token is far cheaper than a decode step).

Pure and deterministic (ties go to the lower index and the lower rank), so
the same batch always splits the same way; a row's output never depends on
which rank generated it. Knows nothing about processes or backends."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from agents.typing import Request

CHARS_PER_TOKEN = 4  # rough: the split needs relative costs, not token counts
PREFILL_WEIGHT = 0.1  # one prompt token relative to one decode step


def request_cost(request: Request) -> float:
    """Relative cost of generating `request` inside a batch."""
    prompt_tokens = len(request.prompt_text()) / CHARS_PER_TOKEN
    return request.max_new_tokens + PREFILL_WEIGHT * prompt_tokens


def split(costs: Sequence[float], parts: int) -> list[list[int]]:
    """Indices of `costs` in `parts` groups of about equal total cost, each
    group in ascending index order (longest processing time first)."""
    if parts < 1:
        raise ValueError("parts must be >= 1")
    groups: list[list[int]] = [[] for _ in range(parts)]
    loads = [(0.0, 0, r) for r in range(parts)]  # (cost so far, rows so far, rank)
    heapq.heapify(loads)
    for i in sorted(range(len(costs)), key=lambda i: (-costs[i], i)):
        load, rows, r = heapq.heappop(loads)
        groups[r].append(i)
        heapq.heappush(loads, (load + costs[i], rows + 1, r))
    return [sorted(g) for g in groups]


def split_requests(requests: Sequence[Request], parts: int) -> list[list[int]]:
    """Indices of `requests` for each of `parts` ranks (see split)."""
    return split([request_cost(r) for r in requests], parts)

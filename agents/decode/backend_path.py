"""What agents.hf_backend.HFBackend runs when its fast decoder applies: the
requests' prompts (the backend's chat template, cut and left-padded as in the
reference loop), their steering and grammar constraints, one
`FastDecoder.decode`, and the Generations in request order.

It reads the backend's prompt, padding, steering, constraint and result
helpers (the reference loop's own) and knows nothing of how the decoder
works inside."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agents.typing import Generation, Request


def generate_fast(backend: Any, requests: Sequence[Request]) -> list[Generation]:
    """All requests in one fast batched decode, results in request order."""
    t0 = time.perf_counter()
    prompts = backend._prompt_ids([r.prompt for r in requests])
    ids, mask, pos = backend._left_pad(prompts)  # (B, T)
    out = backend.fast.decode(
        ids,
        mask,
        pos,
        lengths=[len(p) for p in prompts],
        budgets=[r.max_new_tokens for r in requests],
        seeds=[r.seed for r in requests],
        steer=backend._steer([r.traits for r in requests], mask),
        masks=backend._constraint(requests),
        t0=t0,
    )
    return backend._generations(requests, prompts, out.tokens, out.finished_at)

"""What agents.hf_backend.HFBackend runs when its fast decoder applies: the
requests' prompts (the backend's chat template, cut and left-padded as in the
reference loop), their steering and grammar constraints, one
`FastDecoder.decode`, and the Generations in request order.

It reads the backend's prompt, steering and constraint helpers and knows
nothing of how the decoder works inside."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from agents.steering.chat import left_pad
from agents.typing import Generation, Request, Traits


def generate_fast(backend: Any, requests: Sequence[Request]) -> list[Generation]:
    """All requests in one fast batched decode, results in request order."""
    t0 = time.perf_counter()
    prompts = [backend._prompt_ids(r.prompt) for r in requests]
    ids, mask, pos = (t.to(backend.device) for t in left_pad(prompts, backend.pad_id))  # (B, T)
    constraint = backend._constraint(requests) if hasattr(backend, "_constraint") else None
    out = backend.fast.decode(
        ids,
        mask,
        pos,
        lengths=[len(p) for p in prompts],
        budgets=[r.max_new_tokens for r in requests],
        seeds=[r.seed for r in requests],
        steer=backend._steer([r.traits for r in requests], mask),
        masks=constraint,
        t0=t0,
    )
    layers = tuple(backend.hooks.layers) if backend.hooks is not None else ()
    return [
        Generation(
            text=backend.tokenizer.decode(tokens, skip_special_tokens=True).strip(),
            prompt_tokens=len(prompt),
            completion_tokens=len(tokens),
            latency_s=latency,
            steer=req.traits if backend.hooks is not None else Traits(),
            steer_layers=layers,
        )
        for req, prompt, tokens, latency in zip(
            requests, prompts, out.tokens, out.finished_at, strict=True
        )
    ]

"""What grammar-constrained decoding costs per decode step, and what it buys.

One tick of B agent requests (orchestrator.benchmarks.workload, each carrying
the action grammar) is decoded by one HF backend with the grammar and without
it (the same requests, grammar removed). Reported:

- the mask step's parts, timed inside a constrained decode: filling the host
  bitmask for every active row (llguidance, Rust threads), copying it to the
  device and applying it to the logits, and advancing each row's matcher by
  its sampled token; their sum per step as a share of the constrained step;
- per decode step end to end (prefill excluded: a 1-token decode of the same
  prompts is subtracted), constrained and free, and the difference as a share;
- the share of outputs inside the grammar and the action distribution, both ways.

On CUDA the copy and apply are timed with a device synchronisation around
them (the normal loop has none), and the fill overlaps the previous step's
forward pass in the normal loop, so the end-to-end difference is the fairer
number there. On CPU every part runs inline and both agree. Models: the
converted SmolLM2 (real weights, `--model`) or a random-weight shape of
agents.random_models (`--arch`, e.g. llama-8b on a GPU). Asserts no target."""

from __future__ import annotations

import contextlib
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from agents.actions import parse
from agents.grammar import ActionGrammar
from agents.model_loading import resolve_dtype
from agents.typing import Request
from orchestrator.benchmarks.gpu import timed
from orchestrator.benchmarks.workload import PLACES, tick_requests

log = logging.getLogger(__name__)


class _Timer:
    """Seconds spent per part, summed over calls."""

    def __init__(self) -> None:
        self.seconds: Counter[str] = Counter()
        self.calls: Counter[str] = Counter()

    @contextlib.contextmanager
    def part(self, name: str, sync: bool = False) -> Iterator[None]:
        if sync:
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        try:
            yield
        finally:
            if sync:
                torch.cuda.synchronize()
            self.seconds[name] += time.perf_counter() - t0
            self.calls[name] += 1


class _TimedConstraint:
    """A GrammarConstraint whose fill and consume are timed."""

    def __init__(self, inner: Any, timer: _Timer) -> None:
        self._inner, self._timer = inner, timer

    def fill(self, bitmask: torch.Tensor, active: Sequence[int]) -> None:
        with self._timer.part("fill"):
            self._inner.fill(bitmask, active)

    def consume(self, tokens: Sequence[int], active: Sequence[int]) -> set[int]:
        with self._timer.part("consume"):
            return self._inner.consume(tokens, active)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


@contextlib.contextmanager
def _instrumented(backend: Any, timer: _Timer) -> Iterator[None]:
    """Time the mask step's parts of `backend` while inside."""
    import agents.hf_backend as hf

    compiler = backend.grammars
    make, apply = compiler.constraint, hf.apply_bitmask
    cuda = backend.device.type == "cuda"

    def constraint(grammars):
        return _TimedConstraint(make(grammars), timer)

    def timed_apply(logits: torch.Tensor, bitmask: torch.Tensor) -> None:
        with timer.part("copy_apply", sync=cuda):
            apply(logits, bitmask)

    compiler.constraint, hf.apply_bitmask = constraint, timed_apply
    try:
        yield
    finally:
        compiler.constraint, hf.apply_bitmask = make, apply


def _backend(
    *, model: str | None, arch: str | None, device: str, storage_root: str, tokenizer: Path | None
) -> tuple[Any, str]:
    if arch is None:
        from agents.backends import BackendSpec
        from agents.config import ModelConfig
        from agents.hf_backend import build_hf_backend

        spec = BackendSpec(
            model=ModelConfig(name_or_path=model or "smollm2-135m", device=device),
            storage_root=storage_root,
        )  # the run's defaults: steering on, constrained
        return build_hf_backend(spec), model or "smollm2-135m"
    from agents.random_models import real_architecture
    from orchestrator.benchmarks.gpu import DEFAULT_TOKENIZER, backend_for, load_tokenizer

    tok, tok_name = load_tokenizer(tokenizer or DEFAULT_TOKENIZER)
    dtype = resolve_dtype("auto", torch.device(device))
    lm = real_architecture(arch, device=device, dtype=dtype)
    layer = int(lm.config.num_hidden_layers * 0.8)
    backend = backend_for(lm, tok, layers=[layer], steer=True, constrained=True)
    return backend, f"{arch} (random weights, tokenizer {tok_name})"


def _per_step(backend: Any, reqs: list[Request], repeats: int) -> tuple[float, int, list]:
    """Seconds per decode step (prefill excluded), steps, and the generations."""
    first = [replace(r, max_new_tokens=1) for r in reqs]
    t_prefill = timed(lambda: backend.generate(first), repeats)
    out: list[list] = []
    t = timed(lambda: out.append(backend.generate(reqs)), repeats)
    steps = max(g.completion_tokens for g in out[-1])
    return max(t - t_prefill, 0.0) / max(steps - 1, 1), steps, out[-1]


def _outputs(reqs: Sequence[Request], gens: Sequence[Any], grammar: ActionGrammar) -> dict:
    inside = sum(grammar.matches(g.text) for g in gens)
    actions = Counter(
        parse(g.text, grammar.locations).kind
        if parse(g.text, grammar.locations).parse_ok
        else "unparsed"
        for g in gens
    )
    return {
        "inside_grammar": round(inside / len(gens), 3),
        "actions": dict(actions.most_common()),
        "examples": [g.text for g in gens[:3]],
    }


def bench_constrained(
    *,
    model: str | None = None,
    arch: str | None = None,
    batch: int = 16,
    new_tokens: int = 32,
    repeats: int = 3,
    device: str | None = None,
    storage_root: str = "storage",
    tokenizer: Path | None = None,
) -> dict[str, Any]:
    """The mask step's cost on `batch` requests of up to `new_tokens` tokens."""
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    backend, name = _backend(
        model=model, arch=arch, device=device, storage_root=storage_root, tokenizer=tokenizer
    )
    try:
        if backend.grammars is None:
            raise ValueError("the backend was built without constraints")
        grammar = ActionGrammar(locations=tuple(PLACES))
        reqs = tick_requests(batch, new_tokens)
        free = [replace(r, grammar=None) for r in reqs]
        backend.generate(reqs[:2])  # warm-up: kernels, allocator, grammar compile
        step_c, steps_c, gens_c = _per_step(backend, reqs, repeats)
        step_f, steps_f, gens_f = _per_step(backend, free, repeats)
        timer = _Timer()
        with _instrumented(backend, timer):
            gens_i = backend.generate(reqs)
        steps_i = max(g.completion_tokens for g in gens_i)
        describe = backend.describe()
    finally:
        backend.close()
    parts = {k: timer.seconds[k] / max(steps_i, 1) * 1e3 for k in ("fill", "copy_apply", "consume")}
    mask_ms = sum(parts.values())
    return {
        "benchmark": "constrained",
        "model": name,
        "device": device,
        "grammar_library": describe.get("grammar_library"),
        "threads": torch.get_num_threads(),
        "batch": batch,
        "new_tokens": new_tokens,
        "repeats": repeats,
        "steps_constrained": steps_c,
        "steps_free": steps_f,
        "step_ms_constrained": round(step_c * 1e3, 2),
        "step_ms_free": round(step_f * 1e3, 2),
        "end_to_end_share": round((step_c - step_f) / step_c, 3) if step_c else None,
        "mask_ms_per_step": {k: round(v, 3) for k, v in parts.items()},
        "mask_ms_per_step_total": round(mask_ms, 3),
        "mask_share_of_step": round(mask_ms / (step_c * 1e3), 3) if step_c else None,
        "constrained": _outputs(reqs, gens_c, grammar),
        "free": _outputs(free, gens_f, grammar),
    }

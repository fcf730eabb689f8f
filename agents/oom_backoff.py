"""A Backend wrapper that survives CUDA out-of-memory inside a batched
generate: it halves the batch and retries, recursively down to one request,
and counts the splits for the perf stats. Only a single request that does not
fit is an error. Knows nothing about what the wrapped backend is."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from agents.errors import ModelError
from agents.typing import Backend, Generation, Request

log = logging.getLogger(__name__)


def is_oom(exc: BaseException) -> bool:
    """torch.cuda.OutOfMemoryError (or a RuntimeError saying so) without importing torch."""
    if type(exc).__name__ == "OutOfMemoryError":
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def _free_cache() -> None:
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


class OOMBackoff:
    def __init__(self, inner: Backend) -> None:
        self.inner = inner
        self.name = inner.name
        self._own_splits = 0

    @property
    def splits(self) -> int:
        """Batch splits since creation, this wrapper's plus those of a wrapped
        backend that counts its own (e.g. a distributed backend's ranks)."""
        return self._own_splits + int(getattr(self.inner, "splits", 0))

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        try:
            return self.inner.generate(requests)
        except Exception as exc:
            if not is_oom(exc):
                raise
            _free_cache()
            if len(requests) <= 1:
                raise ModelError(
                    "one request alone does not fit in GPU memory: lower inference.max_new_tokens or "
                    "inference.max_prompt_tokens, or set optimization.use_quantization: true"
                ) from None
            self._own_splits += 1
            half = len(requests) // 2
            log.warning(
                "CUDA out of memory at batch %d: retrying as %d + %d",
                len(requests),
                half,
                len(requests) - half,
            )
            return self.generate(requests[:half]) + self.generate(requests[half:])

    def describe(self) -> dict:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()

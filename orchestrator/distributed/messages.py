"""What crosses the control channel between rank 0 and the other ranks, and
the error a distributed run ends with. Plain frozen records; the channel
pickles them (they hold Requests, Generations and steering vectors)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agents.errors import SteersimError

OpKind = Literal["setup", "vectors", "build_vectors", "generate", "rate", "stop"]
Mode = Literal["data", "tensor"]


class DistributedError(SteersimError):
    """A rank failed, or the ranks lost contact: the whole run stops."""


def error_line(exc: BaseException) -> str:
    """A rank's failure in one line, "<ExceptionType>: <first line of its message>"."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


@dataclass(frozen=True, kw_only=True)
class Op:
    """One instruction from rank 0 to one rank."""

    kind: OpKind
    payload: Any = None


@dataclass(frozen=True, kw_only=True)
class CallStats:
    """One rank's share of one batched call."""

    rank: int
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    generate_s: float = 0.0  # the rank's own generate, wall seconds
    oom_splits: int = 0  # batch halvings after CUDA out-of-memory
    digest: str | None = None  # tensor mode: hash of the texts, equal on every rank


@dataclass(frozen=True, kw_only=True)
class Reply:
    """A rank's answer to an Op: a result or an error, and its stats."""

    rank: int
    result: Any = None
    error: str | None = None  # "<ExceptionType>: message", one line
    stats: CallStats | None = None

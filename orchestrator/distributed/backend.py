"""Rank 0's Backend over all ranks, and the loop the other ranks serve.

`DistributedBackend` is what the run side sees on rank 0: one Backend. In
data mode each generate() splits the requests across the ranks (balanced by
cost, see partition), generates rank 0's share itself while the others
generate theirs, and puts the rows back in request order. In tensor mode
every rank runs the same generate on the same requests in lockstep (each
holds a slice of every weight matrix); rank 0 keeps its own result and
checks that every rank produced the same texts. Memory ratings
(digit_expectation) stay on rank 0 in data mode and run in lockstep in
tensor mode.

`serve` is the other ranks' whole life after setup: take an Op, run it on
the local backend, reply, until rank 0 says stop. Each rank backs off CUDA
out-of-memory on its own (OOMBackoff). In data mode a failing rank replies
its error and rank 0 raises it as one line; in tensor mode the ranks are
inside collectives together, so a failing rank raises at once and the
launcher ends the others. Per-call stats (rows, tokens, seconds per rank,
communication seconds on rank 0) are kept until the tick loop takes them.

Knows nothing about the world, dumps or how the backends were built."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agents.oom_backoff import OOMBackoff
from agents.typing import Backend, DigitRater, Generation, Message, Request
from orchestrator.distributed.messages import (
    CallStats,
    DistributedError,
    Mode,
    Op,
    Reply,
    error_line,
)
from orchestrator.distributed.partition import split_requests
from orchestrator.distributed.ranks import Channel
from orchestrator.frozen_heap import frozen_heap

log = logging.getLogger(__name__)


def digest(gens: Sequence[Generation]) -> str:
    """A short hash of the texts: equal on every rank in tensor mode."""
    h = hashlib.sha256()
    for g in gens:
        h.update(g.text.encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def timed_generate(
    backend: OOMBackoff, requests: Sequence[Request], rank: int, mode: Mode
) -> tuple[list[Generation], CallStats]:
    """One rank's share of a batched call and its stats (in tensor mode with
    the texts' digest): the same on rank 0 and on the others."""
    splits, t0 = backend.splits, time.perf_counter()
    gens = backend.generate(requests)
    stats = CallStats(
        rank=rank,
        requests=len(gens),
        prompt_tokens=sum(g.prompt_tokens for g in gens),
        completion_tokens=sum(g.completion_tokens for g in gens),
        generate_s=time.perf_counter() - t0,
        oom_splits=backend.splits - splits,
        digest=digest(gens) if mode == "tensor" else None,
    )
    return gens, stats


@dataclass
class TickStats:
    """Per-rank totals since the tick loop last took them."""

    world_size: int
    requests: list[int] = field(default_factory=list)
    completion_tokens: list[int] = field(default_factory=list)
    generate_s: list[float] = field(default_factory=list)
    comm_s: float = 0.0  # rank 0: scatter + waiting for and receiving the replies

    def __post_init__(self) -> None:
        n = self.world_size
        self.requests = self.requests or [0] * n
        self.completion_tokens = self.completion_tokens or [0] * n
        self.generate_s = self.generate_s or [0.0] * n

    def add(self, stats: CallStats) -> None:
        self.requests[stats.rank] += stats.requests
        self.completion_tokens[stats.rank] += stats.completion_tokens
        self.generate_s[stats.rank] += stats.generate_s


class DistributedBackend:
    """Rank 0's view of every rank's backend (see the module docstring)."""

    def __init__(self, local: Backend, channel: Channel, *, mode: Mode) -> None:
        self.inner = local
        self.local = OOMBackoff(local)
        self.name = local.name
        self.channel, self.mode = channel, mode
        self.world_size = channel.world_size
        self._stats = TickStats(world_size=self.world_size)
        self._worker_splits = 0
        self._broken = False
        self._closed = False
        self._warned_mismatch = False

    @property
    def label(self) -> str:
        """For the live view: '2 ranks, data parallel'."""
        return f"{self.world_size} ranks, {self.mode} parallel"

    @property
    def splits(self) -> int:
        """CUDA out-of-memory batch splits on every rank so far."""
        return self.local.splits + self._worker_splits

    def take_stats(self) -> TickStats:
        """The per-rank stats since the last call (one tick's worth)."""
        stats, self._stats = self._stats, TickStats(world_size=self.world_size)
        return stats

    # -- the Backend contract ---------------------------------------------------

    def generate(self, requests: Sequence[Request]) -> list[Generation]:
        requests = list(requests)
        if not requests:
            return []
        if self.mode == "tensor":
            own, _ = self._call([Op(kind="generate", payload=requests)] * self.world_size)
            return own
        groups = split_requests(requests, self.world_size)
        ops = [Op(kind="generate", payload=[requests[i] for i in g]) for g in groups]
        own, replies = self._call(ops)
        out: list[Generation | None] = [None] * len(requests)
        for rank, (group, reply) in enumerate(zip(groups, replies, strict=True)):
            gens = own if rank == 0 else reply.result
            if len(gens) != len(group):
                raise DistributedError(
                    f"rank {rank} returned {len(gens)} generations for {len(group)} requests"
                )
            for i, gen in zip(group, gens, strict=True):
                out[i] = gen
        return out  # type: ignore[return-value]

    def describe(self) -> dict[str, Any]:
        return {
            **self.inner.describe(),
            "distributed": {"world_size": self.world_size, "mode": self.mode},
        }

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._broken:
                try:
                    self.channel.scatter([Op(kind="stop")] * self.world_size)
                except DistributedError as exc:  # the others are gone already
                    log.debug("stop not delivered: %s", exc)
                    self._broken = True
        finally:
            try:
                self.local.close()
            finally:
                self.channel.close(clean=not self._broken)

    # -- the exchange -----------------------------------------------------------

    def _call(self, ops: list[Op]) -> tuple[Any, list[Reply]]:
        """Scatter one op per rank, run rank 0's own, gather every reply."""
        if self._closed:
            raise DistributedError("the distributed backend is closed")
        try:
            t0 = time.perf_counter()
            mine = self.channel.scatter(ops)
            comm = time.perf_counter() - t0
            local_error: Exception | None = None
            t1 = time.perf_counter()
            try:
                result, reply = self._run_local(mine)
            except Exception as exc:
                if self.mode == "tensor":
                    raise  # the others wait inside a collective: no reply can follow
                local_error, result, reply = exc, None, Reply(rank=0)
            t2 = time.perf_counter()
            replies = self.channel.gather(reply) or []
            comm += time.perf_counter() - t2
        except BaseException:
            self._broken = True  # Ctrl+C or a lost rank mid-exchange: no clean stop
            raise
        self._stats.comm_s += comm
        log.debug("distributed %s: local %.3f s, communication %.3f s", mine.kind, t2 - t1, comm)
        for r in replies:
            if r.stats is not None:
                self._stats.add(r.stats)
                if r.rank != 0:
                    self._worker_splits += r.stats.oom_splits
        if local_error is not None:
            raise local_error
        failed = [r for r in replies if r.error is not None]
        if failed:
            raise DistributedError(f"rank {failed[0].rank} failed: {failed[0].error}")
        if self.mode == "tensor" and mine.kind == "generate":
            self._check_lockstep(replies)
        return result, replies

    def _run_local(self, op: Op) -> tuple[Any, Reply]:
        if op.kind == "generate":
            gens, stats = timed_generate(self.local, op.payload, 0, self.mode)
            return gens, Reply(rank=0, result=None, stats=stats)
        if op.kind == "rate":
            values = self.inner.digit_expectation(*op.payload)  # type: ignore[attr-defined]
            return values, Reply(rank=0)
        raise ValueError(f"rank 0 cannot run op {op.kind!r}")

    def _check_lockstep(self, replies: list[Reply]) -> None:
        digests = {r.stats.digest for r in replies if r.stats is not None}
        if len(digests) > 1 and not self._warned_mismatch:
            self._warned_mismatch = True
            log.warning(
                "tensor parallel ranks generated different texts (digests %s); rank 0's are kept",
                sorted(d or "" for d in digests),
            )


class DistributedRater(DistributedBackend):
    """A DistributedBackend over a backend that can rate memories (DigitRater)."""

    def digit_expectation(
        self, prompts: Sequence[tuple[Message, ...]], digits: str = "123456789"
    ) -> list[float]:
        if self.mode == "data" or not prompts:
            return self.inner.digit_expectation(prompts, digits)  # type: ignore[attr-defined]
        own, _ = self._call([Op(kind="rate", payload=(list(prompts), digits))] * self.world_size)
        return own


def distributed_backend(local: Backend, channel: Channel, *, mode: Mode) -> DistributedBackend:
    """The wrapper that offers exactly what `local` offers (ratings or not)."""
    cls = DistributedRater if isinstance(local, DigitRater) else DistributedBackend
    return cls(local, channel, mode=mode)


def take_rank_perf(backend: Any) -> dict[str, Any]:
    """A tick's per-rank perf fields (PerfRow's world_size, comm_s, rank_*) from
    the DistributedBackend inside `backend`'s wrappers; {} for one process."""
    while backend is not None and not isinstance(backend, DistributedBackend):
        backend = getattr(backend, "inner", None)
    if backend is None:
        return {}
    stats = backend.take_stats()
    return {
        "world_size": stats.world_size,
        "comm_s": stats.comm_s,
        "rank_requests": stats.requests,
        "rank_completion_tokens": stats.completion_tokens,
        "rank_generate_s": stats.generate_s,
    }


# -- the other ranks ----------------------------------------------------------


def serve(local: Backend, channel: Channel, *, mode: Mode) -> None:
    """Answer rank 0's ops with the local backend until it says stop."""
    backend = OOMBackoff(local)
    rank = channel.rank
    with frozen_heap():  # the model and tokenizer: no full collection walks them mid-tick
        while True:
            op = channel.scatter(None)
            if op.kind == "stop":
                return
            try:
                reply = _answer(op, backend, rank, mode)
            except Exception as exc:
                if mode == "tensor":
                    raise  # lockstep is broken; the launcher ends every rank
                reply = Reply(rank=rank, error=error_line(exc))
            channel.gather(reply)


def _answer(op: Op, backend: OOMBackoff, rank: int, mode: Mode) -> Reply:
    if op.kind == "generate":
        gens, stats = timed_generate(backend, op.payload, rank, mode)
        # tensor mode: rank 0 keeps its own texts; the digest shows the ranks agree
        return Reply(rank=rank, result=None if mode == "tensor" else gens, stats=stats)
    if op.kind == "rate":
        backend.inner.digit_expectation(*op.payload)  # type: ignore[attr-defined]
        return Reply(rank=rank)
    raise ValueError(f"unknown op {op.kind!r}")

"""This process's place in a torch.distributed run and the channel rank 0
uses to talk to the others.

`rank_env` reads what torchrun (or the built-in launcher) put in the
environment. `Channel` starts the process groups: the default one (NCCL when
the run uses CUDA, for tensor parallelism; gloo otherwise) and a gloo group
for control messages, which are small pickled objects: rank 0 scatters one
Op per rank and gathers one Reply per rank. Every collective has the run's
timeout, so a rank that stops answering ends the run instead of hanging it.

Knows nothing about backends, models or the run."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from orchestrator.distributed.messages import DistributedError, Op, Reply

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class RankEnv:
    """What the launcher told this process."""

    rank: int
    world_size: int
    local_rank: int
    local_world_size: int


def rank_env(environ: dict[str, str] | None = None) -> RankEnv | None:
    """The rank's place from torchrun's variables; None outside a launcher."""
    env = os.environ if environ is None else environ
    if "RANK" not in env or "WORLD_SIZE" not in env:
        return None
    try:
        world = int(env["WORLD_SIZE"])
        return RankEnv(
            rank=int(env["RANK"]),
            world_size=world,
            local_rank=int(env.get("LOCAL_RANK", env["RANK"])),
            local_world_size=int(env.get("LOCAL_WORLD_SIZE", world)),
        )
    except ValueError:
        return None


class Channel:
    """The process groups of a run and rank 0's control messages."""

    def __init__(self, env: RankEnv, *, timeout_s: float, use_cuda: bool) -> None:
        import torch
        import torch.distributed as dist

        self.env, self.rank, self.world_size = env, env.rank, env.world_size
        timeout = timedelta(seconds=timeout_s)
        if use_cuda:
            torch.cuda.set_device(env.local_rank)
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if use_cuda else "gloo", timeout=timeout)
        self._dist = dist
        self._control = dist.new_group(backend="gloo", timeout=timeout)
        self.closed = False

    # -- collectives on the control group ---------------------------------------

    def scatter(self, ops: list[Op] | None) -> Op:
        """Rank 0 gives one Op per rank (its own first); every rank gets its own."""
        if self.rank == 0 and (ops is None or len(ops) != self.world_size):
            raise ValueError("rank 0 scatters one op per rank")
        out: list[Any] = [None]
        self._collective(
            self._dist.scatter_object_list,
            out,
            ops if self.rank == 0 else None,
            src=0,
            group=self._control,
        )
        return out[0]

    def gather(self, reply: Reply) -> list[Reply] | None:
        """Every rank sends its Reply; rank 0 gets all of them in rank order."""
        into = [None] * self.world_size if self.rank == 0 else None
        self._collective(self._dist.gather_object, reply, into, dst=0, group=self._control)
        return into  # type: ignore[return-value]

    def broadcast(self, value: Any = None) -> Any:
        """Rank 0's `value` on every rank."""
        box = [value if self.rank == 0 else None]
        self._collective(self._dist.broadcast_object_list, box, src=0, group=self._control)
        return box[0]

    def _collective(self, fn: Any, *args: Any, **kwargs: Any) -> None:
        try:
            fn(*args, **kwargs)
        except RuntimeError as exc:  # a peer left (gloo: connection closed) or timed out
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise DistributedError(
                f"rank {self.rank} lost contact with the other ranks ({first}); "
                "another rank failed or was stopped: see its error"
            ) from None

    def close(self, *, clean: bool = True) -> None:
        """Tear the groups down. After a broken exchange (`clean` False) only
        abort what can be aborted: waiting for peers could hang."""
        if self.closed:
            return
        self.closed = True
        if not self._dist.is_initialized():
            return
        if clean:
            self._dist.destroy_process_group()
            return
        abort = getattr(self._dist.distributed_c10d, "_abort_process_group", None)
        if abort is not None:
            try:
                abort()
            except Exception as exc:  # best effort: the launcher ends the rest
                log.debug("aborting the process group failed: %s", exc)

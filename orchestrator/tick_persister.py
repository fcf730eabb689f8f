"""Persists each completed tick (messages file; prompts, memories and
positions files; perf row; checkpoint, in that order) on a worker thread, so
the next tick computes while this one is written: on a 2-core machine the
fsyncs alone cost tens of ms per tick. One tick is in flight at most, so files
land in tick order; a write error resurfaces in the main thread at the next
submit or wait."""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from orchestrator.checkpoint import Checkpoint, CheckpointStore
from orchestrator.errors import StorageError
from orchestrator.records import MemoryRow, MessageRow, PerfRow, PromptRow
from orchestrator.storage import DumpWriter, why


@dataclass(frozen=True, kw_only=True)
class TickOutput:
    """Everything one completed tick leaves behind; state dicts are snapshots."""

    tick: int
    rows: list[MessageRow]
    perf: PerfRow
    prompts: list[PromptRow] | None = None  # None: storage.save_prompts is off
    memories: list[MemoryRow] = field(default_factory=list)
    positions: dict[str, str] = field(default_factory=dict)  # agent id -> location
    world_state: dict[str, Any]
    memory_state: dict[str, Any]


class TickPersister:
    def __init__(
        self,
        writer: DumpWriter,
        checkpoints: CheckpointStore,
        *,
        config_hash: str,
        vectors_hash: str | None,
        checkpointed: int = 0,
        background: bool = True,
    ) -> None:
        self.writer, self.checkpoints = writer, checkpoints
        self.config_hash, self.vectors_hash = config_hash, vectors_hash
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="persist") if background else None
        )
        self._pending: Future | None = None
        self.checkpointed = checkpointed  # next_tick of the last checkpoint on disk

    def submit(self, out: TickOutput) -> None:
        self.wait()
        if self._pool is None:
            self._persist(out)
        else:
            self._pending = self._pool.submit(self._persist, out)

    def wait(self) -> None:
        """Block until the tick in flight is on disk; re-raise its error."""
        pending, self._pending = self._pending, None
        if pending is not None:
            pending.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)

    def _persist(self, out: TickOutput) -> None:
        try:
            self._write(out)
        except OSError as exc:  # full disk, storage gone read-only...: the run stops
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            raise StorageError(
                f"storage: cannot write tick {out.tick}: {why(exc)}{where}", exit_code=1
            ) from None

    def _write(self, out: TickOutput) -> None:
        files = self.writer.write_tick(
            out.tick,
            out.rows,
            prompts=out.prompts,
            memories=out.memories,
            positions=out.positions,
        )
        self.writer.add_perf(out.perf)
        self.checkpoints.save(
            Checkpoint(
                next_tick=out.tick + 1,
                world=out.world_state,
                memory=out.memory_state,
                config_hash=self.config_hash,
                vectors_hash=self.vectors_hash,
                perf=self.writer.perf_rows(),
            ),
            tick_files=files,
        )
        self.checkpointed = out.tick + 1

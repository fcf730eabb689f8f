"""Drives one run: the tick loop shared by new and resumed runs. Each tick's
rows, perf stats and checkpoint are persisted (on a worker thread) and the
tick is reported to a view; the manifest records how the run ended. The parts
of the run come from orchestrator.assemble."""

from __future__ import annotations

import logging
import shlex
import time
from pathlib import Path
from typing import Any

from agents.typing import Backend
from orchestrator.assemble import Run, new_run, resumed_run
from orchestrator.config_loader import ResolvedConfig
from orchestrator.distributed.backend import take_rank_perf
from orchestrator.errors import StorageError
from orchestrator.frozen_heap import frozen_heap
from orchestrator.interrupts import StopFlag, graceful_interrupt, silence_stdout
from orchestrator.manifest import now_iso
from orchestrator.records import PerfRow
from orchestrator.resources import rss_mb
from orchestrator.storage import why
from orchestrator.tick_persister import TickOutput, TickPersister
from orchestrator.typing import RunSummary, TickResult, View

log = logging.getLogger(__name__)


def run_simulation(
    resolved: ResolvedConfig, view: View, *, overwrite: bool = False, backend: Backend | None = None
) -> RunSummary:
    """Start a new run (refusing an existing run dir unless overwrite)."""
    run = new_run(resolved, overwrite=overwrite, backend=backend)
    try:
        return drive(run, view)
    finally:
        run.close()


def resume_simulation(
    run_id: str,
    view: View,
    *,
    storage_root: str | Path,
    resolved: ResolvedConfig | None = None,
    force: bool = False,
    backend: Backend | None = None,
) -> RunSummary:
    """Continue a run after its last complete tick."""
    run = resumed_run(
        run_id, storage_root=storage_root, resolved=resolved, force=force, backend=backend
    )
    try:
        return drive(run, view)
    finally:
        run.close()


def drive(run: Run, view: View) -> RunSummary:
    """The tick loop shared by new and resumed runs."""
    world = run.sim.world
    start, first = time.perf_counter(), world.tick
    persister = TickPersister(
        run.writer,
        run.checkpoints,
        config_hash=run.config_hash,
        vectors_hash=run.vectors_hash,
        checkpointed=first,
    )
    ended, error = "failed", None  # how the loop ended, and a storage fault that ended it
    with graceful_interrupt() as stop, frozen_heap():
        view = PipeSafeView(view, stop)
        view.start(first_tick=first, total_ticks=run.ticks)
        try:
            while world.tick < run.ticks and not stop.requested:
                splits_before = run.backend.splits
                result = run.sim.step()
                persister.submit(
                    TickOutput(
                        tick=result.tick,
                        rows=result.rows,
                        perf=perf_row(
                            result,
                            run.backend.splits - splits_before,
                            **take_rank_perf(run.backend),
                        ),
                        prompts=result.prompts if run.sim.settings.record_prompts else None,
                        memories=result.memories,
                        positions=result.positions,
                        world_state=world.get_state(),
                        memory_state=run.sim.memory.get_state(),
                    )
                )
                view.on_tick(result)
            persister.wait()
            ended = "stopped"
        except KeyboardInterrupt:
            ended = "stopped"
        except StorageError as exc:
            error = exc
        finally:
            stop.shielded = True  # from here on a signal is logged, never raised
            status, error = finish(run, persister, ended, error)
    summary = RunSummary(
        run_id=run.run_id,
        status=status,
        ticks=persister.checkpointed,
        agents=len(world.agents),
        total_s=time.perf_counter() - start,
        ticks_this_session=persister.checkpointed - first,
        run_dir=str(run.run_dir.path),
        resume_command=resume_command(run.run_id, run.storage_root),
    )
    view.finish(summary)
    if error is not None:
        raise StorageError(
            f"{error}; the run stopped after {summary.ticks} ticks and continues once the "
            f"storage is fixed: {summary.resume_command}",
            exit_code=1,
        )
    return summary


def finish(
    run: Run, persister: TickPersister, ended: str, error: StorageError | None
) -> tuple[str, StorageError | None]:
    """Land the tick in flight, then write perf.parquet and the manifest, the
    manifest last. Idempotent: a kill anywhere in here leaves a run that
    `--resume` finishes (its checkpoint holds everything these files hold).
    Returns the run's status and the storage fault, if any."""
    try:
        persister.close()  # what is in flight lands (atomically) before the manifest
    except StorageError as exc:
        error = error or exc
    # ticks_completed is the last checkpointed tick: a tick abandoned half-way is
    # re-run on resume.
    done = persister.checkpointed
    if error is not None:
        status = "failed"
    elif done >= run.ticks:
        status = "complete"
    else:
        status = "interrupted" if ended == "stopped" else "failed"
    run.manifest.update(status=status, ended_at=now_iso(), ticks_completed=done)
    try:
        run.writer.flush_perf()
        run.writer.write_manifest(run.manifest)
    except OSError as exc:
        log.warning("cannot write the final manifest (%s); --resume repairs it", why(exc))
        if error is None:
            status = "failed"
            error = StorageError(f"storage: cannot write the final manifest: {why(exc)}")
    return status, error


class PipeSafeView:
    """Forwards to the view; a broken pipe on stdout (`--live | head`) stops the
    run like SIGTERM, and the view goes quiet."""

    def __init__(self, view: View, stop: StopFlag) -> None:
        self.view, self.stop, self.broken = view, stop, False

    def start(self, *, first_tick: int, total_ticks: int) -> None:
        self._call(self.view.start, first_tick=first_tick, total_ticks=total_ticks)

    def on_tick(self, result: TickResult) -> None:
        self._call(self.view.on_tick, result)

    def finish(self, summary: RunSummary) -> None:
        self._call(self.view.finish, summary)

    def _call(self, fn, *args, **kwargs) -> None:
        if self.broken:
            return
        try:
            fn(*args, **kwargs)
        except BrokenPipeError:
            self.broken = True
            silence_stdout()
            self.stop.request("broken pipe")
            log.warning("stdout was closed: finishing the current tick, then stopping")


def perf_row(result: TickResult, oom_splits: int, **ranks: Any) -> PerfRow:
    """`ranks`: a distributed run's per-rank fields (see take_rank_perf)."""
    return PerfRow(
        tick=result.tick,
        events=len(result.events),
        requests=len(result.rows),
        generate_calls=result.generate_calls,
        prompt_tokens=sum(r.prompt_tokens for r in result.rows),
        completion_tokens=sum(r.completion_tokens for r in result.rows),
        generate_s=result.generate_s,
        reflect_s=result.reflect_s,
        memory_s=result.memory_s,
        tick_s=result.tick_s,
        parse_failures=sum(not r.parse_ok for r in result.rows),
        oom_splits=oom_splits,
        rss_mb=rss_mb(),
        **ranks,
    )


def resume_command(run_id: str, storage_root: str) -> str:
    """The command that continues this run, for the summary panel."""
    parts = ["python", "-m", "orchestrator.cli", "--resume", run_id]
    if storage_root != "storage":
        parts += ["--storage-root", storage_root]
    return shlex.join(parts)

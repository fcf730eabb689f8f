"""Drives one run: the tick loop shared by new and resumed runs. Each tick's
rows, perf stats and checkpoint are persisted (on a worker thread) and the
tick is reported to a view; the manifest records how the run ended. The parts
of the run come from orchestrator.assemble."""

from __future__ import annotations

import shlex
import time
from pathlib import Path

from agents.typing import Backend
from orchestrator.assemble import Run, new_run, resumed_run
from orchestrator.config_loader import ResolvedConfig
from orchestrator.interrupts import graceful_interrupt
from orchestrator.manifest import now_iso
from orchestrator.records import PerfRow
from orchestrator.resources import rss_mb
from orchestrator.tick_persister import TickOutput, TickPersister
from orchestrator.typing import RunSummary, TickResult, View


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
    world, manifest = run.sim.world, run.manifest
    start, first = time.perf_counter(), world.tick
    persister = TickPersister(
        run.writer,
        run.checkpoints,
        config_hash=run.config_hash,
        vectors_hash=run.vectors_hash,
    )
    persister.checkpointed = first
    status = "failed"
    view.start(first_tick=first, total_ticks=run.ticks)
    try:
        with graceful_interrupt() as stop:
            while world.tick < run.ticks and not stop.requested:
                splits_before = run.backend.splits
                result = run.sim.step()
                persister.submit(
                    TickOutput(
                        tick=result.tick,
                        rows=result.rows,
                        perf=perf_row(result, run.backend.splits - splits_before),
                        run_id=run.run_id,
                        prompts=result.prompts if run.sim.settings.record_prompts else None,
                        memories=result.memories,
                        positions=result.positions,
                        world_state=world.get_state(),
                        memory_state=run.sim.memory.get_state(),
                    )
                )
                view.on_tick(result)
            persister.wait()
            status = "interrupted" if stop.requested else "complete"
    except KeyboardInterrupt:
        status = "interrupted"
    finally:
        persister.close()  # what is in flight lands (atomically) before the manifest
        # ticks_completed is the last checkpointed tick: a tick abandoned
        # half-way is re-run on resume.
        manifest.update(status=status, ended_at=now_iso(), ticks_completed=persister.checkpointed)
        run.writer.flush_perf()
        run.writer.write_manifest(manifest)
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
    return summary


def perf_row(result: TickResult, oom_splits: int) -> PerfRow:
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
    )


def resume_command(run_id: str, storage_root: str) -> str:
    """The command that continues this run, for the summary panel."""
    parts = ["python", "-m", "orchestrator.cli", "--resume", run_id]
    if storage_root != "storage":
        parts += ["--storage-root", storage_root]
    return shlex.join(parts)

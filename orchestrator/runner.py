"""Assembles and drives one run: checks the output directory, builds the
backend and memory, writes agents, ticks, perf stats, checkpoints and the
manifest, and reports each tick to a view. New runs and resumed runs share the
same tick loop. Everything that can fail on user input fails before anything
is written."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from agents.backends import build_backend
from agents.memory_stream import build_memory_stream
from agents.oom_backoff import OOMBackoff
from agents.typing import Backend, MemoryStore
from orchestrator.checkpoint import CheckpointStore, config_hash
from orchestrator.config_loader import ResolvedConfig, validate
from orchestrator.config_schema import RunConfig
from orchestrator.engine import Simulation, TickResult
from orchestrator.errors import ResumeError
from orchestrator.interrupts import graceful_interrupt
from orchestrator.live_view import RunSummary
from orchestrator.manifest import new_manifest, now_iso
from orchestrator.population import build_agents
from orchestrator.records import PerfRow
from orchestrator.resources import rss_mb
from orchestrator.storage import DumpWriter, RunDir, run_dir_for
from orchestrator.tick_persister import TickOutput, TickPersister
from orchestrator.world import World


class View(Protocol):
    def start(self, *, first_tick: int, total_ticks: int) -> None: ...
    def on_tick(self, result: TickResult) -> None: ...
    def finish(self, summary: RunSummary) -> None: ...


def build_memory(resolved: ResolvedConfig, backend: Backend) -> MemoryStore:
    """The scored memory stream: embedder and importance scorer from `memory.*`."""
    return build_memory_stream(resolved.config, backend)


@dataclass
class _Run:
    """What the tick loop needs, however the run started."""

    config: RunConfig
    resolved: ResolvedConfig
    run_dir: RunDir
    backend: OOMBackoff
    sim: Simulation
    writer: DumpWriter
    manifest: dict[str, Any]
    vectors_hash: str | None
    checkpoints: CheckpointStore


def run_simulation(
    resolved: ResolvedConfig, view: View, *, overwrite: bool = False, backend: Backend | None = None
) -> RunSummary:
    """Start a new run (refusing an existing run dir unless overwrite)."""
    cfg = resolved.config
    run_dir = RunDir(run_dir_for(cfg.storage.root, cfg.run_id))
    if run_dir.exists() and not overwrite:
        run_dir.create(overwrite=False)  # raises the clear "already exists" error
    wrapped = OOMBackoff(backend or build_backend(cfg))
    try:
        agents = build_agents(cfg.population, cfg.world, cfg.seed)
        world = World(cfg.world.locations, agents)
        memory = build_memory(resolved, wrapped)
        run_dir.create(overwrite=overwrite)
        writer = DumpWriter(run_dir)
        manifest = new_manifest(
            run_id=cfg.run_id,
            config=resolved.as_dict(),
            config_file=str(resolved.source),
            seed=cfg.seed,
        )
        manifest["model"] = _describe(wrapped)
        manifest["config_hash"] = config_hash(resolved.as_dict())
        writer.write_agents([_agent_row(a) for a in agents])
        writer.write_manifest(manifest)  # last: its presence marks a resumable run
        sim = Simulation(config=cfg, world=world, backend=wrapped, memory=memory)
        run = _Run(
            cfg,
            resolved,
            run_dir,
            wrapped,
            sim,
            writer,
            manifest,
            _vectors_hash(manifest),
            CheckpointStore(run_dir.checkpoint),
        )
        return _drive(run, view)
    finally:
        wrapped.close()


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
    run_dir = RunDir(run_dir_for(storage_root, run_id))
    if not run_dir.manifest.exists():
        raise ResumeError(f"--resume {run_id}: no run found at {run_dir.path}")
    manifest = json.loads(run_dir.manifest.read_text(encoding="utf-8"))
    stored = validate(manifest["config"], {}, str(run_dir.manifest))
    if resolved is None:
        resolved = ResolvedConfig(config=stored, source=run_dir.manifest, files=())
    elif config_hash(resolved.as_dict()) != config_hash(manifest["config"]) and not force:
        changed = _changed_keys(manifest["config"], resolved.as_dict())
        raise ResumeError(
            f"--resume {run_id}: the config differs from the run's ({', '.join(changed)}); "
            "pass --force to resume with the new config"
        )
    cfg = resolved.config.model_copy(update={"run_id": run_id})
    resolved = ResolvedConfig(config=cfg, source=resolved.source, files=resolved.files)
    checkpoints = CheckpointStore(run_dir.checkpoint)
    ckpt = checkpoints.load()
    next_tick = ckpt.next_tick if ckpt else 0
    if next_tick >= cfg.ticks:
        raise ResumeError(f"--resume {run_id}: the run already completed all {cfg.ticks} ticks")

    wrapped = OOMBackoff(backend or build_backend(cfg))
    try:
        vectors_hash = _vectors_hash({"model": _describe(wrapped)})
        if ckpt and ckpt.vectors_hash != vectors_hash and not force:
            raise ResumeError(
                f"--resume {run_id}: the steering vectors differ from the run's "
                f"({ckpt.vectors_hash} vs {vectors_hash}); pass --force to resume with them"
            )
        memory = build_memory(resolved, wrapped)
        if ckpt:
            world = World.from_state(ckpt.world)
            memory.set_state(ckpt.memory)
        else:
            world = World(cfg.world.locations, build_agents(cfg.population, cfg.world, cfg.seed))
        run_dir.clean_temp_files()
        writer = DumpWriter(run_dir)
        if not run_dir.agents.exists():  # killed before the first tick was written
            initial = build_agents(cfg.population, cfg.world, cfg.seed)
            writer.write_agents([_agent_row(a) for a in initial])
        for stale in run_dir.messages.glob("tick_*.parquet"):
            if int(stale.stem.split("_")[1]) >= next_tick:
                stale.unlink()
        writer.restore_perf(ckpt.perf if ckpt else [])
        manifest.update(config=resolved.as_dict(), status="running", ended_at=None)
        manifest.setdefault("resumed", []).append({"at": now_iso(), "from_tick": next_tick})
        writer.write_manifest(manifest)
        sim = Simulation(config=cfg, world=world, backend=wrapped, memory=memory)
        run = _Run(
            cfg, resolved, run_dir, wrapped, sim, writer, manifest, vectors_hash, checkpoints
        )
        return _drive(run, view)
    finally:
        wrapped.close()


def _drive(run: _Run, view: View) -> RunSummary:
    """The tick loop shared by new and resumed runs."""
    cfg, world, manifest = run.config, run.sim.world, run.manifest
    start, first = time.perf_counter(), world.tick
    persister = TickPersister(
        run.writer,
        run.checkpoints,
        config_hash=config_hash(run.resolved.as_dict()),
        vectors_hash=run.vectors_hash,
    )
    persister.checkpointed = first
    status = "failed"
    view.start(first_tick=first, total_ticks=cfg.ticks)
    try:
        with graceful_interrupt() as stop:
            while world.tick < cfg.ticks and not stop.requested:
                splits_before = run.backend.splits
                result = run.sim.step()
                persister.submit(
                    TickOutput(
                        tick=result.tick,
                        rows=result.rows,
                        perf=perf_row(result, run.backend.splits - splits_before),
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
        run_id=cfg.run_id,
        status=status,
        ticks=persister.checkpointed,
        agents=len(world.agents),
        total_s=time.perf_counter() - start,
        ticks_this_session=persister.checkpointed - first,
        run_dir=str(run.run_dir.path),
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


def _agent_row(a) -> dict[str, Any]:
    return {
        "id": a.id,
        "name": a.name,
        "age": a.age,
        "home": a.home,
        "goal": a.goal,
        **dict(zip("EACON", a.traits.as_tuple(), strict=True)),
    }


def _describe(backend: Backend) -> dict[str, Any]:
    describe = getattr(backend, "describe", None)
    return describe() if callable(describe) else {"backend": backend.name}


def _vectors_hash(manifest: dict[str, Any]) -> str | None:
    steering = (manifest.get("model") or {}).get("steering") or {}
    return steering.get("vectors_hash")


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        if not prefix and k in ("run_id", "storage"):
            continue
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys

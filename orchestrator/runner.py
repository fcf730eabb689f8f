"""Assembles and drives one run: checks the output directory, builds the
backend and memory, writes agents, ticks, perf stats and the manifest, and
reports each tick to a view. Everything that can fail on user input fails
before the run directory is created."""

from __future__ import annotations

import time
from typing import Protocol

from agents.backends import build_backend
from agents.recent_memory import RecentMemory
from agents.typing import Backend, MemoryStore
from orchestrator.config_loader import ResolvedConfig
from orchestrator.engine import Simulation, TickResult
from orchestrator.live_view import RunSummary
from orchestrator.manifest import new_manifest, now_iso
from orchestrator.population import build_agents
from orchestrator.records import PerfRow
from orchestrator.resources import rss_mb
from orchestrator.storage import DumpWriter, RunDir, run_dir_for
from orchestrator.world import World


class View(Protocol):
    def start(self, *, first_tick: int, total_ticks: int) -> None: ...
    def on_tick(self, result: TickResult) -> None: ...
    def finish(self, summary: RunSummary) -> None: ...


def build_memory(resolved: ResolvedConfig) -> MemoryStore:
    return RecentMemory(top_k=resolved.config.memory.top_k)


def run_simulation(
    resolved: ResolvedConfig,
    view: View,
    *,
    overwrite: bool = False,
    backend: Backend | None = None,
) -> RunSummary:
    cfg = resolved.config
    run_dir = RunDir(run_dir_for(cfg.storage.root, cfg.run_id))
    if run_dir.exists() and not overwrite:
        run_dir.create(overwrite=False)  # raises the clear "already exists" error
    backend = backend or build_backend(cfg)
    try:
        return _run(resolved, run_dir, backend, view, overwrite)
    finally:
        backend.close()


def _run(
    resolved: ResolvedConfig, run_dir: RunDir, backend: Backend, view: View, overwrite: bool
) -> RunSummary:
    cfg = resolved.config
    agents = build_agents(cfg.population, cfg.world, cfg.seed)
    world = World(cfg.world.locations, agents)
    memory = build_memory(resolved)
    sim = Simulation(config=cfg, world=world, backend=backend, memory=memory)

    run_dir.create(overwrite=overwrite)
    writer = DumpWriter(run_dir)
    manifest = new_manifest(
        run_id=cfg.run_id,
        config=resolved.as_dict(),
        config_file=str(resolved.source),
        seed=cfg.seed,
    )
    manifest["model"] = getattr(backend, "describe", lambda: {"backend": backend.name})()
    writer.write_manifest(manifest)
    writer.write_agents(
        [
            {
                "id": a.id,
                "name": a.name,
                "age": a.age,
                "home": a.home,
                "goal": a.goal,
                **dict(zip("EACON", a.traits.as_tuple(), strict=True)),
            }
            for a in agents
        ]
    )

    start = time.perf_counter()
    view.start(first_tick=world.tick, total_ticks=cfg.ticks)
    status = "failed"
    try:
        while world.tick < cfg.ticks:
            result = sim.step()
            writer.write_tick(result.tick, result.rows)
            writer.add_perf(perf_row(result))
            manifest["ticks_completed"] = world.tick
            view.on_tick(result)
        status = "complete"
    except KeyboardInterrupt:
        status = "interrupted"
        raise
    finally:
        manifest.update(status=status, ended_at=now_iso(), ticks_completed=world.tick)
        writer.write_manifest(manifest)
    summary = RunSummary(
        run_id=cfg.run_id,
        status=status,
        ticks=world.tick,
        agents=len(agents),
        total_s=time.perf_counter() - start,
        ticks_this_session=cfg.ticks,
        run_dir=str(run_dir.path),
    )
    view.finish(summary)
    return summary


def perf_row(result: TickResult) -> PerfRow:
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
        oom_splits=result.oom_splits,
        rss_mb=rss_mb(),
    )

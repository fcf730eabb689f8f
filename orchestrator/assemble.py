"""Run assembly: turns a resolved config into the parts of a run, new or
resumed. This is the only module that reads the whole RunConfig; every part
(backend, memory, reflection, engine, storage) gets only its section.

Everything that can fail on user input (a taken run dir, a missing model, a
changed config on resume) fails here, before anything is written. The tick
loop itself lives in orchestrator.runner."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.backends import BackendSpec, build_backend
from agents.memory_stream import build_memory_stream
from agents.oom_backoff import OOMBackoff
from agents.reflection import Reflector
from agents.typing import Backend, MemoryStore, ReflectiveMemory
from orchestrator.checkpoint import Checkpoint, CheckpointStore, config_hash
from orchestrator.config_loader import ResolvedConfig, validate
from orchestrator.config_schema import RunConfig
from orchestrator.engine import EngineSettings, Simulation
from orchestrator.errors import ResumeError
from orchestrator.manifest import new_manifest, now_iso
from orchestrator.population import build_agents
from orchestrator.storage import DumpWriter, RunDir, run_dir_for
from orchestrator.world import AgentState, World

log = logging.getLogger(__name__)


@dataclass(kw_only=True)
class Run:
    """What the tick loop needs, however the run started."""

    run_id: str
    ticks: int
    storage_root: str
    config_hash: str
    vectors_hash: str | None
    run_dir: RunDir
    backend: OOMBackoff
    sim: Simulation
    writer: DumpWriter
    manifest: dict[str, Any]
    checkpoints: CheckpointStore

    def close(self) -> None:
        self.backend.close()


# -- the sections each part reads ----------------------------------------------


def backend_spec(cfg: RunConfig) -> BackendSpec:
    return BackendSpec(
        model=cfg.model,
        optimization=cfg.optimization,
        inference=cfg.inference,
        steering=cfg.steering,
        storage_root=cfg.storage.root,
    )


def engine_settings(cfg: RunConfig) -> EngineSettings:
    return EngineSettings(
        run_id=cfg.run_id,
        seed=cfg.seed,
        max_events_per_tick=cfg.max_events_per_tick,
        max_group_size=cfg.world.max_group_size,
        tokens_by_kind={k: cfg.inference.tokens_for(k) for k in ("solo", "encounter")},
        record_prompts=cfg.storage.save_prompts,
    )


def build_memory(cfg: RunConfig, backend: Backend) -> MemoryStore:
    """The scored memory stream, its sentence model next to the language model."""
    device = cfg.model.device
    if device == "auto":
        device = str(backend.describe().get("device", "cpu")).split(":")[0]
        device = "cuda" if device == "cuda" else "cpu"
    return build_memory_stream(cfg.memory, backend=backend, device=device)


def build_reflector(cfg: RunConfig, backend: Backend, memory: MemoryStore) -> Reflector | None:
    every_n, threshold = cfg.optimization.reflect_every_n_ticks, cfg.memory.reflection_threshold
    if every_n == 0 and threshold is None:
        return None
    if not isinstance(memory, ReflectiveMemory):
        raise TypeError(f"{type(memory).__name__} cannot feed reflection")
    return Reflector(
        backend=backend,
        memory=memory,
        run_seed=cfg.seed,
        every_n_ticks=every_n,
        max_new_tokens=cfg.inference.tokens_for("reflection"),
        importance_threshold=threshold,
    )


# -- new and resumed runs ------------------------------------------------------


def new_run(resolved: ResolvedConfig, *, overwrite: bool, backend: Backend | None = None) -> Run:
    """A fresh run: refuses an existing run dir unless overwrite."""
    cfg = resolved.config
    if cfg.distributed.enabled:
        log.warning("distributed.enabled: multi-GPU runs are not implemented yet; one process runs")
    run_dir = RunDir(run_dir_for(cfg.storage.root, cfg.run_id))
    if run_dir.exists() and not overwrite:
        run_dir.create(overwrite=False)  # raises the clear "already exists" error
    inner = backend or build_backend(backend_spec(cfg))
    try:
        agents = build_agents(cfg.population, cfg.world, cfg.seed)
        memory = build_memory(cfg, inner)
        run_dir.create(overwrite=overwrite)
        writer = DumpWriter(run_dir, cfg.run_id)
        manifest = new_manifest(
            run_id=cfg.run_id,
            config=resolved.as_dict(),
            config_file=str(resolved.source),
            seed=cfg.seed,
        )
        manifest["model"] = inner.describe()
        manifest["config_hash"] = config_hash(resolved.as_dict())
        writer.write_agents([agent_row(a) for a in agents])
        writer.write_manifest(manifest)  # last: its presence marks a resumable run
        return _assemble(
            cfg,
            resolved,
            run_dir=run_dir,
            backend=inner,
            world=World(cfg.world.locations, agents),
            memory=memory,
            writer=writer,
            manifest=manifest,
        )
    except BaseException:
        inner.close()
        raise


def resumed_run(
    run_id: str,
    *,
    storage_root: str | Path,
    resolved: ResolvedConfig | None = None,
    force: bool = False,
    backend: Backend | None = None,
) -> Run:
    """A run continued after its last complete tick."""
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
    ckpt = CheckpointStore(run_dir.checkpoint).load()
    next_tick = ckpt.next_tick if ckpt else 0
    if next_tick >= cfg.ticks:
        raise ResumeError(f"--resume {run_id}: the run already completed all {cfg.ticks} ticks")

    inner = backend or build_backend(backend_spec(cfg))
    try:
        vectors_hash = _vectors_hash(inner.describe())
        if ckpt and ckpt.vectors_hash != vectors_hash and not force:
            raise ResumeError(
                f"--resume {run_id}: the steering vectors differ from the run's "
                f"({ckpt.vectors_hash} vs {vectors_hash}); pass --force to resume with them"
            )
        memory = build_memory(cfg, inner)
        world = _restore(run_id, cfg, ckpt, memory)
        run_dir.clean_temp_files()
        writer = DumpWriter(run_dir, run_id)
        if not run_dir.agents.exists():  # killed before the first tick was written
            initial = build_agents(cfg.population, cfg.world, cfg.seed)
            writer.write_agents([agent_row(a) for a in initial])
        run_dir.drop_ticks_from(next_tick)
        writer.restore_perf(ckpt.perf if ckpt else [])
        manifest.update(config=resolved.as_dict(), status="running", ended_at=None)
        manifest.setdefault("resumed", []).append({"at": now_iso(), "from_tick": next_tick})
        writer.write_manifest(manifest)
        return _assemble(
            cfg,
            resolved,
            run_dir=run_dir,
            backend=inner,
            world=world,
            memory=memory,
            writer=writer,
            manifest=manifest,
        )
    except BaseException:
        inner.close()
        raise


def _restore(run_id: str, cfg: RunConfig, ckpt: Checkpoint | None, memory: MemoryStore) -> World:
    """The world and memory as the checkpoint left them (or as at tick 0)."""
    if ckpt is None:
        return World(cfg.world.locations, build_agents(cfg.population, cfg.world, cfg.seed))
    try:
        memory.set_state(ckpt.memory)
    except ValueError as exc:  # e.g. another embedder than the run's: other dimensions
        raise ResumeError(
            f"--resume {run_id}: the checkpointed memory does not fit this config ({exc}); "
            "resume with the run's own memory.embedder"
        ) from None
    return World.from_state(ckpt.world)


def _assemble(
    cfg: RunConfig,
    resolved: ResolvedConfig,
    *,
    run_dir: RunDir,
    backend: Backend,
    world: World,
    memory: MemoryStore,
    writer: DumpWriter,
    manifest: dict[str, Any],
) -> Run:
    wrapped = OOMBackoff(backend)
    sim = Simulation(
        settings=engine_settings(cfg),
        world=world,
        backend=wrapped,
        memory=memory,
        reflector=build_reflector(cfg, wrapped, memory),
    )
    return Run(
        run_id=cfg.run_id,
        ticks=cfg.ticks,
        storage_root=cfg.storage.root,
        config_hash=config_hash(resolved.as_dict()),
        vectors_hash=_vectors_hash(manifest.get("model") or {}),
        run_dir=run_dir,
        backend=wrapped,
        sim=sim,
        writer=writer,
        manifest=manifest,
        checkpoints=CheckpointStore(run_dir.checkpoint),
    )


def agent_row(a: AgentState) -> dict[str, Any]:
    """A row of agents.parquet (the writer adds run_id)."""
    return {
        "agent_id": a.id,
        "agent_name": a.name,
        "age": a.age,
        "home": a.home,
        "goal": a.goal,
        **dict(zip("EACON", a.traits.as_tuple(), strict=True)),
    }


def _vectors_hash(model_record: dict[str, Any]) -> str | None:
    return (model_record.get("steering") or {}).get("vectors_hash")


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

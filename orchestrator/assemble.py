"""Run assembly: turns a resolved config into the parts of a run, new or
resumed. This is the only module that reads the whole RunConfig; every part
(backend, memory, reflection, engine, storage) gets only its section.

Everything that can fail on user input (a taken run dir, a missing model, a
changed config on resume, unusable storage) fails here, before anything is
written. A run holds its folder's lock (run_lock.py) from here until it is
closed; a resume keeps only tick files it has verified (resume_check.py). The
tick loop itself lives in orchestrator.runner."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.backends import BackendSpec, build_backend
from agents.memory_stream import EmbedderMismatch, build_memory_stream
from agents.oom_backoff import OOMBackoff
from agents.reflection import Reflector
from agents.typing import Backend, MemoryStore, ReflectiveMemory
from orchestrator.checkpoint import RESUMABLE_KEYS, Checkpoint, CheckpointStore, config_hash
from orchestrator.config_loader import ResolvedConfig, validate
from orchestrator.config_schema import RunConfig
from orchestrator.dumps_reader import check_manifest
from orchestrator.engine import EngineSettings, Simulation
from orchestrator.errors import ResumeError, StorageError, one_line
from orchestrator.manifest import new_manifest, now_iso
from orchestrator.population import build_agents
from orchestrator.resume_check import problem_with, read_manifest, verify_tick_files
from orchestrator.run_assets import carry_model_record
from orchestrator.run_lock import RunLock, check_free
from orchestrator.storage import (
    DumpWriter,
    RunDir,
    check_writable_root,
    make_run_folder,
    run_dir_for,
    why,
)
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
    lock: RunLock | None = None  # released by close(): one writer per run

    def close(self) -> None:
        try:
            self.backend.close()
        finally:
            if self.lock is not None:
                self.lock.release()


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
        reflect_with_actions=cfg.optimization.reflect_with_actions,
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
    run_dir = RunDir(run_dir_for(cfg.storage.root, cfg.run_id))
    check_writable_root(cfg.storage.root)
    if run_dir.path.is_dir():
        check_free(run_dir.path)  # a live writer: refused before a model loads
    if run_dir.exists() and not overwrite:
        run_dir.create(overwrite=False)  # raises the clear "already exists" error
    inner = backend or build_backend(backend_spec(cfg))
    lock: RunLock | None = None
    created: list[Path] = []
    try:
        agents = build_agents(cfg.population, cfg.world, cfg.seed)
        memory = build_memory(cfg, inner)
        created = make_run_folder(run_dir.path)
        lock = RunLock.acquire(run_dir.path)
        run_dir.create(overwrite=overwrite)
        writer = DumpWriter(run_dir, cfg.run_id)
        manifest = new_manifest(
            run_id=cfg.run_id,
            config=resolved.as_dict(),
            config_file=str(resolved.source),
            seed=cfg.seed,
        )
        # the vectors travel with the run: copied in, named relative to the folder
        manifest["model"] = carry_model_record(inner.describe(), run_dir.path)
        manifest["config_hash"] = config_hash(resolved.as_dict())
        try:
            writer.write_agents([agent_row(a) for a in agents])
            writer.write_manifest(manifest)  # last: its presence marks a resumable run
        except OSError as exc:
            raise StorageError(f"cannot write the run to {run_dir.path}: {why(exc)}") from None
        return _assemble(
            cfg,
            resolved,
            run_dir=run_dir,
            backend=inner,
            world=World(cfg.world.locations, agents),
            memory=memory,
            writer=writer,
            manifest=manifest,
            lock=lock,
        )
    except BaseException:
        inner.close()
        if lock is not None:
            lock.release()
        _remove_created(created)
        raise


def _remove_created(created: list[Path]) -> None:
    """Undo a start that failed: the folders this process created hold only
    what it wrote (parents first in `created`; removed deepest first)."""
    for i, folder in enumerate(reversed(created)):
        try:
            if i == 0:
                shutil.rmtree(folder)
            else:
                folder.rmdir()  # only if empty: another run may have arrived meanwhile
        except OSError:
            return


def resumed_run(
    run_id: str,
    *,
    storage_root: str | Path,
    resolved: ResolvedConfig | None = None,
    force: bool = False,
    backend: Backend | None = None,
) -> Run:
    """A run continued after its last complete tick (or only finished, when
    the ticks are done but the final manifest was not written)."""
    run_dir = _run_to_resume(run_id, storage_root)
    lock = RunLock.acquire(run_dir.path)
    try:
        return _resumed(run_id, run_dir, lock, resolved=resolved, force=force, backend=backend)
    except BaseException:
        lock.release()
        raise


def resumed_config(
    run_id: str,
    *,
    storage_root: str | Path,
    resolved: ResolvedConfig | None = None,
    force: bool = False,
) -> ResolvedConfig:
    """The config `--resume run_id` would run with (the run's own, or
    `resolved` once it is found to match the run's), checked as the resume
    checks it. Read only: no lock, nothing written (for --dry-run)."""
    run_dir = _run_to_resume(run_id, storage_root)
    return _resume_config(run_id, run_dir, read_manifest(run_dir, run_id), resolved, force)


def _run_to_resume(run_id: str, storage_root: str | Path) -> RunDir:
    run_dir = RunDir(run_dir_for(storage_root, run_id))
    if not run_dir.path.is_dir():
        raise ResumeError(f"--resume {run_id}: no run found at {run_dir.path}")
    run_dir.refuse_links()
    return run_dir


def _resume_config(
    run_id: str,
    run_dir: RunDir,
    manifest: dict[str, Any],
    resolved: ResolvedConfig | None,
    force: bool,
) -> ResolvedConfig:
    """The run's stored config, or `resolved` when it matches it (or --force),
    renamed to the run's id."""
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
    return ResolvedConfig(config=cfg, source=resolved.source, files=resolved.files)


def _resumed(
    run_id: str,
    run_dir: RunDir,
    lock: RunLock,
    *,
    resolved: ResolvedConfig | None,
    force: bool,
    backend: Backend | None,
) -> Run:
    manifest = read_manifest(run_dir, run_id)
    resolved = _resume_config(run_id, run_dir, manifest, resolved, force)
    cfg = resolved.config
    store = CheckpointStore(run_dir.checkpoint)
    ckpt = store.load()
    next_tick = ckpt.next_tick if ckpt else 0
    if next_tick >= cfg.ticks and manifest.get("status") == "complete":
        raise ResumeError(f"--resume {run_id}: the run already completed all {cfg.ticks} ticks")
    done = manifest.get("ticks_completed")
    if ckpt is None and isinstance(done, int) and done > 0:
        raise ResumeError(
            f"--resume {run_id}: the checkpoint is missing but the manifest says {done} ticks "
            "were completed; not starting the run over (use --overwrite for that)"
        )
    try:
        restored = verify_tick_files(run_dir, store, next_tick)
    except OSError as exc:
        raise StorageError(f"cannot repair {run_dir.path}: {why(exc)}") from None
    if restored:
        log.warning("restored %d tick files of %s from its checkpoint", restored, run_id)

    world = _restore_world(run_id, cfg, ckpt)  # a damaged world is refused before the model loads
    inner = backend or build_backend(backend_spec(cfg))
    try:
        vectors_hash = _vectors_hash(inner.describe())
        if ckpt and ckpt.vectors_hash != vectors_hash and not force:
            raise ResumeError(
                f"--resume {run_id}: the steering vectors differ from the run's "
                f"({ckpt.vectors_hash} vs {vectors_hash}); pass --force to resume with them"
            )
        memory = build_memory(cfg, inner)
        _restore_memory(run_id, ckpt, memory, world)
        writer = DumpWriter(run_dir, run_id)
        try:
            writer.restore_perf(ckpt.perf if ckpt else [])
        except TypeError:
            raise ResumeError(
                f"--resume {run_id}: the checkpoint's perf rows are damaged"
            ) from None
        if not isinstance(manifest.get("resumed"), list):
            manifest["resumed"] = []
        manifest.update(config=resolved.as_dict(), status="running", ended_at=None)
        manifest["resumed"].append({"at": now_iso(), "from_tick": next_tick})
        try:
            run_dir.clean_temp_files()
            if problem_with(run_dir.agents, None):  # killed before it was written, or damaged
                initial = build_agents(cfg.population, cfg.world, cfg.seed)
                writer.write_agents([agent_row(a) for a in initial])
            run_dir.drop_ticks_from(next_tick)
            writer.write_manifest(manifest)
        except OSError as exc:
            raise StorageError(f"cannot write to {run_dir.path}: {why(exc)}") from None
        return _assemble(
            cfg,
            resolved,
            run_dir=run_dir,
            backend=inner,
            world=world,
            memory=memory,
            writer=writer,
            manifest=manifest,
            lock=lock,
            checkpoints=store,
        )
    except BaseException:
        inner.close()
        raise


def _restore_world(run_id: str, cfg: RunConfig, ckpt: Checkpoint | None) -> World:
    """The world as the checkpoint left it (or as at tick 0). It needs no model,
    so a damaged one is refused before the backend is built."""
    if ckpt is None:
        return World(cfg.world.locations, build_agents(cfg.population, cfg.world, cfg.seed))
    try:
        return World.from_state(ckpt.world)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ResumeError(
            f"--resume {run_id}: the checkpointed world is damaged ({_what(exc)})"
        ) from None


def _restore_memory(
    run_id: str, ckpt: Checkpoint | None, memory: MemoryStore, world: World
) -> None:
    """The memory as the checkpoint left it. It needs the embedder, so it comes
    after the backend; it must hold only the world's agents."""
    if ckpt is None:
        return
    try:
        memory.set_state(ckpt.memory)
    except EmbedderMismatch as exc:  # another embedder than the run's: other dimensions
        raise ResumeError(
            f"--resume {run_id}: the checkpointed memory does not fit this config ({exc})"
        ) from None
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ResumeError(
            f"--resume {run_id}: the checkpointed memory is damaged ({_what(exc)})"
        ) from None
    if strangers := set(ckpt.memory["agent_ids"]) - {a.id for a in world.agents}:
        raise ResumeError(
            f"--resume {run_id}: the checkpointed memory holds agents the world does not "
            f"({sorted(strangers)[0]!r}); the checkpoint is damaged"
        )


def _what(exc: Exception) -> str:
    """A state fault in a few words: our own ValueErrors say what is wrong; a
    missing or mistyped part is named by its exception's class."""
    if type(exc) is ValueError and str(exc):
        return one_line(str(exc))[:200]
    return exc.__class__.__name__


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
    lock: RunLock | None = None,
    checkpoints: CheckpointStore | None = None,  # a resumed run's: it knows its files
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
        checkpoints=checkpoints or CheckpointStore(run_dir.checkpoint),
        lock=lock,
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


# -- a run's state, for reading (steersim interview) -----------------------------


@dataclass(kw_only=True)
class RunState:
    """A run as its last checkpoint left it, with its backend rebuilt from the
    manifest as --resume would rebuild it. Read only: nothing is written to the
    run folder and no lock is taken."""

    run_id: str
    seed: int
    next_tick: int  # ticks completed: the state is the one after tick next_tick - 1
    world: World
    memory: MemoryStore
    backend: Backend
    vectors_match: bool  # the rebuilt steering vectors hash as the run's did

    def close(self) -> None:
        self.backend.close()


def open_run_state(run_path: Path, *, backend: Backend | None = None) -> RunState:
    """The state of the run at `run_path`; ResumeError (one line) when its
    manifest or checkpoint is unreadable. Model caches are looked up under the
    run's own storage root (the folder holding dumps/) when it has one."""
    run_dir = RunDir(run_path)
    manifest = read_manifest(run_dir, run_path.name, asked=f"run {run_path}")  # not a --resume
    check_manifest(manifest, run_dir.manifest)  # a `model` of the wrong type: one line
    cfg = validate(manifest["config"], {}, str(run_dir.manifest))
    if run_path.parent.name == "dumps":
        storage = cfg.storage.model_copy(update={"root": str(run_path.parent.parent)})
        cfg = cfg.model_copy(update={"storage": storage})
    cfg = _with_run_vectors(cfg, manifest.get("model") or {}, run_path)
    ckpt = CheckpointStore(run_dir.checkpoint).load()
    done = manifest.get("ticks_completed")
    if ckpt is None and isinstance(done, int) and done > 0:  # not "no tick completed yet"
        raise ResumeError(
            f"run {run_path}: its checkpoint is missing (the manifest says {done} ticks were "
            "completed); the agents' state is rebuilt from it, so it cannot be read back"
        )
    world = _restore_world(cfg.run_id, cfg, ckpt)
    inner = backend or build_backend(backend_spec(cfg))
    try:
        memory = build_memory(cfg, inner)
        _restore_memory(cfg.run_id, ckpt, memory, world)
        recorded = ckpt.vectors_hash if ckpt else _vectors_hash(manifest.get("model") or {})
        return RunState(
            run_id=cfg.run_id,
            seed=cfg.seed,
            next_tick=ckpt.next_tick if ckpt else 0,
            world=world,
            memory=memory,
            backend=inner,
            vectors_match=_vectors_hash(inner.describe()) == recorded,
        )
    except BaseException:
        inner.close()
        raise


def _with_run_vectors(cfg: RunConfig, model_record: dict[str, Any], run_path: Path) -> RunConfig:
    """Steer with the vectors the run applied, its own copy in <run>/vectors/
    (hash checked), rather than rebuild them from a cache that may have
    changed since. The copy holds exactly what was applied (per-trait layers,
    orthogonalisation and per-trait gains included), so it is used as it is:
    trait_gains are set to the gains it records, which leaves it unscaled."""
    steer = model_record.get("steering") or {}
    rel, layers = steer.get("vectors_file"), steer.get("layers")
    if not cfg.steering.enabled or not isinstance(rel, str) or not layers:
        return cfg
    path = run_path / rel
    if not path.is_file():
        return cfg
    # an hf run: torch is loading anyway
    from agents.steering.vectors import SteeringVectors, file_hash

    if steer.get("vectors_hash") and file_hash(path) != steer["vectors_hash"]:
        return cfg
    gains = SteeringVectors.load(path).recorded_gains()
    update = {
        "vectors": str(path),
        "layers": list(layers),
        "trait_layers": {},
        "trait_gains": gains,
    }
    steering = cfg.steering.model_copy(update={**update, "orthogonalize": False})
    return cfg.model_copy(update={"steering": steering})


def _changed_keys(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> list[str]:
    keys = []
    for k in sorted(set(old) | set(new)):
        if not prefix and k in RESUMABLE_KEYS:
            continue
        a, b = old.get(k), new.get(k)
        if isinstance(a, dict) and isinstance(b, dict):
            keys += _changed_keys(a, b, f"{prefix}{k}.")
        elif a != b:
            keys.append(f"{prefix}{k}")
    return keys

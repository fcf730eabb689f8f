"""What the run command hands a run to when it may span several processes.

`dispatch(invocation)` returns None when the run stays in this one process
(not distributed, or one GPU or none: one log line says so), and otherwise
runs this process's part and returns its exit code:

- under torchrun (or the built-in launcher), world size > 1: this process is
  one rank. Rank 0 sets every rank up (orchestrator.distributed.replicas)
  and runs the simulation with a DistributedBackend; the others serve it.
- `distributed.enabled` and more than one rank wanted: this process is the
  launcher (orchestrator.distributed.launch); it checks what it can first
  (a taken run folder, a missing run to resume), so bad input fails before
  any rank starts.

An Invocation is what a rank needs of the command line, as JSON for the
ranks the built-in launcher starts."""

from __future__ import annotations

import json
import logging
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.config_loader import ResolvedConfig, validate
from orchestrator.config_schema import RunConfig
from orchestrator.distributed.messages import Op
from orchestrator.distributed.plan import resolve_mode, uses_cuda, world_size
from orchestrator.distributed.ranks import Channel, RankEnv, rank_env
from orchestrator.storage import RunDir, run_dir_for

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class Invocation:
    """A run as the command line asked for it."""

    resolved: ResolvedConfig | None  # None: resume with the run's own config
    resume: str | None = None  # the run id to continue
    storage_root: str | None = None  # where that run is (resume only)
    overwrite: bool = False
    force: bool = False
    live: bool = False
    no_color: bool = False

    def to_json(self) -> str:
        r = self.resolved
        data: dict[str, Any] = {
            "config": r.as_dict() if r else None,
            "source": str(r.source) if r else None,
            "files": [str(f) for f in r.files] if r else [],
            **{k: getattr(self, k) for k in ("resume", "storage_root", "overwrite", "force")},
            **{k: getattr(self, k) for k in ("live", "no_color")},
        }
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> Invocation:
        data = json.loads(text)
        resolved = None
        if data["config"] is not None:
            config = validate(data["config"], {}, data["source"])
            files = tuple(Path(f) for f in data["files"])
            resolved = ResolvedConfig(config=config, source=Path(data["source"]), files=files)
        keys = ("resume", "storage_root", "overwrite", "force", "live", "no_color")
        return cls(resolved=resolved, **{k: data[k] for k in keys})


def effective_config(inv: Invocation) -> RunConfig:
    """The config the run will use: the given one, else the resumed run's own."""
    if inv.resolved is not None:
        return inv.resolved.config
    from orchestrator.resume_check import read_manifest

    run_dir = RunDir(run_dir_for(inv.storage_root or "storage", inv.resume or ""))
    manifest = read_manifest(run_dir, inv.resume or "")  # one line for a missing or odd file
    return validate(manifest["config"], {}, str(run_dir.manifest))


def dispatch(inv: Invocation) -> int | None:
    """Run this process's part of a distributed run (see the module docstring)."""
    env = rank_env()
    if env is not None and env.world_size > 1:
        return run_rank(inv, env)
    cfg = effective_config(inv)
    if not cfg.distributed.enabled or env is not None:  # a launcher's single rank
        return None
    n = world_size(cfg)
    if n < 2:
        log.warning(
            "distributed.enabled: %s; running in one process",
            "one GPU visible" if n == 1 else "no GPU visible (set world_size to run ranks on CPU)",
        )
        return None
    _check_run_dir(inv, cfg)
    from orchestrator.distributed.launch import launch_invocation

    log.info("distributed: launching %d ranks", n)
    return launch_invocation(n, inv.to_json())


def _check_run_dir(inv: Invocation, cfg: RunConfig) -> None:
    """A new run's folder must be free (or --overwrite): fail before any rank starts."""
    if inv.resume is None and not inv.overwrite:
        run_dir = RunDir(run_dir_for(cfg.storage.root, cfg.run_id))
        if run_dir.exists():
            run_dir.create(overwrite=False)  # raises the clear "already exists" error


def run_rank(inv: Invocation, env: RankEnv) -> int:
    """This process's part as rank `env.rank`; its exit code."""
    cfg = effective_config(inv)
    channel = Channel(env, timeout_s=cfg.distributed.timeout_s, use_cuda=uses_cuda(cfg))
    if env.rank != 0:
        return _serve(channel)
    return _main(inv, cfg, channel)


def _main(inv: Invocation, cfg: RunConfig, channel: Channel) -> int:
    from orchestrator.assemble import backend_spec
    from orchestrator.distributed.replicas import build_main, shared_spec
    from orchestrator.live_view import ConsoleView
    from orchestrator.runner import resume_simulation, run_simulation

    try:
        _check_run_dir(inv, cfg)
        spec = backend_spec(cfg)
        folder = shared_spec(spec).model.name_or_path if cfg.model.backend == "hf" else None
        mode = resolve_mode(
            cfg, Path(folder) if folder and Path(folder).is_dir() else None, channel.world_size
        )
    except BaseException:
        channel.scatter([Op(kind="stop")] * channel.world_size)
        channel.close()
        raise
    backend = build_main(spec, channel, mode=mode, use_cuda=uses_cuda(cfg))
    view = ConsoleView(live=inv.live, no_color=inv.no_color, parallel=backend.label)
    try:
        if inv.resume is not None:
            summary = resume_simulation(
                inv.resume,
                view,
                storage_root=inv.storage_root or cfg.storage.root,
                resolved=inv.resolved,
                force=inv.force,
                backend=backend,
            )
        else:
            assert inv.resolved is not None
            summary = run_simulation(inv.resolved, view, overwrite=inv.overwrite, backend=backend)
    finally:
        backend.close()  # idempotent: the runner closes it too
    return 130 if summary.status == "interrupted" else 0


def _serve(channel: Channel) -> int:
    from orchestrator.distributed.backend import serve
    from orchestrator.distributed.replicas import build_worker

    if threading.current_thread() is threading.main_thread():
        # Ctrl+C is rank 0's to handle: it finishes the tick and stops this rank
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    built = build_worker(channel)
    if built is None:
        channel.close()
        return 0
    local, mode = built
    try:
        serve(local, channel, mode=mode)
    finally:
        local.close()
    channel.close()
    return 0

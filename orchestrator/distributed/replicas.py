"""Builds every rank's backend for a distributed run, with the steering
vectors built once and shared.

Rank 0 resolves the model (converting the embedded default once, so no two
ranks race to do it) and sends every rank the backend spec. Data mode: every
rank loads its own replica at the same time (on GPU `cuda:<local rank>`);
rank 0 builds (or finds) the steering vectors and sends them, so the others
never build or read them. Tensor mode: the ranks load the model together
(each holds a slice); if the vectors must be built, every rank runs the same
forward passes in lockstep (the others write into a private temp folder)
and rank 0 keeps the cached file. Then every rank reports ready, or its
error, which rank 0 raises as one line.

Knows nothing about the world or the run; it returns the local backend."""

from __future__ import annotations

import logging
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import Any

from agents.backends import BackendSpec, build_backend
from agents.mock_backend import MockBackend
from agents.typing import Backend
from orchestrator.distributed.backend import DistributedBackend, distributed_backend
from orchestrator.distributed.messages import DistributedError, Mode, Op, Reply, error_line
from orchestrator.distributed.ranks import Channel

log = logging.getLogger(__name__)


class _NeedsForward(Exception):
    """Raised by _NoModel: building the vectors would need the model."""


class _NoModel:
    """Stands in for the model while rank 0 asks whether the steering vectors
    come from the cache (no forward pass) or must be built."""

    def __getattr__(self, name: str) -> Any:
        raise _NeedsForward(name)


def rank_spec(spec: BackendSpec, local_rank: int, *, use_cuda: bool) -> BackendSpec:
    """The spec as one rank loads it: on GPU, its own device."""
    if use_cuda and spec.model.device in ("auto", "cuda"):
        model = spec.model.model_copy(update={"device": f"cuda:{local_rank}"})
        return replace(spec, model=model)
    return spec


def shared_spec(spec: BackendSpec) -> BackendSpec:
    """The spec every rank loads from: the model resolved to a local folder by
    rank 0 (the embedded default is converted here, once)."""
    if spec.model.backend != "hf":
        return spec
    from agents.model_loading import resolve_model_path

    path = resolve_model_path(spec.model, Path(spec.storage_root))
    if isinstance(path, Path):
        return replace(spec, model=spec.model.model_copy(update={"name_or_path": str(path)}))
    return spec


# -- rank 0 ---------------------------------------------------------------------


def build_main(
    spec: BackendSpec, channel: Channel, *, mode: Mode, use_cuda: bool
) -> DistributedBackend:
    """Rank 0: set up every rank and return the backend the run uses."""
    local: Backend | None = None
    try:
        shared = shared_spec(spec)
    except Exception:
        channel.scatter([Op(kind="stop")] * channel.world_size)
        channel.close()
        raise
    # rank 0 keeps the config's model name (the manifest records it); the others load the folder
    mine = rank_spec(spec, channel.env.local_rank, use_cuda=use_cuda)
    channel.scatter([Op(kind="setup", payload=(shared, mode, use_cuda))] * channel.world_size)
    try:
        if mode == "tensor" and spec.model.backend == "hf":
            local = _tensor_main(mine, channel)
        else:
            local = build_backend(mine)
        vectors = (getattr(local, "vectors", None), getattr(local, "vectors_file", None))
    except Exception:
        if mode == "data":  # the others are waiting for the vectors: tell them to stop
            channel.scatter([Op(kind="stop")] * channel.world_size)
            channel.close()
        if local is not None:
            local.close()
        raise
    channel.scatter([Op(kind="vectors", payload=vectors)] * channel.world_size)
    replies = channel.gather(Reply(rank=0)) or []
    failed = [r for r in replies if r.error is not None]
    backend = distributed_backend(local, channel, mode=mode)
    if failed:
        backend.close()
        raise DistributedError(f"rank {failed[0].rank} could not load the model: {failed[0].error}")
    log.info("distributed: %s ready", backend.label)
    return backend


def _tensor_main(spec: BackendSpec, channel: Channel) -> Backend:
    from agents.hf_backend import build_hf_backend, spec_vectors
    from agents.model_loading import load_model

    lm = load_model(spec.model, spec.optimization, spec.storage_root, tensor_parallel=True)
    s = spec.steering
    must_build = False
    if s.enabled and s.vectors is None:
        try:
            spec_vectors(spec, lm, model=_NoModel())
        except _NeedsForward:
            must_build = True
    channel.scatter([Op(kind="build_vectors", payload=must_build)] * channel.world_size)
    if must_build:  # every rank runs the same forward passes
        spec_vectors(spec, lm)
    return build_hf_backend(spec, lm=lm)  # the vectors come from the cache now


# -- the other ranks --------------------------------------------------------------


def build_worker(channel: Channel) -> tuple[Backend, Mode] | None:
    """A rank other than 0: its local backend and the mode, or None when rank 0
    stopped the setup (or this rank failed and said so)."""
    op = channel.scatter(None)
    if op.kind != "setup":
        return None
    spec, mode, use_cuda = op.payload
    spec = rank_spec(spec, channel.env.local_rank, use_cuda=use_cuda)
    error: str | None = None
    lm = None
    try:
        if mode == "tensor" and spec.model.backend == "hf":
            lm = _tensor_worker(spec, channel)
        elif spec.model.backend == "hf":
            from agents.model_loading import load_model

            lm = load_model(spec.model, spec.optimization, spec.storage_root)
    except Exception as exc:
        if mode == "tensor":
            raise  # the others are inside a collective: the launcher ends them
        error = error_line(exc)
    op = channel.scatter(None)
    if op.kind != "vectors":
        return None
    local: Backend | None = None
    if error is None:
        try:
            local = _local_backend(spec, lm, *op.payload)
        except Exception as exc:
            error = error_line(exc)
    channel.gather(Reply(rank=channel.rank, error=error))
    if local is None:
        channel.scatter(None)  # rank 0 answers a failed setup with stop
        return None
    return local, mode


def _tensor_worker(spec: BackendSpec, channel: Channel) -> Any:
    from agents.model_loading import load_model

    lm = load_model(spec.model, spec.optimization, spec.storage_root, tensor_parallel=True)
    op = channel.scatter(None)
    if op.kind == "build_vectors" and op.payload:
        from agents.hf_backend import spec_vectors

        with tempfile.TemporaryDirectory(prefix="steersim-vectors-") as scratch:
            spec_vectors(spec, lm, storage_root=scratch)
    return lm


def _local_backend(spec: BackendSpec, lm: Any, vectors: Any, vectors_file: str | None) -> Backend:
    if spec.model.backend == "mock":
        return MockBackend()
    from agents.hf_backend import HFBackend

    steering = spec.steering
    if steering.enabled and vectors is None:
        raise DistributedError("rank 0 sent no steering vectors")
    return HFBackend(
        lm,
        inference=spec.inference,
        steering=steering,
        vectors=vectors,
        vectors_file=vectors_file,
    )

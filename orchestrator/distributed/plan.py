"""How many ranks a run gets and which mode they work in.

World size: `auto` is the number of visible GPUs; a number is taken as
given (on GPUs it must not exceed what this machine shows; on CPU any number
of gloo processes runs, e.g. for tests). Fewer than two ranks means one
ordinary process.

Mode `auto`: tensor when the model does not fit one GPU (its weights take
more than FIT_SHARE of the card), or when the ticks are small (at most
SMALL_TICK_REQUESTS agents) on a model that the fast decode step splits
(a Llama-family type whose heads divide over the ranks, at least
TENSOR_MIN_BYTES of weights, loaded plainly); data otherwise. Measured on 2
H200s (docs/distributed.md): 8B shape, 32 requests a tick, tensor 1.27x one
GPU on the fast path, while data mode cannot gain at small ticks (the
one-GPU step at half the batch is only 4-8% shorter: 5.62 vs 5.85 ms at
16 vs 32 rows, 5.85 vs 6.34 ms at 32 vs 64). On CPU and for the mock
backend, always data.

Knows nothing about processes; reads the config and the hardware."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.distributed.messages import Mode
from orchestrator.errors import ConfigError

if TYPE_CHECKING:
    from orchestrator.config_schema import RunConfig

log = logging.getLogger(__name__)

FIT_SHARE = 0.8  # weights above this share of one GPU's memory leave too little for the KV cache
SMALL_TICK_REQUESTS = 64  # up to here data mode gains <= 8% (module docstring); 512: data 1.80x
# below this the per-layer collectives (about 50 us a layer on the 8B shape) eat
# the halved weight reads: estimated from the one measured shape (16 GB, 1.27x)
TENSOR_MIN_BYTES = 8 * 2**30
_DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def visible_gpus() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def uses_cuda(cfg: RunConfig) -> bool:
    """Whether the run's model goes on GPUs (so each rank takes its own)."""
    if cfg.model.backend != "hf" or cfg.model.device in ("cpu", "mps"):
        return False
    return visible_gpus() > 0


def world_size(cfg: RunConfig, source: str = "config") -> int:
    """The number of ranks this machine starts for the run."""
    asked = cfg.distributed.world_size
    gpus = visible_gpus()
    if asked == "auto":
        return gpus
    if uses_cuda(cfg) and asked > gpus:
        raise ConfigError(
            source,
            "distributed.world_size",
            f"{asked} ranks need {asked} GPUs and this machine shows {gpus}; lower it, use "
            "auto, or run several nodes with torchrun",
        )
    return asked


def _text_config(folder: Path) -> dict | None:
    """The folder's config.json (its text model's part, for a multimodal one); None if unreadable."""
    try:
        cfg = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return cfg.get("text_config", cfg)


def model_bytes(folder: Path, dtype: str) -> int | None:
    """The weights' size at run time, from the folder's config.json (a Llama-style
    count), else from its safetensors files; None when neither is there."""
    cfg = _text_config(folder) or {}
    per = _DTYPE_BYTES.get(dtype if dtype != "auto" else "bfloat16", 2)
    try:
        h, n_layers, vocab = cfg["hidden_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
        inter = cfg.get("intermediate_size", 4 * h)
        heads = cfg.get("num_attention_heads", 1)
        kv = cfg.get("num_key_value_heads", heads)
        attn = h * h * (2 + 2 * kv / heads)  # q, o and the grouped k, v
        embed = vocab * h * (1 if cfg.get("tie_word_embeddings") else 2)
        return int((n_layers * (attn + 3 * h * inter) + embed) * per)
    except (KeyError, TypeError):
        files = list(folder.glob("*.safetensors"))
        return sum(f.stat().st_size for f in files) or None


def tensor_pays_for_small_ticks(folder: Path, dtype: str, agents: int, world: int) -> bool:
    """Whether tensor mode is the faster one for ticks of up to `agents`
    requests on `world` ranks (see the module docstring)."""
    from agents.decode.llama_step import SUPPORTED_TYPES

    cfg = _text_config(folder)
    if cfg is None:
        return False
    heads = cfg.get("num_attention_heads") or 0
    kv = cfg.get("num_key_value_heads") or heads
    size = model_bytes(folder, dtype) or 0
    return (
        agents <= SMALL_TICK_REQUESTS
        and cfg.get("model_type") in SUPPORTED_TYPES
        and heads > 0
        and heads % world == 0
        and kv % world == 0
        and size >= TENSOR_MIN_BYTES
    )


def resolve_mode(cfg: RunConfig, model_folder: Path | None, world: int) -> Mode:
    """The mode the ranks work in (see the module docstring)."""
    asked = cfg.distributed.mode
    if asked != "auto":
        return asked
    if not uses_cuda(cfg) or model_folder is None:
        return "data"
    import torch

    need = model_bytes(model_folder, cfg.model.dtype)
    card = torch.cuda.get_device_properties(0).total_memory
    if need is not None and need > FIT_SHARE * card:
        log.info(
            "distributed.mode auto: the model's %.0f GiB do not fit one %.0f GiB GPU: tensor",
            need / 2**30,
            card / 2**30,
        )
        return "tensor"
    opt = cfg.optimization
    plain = not (
        opt.use_quantization
        or opt.max_gpu_memory_gb is not None
        or opt.max_cpu_memory_gb is not None
        or opt.offload_folder is not None
    )
    agents = cfg.population.agents
    if plain and tensor_pays_for_small_ticks(model_folder, cfg.model.dtype, agents, world):
        log.info(
            "distributed.mode auto: ticks of at most %d requests on a model the fast decode "
            "step splits: tensor",
            agents,
        )
        return "tensor"
    return "data"

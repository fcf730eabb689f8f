"""manifest.json: what a run was (resolved config, seed, versions, model,
vectors) and how it went (status, times)."""

from __future__ import annotations

import platform
import sys
from datetime import datetime, timezone
from importlib import metadata
from typing import Any

PACKAGES = ("steersim", "torch", "transformers", "accelerate", "numpy", "pyarrow", "pydantic")


def package_versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def new_manifest(
    *, run_id: str, config: dict[str, Any], config_file: str, seed: int
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "status": "running",
        "seed": seed,
        "config_file": config_file,
        "config": config,
        "versions": package_versions(),
        "model": None,  # filled by the backend: name, path, dtype, device, layers
        "started_at": now_iso(),
        "ended_at": None,
        "ticks_completed": 0,
        "resumed": [],
    }

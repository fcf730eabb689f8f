"""Helpers for the analysis-script tests: a short mock run made in-process,
copies of its dumps with doctored steering columns, the scripts loaded as
modules, and a PNG reader that needs no image library."""

from __future__ import annotations

import importlib.util
import os
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from orchestrator.config_loader import load_config
from orchestrator.dumps_reader import TRAIT_COLUMNS
from orchestrator.records import MESSAGE_SCHEMA
from tests.conftest import CONFIGS, REPO

SCRIPTS = REPO / "scripts"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class QuietView:
    def start(self, *, first_tick: int, total_ticks: int) -> None: ...
    def on_tick(self, result) -> None: ...
    def finish(self, summary) -> None: ...


def make_mock_run(
    root: Path,
    *,
    run_id: str = "an",
    ticks: int = 12,
    agents: int = 24,
    overrides: tuple[str, ...] = (),
) -> Path:
    """A mock run under <root>/dumps/<run_id>; returns the run directory.
    `overrides`: more --set KEY=VALUE items (e.g. steering.enabled=false)."""
    from orchestrator.runner import run_simulation

    resolved = load_config(
        CONFIGS / "run.fast.yaml",
        [
            "model.backend=mock",
            f"ticks={ticks}",
            f"population.agents={agents}",
            f"run_id={run_id}",
            f"storage.root={root}",
            *overrides,
        ],
    )
    run_simulation(resolved, QuietView(), overwrite=True)
    return root / "dumps" / run_id


def copy_run(run_dir: Path, dest_root: Path, run_id: str) -> Path:
    dest = dest_root / "dumps" / run_id
    shutil.copytree(run_dir, dest, ignore=shutil.ignore_patterns("checkpoint"))
    return dest


def rewrite_messages(run_dir: Path, change: Callable[[pd.DataFrame], pd.DataFrame]) -> None:
    """Apply `change` to every tick file's rows, keeping the documented schema."""
    for f in sorted((run_dir / "messages").glob("tick_*.parquet")):
        df = change(pd.read_parquet(f))
        pq.write_table(pa.Table.from_pandas(df, schema=MESSAGE_SCHEMA, preserve_index=False), f)


def zero_steering(df: pd.DataFrame) -> pd.DataFrame:
    df[list(TRAIT_COLUMNS)] = 0.0
    return df


def one_profile(profile: tuple[float, ...]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def change(df: pd.DataFrame) -> pd.DataFrame:
        df[list(TRAIT_COLUMNS)] = np.asarray(profile, dtype=np.float32)
        return df

    return change


def load_script(name: str) -> ModuleType:
    """scripts/<name>.py as a module (its `app` is the typer app)."""
    spec = importlib.util.spec_from_file_location(f"script_{name}", SCRIPTS / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(name: str, *args: str, cwd: Path | None = None, timeout: float = 120):
    """scripts/<name> in a subprocess (real exit code and stderr)."""
    path = SCRIPTS / name
    cmd = ["bash", str(path)] if name.endswith(".sh") else [sys.executable, str(path)]
    return subprocess.run(
        [*cmd, *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHON": sys.executable, "PYTHONPATH": str(REPO)},
    )


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; asserts the file is a PNG."""
    head = path.read_bytes()[:24]
    assert head[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert head[12:16] == b"IHDR", f"{path} has no IHDR chunk first"
    return struct.unpack(">II", head[16:24])


def make_tiny_model(folder: Path) -> Path:
    """The shared tiny random Llama (agents.random_models) as an HF folder: the
    behavioural check's mechanics, not its verdict."""
    from agents.random_models import save_tiny

    return save_tiny(folder)


def make_tiny_vectors(path: Path, *, hidden: int = 64, layers: tuple[int, ...] = (1,)) -> Path:
    import torch

    from agents.steering.vectors import SteeringVectors

    gen = torch.Generator().manual_seed(1)
    directions = torch.nn.functional.normalize(
        torch.randn(len(layers), 5, hidden, generator=gen), dim=-1
    )
    vectors = SteeringVectors(
        layers=layers,
        directions=directions,
        norms=torch.ones(len(layers)),
        meta={"method": "mean_diff"},
    )
    return vectors.save(path)


def as_hf_run(run_dir: Path, model: Path, vectors: Path, *, layers=(1,), strength=0.2) -> None:
    """Rewrite a mock run's manifest as if the HF backend had made it."""
    import json

    from agents.steering.vectors import file_hash

    manifest_path = run_dir / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["model"] = {
        "backend": "hf",
        "name_or_path": str(model),
        "resolved_path": str(model),
        "dtype": "float32",
        "device": "cpu",
        "steering": {
            "layers": list(layers),
            "strength": strength,
            "vectors_file": str(vectors),
            "vectors_hash": file_hash(vectors),
            "method": "mean_diff",
        },
    }
    manifest_path.write_text(json.dumps(manifest))

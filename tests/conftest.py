"""Shared fixtures: every test writes under its own temp dir, never ./storage.

Without CUDA, the fast decode path's Triton kernels run in triton's CPU
interpreter (TRITON_INTERPRET=1, read when a kernel is defined, so before any
test imports agents.decode.kernels); tests/test_fast_decode.py skips them
where triton is not installed."""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import pytest

if importlib.util.find_spec("torch") is not None:
    import torch

    if not torch.cuda.is_available():
        os.environ.setdefault("TRITON_INTERPRET", "1")

REPO = Path(__file__).resolve().parents[1]
CONFIGS = REPO / "configs"


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run each test in its own temp dir so a relative storage.root lands there."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def write_yaml(tmp_path: Path):
    """write_yaml("name.yaml", text) -> path of a config file in the test's dir."""

    def _write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        return path

    return _write

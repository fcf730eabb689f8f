"""Shared fixtures: every test writes under its own temp dir, never ./storage."""

from __future__ import annotations

from pathlib import Path

import pytest

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

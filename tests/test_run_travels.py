"""A run folder travels: the steering vectors actually applied are copied into
it (hash checked), the manifest names them relative to the folder and the
model by name, hash and local path, and a run moved elsewhere, with the
original vectors gone, still passes view, analyze and verify (including the
behavioural check on its model: a tiny random Llama here, mechanics only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agents.steering.vectors import file_hash
from tests.analysis_helpers import QuietView, make_tiny_model, make_tiny_vectors
from tests.conftest import CONFIGS
from tests.helpers import cli


@pytest.fixture(scope="module")
def hf_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(run folder, the vectors file the config named) of a 2-tick run of a tiny model."""
    from orchestrator.config_loader import load_config
    from orchestrator.runner import run_simulation

    base = tmp_path_factory.mktemp("travel")
    model = make_tiny_model(base / "models" / "tiny-llama")
    vectors = make_tiny_vectors(base / "cache" / "tiny.safetensors")
    resolved = load_config(
        CONFIGS / "run.fast.yaml",
        [
            "model.backend=hf",
            f"model.name_or_path={model}",
            "model.device=cpu",
            "model.dtype=float32",
            f"steering.vectors={vectors}",
            "steering.layers=[1]",
            "steering.trait_layers={}",
            "steering.strength=0.2",
            "steering.trait_gains={}",  # the file applies as it is: nothing to rescale
            "memory.embedder=hashing",
            "memory.importance=heuristic",
            "inference.max_new_tokens=4",
            "ticks=2",
            "population.agents=4",
            "run_id=tr",
            f"storage.root={base / 'storage'}",
        ],
    )
    run_simulation(resolved, QuietView())
    return base / "storage" / "dumps" / "tr", vectors


def test_the_manifest_names_what_travels(hf_run: tuple[Path, Path]) -> None:
    run, vectors = hf_run
    model = json.loads((run / "manifest.json").read_text())["model"]
    steer = model["steering"]
    assert steer["vectors_file"] == "vectors/tiny.safetensors"  # relative to the run folder
    assert steer["vectors_source"] == str(vectors.resolve())
    copy = run / steer["vectors_file"]
    assert copy.read_bytes() == vectors.read_bytes()
    assert steer["vectors_hash"] == file_hash(copy) == file_hash(vectors)
    assert model["identity"] and Path(model["resolved_path"]).is_absolute()
    assert Path(model["resolved_path"]).is_dir()


def test_a_moved_run_passes_view_analyze_and_verify(
    hf_run: tuple[Path, Path], tmp_path: Path
) -> None:
    run, vectors = hf_run
    moved = tmp_path / "somewhere" / "else"
    shutil.copytree(run, moved)
    hidden = vectors.with_suffix(".away")
    vectors.rename(hidden)  # only the run's own copy is left
    try:
        assert cli("view", str(moved), "--limit", "3").returncode == 0
        out_dir = tmp_path / "analysis"
        res = cli("analyze", str(moved), "--quiet", "--out-dir", str(out_dir))
        assert res.returncode == 0, res.stderr
        res = cli(
            "verify", str(moved), "--device", "cpu", "--skip-text", "--json", "-", timeout=600
        )
        assert res.returncode in (0, 1), res.stderr  # a random model: either verdict
        report = json.loads(res.stdout)
        behavioural = next(c for c in report["checks"] if c["name"] == "behavioural")
        assert behavioural["status"] in ("pass", "fail")
        assert "unavailable" not in behavioural["summary"], behavioural["summary"]
    finally:
        hidden.rename(vectors)


def test_a_changed_copy_is_refused(hf_run: tuple[Path, Path], tmp_path: Path) -> None:
    from orchestrator.analysis.behavioural import run_behavioural
    from orchestrator.dumps_reader import load_run

    run, _ = hf_run
    moved = tmp_path / "moved"
    shutil.copytree(run, moved)
    (moved / "vectors" / "tiny.safetensors").write_bytes(b"not the vectors")
    out = run_behavioural(load_run(moved).manifest, moved, device="cpu")
    assert out.check.failed and "changed since the run" in out.check.summary

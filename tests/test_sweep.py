"""steersim sweep: grid expansion, the index, a failing point, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.errors import ConfigError, SteersimError
from orchestrator.experiments.grid import expand, parse_axis
from orchestrator.experiments.sweep import load_index, plan_sweep, run_state, save_spec
from tests.conftest import CONFIGS, REPO
from tests.helpers import assert_same_dumps, cli

SMALL = ["--mock-model", "--set", "population.agents=3", "--set", "max_events_per_tick=3"]


def _config(tmp_path: Path, ticks: int = 3) -> Path:
    """A config in the test's folder (templates must lie beside it) with its own root."""
    text = (CONFIGS / "run.fast.yaml").read_text(encoding="utf-8")
    (tmp_path / "base.yaml").write_text(text, encoding="utf-8")
    (tmp_path / "over.yaml").write_text(
        f"template: base.yaml\nticks: {ticks}\nstorage: {{root: {tmp_path / 'st'}}}\n",
        encoding="utf-8",
    )
    return tmp_path / "over.yaml"


def _index(tmp_path: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(tmp_path / "st" / "sweeps" / name / "index.parquet")


# -- expansion --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "values"),
    [
        ("steering.strength=0,0.1,0.2", (0, 0.1, 0.2)),
        ("steering.layers=[12,16],[20]", ([12, 16], [20])),
        ("model.backend=mock,hf", ("mock", "hf")),
        ("memory.importance='model, please',heuristic", ("model, please", "heuristic")),
    ],
)
def test_grid_values_are_yaml(text, values):
    axis = parse_axis(text)
    assert axis.key == text.split("=")[0] and axis.values == values


@pytest.mark.parametrize(
    "text", ["steering.strength", "=1,2", "a..b=1", "x=[1,", "x=1,1", "steering.strength="]
)
def test_bad_grid_is_config_error(text):
    with pytest.raises(ConfigError):
        parse_axis(text)


def test_expand_is_the_product_times_seeds():
    axes = [parse_axis("steering.strength=0,0.1,0.2"), parse_axis("steering.layers=[12],[16,20]")]
    points = expand("s", axes, repeat_seeds=3)
    assert len(points) == 3 * 2 * 3
    combos = {
        (p.as_dict()["steering.strength"], str(p.as_dict()["steering.layers"]), p.seed)
        for p in points
    }
    assert len(combos) == 18 and {p.seed for p in points} == {1, 2, 3}
    assert len({p.run_id for p in points}) == 18
    assert points[0].run_id == "s-strength0-layers12-seed1"
    assert points[3].run_id == "s-strength0-layers16_20-seed1"
    assert points[1].overrides() == ["steering.strength=0", "steering.layers=[12]", "seed=2"]
    # the first axis varies slowest, the seed fastest
    assert [p.as_dict()["steering.strength"] for p in points[:6]] == [0] * 6


def test_a_huge_grid_is_refused_before_it_is_built(monkeypatch):
    import itertools

    def never(*_args):
        raise AssertionError("the points were built before they were counted")

    monkeypatch.setattr(itertools, "product", never)  # before: billions of tuples first
    axes = [parse_axis(f"k{i}=1,2,3") for i in range(30)]
    with pytest.raises(ConfigError, match="205891132094649 points; at most 10000"):
        expand("s", axes)
    with pytest.raises(ConfigError, match="--repeat-seeds: 1000000000000 seeds"):
        expand("s", [], repeat_seeds=10**12)  # before: a MemoryError building the seed list


def test_seed_axis_and_repeat_seeds_exclude_each_other():
    axes = [parse_axis("seed=5,6")]
    assert [p.seed for p in expand("s", axes)] == [5, 6]
    with pytest.raises(ConfigError, match="not both"):
        expand("s", axes, repeat_seeds=2)
    with pytest.raises(ConfigError, match="swept twice"):
        expand("s", [parse_axis("ticks=1,2"), parse_axis("ticks=3")])


def test_same_key_ending_gets_distinct_run_ids():
    axes = [parse_axis("inference.max_new_tokens=8,16"), parse_axis("other.max_new_tokens=8,16")]
    ids = [p.run_id for p in expand("s", axes)]
    assert len(set(ids)) == 4


def test_plan_validates_every_point(tmp_path):
    cfg = _config(tmp_path)
    plan = plan_sweep(cfg, ["population.agents=2,-1"], name="v", overrides=["model.backend=mock"])
    assert [r.invalid is None for r in plan.runs] == [True, False]
    assert "population.agents" in plan.runs[1].invalid
    with pytest.raises(ConfigError, match="no point of the sweep is valid"):
        plan_sweep(cfg, ["population.agnts=2,3"], name="v")


DEEP_JSON = b"[" * 100_000 + b"]" * 100_000
DAMAGED_JSON = [b"\xff\xfe", DEEP_JSON, b"[1]"]  # not UTF-8, nested too deeply, no object


@pytest.mark.parametrize("content", DAMAGED_JSON, ids=["bytes", "deep", "list"])
def test_damaged_sweep_json_and_manifests_are_read_as_damaged(tmp_path, content):
    # before: UnicodeDecodeError, RecursionError and AttributeError tracebacks
    plan = plan_sweep(_config(tmp_path), ["ticks=1,2"], name="d", overrides=["model.backend=mock"])
    plan.folder.mkdir(parents=True)
    (plan.folder / "sweep.json").write_bytes(content)
    save_spec(plan)  # a damaged spec is written again, as a missing one is
    assert json.loads((plan.folder / "sweep.json").read_text())["name"] == "d"
    run = tmp_path / "run"
    run.mkdir()
    (run / "manifest.json").write_bytes(content)
    assert run_state(run, None) == ("broken", {})
    (plan.folder / "sweep.json").write_bytes(content)
    pd.DataFrame({"run_id": ["r"], "seed": [1], "status": ["complete"], "path": ["x"]}).to_parquet(
        plan.folder / "index.parquet"
    )
    with pytest.raises(SteersimError, match=f"cannot read sweep 'd' in {plan.folder}: "):
        load_index(tmp_path / "st", "d")


@pytest.mark.parametrize(
    ("spec", "index", "says"),
    [
        ({"grid": 5}, {"run_id": ["r"], "seed": [1], "status": ["ok"], "path": ["x"]}, "grid is"),
        ({"grid": {}}, {"x": [1]}, "index.parquet lacks the columns run_id, seed, status, path"),
    ],
)
def test_a_sweep_index_compare_cannot_use_is_one_line(tmp_path, spec, index, says):
    folder = tmp_path / "sweeps" / "s"  # before: TypeError / KeyError tracebacks in compare
    folder.mkdir(parents=True)
    (folder / "sweep.json").write_text(json.dumps(spec))
    pd.DataFrame(index).to_parquet(folder / "index.parquet")
    with pytest.raises(SteersimError, match=says):
        load_index(tmp_path, "s")


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path):
    cfg = _config(tmp_path)
    proc = cli("sweep", str(cfg), "--grid", "steering.strength=0,[1", *SMALL)
    assert proc.returncode == 2 and proc.stderr.startswith("error: --grid")
    assert "\n" not in proc.stderr.strip()
    proc = cli("sweep", str(cfg), "--grid", "tiks=1,2", *SMALL)
    assert proc.returncode == 2 and "tiks" in proc.stderr
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize("gpus", ["a,b", "0,,1", "cuda:0"])
def test_garbled_gpu_ids_are_refused_before_the_sweep_starts(tmp_path, capsys, gpus):
    from orchestrator.cli import main

    # before: each job got CUDA_VISIBLE_DEVICES=a, saw no GPU and ran on the CPU
    argv = ["sweep", str(_config(tmp_path)), "--grid", "ticks=1", *SMALL, "--gpus", gpus]
    with pytest.raises(SystemExit) as info:
        main(argv)
    err = capsys.readouterr().err.strip()
    assert info.value.code == 2 and err.startswith("error: --gpus: ") and "\n" not in err
    assert not (tmp_path / "st").exists()


# -- running -----------------------------------------------------------------------


def test_sweep_runs_every_point_and_a_failure_does_not_stop_it(tmp_path):
    cfg = _config(tmp_path)
    proc = cli(
        "sweep", str(cfg), "--name", "f", "--jobs", "2",
        "--grid", "model.backend=mock,hf", "--grid", "population.agents=3,-1",
        "--set", "model.name_or_path=/nonexistent/model", "--set", "max_events_per_tick=3",
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    index = _index(tmp_path, "f").set_index("run_id")
    assert list(index.columns[:2]) == ["model.backend", "population.agents"]
    assert len(index) == 4
    ok = index[(index["model.backend"] == "mock") & (index["population.agents"] == 3)]
    assert ok["status"].tolist() == ["complete"] and ok["ticks_completed"].tolist() == [3]
    assert ok["error"].isna().all()
    # the hf run started and failed at model loading: its one-line error is kept
    hf = index[(index["model.backend"] == "hf") & (index["population.agents"] == 3)]
    assert hf["status"].tolist() == ["failed"]
    assert "/nonexistent/model" in hf["error"].iloc[0] and "\n" not in hf["error"].iloc[0]
    # the invalid points never started
    bad = index[index["population.agents"] == -1]
    assert (bad["status"] == "failed").all()
    assert bad["error"].str.contains("population.agents").all()
    run = tmp_path / "st" / ok["path"].iloc[0]
    assert json.loads((run / "manifest.json").read_text())["status"] == "complete"
    spec = json.loads((tmp_path / "st" / "sweeps" / "f" / "sweep.json").read_text())
    assert spec["grid"] == {"model.backend": ["mock", "hf"], "population.agents": [3, -1]}


def test_a_changed_grid_under_the_same_name_is_refused(tmp_path):
    cfg = _config(tmp_path, ticks=1)
    assert cli("sweep", str(cfg), "--name", "g", "--grid", "seed=1", *SMALL).returncode == 0
    proc = cli("sweep", str(cfg), "--name", "g", "--grid", "seed=2", *SMALL)
    assert proc.returncode == 2 and "another grid" in proc.stderr


def _wait_for(predicate, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def _next_tick(run_dir: Path) -> int:
    try:
        return json.loads((run_dir / "checkpoint" / "LATEST").read_text())["next_tick"]
    except (OSError, ValueError, KeyError):
        return 0


def test_resume_after_a_killed_sweep(tmp_path):
    cfg = _config(tmp_path, ticks=25)
    argv = [
        sys.executable, "-m", "orchestrator.cli", "sweep", str(cfg), "--name", "k",
        "--grid", "steering.strength=0.2", "--repeat-seeds", "3", *SMALL,
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    dumps = tmp_path / "st" / "dumps"
    ids = ["k-strength0.2-seed1", "k-strength0.2-seed2", "k-strength0.2-seed3"]
    sweep = subprocess.Popen(
        argv, env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        # kill the sweep and its runs hard while the second run is half-way
        _wait_for(lambda: _next_tick(dumps / ids[1]) >= 3)
        os.killpg(sweep.pid, signal.SIGKILL)
        sweep.wait(timeout=30)
    finally:
        if sweep.poll() is None:
            os.killpg(sweep.pid, signal.SIGKILL)
    first = json.loads((dumps / ids[0] / "manifest.json").read_text())
    killed = json.loads((dumps / ids[1] / "manifest.json").read_text())
    assert first["status"] == "complete" and killed["status"] == "running"
    assert not (dumps / ids[2]).exists()
    before = (dumps / ids[0] / "manifest.json").stat().st_mtime_ns
    assert _index(tmp_path, "k").set_index("run_id").loc[ids[1], "status"] == "running"

    proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert f"skip {ids[0]}" in proc.stdout
    # the complete run is untouched, the killed one resumed, the others run fresh
    assert (dumps / ids[0] / "manifest.json").stat().st_mtime_ns == before
    resumed = json.loads((dumps / ids[1] / "manifest.json").read_text())
    assert resumed["status"] == "complete" and len(resumed["resumed"]) == 1
    assert resumed["resumed"][0]["from_tick"] >= 3
    index = _index(tmp_path, "k")
    assert index["run_id"].tolist() == ids
    assert (index["status"] == "complete").all() and (index["ticks_completed"] == 25).all()
    assert index["seed"].tolist() == [1, 2, 3]
    assert index["steering.strength"].tolist() == [0.2, 0.2, 0.2]
    # the resumed run equals the same point run in one go
    again = cli(
        "run", str(cfg), *SMALL, "--set", "steering.strength=0.2", "--set", "seed=2",
        "--run-id", "straight",
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert_same_dumps(dumps / ids[1], dumps / "straight")


def test_each_job_gets_its_own_gpu():
    """Jobs that run at the same time never share a GPU (CUDA_VISIBLE_DEVICES)."""
    from orchestrator.experiments.launchers import Job, LocalLauncher

    code = (
        "import os, sys, time; t = time.time(); time.sleep(0.4); "
        "sys.stderr.write(f\"{os.environ['CUDA_VISIBLE_DEVICES']} {t} {time.time()}\")"
    )
    jobs = [Job(key=f"j{i}", argv=(sys.executable, "-c", code)) for i in range(6)]
    ended = []
    LocalLauncher(jobs=2, gpus=["3", "5"]).run(jobs, lambda job: None, ended.append)
    assert sorted(o.key for o in ended) == [f"j{i}" for i in range(6)]
    spans = []
    for outcome in ended:
        gpu, start, end = outcome.stderr_tail.split()
        spans.append((gpu, float(start), float(end)))
    assert {gpu for gpu, _, _ in spans} <= {"3", "5"}
    overlapping = 0
    for i, (g1, s1, e1) in enumerate(spans):
        for g2, s2, e2 in spans[i + 1 :]:
            if s1 < e2 and s2 < e1:  # ran at the same time
                overlapping += 1
                assert g1 != g2
    assert overlapping > 0  # two at a time did happen


def test_submitit_launcher_runs_the_sweep(tmp_path):
    """--slurm through submitit; without SLURM here, submitit's local executor."""
    pytest.importorskip("submitit")
    cfg = _config(tmp_path, ticks=1)
    proc = cli("sweep", str(cfg), "--name", "sl", "--grid", "seed=1,2", *SMALL, "--slurm",
               "--slurm-param", "timeout_min=5", timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    index = _index(tmp_path, "sl")
    assert (index["status"] == "complete").all() and index["wall_s"].gt(0).all()
    assert (tmp_path / "st" / "sweeps" / "sl" / "submitit").is_dir()


def test_a_resume_that_fails_is_recorded_as_failed(tmp_path):
    cfg = _config(tmp_path, ticks=2)
    assert cli("sweep", str(cfg), "--name", "r", "--grid", "seed=1", *SMALL).returncode == 0
    run = tmp_path / "st" / "dumps" / "r-seed1"
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["status"] = "interrupted"  # as if stopped, but its checkpoint is damaged
    (run / "manifest.json").write_text(json.dumps(manifest))
    (run / "checkpoint" / "LATEST").write_text("{not json")
    proc = cli("sweep", str(cfg), "--name", "r", "--grid", "seed=1", *SMALL)
    assert proc.returncode == 1
    row = _index(tmp_path, "r").iloc[0]
    assert row["status"] == "failed" and "LATEST" in row["error"]

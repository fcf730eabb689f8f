"""A whole mock run through the CLI: files, columns, reproducibility, run-dir rules."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from orchestrator.records import MESSAGE_SCHEMA, PERF_SCHEMA
from tests.conftest import CONFIGS
from tests.helpers import assert_same_dumps, cli, read_messages

DOCUMENTED_COLUMNS = [
    "run_id",
    "tick",
    "request_id",
    "event_id",
    "event_kind",
    "agent_id",
    "agent_name",
    "location",
    "action",
    "target",
    "content",
    "goal",
    "plan",
    "raw_text",
    "prompt_tokens",
    "completion_tokens",
    "steer_E",
    "steer_A",
    "steer_C",
    "steer_O",
    "steer_N",
    "steer_layers",
    "reflected",
    "parse_ok",
    "latency_ms",
]


def _run(tmp_path, run_id="e2e", *extra):
    return cli(
        str(CONFIGS / "run.fast.yaml"),
        "--mock-model",
        "--run-id",
        run_id,
        "--set",
        "ticks=6",
        "--set",
        "population.agents=12",
        "--set",
        f"storage.root={tmp_path}/st",
        *extra,
    )


def test_mock_run_writes_documented_dumps(tmp_path):
    proc = _run(tmp_path, "e2e", "--live", "--no-color")
    assert proc.returncode == 0, proc.stderr
    assert "TICK 0 |" in proc.stdout and "SIMULATION COMPLETE" in proc.stdout
    assert "\x1b[" not in proc.stdout  # --no-color: plain text
    run = tmp_path / "st" / "dumps" / "e2e"
    ticks = sorted((run / "messages").glob("tick_*.parquet"))
    assert [t.name for t in ticks] == [f"tick_{i:06d}.parquet" for i in range(6)]
    assert pq.read_schema(ticks[0]).names == DOCUMENTED_COLUMNS
    assert pq.read_schema(ticks[0]).equals(MESSAGE_SCHEMA)
    msgs = read_messages(run)
    assert set(msgs["tick"]) == set(range(6))
    assert msgs.groupby("tick")["event_id"].nunique().max() <= 12
    agents = pq.read_table(run / "agents.parquet").to_pandas()
    assert len(agents) == 12
    assert list(agents.columns[:5]) == ["run_id", "agent_id", "agent_name", "age", "home"]
    # one naming everywhere: agents and messages join on agent_id (and run_id)
    merged = msgs.merge(agents, on=["run_id", "agent_id"], validate="many_to_one")
    assert len(merged) == len(msgs)
    assert (merged["agent_name_x"] == merged["agent_name_y"]).all()
    # the applied coefficients are the agents' traits (mock backend applies them as given)
    assert (merged["steer_E"] == merged["E"]).all()
    perf = pq.read_table(run / "perf.parquet")
    assert perf.schema.equals(PERF_SCHEMA) and perf.num_rows == 6
    assert set(perf.column("run_id").to_pylist()) == {"e2e"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["ticks_completed"] == 6
    assert manifest["config"]["population"]["agents"] == 12
    assert manifest["versions"]["python"]
    assert not list(run.rglob(".tmp-*"))


def test_same_seed_same_dumps_other_seed_differs(tmp_path):
    assert _run(tmp_path, "a").returncode == 0
    assert _run(tmp_path, "b").returncode == 0
    root = tmp_path / "st" / "dumps"
    a, b = read_messages(root / "a"), read_messages(root / "b")
    assert_same_dumps(root / "a", root / "b")
    assert _run(tmp_path, "c", "--set", "seed=43").returncode == 0
    c = read_messages(root / "c")
    assert not a.drop(columns=["run_id", "latency_ms"]).equals(
        c.drop(columns=["run_id", "latency_ms"])
    )
    assert len(a) == len(b)


def test_existing_run_dir_refused_unless_overwrite(tmp_path):
    assert _run(tmp_path, "x").returncode == 0
    again = _run(tmp_path, "x")
    assert again.returncode == 2
    assert "already exists" in again.stderr and "--overwrite" in again.stderr
    assert "Traceback" not in again.stderr
    assert _run(tmp_path, "x", "--overwrite").returncode == 0


def test_dry_run_prints_resolved_config_and_writes_nothing(tmp_path):
    proc = cli(str(CONFIGS / "run.small.yaml"), "--dry-run", "--set", f"storage.root={tmp_path}/st")
    assert proc.returncode == 0
    assert "agents: 32" in proc.stdout and "ticks: 200" in proc.stdout
    assert not (tmp_path / "st").exists()


def test_storage_root_option_places_a_new_run(tmp_path):
    """--storage-root, which every command reads runs from, also places a new
    run (it was once silently ignored without --resume); ~ is expanded."""
    where = tmp_path / "elsewhere"
    args = (str(CONFIGS / "run.fast.yaml"), "--mock-model", "--set", "ticks=2")
    args += ("--set", "population.agents=4", "--run-id", "r")
    dry = cli(*args, "--storage-root", str(where), "--dry-run")
    assert dry.returncode == 0 and f"root: {where}" in dry.stdout
    proc = cli(*args, "--storage-root", str(where), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (where / "dumps" / "r" / "manifest.json").is_file()
    assert not (tmp_path / "storage").exists()
    resumed = cli("--resume", "r", "--storage-root", str(where), cwd=tmp_path)
    assert resumed.returncode == 2 and "already completed all 2 ticks" in resumed.stderr  # found

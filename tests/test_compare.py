"""steersim compare: stacked tables with run_id, keys and seed; one summary row per run."""

from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main as cli_main
from orchestrator.dumps_reader import load_run
from tests.conftest import CONFIGS
from tests.helpers import read_messages

SMALL = ["--mock-model", "--set", "population.agents=4", "--set", "max_events_per_tick=4"]


def main(argv: list[str]) -> None:
    """The CLI in-process; raises SystemExit only for a non-zero exit."""
    try:
        cli_main(argv)
    except SystemExit as exc:
        if exc.code not in (0, None):
            raise


def _run(tmp_path, run_id: str, *sets: str) -> None:
    argv = ["run", str(CONFIGS / "run.fast.yaml"), *SMALL, "--run-id", run_id]
    argv += ["--set", f"storage.root={tmp_path / 'st'}"]
    for s in sets:
        argv += ["--set", s]
    main(argv)


@pytest.fixture(scope="module")
def sweep_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("cmp")
    argv = ["sweep", str(CONFIGS / "run.fast.yaml"), *SMALL, "--name", "s", "--jobs", "2"]
    argv += ["--set", f"storage.root={root / 'st'}", "--set", "ticks=6"]
    # 24 agents all acting every tick: enough actions for the action check
    argv += ["--set", "max_events_per_tick=24"]
    argv += ["--grid", "steering.strength=0,0.2", "--grid", "population.agents=24,0"]
    argv += ["--repeat-seeds", "2"]
    with pytest.raises(SystemExit) as info:  # the agents=0 points are invalid: exit 1
        main(argv)
    assert info.value.code == 1
    return root / "st"


def test_compare_a_sweep_stacks_its_runs(sweep_root, capsys):
    main(["compare", "--sweep", "s", "--storage-root", str(sweep_root)])
    folder = sweep_root / "sweeps" / "s"
    index = pd.read_parquet(folder / "index.parquet")
    done = index[index["status"] == "complete"]
    assert len(done) == 4 and (index["status"] == "failed").sum() == 4
    runs = pd.read_parquet(folder / "runs.parquet")
    assert sorted(runs["run_id"]) == sorted(done["run_id"])
    keys = ["run_id", "steering.strength", "population.agents", "seed"]
    for table, per_run in (("messages", None), ("agents", 24), ("perf", 6)):
        df = pd.read_parquet(folder / f"{table}.parquet")
        assert list(df.columns[:4]) == keys, table
        counts = df.groupby("run_id").size()
        for run_id in done["run_id"]:
            run = load_run(sweep_root / "dumps" / run_id)
            own = {"messages": run.messages, "agents": run.agents, "perf": run.perf}[table]
            assert counts[run_id] == len(own) == (per_run or len(own)), (table, run_id)
        # the key columns carry each run's own values
        merged = df.merge(index, on="run_id", suffixes=("", "_index"))
        assert (merged["steering.strength"] == merged["steering.strength_index"]).all()
        assert (merged["seed"] == merged["seed_index"]).all()
    msgs = pd.read_parquet(folder / "messages.parquet")
    agents = pd.read_parquet(folder / "agents.parquet")
    joined = msgs.merge(agents, on=["run_id", "agent_id"], validate="many_to_one")
    assert len(joined) == len(msgs)
    summary = (folder / "summary.md").read_text()
    assert sum(line.startswith("| s-") for line in summary.splitlines()) == 4
    shares = runs[[c for c in runs.columns if c.startswith("share_")]].sum(axis=1)
    assert shares.round(9).eq(1.0).all()
    assert (folder / "action_share_vs_steering.strength.png").stat().st_size > 0
    assert (folder / "seconds_per_tick.png").stat().st_size > 0
    assert "Comparison of 4 runs" in capsys.readouterr().out


def test_compare_runs_finds_the_keys_that_differ(tmp_path):
    _run(tmp_path, "a", "ticks=2", "steering.strength=0.1")
    _run(tmp_path, "b", "ticks=3", "steering.strength=0.3")
    out = tmp_path / "cmp"
    main(["compare", "a", "b", "--storage-root", str(tmp_path / "st"), "--out", str(out)])
    runs = pd.read_parquet(out / "runs.parquet")
    assert list(runs.columns[:4]) == ["run_id", "steering.strength", "ticks", "seed"]
    assert runs["ticks"].tolist() == [2, 3] and runs["steering.strength"].tolist() == [0.1, 0.3]
    msgs = pd.read_parquet(out / "messages.parquet")
    st = tmp_path / "st" / "dumps"
    assert len(msgs) == len(read_messages(st / "a")) + len(read_messages(st / "b"))
    assert (out / "action_share_vs_ticks.png").is_file()


def test_old_dumps_read_with_the_new_names(tmp_path):
    _run(tmp_path, "old", "ticks=2")
    run = tmp_path / "st" / "dumps" / "old"
    agents = pq.read_table(run / "agents.parquet")
    legacy = agents.drop(["run_id"]).rename_columns(
        ["id", "name", *agents.column_names[3:]]
    )  # as written before agent_id/agent_name and run_id
    pq.write_table(legacy, run / "agents.parquet")
    perf = pq.read_table(run / "perf.parquet")
    pq.write_table(perf.drop(["run_id"]), run / "perf.parquet")
    dumps = load_run(run)
    assert list(dumps.agents.columns[:3]) == ["run_id", "agent_id", "agent_name"]
    assert set(dumps.agents["run_id"]) == {"old"} == set(dumps.perf["run_id"])
    joined = dumps.messages.merge(dumps.agents, on=["run_id", "agent_id"], validate="many_to_one")
    assert len(joined) == len(dumps.messages)
    assert isinstance(pa.Table.from_pandas(dumps.agents), pa.Table)


def test_compare_needs_runs_or_a_sweep(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["compare", "--storage-root", str(tmp_path)])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main(["compare", "--sweep", "nope", "--storage-root", str(tmp_path)])
    assert info.value.code == 2
    assert "no sweep 'nope'" in capsys.readouterr().err


def test_compare_carries_the_action_checks_effects(sweep_root):
    pytest.importorskip("orchestrator.analysis.action_check")
    main(["compare", "--sweep", "s", "--storage-root", str(sweep_root)])
    folder = sweep_root / "sweeps" / "s"
    runs = pd.read_parquet(folder / "runs.parquet")
    assert {f"effect_{t}" for t in "EACON"} <= set(runs.columns)
    by_strength = runs.groupby("steering.strength")["effect_E"].mean()
    # the mock's extraversion raises SAY only when steering has strength
    assert by_strength[0.2] > 2 * by_strength[0.0]
    assert (folder / "trait_effect_vs_strength.png").stat().st_size > 0

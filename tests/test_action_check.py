"""The action check: it passes a mock run whose behaviour depends on the
traits (with the right signs), and fails the same run with the coefficients
shuffled across agents in the dumps, a run with steering off, and a steered
run whose 'control' shows the same dependence; verify and analyze carry it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from agents.typing import TRAITS
from orchestrator.analysis import plots
from orchestrator.analysis.action_check import N_PERMUTATIONS, action_check, agent_actions
from orchestrator.analysis.pipeline import analyse_run
from orchestrator.dumps_reader import TRAIT_COLUMNS, load_run
from tests.analysis_helpers import copy_run, load_script, make_mock_run, png_size, rewrite_messages

AGENTS, TICKS = 24, 12


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("actions")


@pytest.fixture(scope="module")
def steered(store: Path) -> Path:
    return make_mock_run(store, run_id="steered", ticks=TICKS, agents=AGENTS)


@pytest.fixture(scope="module")
def control(store: Path) -> Path:
    return make_mock_run(
        store, run_id="control", ticks=TICKS, agents=AGENTS, overrides=("steering.enabled=false",)
    )


def check(run_dir: Path, **kw):
    d = load_run(run_dir)
    return action_check(d.messages, d.agents, **kw)


def test_trait_dependent_run_passes_with_the_right_signs(steered: Path) -> None:
    r = check(steered)
    assert r.passed, r.reason
    assert r.steered and r.source == "steer columns" and r.tested == list(TRAITS)
    assert r.p_permutation < 0.05 and N_PERMUTATIONS >= 1000
    # the mock: E raises SAY, C raises WORK, O raises MOVE, N raises REST
    for trait, verb in [("E", "SAY"), ("C", "WORK"), ("O", "MOVE"), ("N", "REST")]:
        assert r.slope[trait][verb] > 0
        assert r.ci_low[trait][verb] <= r.slope[trait][verb] <= r.ci_high[trait][verb]
    assert r.ci_low["E"]["SAY"] > 0  # the strongest effect is clear of 0
    assert sum(r.shares.values()) == pytest.approx(1.0)


def test_shuffled_coefficients_fail(steered: Path, store: Path) -> None:
    """Whole profiles moved to other agents, consistently in messages and
    agents.parquet (so the log checks cannot tell): behaviour no longer follows."""
    run = copy_run(steered, store, "shuffled")
    d = load_run(run)
    ids = sorted(d.messages["agent_id"].unique())
    rng = np.random.default_rng(7)
    moved = dict(zip(ids, rng.permutation(ids), strict=True))
    profiles = d.messages.groupby("agent_id")[list(TRAIT_COLUMNS)].first()

    def shuffle(df: pd.DataFrame) -> pd.DataFrame:
        df[list(TRAIT_COLUMNS)] = profiles.loc[df["agent_id"].map(moved)].to_numpy()
        return df

    rewrite_messages(run, shuffle)
    agents = pq.read_table(run / "agents.parquet").to_pandas()
    id_col = "agent_id" if "agent_id" in agents else "id"
    agents[list(TRAITS)] = profiles.loc[agents[id_col].map(moved)].to_numpy()
    schema = pq.read_schema(run / "agents.parquet")
    pq.write_table(
        pa.Table.from_pandas(agents, schema=schema, preserve_index=False), run / "agents.parquet"
    )
    r = check(run)
    assert not r.passed and "no dependence" in r.reason, r.reason


def test_steering_off_fails_and_is_a_control(control: Path) -> None:
    r = check(control)
    assert not r.passed and not r.steered
    assert r.source == "agents.parquet"  # the assigned traits, steer_* being 0
    assert "steering was off" in r.reason
    assert r.p_permutation >= 0.05  # and indeed nothing depends on them


def test_control_decides(steered: Path, control: Path) -> None:
    with_control = check(steered, control=check(control))
    assert with_control.passed and "control: p" in with_control.reason
    # a "control" that shows the same dependence: it is not the steering
    against_itself = check(steered, control=check(steered))
    assert not against_itself.passed and "control run shows a dependence" in against_itself.reason


def test_too_few_agents_is_inconclusive(steered: Path) -> None:
    d = load_run(steered)
    few = d.messages[d.messages["agent_id"].isin(sorted(d.messages["agent_id"].unique())[:5])]
    r = action_check(few, d.agents)
    assert not r.passed and r.reason.startswith("inconclusive")


def test_agent_actions_counts(steered: Path) -> None:
    d = load_run(steered)
    frame = agent_actions(d.messages, d.agents).frame
    acting = d.messages[d.messages["action"].isin(["MOVE", "SAY", "WORK", "REST"])]
    assert frame["n"].sum() == int(acting["parse_ok"].sum())
    shares = frame[["MOVE", "SAY", "WORK", "REST"]].sum(axis=1)
    assert np.allclose(shares[frame["n"] > 0], 1.0)


def test_verify_reports_the_action_check(steered: Path, control: Path) -> None:
    app = load_script("verify_steering").app
    args = [str(steered), "--skip-behavioural", "--skip-text", "--control", str(control)]
    res = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "Action check" in res.output and "✓ PASS  action check:" in res.output
    assert "control run:" in res.output
    off = CliRunner().invoke(app, [str(control), "--skip-behavioural", "--skip-text"])
    assert off.exit_code == 1 and "✗ FAIL  action check:" in off.output


def test_analyze_draws_behaviour_by_trait(steered: Path, tmp_path: Path) -> None:
    result = analyse_run(steered, tmp_path / "out")
    png = tmp_path / "out" / plots.BEHAVIOUR_BY_TRAIT
    assert png in result.figures and plots.BEHAVIOUR_BY_TRAIT in plots.FIGURE_FILES
    width, height = png_size(png)
    assert width > 2 * height  # five panels side by side

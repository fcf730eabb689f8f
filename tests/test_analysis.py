"""The run report and figures (analyze_simulation) on a short mock run: counts
equal counts taken straight from the Parquet files, the PNGs are real images
of a sensible size, and bad input is one line with exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from orchestrator.analysis.pipeline import analyse_run
from orchestrator.analysis.plots import FIGURE_FILES as FIGURES
from orchestrator.analysis.stats import is_reflection, per_tick_counts
from orchestrator.dumps_reader import DumpsError, default_analysis_dir, load_run, resolve_run
from tests.analysis_helpers import load_script, make_mock_run, png_size, run_script
from tests.helpers import read_messages


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mock_run(tmp_path_factory.mktemp("store"))


@pytest.fixture(scope="module")
def analysed(run_dir: Path, tmp_path_factory: pytest.TempPathFactory):
    return analyse_run(run_dir, tmp_path_factory.mktemp("analysis"))


def test_report_counts_equal_parquet(run_dir: Path, analysed) -> None:
    raw = read_messages(run_dir)
    r = analysed.report
    assert r.overview.rows == len(raw)
    assert r.overview.messages == int((raw["action"] == "SAY").sum())
    assert r.overview.ticks == raw["tick"].nunique()
    assert r.overview.agents_acting == raw["agent_id"].nunique()
    assert r.overview.agents_total == len(pd.read_parquet(run_dir / "agents.parquet"))
    assert r.actions == raw["action"].value_counts().to_dict()
    assert r.tokens.prompt_total == raw["prompt_tokens"].sum()
    assert r.tokens.completion_total == raw["completion_tokens"].sum()
    assert r.parsing.failed == int((~raw["parse_ok"]).sum())
    assert r.parsing.ok + r.parsing.failed == len(raw)
    per_agent = raw.groupby("agent_id").size()
    assert r.activity.rows_per_agent_max == per_agent.max()
    assert r.activity.most_active[0][1] == per_agent.max()
    acting = raw[raw["action"] != "REFLECT"]
    ticks = per_tick_counts(raw)
    assert ticks["actions"].sum() == len(acting)
    assert ticks["messages"].sum() == r.overview.messages
    assert ticks["parse_failures"].sum() == int((~acting["parse_ok"]).sum())


def test_report_files_carry_the_counts(run_dir: Path, analysed) -> None:
    raw = read_messages(run_dir)
    md = analysed.markdown_path.read_text()
    for action, n in raw["action"].value_counts().items():
        assert f"| {action} | {n:,} |" in md
    assert f"| actions (rows) | {len(raw):,} |" in md
    saved = json.loads(analysed.json_path.read_text())
    assert saved["overview"]["rows"] == len(raw)
    assert saved["actions"] == raw["action"].value_counts().to_dict()


def test_steering_profiles_match_agents(run_dir: Path, analysed) -> None:
    agents = pd.read_parquet(run_dir / "agents.parquet")
    prof = {p.trait: p for p in analysed.report.steering.profiles}
    for t in "EACON":
        assert prof[t].min == pytest.approx(agents[t].min(), abs=1e-6)
        assert prof[t].max == pytest.approx(agents[t].max(), abs=1e-6)
    assert analysed.report.steering.distinct_profiles == len(agents)


@pytest.mark.parametrize("name", FIGURES)
def test_figures_are_pngs_of_sensible_size(analysed, name: str) -> None:
    path = analysed.out_dir / name
    width, height = png_size(path)
    assert 600 <= width <= 4000 and 400 <= height <= 4000, (width, height)
    assert path.stat().st_size > 10_000  # drawn, not blank


def test_script_writes_to_the_default_analysis_folder(run_dir: Path) -> None:
    app = load_script("analyze_simulation").app
    res = CliRunner().invoke(app, [str(run_dir), "--quiet"])
    assert res.exit_code == 0, res.output
    out = run_dir.parent.parent / "analysis" / run_dir.name
    assert out == default_analysis_dir(run_dir, "an")
    for name in (*FIGURES, "report.md", "report.json"):
        assert (out / name).is_file(), name


def test_script_resolves_a_run_id_and_honours_out_dir(run_dir: Path, tmp_path: Path) -> None:
    app = load_script("analyze_simulation").app
    args = [run_dir.name, "--storage-root", str(run_dir.parent.parent)]
    res = CliRunner().invoke(app, [*args, "--out-dir", str(tmp_path / "figs")])
    assert res.exit_code == 0, res.output
    assert "Action distribution" in res.output
    assert sorted(p.name for p in (tmp_path / "figs").glob("*.png")) == sorted(FIGURES)


def test_resolve_run_accepts_the_messages_folder(run_dir: Path) -> None:
    assert resolve_run(run_dir / "messages") == run_dir.resolve()
    assert load_run(run_dir, num_files=3).messages["tick"].nunique() == 3


@pytest.mark.parametrize(
    "make, expected",
    [
        (lambda p: p / "missing", "no run"),
        (lambda p: p, "not a run directory"),
        (lambda p: (p / "run" / "messages").mkdir(parents=True) or p / "run", "no message files"),
    ],
    ids=["missing", "not-a-run", "no-messages"],
)
def test_bad_input_is_one_clear_line(tmp_path: Path, make, expected: str, capsys) -> None:
    from orchestrator.analysis.cli_support import run_app

    target = make(tmp_path)
    with pytest.raises(DumpsError, match=expected):
        load_run(resolve_run(target))
    with pytest.raises(SystemExit) as exc:
        run_app(load_script("analyze_simulation").app, [str(target)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and len(err.splitlines()) == 1


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    res = run_script("analyze_simulation.py", str(tmp_path / "nope"))
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1


# -- activity over time: reflection rows are not actions -----------------------------


def _rows(spec: list[tuple[int, str, str]]) -> pd.DataFrame:
    """(tick, action, event_kind) rows with the columns per_tick_counts reads."""
    return pd.DataFrame(
        {
            "tick": [t for t, _, _ in spec],
            "action": [a for _, a, _ in spec],
            "event_kind": [k for _, _, k in spec],
            "parse_ok": [True] * len(spec),
        }
    )


def test_activity_counts_leave_reflection_rows_out() -> None:
    rows = _rows(
        [
            (0, "SAY", "encounter"),
            (0, "MOVE", "solo"),
            (1, "WORK", "solo"),
            (1, "REFLECT", "reflection"),  # a reflection round: no action in the world
            (1, "REFLECT", "reflection"),
            (1, "SAY", "reflection"),  # recorded by a reflection round, whatever its action
            (2, "REFLECT", "solo"),  # REFLECT, whatever its kind
            (3, "SAY", "encounter"),
        ]
    )
    assert is_reflection(rows).tolist() == [False, False, False, True, True, True, True, False]
    counts = per_tick_counts(rows)
    assert counts["actions"].tolist() == [2, 1, 0, 1]  # tick 2 had only a reflection
    assert counts["messages"].tolist() == [1, 0, 0, 1]


def test_activity_plot_of_a_run_has_no_reflection_spikes(run_dir: Path, analysed) -> None:
    raw = read_messages(run_dir)
    assert (raw["action"] == "REFLECT").any(), "the mock run should reflect (every 5 ticks)"
    acting = raw[raw["action"] != "REFLECT"].groupby("tick").size()
    counts = per_tick_counts(raw)["actions"]
    assert counts.to_dict() == acting.reindex(counts.index, fill_value=0).to_dict()
    assert analysed.report.temporal.rows_per_tick_max == counts.max()

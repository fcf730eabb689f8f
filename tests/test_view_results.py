"""view_results: filters and summary counts equal pandas on the raw Parquet,
the table shows the rows, run ids resolve under --storage-root, bad input
exits 2 with one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.analysis.viewer import MessageFilter, summarise
from tests.analysis_helpers import load_script, make_mock_run, run_script
from tests.helpers import read_messages


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_mock_run(tmp_path_factory.mktemp("store"), run_id="view", ticks=6, agents=12)


@pytest.fixture(scope="module")
def app():
    return load_script("view_results").app


def _view(app, *args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": "200"})


@pytest.mark.parametrize(
    "flt",
    [
        MessageFilter(),
        MessageFilter(tick=2),
        MessageFilter(action="say"),
        MessageFilter(agent="agent-003"),
        MessageFilter(agent="agent-003", action="SAY", tick=4),
    ],
    ids=["all", "tick", "action", "agent-id", "combined"],
)
def test_filters_and_counts_equal_pandas(run_dir: Path, flt: MessageFilter) -> None:
    raw = read_messages(run_dir)
    keep = raw["tick"].notna()
    if flt.tick is not None:
        keep &= raw["tick"] == flt.tick
    if flt.action is not None:
        keep &= raw["action"] == flt.action.upper()
    if flt.agent is not None:
        keep &= raw["agent_id"] == flt.agent
    expected = raw[keep]
    got = flt.apply(raw)
    assert got.index.tolist() == expected.index.tolist()
    s = summarise(got, len(raw))
    assert s.rows == len(expected) and s.total_rows == len(raw)
    assert s.actions == expected["action"].value_counts().to_dict()
    assert s.parse_failures == int((~expected["parse_ok"]).sum())
    assert s.completion_tokens == expected["completion_tokens"].sum()


def test_agent_filter_takes_a_name_in_any_case(run_dir: Path) -> None:
    raw = read_messages(run_dir)
    name = raw["agent_name"].iloc[0]
    got = MessageFilter(agent=name.upper()).apply(raw)
    assert len(got) == int((raw["agent_name"] == name).sum()) > 0


def test_script_shows_table_and_summary(app, run_dir: Path) -> None:
    raw = read_messages(run_dir)
    res = _view(app, str(run_dir), "--limit", "5")
    assert res.exit_code == 0, res.output
    assert f"{len(raw):,} of {len(raw):,}" in res.output
    assert f"{len(raw) - 5:,} more rows" in res.output
    assert raw["agent_name"].iloc[0] in res.output


def test_script_resolves_run_id_and_filters(app, run_dir: Path) -> None:
    raw = read_messages(run_dir)
    n = int(((raw["tick"] == 1) & (raw["action"] == "MOVE")).sum())
    root = str(run_dir.parent.parent)
    res = _view(app, "view", "--storage-root", root, "--tick", "1", "--action", "MOVE")
    assert res.exit_code == 0, res.output
    assert f"{n:,} of {len(raw):,}" in res.output


def test_no_match_is_not_an_error(app, run_dir: Path) -> None:
    res = _view(app, str(run_dir), "--agent", "nobody")
    assert res.exit_code == 0
    assert "no rows match" in res.output


@pytest.mark.parametrize("what", ["missing", "not-a-run"])
def test_bad_input_exits_2_with_one_line(app, tmp_path: Path, what: str, capsys) -> None:
    from orchestrator.analysis.cli_support import run_app

    target = tmp_path / "missing" if what == "missing" else tmp_path
    with pytest.raises(SystemExit) as exc:
        run_app(app, [str(target)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1


def test_bad_input_in_a_real_process_has_no_traceback(tmp_path: Path) -> None:
    res = run_script("view_results.py", str(tmp_path / "missing"), cwd=tmp_path)
    assert res.returncode == 2
    err = res.stderr.strip()
    assert err.startswith("error:") and len(err.splitlines()) == 1 and "Traceback" not in err

"""Damaged run folders given to the commands that read runs (view, analyze,
verify, replay, compare, interview): each damage is one line on stderr naming
the file or key, exit code 2, no traceback, no half-written output; text from
the dumps never reaches the terminal as raw escape sequences."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from orchestrator.cli import main as cli_main
from orchestrator.dumps_reader import DumpsError, load_run
from tests.helpers import small_mock_runs


@pytest.fixture(scope="module")
def good_root(tmp_path_factory) -> Path:
    return small_mock_runs(tmp_path_factory.mktemp("runs"), ticks=3)


@pytest.fixture
def root(good_root, tmp_path) -> Path:
    """A copy of the good runs, free to damage."""
    shutil.copytree(good_root / "dumps", tmp_path / "dumps")
    return tmp_path


def _run(argv: list[str], root: Path, capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        cli_main([*argv, "--storage-root", str(root)])
    out, err = capsys.readouterr()
    return info.value.code, out, err.strip()


def _edit(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    pq.write_table(change(pq.read_table(path)), path)


def _column(name: str, values: Callable[[pa.Table], pa.Array]) -> Callable[[pa.Table], pa.Table]:
    def change(table: pa.Table) -> pa.Table:
        return table.set_column(table.column_names.index(name), name, values(table))

    return change


def _every(root: Path, folder: str, change: Callable[[pa.Table], pa.Table]) -> None:
    for path in sorted((root / "dumps" / "a" / folder).glob("tick_*.parquet")):
        _edit(path, change)


def _manifest(root: Path, **fields) -> None:
    path = root / "dumps" / "a" / "manifest.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **fields}))


def _one_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    assert "Traceback" not in err and "\n" not in err and err.startswith("error: "), err
    for fragment in fragments:
        assert fragment in err, err


# --- columns of the wrong kind, empty values, NaN


def _nan(t: pa.Table, name: str) -> pa.Array:
    return pa.array([float("nan")] * t.num_rows, t.schema.field(name).type)


WRONG_COLUMNS = {
    # before: AttributeError "Can only use .str accessor with string values" (analyze, verify)
    "content-int": ("messages", _column("content", lambda t: pa.array(range(t.num_rows)))),
    # before: TypeError "__invert__ is not supported for string dtypes" (view, analyze)
    "parse_ok-text": ("messages", _column("parse_ok", lambda t: pa.array(["yes"] * t.num_rows))),
    # before: TypeError "'<' not supported between 'str' and 'int'" (analyze)
    "agent_id-int": ("messages", _column("agent_id", lambda t: pa.array(range(t.num_rows)))),
    # before: TypeError "bad operand type for unary ~: 'NoneType'" (view)
    "parse_ok-null": ("messages", _column("parse_ok", lambda t: pa.nulls(t.num_rows, pa.bool_()))),
    # before: ValueError "cannot convert float NaN to integer" in verify's diverse check
    "steer-nan": ("messages", _column("steer_E", lambda t: _nan(t, "steer_E"))),
}


@pytest.mark.parametrize("damage", list(WRONG_COLUMNS))
@pytest.mark.parametrize(
    "argv",
    [
        ["view", "a"],
        ["analyze", "a", "-q", "--out-dir", "{tmp}/an"],
        ["verify", "a", "--skip-behavioural", "--skip-text"],
        ["compare", "a", "b", "--out", "{tmp}/cmp", "--no-plots"],
    ],
    ids=["view", "analyze", "verify", "compare"],
)
def test_a_damaged_message_column_is_one_line(root, tmp_path, capsys, damage, argv):
    folder, change = WRONG_COLUMNS[damage]
    _every(root, folder, change)
    column = damage.split("-")[0].replace("steer", "steer_E")
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _run(argv, root, capsys)
    _one_line(code, err, "tick_000000.parquet: column ", column)
    assert not (tmp_path / "an").exists() and not (tmp_path / "cmp").exists()


@pytest.mark.parametrize(
    ("where", "change", "says"),
    [
        # before: ValueError "invalid literal for int() with base 10: 'old'"
        ("agents", _column("age", lambda t: pa.array(["old"] * t.num_rows)), "column age holds"),
        # before: ValueError "Out of range float values are not JSON compliant"
        ("agents", _column("E", lambda t: _nan(t, "E")), "column E holds NaN"),
        ("memories", _column("importance", lambda t: _nan(t, "importance")), "NaN"),
        # before: KeyError nan
        ("positions", _column("location", lambda t: pa.nulls(t.num_rows, pa.string())), "empty"),
        # before: ValueError "zip() argument 2 is longer than argument 1"
        (
            "prompts",
            _column(
                "memory_scores",
                lambda t: pa.array(
                    [[*x, 1.0] for x in t["memory_scores"].to_pylist()],
                    t.schema.field("memory_scores").type,
                ),
            ),
            "memory_ids and memory_scores differ in length",
        ),
    ],
    ids=["age-text", "trait-nan", "importance-nan", "location-null", "prompt-lists"],
)
def test_replay_of_a_damaged_table_is_one_line_and_writes_nothing(
    root, capsys, where, change, says
):
    if where == "agents":
        _edit(root / "dumps" / "a" / "agents.parquet", change)
    else:
        _every(root, where, change)
    code, _, err = _run(["replay", "a"], root, capsys)
    _one_line(code, err, says)
    assert not (root / "dumps" / "a" / "replay.html").exists()


def test_replay_refuses_agents_it_cannot_show(root, capsys):
    agents = root / "dumps" / "a" / "agents.parquet"
    _edit(agents, lambda t: pa.concat_tables([t, t]))  # before: IndexError traceback
    code, _, err = _run(["replay", "a"], root, capsys)
    _one_line(code, err, "agents.parquet: agent 'agent-000' has more than one row")
    _edit(agents, lambda t: t.slice(0, t.num_rows // 2))
    _edit(agents, _column("agent_id", lambda t: pa.array([f"x{i}" for i in range(t.num_rows)])))
    code, _, err = _run(["replay", "a"], root, capsys)  # before: exit 0, a page with no events
    _one_line(code, err, "agents.parquet lacks 4 agent(s) the messages name")


# --- tick files that are not what their name says


def test_a_tick_file_holding_another_ticks_rows(root, capsys):
    tick1 = root / "dumps" / "a" / "messages" / "tick_000001.parquet"
    tick1.unlink()
    tick1.symlink_to(tick1.with_name("tick_000000.parquet"))  # before: tick 0 counted twice
    code, _, err = _run(["view", "a"], root, capsys)
    _one_line(code, err, "tick_000001.parquet: rows of ticks 0 to 0 in the file of tick 1")
    tick1.unlink()
    shutil.copy(tick1.with_name("tick_000002.parquet"), tick1)
    _edit(tick1, _column("tick", lambda t: pa.array([2**31 - 1] * t.num_rows, pa.int32())))
    with pytest.raises(DumpsError, match="rows of ticks 2147483647 to 2147483647"):
        load_run(root / "dumps" / "a")  # before: analyze allocated every tick up to it (killed)


@pytest.mark.parametrize("entry", ["folder", "broken-link"])
def test_a_tick_entry_that_is_no_file_is_not_skipped(root, capsys, entry):
    tick1 = root / "dumps" / "a" / "messages" / "tick_000001.parquet"
    tick1.unlink()
    if entry == "folder":
        tick1.mkdir()
    else:
        tick1.symlink_to(root / "nowhere.parquet")
    code, _, err = _run(["view", "a"], root, capsys)  # before: exit 0, tick 1 left out
    _one_line(code, err, "tick_000001.parquet is not a file")


# --- manifest fields of the wrong type


@pytest.mark.parametrize(
    ("fields", "argv", "says"),
    [
        # before: AttributeError "'str' object has no attribute 'get'"
        ({"model": "mock"}, ["analyze", "a", "-q", "--out-dir", "{tmp}/an"], "model must be an"),
        ({"model": [1]}, ["verify", "a", "--skip-behavioural", "--skip-text"], "model must be"),
        ({"model": "mock"}, ["replay", "a"], 'model must be an object, not "mock"'),
        ({"model": "mock"}, ["interview", "a", "--permutations", "100"], "model must be"),
        # before: AttributeError "'int' object has no attribute 'items'"
        ({"config": 5}, ["compare", "a", "b", "--out", "{tmp}/cmp"], "config must be an object"),
        ({"ticks_completed": -1}, ["view", "a"], "ticks_completed must be >= 0, not -1"),
        ({"seed": "x"}, ["view", "a"], "seed must be a whole number"),
    ],
    ids=["analyze", "verify", "replay", "interview", "compare", "ticks", "seed"],
)
def test_a_manifest_field_of_the_wrong_type_is_one_line(root, tmp_path, capsys, fields, argv, says):
    _manifest(root, **fields)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, _, err = _run(argv, root, capsys)
    _one_line(code, err, "manifest.json: ", says)
    assert not (tmp_path / "an").exists() and not (tmp_path / "cmp").exists()


def test_a_manifest_world_that_is_not_an_object(root, capsys):
    path = root / "dumps" / "a" / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest["config"]["world"]["locations"] = 5  # before: TypeError "'int' is not iterable"
    path.write_text(json.dumps(manifest))
    code, _, err = _run(["replay", "a"], root, capsys)
    _one_line(code, err, "config.world.locations must be a list, not 5")


# --- text from the dumps at the terminal and in the figures

EVIL_ID = "r\n\x1b[31mRED\x1b]0;title\x07"


@pytest.mark.parametrize(
    "argv",
    [
        ["verify", "a", "--skip-behavioural", "--skip-text"],  # before: the raw ESC and newline
        ["compare", "a", "b", "--out", "{tmp}/cmp", "--no-plots"],
    ],
    ids=["verify", "compare"],
)
def test_a_hostile_run_id_is_shown_escaped(root, tmp_path, capsys, argv):
    _manifest(root, run_id=EVIL_ID)
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    code, out, err = _run(argv, root, capsys)
    assert code in (0, 1) and "\x1b" not in out + err and "\x07" not in out + err
    assert "r\\n\\x1b[31mRED" in out


def test_a_dollar_sign_in_a_name_is_not_mathtext(root, tmp_path, capsys):
    _every(root, "messages", _column("agent_name", lambda t: pa.array(["$\\frac{$"] * t.num_rows)))
    _manifest(root, run_id="$\\frac{$")
    code, _, err = _run(["analyze", "a", "-q", "--out-dir", str(tmp_path / "an")], root, capsys)
    # before: ParseSyntaxException traceback, the folder left with one figure of four
    assert code == 0, err
    names = {p.name for p in (tmp_path / "an").iterdir()}
    assert {"report.md", "report.json", "steering_heatmap.png", "behaviour_by_trait.png"} <= names


def test_an_analysis_that_fails_midway_leaves_no_half_folder(root, tmp_path, capsys, monkeypatch):
    from orchestrator.analysis import plots

    def broken(*_args, **_kwargs):
        raise DumpsError("a figure cannot be drawn")

    monkeypatch.setattr(plots, "activity_over_time", broken)
    out = tmp_path / "an"
    code, _, err = _run(["analyze", "a", "-q", "--out-dir", str(out)], root, capsys)
    _one_line(code, err, "a figure cannot be drawn")
    assert not out.exists()  # before: the folder with two of the four figures and no report
    out.mkdir()
    (out / "report.md").write_text("the last good report")
    code, _, err = _run(["analyze", "a", "-q", "--out-dir", str(out)], root, capsys)
    assert code == 2 and [p.name for p in out.iterdir()] == ["report.md"]
    assert (out / "report.md").read_text() == "the last good report"


@pytest.mark.parametrize("name", ["manifest.json", "agents.parquet", "perf.parquet"])
@pytest.mark.parametrize("entry", ["folder", "broken-link"])
def test_a_run_file_that_is_no_file_is_not_read_as_absent(root, capsys, name, entry):
    path = root / "dumps" / "a" / name
    path.unlink()
    if entry == "folder":
        path.mkdir()
    else:
        path.symlink_to(root / "nowhere")
    code, _, err = _run(["view", "a"], root, capsys)  # before: exit 0, read as if absent
    _one_line(code, err, f"{name} is not a file")


def test_replay_of_a_run_whose_prompt_files_have_no_rows(root, capsys):
    for folder in ("messages", "prompts", "memories", "positions"):
        _every(root, folder, lambda t: t.slice(0, 0))  # a run whose ticks had no events
    code, out, err = _run(["replay", "a"], root, capsys)
    assert (code, err) == (0, "") and "x 3 ticks" in out


def test_replay_names_a_prompt_file_lacking_a_column(root, capsys):
    _every(root, "prompts", lambda t: t.drop(["user"]))
    code, _, err = _run(["replay", "a"], root, capsys)
    # before: pyarrow's schema dump, its newlines escaped into one long line
    _one_line(code, err, "prompts/tick_000000.parquet lacks the columns user")
    assert "\\n" not in err

"""Bad input at the command line, continued: empty path options and sweep
names, a `~user` that names no user (in a config and in an option), a --grid
value no setting takes, verify's --n-random bound, and message and prompt
files whose actions, kinds or request ids a run never writes. Each is one line
on stderr naming the option, key or file, exit code 2, and nothing written."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from agents.errors import ModelError
from orchestrator.config_loader import load_config
from orchestrator.errors import ConfigError
from tests.helpers import cli_exit, small_mock_runs

NO_USER = "~nosuchuser-steersim"  # a `~user` no system has
EMPTY = "the value is empty; name a path, or leave the option out"


def _tree(folder: Path) -> dict[str, tuple[bool, int]]:
    """Every entry under `folder`: whether it is a folder, and its size."""
    return {str(p): (p.is_dir(), p.lstat().st_size) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory) -> Path:
    return small_mock_runs(tmp_path_factory.mktemp("hostile_s17"))


@pytest.fixture
def runs(small_runs, tmp_path) -> Path:
    """A copy of the good runs under the test's own folder, free to damage."""
    shutil.copytree(small_runs / "dumps", tmp_path / "st" / "dumps")
    return tmp_path / "st"


@pytest.fixture
def config(write_yaml, tmp_path) -> Path:
    return write_yaml(
        "sw.yaml",
        f"ticks: 1\nmax_events_per_tick: 2\npopulation: {{agents: 2}}\n"
        f"model: {{backend: mock}}\nstorage: {{root: {tmp_path / 'st'}}}\n",
    )


@pytest.fixture(autouse=True)
def _no_such_user() -> None:
    if os.path.expanduser(NO_USER) != NO_USER:
        pytest.skip(f"{NO_USER} is a user here")


def _argv(argv: list[str], runs: Path, config: Path) -> list[str]:
    return [a.replace("{st}", str(runs)).replace("{cfg}", str(config)) for a in argv]


# --- 1. empty values: refused, not read as the default or as '.'

EMPTY_OPTIONS = {
    # before: a new run under the config's storage.root, exit 0
    "run --storage-root": ["run", "{cfg}", "--storage-root", ""],
    # before: "no run 'a' ... under dumps": the cwd was searched
    "view --storage-root": ["view", "a", "--storage-root", ""],
    "analyze --storage-root": ["analyze", "a", "--storage-root", ""],
    "verify --storage-root": ["verify", "a", "--storage-root", ""],
    "replay --storage-root": ["replay", "a", "--storage-root", ""],
    "interview --storage-root": ["interview", "a", "--storage-root", ""],
    "compare --storage-root": ["compare", "a", "b", "--storage-root", "", "--no-plots"],
    # before: the benchmark ran with storage root '' (the cwd)
    "benchmark --storage-root": ["benchmark", "batching", "--storage-root", ""],
    # before: exit 0 and no JSON written
    "view --json": ["view", "a", "--storage-root", "{st}", "--json", ""],
    "analyze --json": ["analyze", "a", "-q", "--storage-root", "{st}", "--json", ""],
    "verify --json": ["verify", "a", "--skip-text", "--storage-root", "{st}", "--json", ""],
    "interview --json": ["interview", "a", "--storage-root", "{st}", "--json", ""],
    "benchmark --json": ["benchmark", "engine", "--json", ""],
    # before: the report, comparison or interview written into the cwd
    "analyze --out-dir": ["analyze", "a", "-q", "--storage-root", "{st}", "--out-dir", ""],
    "verify --out-dir": ["verify", "a", "--save", "--storage-root", "{st}", "--out-dir", ""],
    "compare --out": ["compare", "a", "b", "--storage-root", "{st}", "--out", "", "--no-plots"],
    "interview --out": ["interview", "a", "--storage-root", "{st}", "--out", ""],
    "replay --out": ["replay", "a", "--storage-root", "{st}", "--out", ""],
}


@pytest.mark.parametrize("case", list(EMPTY_OPTIONS))
def test_an_empty_path_option_is_refused_before_anything_is_written(
    runs, config, tmp_path, capsys, case
):
    before = _tree(tmp_path)
    code, err = cli_exit(_argv(EMPTY_OPTIONS[case], runs, config), capsys)
    option = case.split()[1]
    assert (code, err) == (2, f"error: {option}: {EMPTY}")
    assert _tree(tmp_path) == before


def test_an_empty_sweep_name_is_refused(config, tmp_path, capsys):
    # before: --name '' was the config file's name: a sweep "sw", exit 0
    argv = ["sweep", str(config), "--grid", "ticks=1,2", "--name", ""]
    code, err = cli_exit(argv, capsys)
    assert code == 2 and "\n" not in err
    assert err.startswith("error: --name: invalid sweep name '': use 1-128 letters")
    assert not (tmp_path / "st").exists()


# --- 2. a ~user of no user: refused, not a folder named '~nosuchuser'


def test_a_storage_root_of_no_user_is_refused_in_a_config(write_yaml, tmp_path):
    config = write_yaml("c.yaml", f"ticks: 1\nstorage: {{root: {NO_USER}/x}}\n")
    with pytest.raises(ConfigError) as info:  # before: storage.root '~nosuchuser/x', valid
        load_config(config)
    assert str(info.value).endswith(
        f"c.yaml: storage.root: {NO_USER} cannot be expanded (no user "
        f"'{NO_USER[1:]}'); give the full path instead (got '{NO_USER}/x')"
    )


@pytest.mark.parametrize(
    "argv",
    [
        ["run", "{cfg}", "--storage-root", f"{NO_USER}/x"],  # before: wrote ./~nosuchuser/x
        ["run", "{cfg}", f"--storage-root={NO_USER}/x", "--dry-run"],
        ["view", "a", "--storage-root", f"{NO_USER}/x"],  # before: RuntimeError traceback
        ["compare", "a", "b", "--storage-root", f"{NO_USER}/x", "--no-plots"],
        # before: the analysis folder was written, then a RuntimeError traceback
        ["analyze", "a", "-q", "--storage-root", "{st}", "--json", f"{NO_USER}/r.json"],
        ["analyze", "a", "-q", "--storage-root", "{st}", "--out-dir", f"{NO_USER}/an"],
        ["replay", "a", "--storage-root", "{st}", "--out", f"{NO_USER}/r.html"],
    ],
    ids=["run", "run-dry", "view", "compare", "analyze-json", "analyze-out", "replay-out"],
)
def test_an_option_of_no_user_is_one_line_and_nothing_written(runs, config, tmp_path, capsys, argv):
    argv = _argv(argv, runs, config)
    option = next(a for a in argv if f"{NO_USER}/" in a)
    value = option.partition("=")[2] or option
    name = option.partition("=")[0] if "=" in option else argv[argv.index(option) - 1]
    before = _tree(tmp_path)
    code, err = cli_exit(argv, capsys)
    assert (code, err) == (
        2,
        f"error: {name}: {value!r}: {NO_USER} cannot be expanded (no user "
        f"'{NO_USER[1:]}'); give the full path instead",
    )
    assert _tree(tmp_path) == before


def test_a_run_or_model_of_no_user_is_one_line(runs, capsys):
    from agents.config import ModelConfig
    from agents.model_loading import resolve_model_path

    # before: RuntimeError "Could not determine home directory." tracebacks
    code, err = cli_exit(["view", f"{NO_USER}/a"], capsys)
    assert (code, err) == (
        2,
        f"error: run '{NO_USER}/a': {NO_USER} cannot be expanded (no user "
        f"'{NO_USER[1:]}'); give the full path instead",
    )
    with pytest.raises(ModelError, match=rf"^model.name_or_path '{NO_USER}/m': {NO_USER} cannot"):
        resolve_model_path(ModelConfig(name_or_path=f"{NO_USER}/m"), runs)


@pytest.mark.parametrize(
    "key",
    ["steering: {vectors: %s}", "steering: {pairs: %s}", "optimization: {offload_folder: %s}"],
)
def test_config_paths_expand_home_and_refuse_a_user_of_none(write_yaml, tmp_path, monkeypatch, key):
    # before: '~/v.safetensors' was looked up literally ("no such file"), '~/off' made
    # a folder named '~' in the cwd, and a ~user of no user passed validation
    name = key.split("{")[1].split(":")[0]
    section = key.split(":")[0]
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    got = load_config(write_yaml("h.yaml", "ticks: 1\n" + key % "~/x" + "\n")).config
    assert getattr(getattr(got, section), name) == str(tmp_path / "home" / "x")
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml("u.yaml", "ticks: 1\n" + key % f"{NO_USER}/x" + "\n"))
    assert str(info.value).endswith(
        f"u.yaml: {section}.{name}: {NO_USER} cannot be expanded (no user "
        f"'{NO_USER[1:]}'); give the full path instead (got '{NO_USER}/x')"
    )


# --- 3. a --grid value no setting takes is the grid's fault


def test_a_non_finite_grid_value_names_grid(config, tmp_path, capsys):
    # before: "error: --grid: no point of the sweep is valid: --set: ticks: nan ..."
    for values, shown in (("ticks=.nan", "nan"), ("ticks=1,.inf", "inf")):
        code, err = cli_exit(["sweep", str(config), "--grid", values, "--dry-run"], capsys)
        assert (code, err) == (2, f"error: --grid: ticks: {shown} is not a finite number")
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        # before: ignored, and the sweep ran locally (here: a local sweep's files written)
        (["--slurm-param", "slurm_partition=gpu"], "error: --slurm-param: only with --slurm"),
        # before: a malformed one passed a dry run; only the real submission refused it
        (
            ["--slurm", "--dry-run", "--slurm-param", "partition"],
            "error: --slurm-param: expected KEY=VALUE, got 'partition'",
        ),
    ],
    ids=["without-slurm", "malformed-in-a-dry-run"],
)
def test_slurm_params_are_checked_before_the_sweep(config, tmp_path, capsys, extra, said):
    argv = ["sweep", str(config), "--grid", "ticks=1,2", *extra]
    assert cli_exit(argv, capsys) == (2, said)
    assert not (tmp_path / "st").exists()


def test_an_invalid_grid_point_names_grid(config, capsys):
    # before: the point was listed as "invalid: --set: ticks: ..."
    argv = ["sweep", str(config), "--grid", "ticks=1,-1", "--dry-run"]
    code, out = cli_exit_stdout(argv, capsys)
    assert code == 0 and "[invalid: --grid: ticks: " in out and "--set" not in out


def cli_exit_stdout(argv: list[str], capsys) -> tuple[int, str]:
    from orchestrator.cli import main as cli_main

    with pytest.raises(SystemExit) as info:
        cli_main(argv)
    return info.value.code, capsys.readouterr().out


# --- 4. verify --n-random within bounds, checked before the run is read


@pytest.mark.parametrize("n_random", ["1001", "99999999999999999"])
def test_verify_bounds_n_random_before_the_run(small_runs, capsys, monkeypatch, n_random):
    from orchestrator.analysis import behavioural, commands

    def no_run(*_args, **_kwargs):
        raise AssertionError("the run was read before the options were checked")

    monkeypatch.setattr(commands, "run_from_cli", no_run)
    argv = ["verify", "a", "--storage-root", str(small_runs), "--n-random", n_random]
    code, err = cli_exit(argv, capsys)  # before: accepted: hours of controls, or out of memory
    assert (code, err) == (
        2,
        f"error: --n-random {n_random}: give 20 to 1,000 random-direction controls",
    )
    behavioural.check_n_random(1_000)
    behavioural.check_n_random(20)


# --- 5. replay: values and request ids a run never writes


def _edit(folder: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    for path in sorted(folder.glob("tick_*.parquet")):
        pq.write_table(change(pq.read_table(path)), path)


def _set(name: str, make: Callable[[pa.Table], list]) -> Callable[[pa.Table], pa.Table]:
    def change(table: pa.Table) -> pa.Table:
        at = table.column_names.index(name)
        return table.set_column(at, name, pa.array(make(table), table.schema.field(name).type))

    return change


def _first_is(name: str, value: object) -> Callable[[pa.Table], pa.Table]:
    return _set(name, lambda t: [value, *t[name].to_pylist()[1:]])


REPLAY_DAMAGE = {
    # before: each was shown on the page as it was, exit 0
    "action": ("messages", _first_is("action", "FLY"), "action 'FLY' in 1 row(s) is none of"),
    "event_kind": ("messages", _first_is("event_kind", "party"), "event_kind 'party' in 1 row"),
    "message-ids": (
        "messages",
        _set("request_id", lambda t: [0] * t.num_rows),
        "request_id 0 is in more than one row",
    ),
    "prompt-kind": ("prompts", _first_is("kind", "chat"), "kind 'chat' in 1 row(s) is none of"),
    # before: the last prompt of the id replaced the others: rows showed another's prompt
    "prompt-ids": (
        "prompts",
        _set("request_id", lambda t: [0] * t.num_rows),
        "request_id 0 is in more than one row",
    ),
    "prompt-agent": (
        "prompts",
        _set("agent_id", lambda t: t["agent_id"].to_pylist()[::-1]),
        "'s prompt, but the message row of that id is ",
    ),
}


@pytest.mark.parametrize("damage", list(REPLAY_DAMAGE))
def test_replay_refuses_values_a_run_never_writes(runs, capsys, damage):
    folder, change, says = REPLAY_DAMAGE[damage]
    _edit(runs / "dumps" / "a" / folder, change)
    code, err = cli_exit(["replay", "a", "--storage-root", str(runs)], capsys)
    assert code == 2 and "\n" not in err and "Traceback" not in err, err
    assert err.startswith(f"error: {runs}/dumps/a/{folder}/tick_00000"), err
    assert says in err, err
    assert not (runs / "dumps" / "a" / "replay.html").exists()


# --- found while probing: --json checked before the work, empty --items and RUN


@pytest.mark.parametrize(
    "argv",
    [
        ["analyze", "a", "-q", "--storage-root", "{st}"],
        ["view", "a", "--storage-root", "{st}"],
        ["verify", "a", "--skip-text", "--save", "--storage-root", "{st}"],
    ],
    ids=["analyze", "view", "verify"],
)
def test_a_json_file_that_cannot_be_made_is_refused_before_the_work(
    runs, config, tmp_path, capsys, argv
):
    # before: the analysis (or verification.json) was written first, then
    # "cannot write afile/r.json", exit 2 with the work half done
    (tmp_path / "afile").write_text("x")
    before = _tree(tmp_path)
    for dest, says in (
        (f"{tmp_path}/afile/r.json", f"{tmp_path}/afile is not a folder"),
        (str(tmp_path), "is a folder; name a file"),
    ):
        code, err = cli_exit([*_argv(argv, runs, config), "--json", dest], capsys)
        assert code == 2 and "\n" not in err, err
        assert err.startswith(f"error: --json: '{dest}'") and err.endswith(says), err
        assert _tree(tmp_path) == before


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        # before: "--items : not test, dev or a readable questionnaire file (is a folder)"
        (
            ["interview", "a", "--storage-root", "{st}", "--items", ""],
            "error: --items: the value is empty; give test, dev or a questionnaire file",
        ),
        # before: ". is not a run directory": '' was read as the cwd
        (["view", ""], "error: the run is empty: give a run id or a path to a run folder"),
        (
            ["verify", "a", "--storage-root", "{st}", "--control", ""],
            "error: the run is empty: give a run id or a path to a run folder",
        ),
    ],
    ids=["items", "run", "control"],
)
def test_an_empty_items_or_run_is_named_as_empty(runs, config, tmp_path, capsys, argv, says):
    before = _tree(tmp_path)
    code, err = cli_exit(_argv(argv, runs, config), capsys)
    assert (code, err) == (2, says)
    assert _tree(tmp_path) == before

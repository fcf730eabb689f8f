"""One way to name a run in every analysis script: RUN is a run id (under
--storage-root, default ./storage) or a path to a run folder (or its messages/
folder); the old --dump-dir / --messages-dir still work with a deprecation
line; naming no run, two runs or a bad one is one line and exit 2; and every
`--json PATH` means the same (write the result there, `-` = stdout)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from orchestrator.analysis.cli_support import run_app
from orchestrator.analysis.locate import run_from_cli
from orchestrator.dumps_reader import DumpsError
from tests.analysis_helpers import load_script, make_mock_run

RUN_ID = "named"
# Each script with the options that keep it quick and its output in the test's dir.
SCRIPTS = {
    "view_results": ["--limit", "3"],
    "analyze_simulation": ["--quiet"],
    "verify_steering": ["--skip-behavioural", "--skip-text"],
}
OLD_FLAGS = {"analyze_simulation": "--dump-dir", "verify_steering": "--messages-dir"}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A mock run under <tmp>/storage/dumps/named (a default storage root from <tmp>)."""
    return make_mock_run(tmp_path_factory.mktemp("home") / "storage", run_id=RUN_ID, ticks=4)


@pytest.fixture(scope="module")
def apps():
    return {name: load_script(name).app for name in SCRIPTS}


def _invoke(apps, script: str, *args: str, out_dir: Path | None = None):
    extra = [*SCRIPTS[script]]
    if script == "analyze_simulation" and out_dir is not None:
        extra += ["--out-dir", str(out_dir)]
    return CliRunner().invoke(apps[script], [*args, *extra], env={"COLUMNS": "200"})


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize("form", ["id+root", "id-default-root", "path", "messages-path"])
def test_every_script_takes_a_run_id_or_a_path(
    apps, run_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str, form: str
) -> None:
    root = run_dir.parent.parent
    if form == "id-default-root":
        monkeypatch.chdir(root.parent)  # ./storage is the default root
    args = {
        "id+root": [RUN_ID, "--storage-root", str(root)],
        "id-default-root": [RUN_ID],
        "path": [str(run_dir)],
        "messages-path": [str(run_dir / "messages")],
    }[form]
    res = _invoke(apps, script, *args, out_dir=tmp_path)
    assert res.exit_code == 0, res.output
    assert "deprecated" not in res.output


def test_the_resolver_gives_the_same_folder_for_every_form(
    run_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = run_dir.parent.parent
    expected = run_dir.resolve()
    assert run_from_cli(RUN_ID, root) == expected
    assert run_from_cli(str(run_dir)) == expected
    assert run_from_cli(str(run_dir / "messages")) == expected
    monkeypatch.chdir(root.parent)
    assert run_from_cli(RUN_ID) == expected
    assert run_from_cli("storage/dumps/" + RUN_ID) == expected  # a relative path
    with pytest.raises(DumpsError, match="no run"):
        run_from_cli(RUN_ID, root.parent / "elsewhere")  # an id is looked up only there


@pytest.mark.parametrize("script", OLD_FLAGS)
def test_old_flags_still_work_and_say_they_are_deprecated(
    apps, run_dir: Path, tmp_path: Path, script: str
) -> None:
    flag = OLD_FLAGS[script]
    value = str(run_dir / "messages") if flag == "--messages-dir" else str(run_dir)
    res = _invoke(apps, script, flag, value, out_dir=tmp_path)
    assert res.exit_code == 0, res.output
    warnings = [line for line in res.stderr.splitlines() if "deprecated" in line]
    assert len(warnings) == 1 and flag in warnings[0]
    helped = CliRunner().invoke(apps[script], ["--help"], env={"COLUMNS": "200"})
    assert flag not in helped.output  # hidden from --help


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(
    "args, expected",
    [
        (["nope"], "no run 'nope'"),
        ([], "missing RUN"),
        (["{run}", "--dump-dir", "{run}"], "name the run once"),
    ],
    ids=["unknown-id", "no-run", "named-twice"],
)
def test_bad_run_names_are_one_line_and_exit_2(
    apps, run_dir: Path, script: str, args: list[str], expected: str, capsys
) -> None:
    flag = OLD_FLAGS.get(script, "--dump-dir")
    argv = [a.format(run=run_dir).replace("--dump-dir", flag) for a in args]
    with pytest.raises(SystemExit) as exc:
        run_app(apps[script], [*argv, *SCRIPTS[script]])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and expected in err and len(err.splitlines()) == 1, err


# -- --json: one meaning everywhere -----------------------------------------------------

JSON_KEYS = {
    "view_results": {"run_id", "summary", "rows"},
    "analyze_simulation": {"overview", "actions", "temporal"},
    "verify_steering": {"run_id", "passed", "checks"},
}


@pytest.mark.parametrize("script", SCRIPTS)
def test_json_writes_the_result_to_a_file(apps, run_dir: Path, tmp_path: Path, script) -> None:
    dest = tmp_path / "out" / "result.json"
    res = _invoke(apps, script, str(run_dir), "--json", str(dest), out_dir=tmp_path)
    assert res.exit_code == 0, res.output
    data = json.loads(dest.read_text())
    assert JSON_KEYS[script] <= set(data)


@pytest.mark.parametrize("script", SCRIPTS)
def test_json_dash_is_stdout_and_only_json(apps, run_dir: Path, tmp_path: Path, script) -> None:
    res = _invoke(apps, script, str(run_dir), "--json", "-", out_dir=tmp_path)
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)  # the human text went to stderr
    assert JSON_KEYS[script] <= set(data)
    assert res.stderr.strip()


def test_view_json_rows_follow_the_filters_and_limit(apps, run_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "v.json"
    res = _invoke(apps, "view_results", str(run_dir), "--action", "SAY", "--json", str(dest))
    assert res.exit_code == 0, res.output
    data = json.loads(dest.read_text())
    assert data["run_id"] == RUN_ID and len(data["rows"]) == min(3, data["summary"]["rows"])
    assert {row["action"] for row in data["rows"]} <= {"SAY"}

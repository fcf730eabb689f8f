"""Bad input at the CLI: one line naming the file/key, exit code 2, nothing written."""

from __future__ import annotations

import subprocess
import sys

import pytest

from orchestrator.cli import main
from tests.conftest import CONFIGS, REPO
from tests.helpers import cli


def _exit(argv, capsys):
    with pytest.raises(SystemExit) as info:
        main(argv)
    captured = capsys.readouterr()
    return info.value.code, captured.err.strip()


@pytest.mark.parametrize(
    ("config_text", "extra", "fragment"),
    [
        (None, [], "config file not found"),
        ("ticks: [1\n", [], "YAML syntax error"),
        ("template: cfg.yaml\n", [], "template cycle"),
        ("tiks: 3\n", [], "tiks: unknown key; did you mean 'ticks'?"),
        ("ticks: three\n", [], "ticks: Input should be a valid integer"),
        ("population: {agents: -1}\n", [], "population.agents: Input should be greater than 0"),
        # an option's value is reported under the option, not as the --set it becomes
        ("ticks: 2\n", ["--run-id", "../../etc"], "error: --run-id: run_id: invalid run id"),
        ("ticks: 2\n", ["--run-id", "a/b"], "error: --run-id: run_id: invalid run id"),
        ("ticks: 2\n", ["--run-id", ""], "error: --run-id: run_id: invalid run id ''"),
        (
            "ticks: 2\n",
            ["--max-events", "0"],
            "error: --max-events: max_events_per_tick: Input should be greater than 0 (got 0)",
        ),
        (
            "ticks: 2\n",
            ["--max-events", "1000000"],
            "error: --max-events: max_events_per_tick: 1000000 is above the limit 100000",
        ),
        (
            "population: {agents: 1, traits: [{name: Q, home: mars}]}\n",
            [],
            "population.traits[0].home",
        ),
        ("ticks: 2\n", ["--set", "steering.layers=[1,"], "not valid YAML"),
        (
            "population: {agents: 2, traits: [{name: Q, hobby: x}]}\n",
            [],
            "population.traits[0].hobby: unknown key; valid keys: A, C, E, N, O, age, goal",
        ),
        (
            "population: {agents: 3, traits: [{name: Q}, {name: R}, {name: Q}]}\n",
            [],
            "population.traits[2].name: duplicate persona name 'Q'",
        ),
        ("ticks: 2\n", ["--set", "memory.importance=model"], "memory.importance: model ratings"),
    ],
)
def test_bad_input_one_line_exit_2_nothing_written(tmp_path, capsys, config_text, extra, fragment):
    path = tmp_path / "cfg.yaml"
    if config_text is not None:
        path.write_text(config_text)
    argv = [str(path), "--mock-model", "--set", f"storage.root={tmp_path}/st", *extra]
    code, err = _exit(argv, capsys)
    assert code == 2
    assert fragment in err
    assert err.startswith("error: ") and "\n" not in err
    assert any(where in err for where in ("cfg.yaml", "--set", "--run-id", "--max-events"))
    assert not (tmp_path / "st").exists()


@pytest.mark.parametrize(
    ("extra", "option"),
    [
        (["--run-id", "b"], "--run-id"),  # before: "--set: overrides need a CONFIG file"
        (["--max-events", "3"], "--max-events"),
        (["--mock-model"], "--mock-model"),
        (["--set", "ticks=3"], "--set"),
    ],
)
def test_resume_without_config_names_the_option_that_needs_one(tmp_path, capsys, extra, option):
    code, err = _exit(["--resume", "r", "--storage-root", str(tmp_path / "st"), *extra], capsys)
    assert (code, err) == (
        2,
        f"error: {option}: overrides need a CONFIG file; give it with --resume and --force",
    )
    assert not (tmp_path / "st").exists()


def test_subprocess_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("template: run.fast.yaml\nmodel: {backnd: mock}\n")
    proc = cli(str(bad))
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0
    assert "Traceback" not in proc.stderr


def test_help_lists_the_commands():
    proc = cli("--help")
    assert proc.returncode == 0
    for command in ("run", "view", "analyze", "verify", "sweep", "compare", "interview"):
        assert f"  {command} " in proc.stdout


def test_version():
    proc = cli("--version")
    assert proc.returncode == 0 and proc.stdout.startswith("steersim ")


def test_help_explains_options():
    proc = cli("run", "--help")
    assert proc.returncode == 0
    for option in (
        "--live",
        "--no-color",
        "--mock-model",
        "--max-events",
        "--set",
        "--run-id",
        "--overwrite",
        "--dry-run",
    ):
        assert option in proc.stdout


def test_shipped_fast_config_dry_run_ok():
    proc = cli(str(CONFIGS / "run.fast.yaml"), "--dry-run")
    assert proc.returncode == 0 and "run_id: fast" in proc.stdout


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        # click's usage errors: once a usage block of four lines on stderr
        (
            ["run", "configs/run.fast.yaml", "--bogus"],
            "No such option: --bogus (see steersim run -h)",
        ),
        (
            # click words the range itself differently by version ("Input should be
            # greater than or equal to 1" in 8.5, "0 is not in the range x>=1." before)
            ["benchmark", "engine", "--agents", "0"],
            ("Invalid value for '--agents': ", " (see steersim benchmark engine -h)"),
        ),
        (["benchmark", "nothing"], "No such command 'nothing'"),
        (["benchmark", "engine", "--agents"], "Option '--agents' requires an argument."),
    ],
)
def test_usage_errors_are_one_line_exit_2(capsys, argv, fragment):
    code, err = _exit(argv, capsys)
    assert code == 2
    fragments = (fragment,) if isinstance(fragment, str) else fragment
    assert err.startswith("error: ") and "\n" not in err
    assert all(f in err for f in fragments), err
    assert "Usage:" not in err


def test_usage_error_of_a_script_is_one_line():
    proc = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "benchmark.py"), "engine", "--agents", "-3"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: Invalid value for '--agents'")
    assert proc.stderr.strip().count("\n") == 0


def test_help_and_version_still_exit_0(capsys):
    assert _exit(["--version"], capsys)[0] == 0
    assert _exit(["view", "--help"], capsys)[0] == 0

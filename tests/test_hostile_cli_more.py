"""More bad input at the command line: sweep options and sweep folders, compare's
--sweep and --out, interview's --permutations and --items, replay's --out, and
template paths and characters YAML does not take. Each is one line on stderr,
exit code 2, and nothing written or replaced."""

from __future__ import annotations

import json
import os
import shutil
import threading
from pathlib import Path

import pandas as pd
import pytest

from orchestrator.config_loader import load_config
from orchestrator.errors import ConfigError, SteersimError
from tests.helpers import cli_exit as _cli_exit
from tests.helpers import small_mock_runs


def _tree(folder: Path) -> dict[str, tuple[bool, int]]:
    """Every entry under `folder`: whether it is a folder, and its size."""
    return {str(p): (p.is_dir(), p.lstat().st_size) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def small_runs(tmp_path_factory) -> Path:
    return small_mock_runs(tmp_path_factory.mktemp("hostile_more"))


@pytest.fixture
def sweep_config(write_yaml, tmp_path) -> Path:
    return write_yaml(
        "sw.yaml",
        f"ticks: 1\nmax_events_per_tick: 2\npopulation: {{agents: 2}}\n"
        f"model: {{backend: mock}}\nstorage: {{root: {tmp_path / 'st'}}}\n",
    )


# --- sweep: --jobs, a swept run_id, and a sweep folder of the wrong kind


@pytest.mark.parametrize("jobs", ["0", "-3", "99999999999"])
def test_sweep_refuses_jobs_out_of_range_before_planning(sweep_config, tmp_path, capsys, jobs):
    # before: 0 and -3 passed --dry-run; 99999999999 hung filling a queue of that many
    # slots, after the sweep folder was written
    argv = ["sweep", str(sweep_config), "--grid", "ticks=1,2", "--gpus", "none", "--dry-run"]
    code, err = _cli_exit([*argv, "--jobs", jobs], capsys)
    assert (code, err) == (2, f"error: --jobs: give 1 to 10000 runs at a time, got {jobs}")
    assert not (tmp_path / "st").exists()


def test_sweep_refuses_a_swept_run_id(sweep_config, capsys):
    # before: accepted; every point's --run-id replaced it, so the runs were the same run
    argv = ["sweep", str(sweep_config), "--grid", "run_id=x,y", "--dry-run"]
    code, err = _cli_exit(argv, capsys)
    assert (
        code == 2 and err.startswith("error: --grid: run_id: cannot be swept") and "\n" not in err
    )


@pytest.mark.parametrize(
    ("blocker", "is_folder", "says"),
    [
        ("st", False, "cannot create the sweep folder {st}/sweeps/sw: {st} is not a folder"),
        ("st/sweeps", False, "cannot create the sweep folder {st}/sweeps/sw: {st}/sweeps is"),
        ("st/sweeps/sw", False, "{st}/sweeps/sw: {st}/sweeps/sw is not a folder"),
        ("st/sweeps/sw/sweep.json", True, "{st}/sweeps/sw/sweep.json is not a file"),
        ("st/sweeps/sw/index.parquet", True, "{st}/sweeps/sw/index.parquet is not a file"),
        ("st/sweeps/sw/logs", False, "{st}/sweeps/sw/logs is not a folder"),
    ],
)
def test_a_sweep_folder_of_the_wrong_kind_is_one_line_and_nothing_written(
    sweep_config, tmp_path, capsys, blocker, is_folder, says
):
    # before: FileExistsError / IsADirectoryError tracebacks, some after sweep.json was written
    path = tmp_path / blocker
    path.parent.mkdir(parents=True, exist_ok=True)
    path.mkdir() if is_folder else path.write_text("x")
    before = _tree(tmp_path / "st") if (tmp_path / "st").is_dir() else {}
    argv = ["sweep", str(sweep_config), "--grid", "ticks=1,2", "--gpus", "none"]
    code, err = _cli_exit(argv, capsys)
    assert code == 2 and "\n" not in err and says.format(st=tmp_path / "st") in err
    if before:
        assert _tree(tmp_path / "st") == before


# --- compare: a --sweep name outside the sweeps folder, an --out that is a run


def _copy_runs(small_runs: Path, root: Path) -> Path:
    for run_id in ("a", "b"):
        shutil.copytree(small_runs / "dumps" / run_id, root / "dumps" / run_id)
    return root


def test_compare_refuses_a_sweep_name_that_leaves_the_sweeps_folder(small_runs, tmp_path, capsys):
    # before: --sweep ../../outside read a sweep index outside the storage root and wrote
    # the comparison's tables into that folder, exit 0
    root = _copy_runs(small_runs, tmp_path / "st")
    (root / "sweeps").mkdir()  # the path goes through it
    outside = tmp_path / "outside"
    outside.mkdir()
    index = pd.DataFrame(
        {"run_id": ["a"], "seed": [42], "status": ["complete"], "path": ["dumps/a"]}
    )
    index.to_parquet(outside / "index.parquet")
    (outside / "sweep.json").write_text(json.dumps({"grid": {}}))
    before = _tree(outside)
    argv = ["compare", "--sweep", "../../outside", "--storage-root", str(root), "--no-plots"]
    code, err = _cli_exit(argv, capsys)
    assert code == 2 and "\n" not in err
    assert err.startswith("error: --sweep: invalid sweep name '../../outside'")
    assert _tree(outside) == before


def test_compare_refuses_an_out_folder_that_is_a_run(small_runs, tmp_path, capsys):
    # before: exit 0, and run a's own agents.parquet and perf.parquet were replaced by the
    # comparison's stacked tables
    root = _copy_runs(small_runs, tmp_path / "st")
    run = root / "dumps" / "a"
    before = {p.name: p.read_bytes() for p in run.glob("*.parquet")}
    argv = ["compare", "a", "b", "--storage-root", str(root), "--no-plots", "--out", str(run)]
    code, err = _cli_exit(argv, capsys)
    assert (code, err) == (
        2,
        f"error: --out {run} is a run folder; its agents.parquet and perf.parquet would be "
        "replaced: name another folder",
    )
    assert {p.name: p.read_bytes() for p in run.glob("*.parquet")} == before


# --- interview: --permutations and --items files that are no regular file


def _no_model(*_args, **_kwargs):
    raise AssertionError("the run was opened before the options were checked")


@pytest.mark.parametrize("permutations", ["1000001", "99999999999999999"])
def test_interview_bounds_permutations_before_the_model(
    small_runs, capsys, monkeypatch, permutations
):
    from orchestrator.experiments import interview

    monkeypatch.setattr(interview, "open_run_state", _no_model)
    argv = ["interview", "a", "--storage-root", str(small_runs), "--no-bare"]
    code, err = _cli_exit([*argv, "--permutations", permutations], capsys)
    # before: a (P x agents) array of 2.78 EiB: a MemoryError traceback after the model loaded
    assert (code, err) == (
        2,
        f"error: --permutations {permutations}: give 100 to 1,000,000 permutations per p-value",
    )
    assert interview.InterviewPlan(permutations=1_000_000).permutations == 1_000_000


def test_interview_items_must_be_a_bounded_regular_file(tmp_path):
    from orchestrator.experiments.interview import MAX_ITEMS_BYTES, load_items

    # before: /dev/zero was read until the process was killed for memory; a device is
    # refused for what it is
    with pytest.raises(SteersimError, match=r"^--items /dev/null: .*\(not a regular file\)$"):
        load_items("/dev/null")
    big = tmp_path / "big.json"
    with big.open("wb") as fh:
        fh.truncate(MAX_ITEMS_BYTES + 1)  # sparse: nothing is written
    with pytest.raises(SteersimError, match=r"\(larger than 4,194,304 bytes\)$"):
        load_items(str(big))
    with pytest.raises(SteersimError, match=r"\(is a folder\)$"):
        load_items(str(tmp_path))


def test_interview_items_fifo_does_not_block(tmp_path):
    from orchestrator.experiments.interview import load_items

    fifo = tmp_path / "items.json"
    os.mkfifo(fifo)
    errors: list[BaseException] = []

    def load() -> None:
        try:
            load_items(str(fifo))
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            errors.append(exc)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=20)
    if worker.is_alive():  # before: blocked in open() until a writer came; release it
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        worker.join(timeout=20)
        pytest.fail("--items on a FIFO blocked")
    assert len(errors) == 1 and isinstance(errors[0], SteersimError)
    assert str(errors[0]).endswith("(not a regular file)")


# --- replay: --out that is no regular file


def test_replay_out_that_is_a_fifo_is_refused_and_left_alone(small_runs, tmp_path, capsys):
    # before: the page was renamed over it: the FIFO (or a device such as /dev/full,
    # for root) became a plain file, exit 0
    fifo = tmp_path / "page.html"
    os.mkfifo(fifo)
    link = tmp_path / "null.html"
    link.symlink_to("/dev/null")
    for out in (fifo, link):
        argv = ["replay", "a", "--storage-root", str(small_runs), "--out", str(out)]
        code, err = _cli_exit(argv, capsys)
        assert (code, err) == (2, f"error: --out {out} is not a regular file; name a file to write")
    assert fifo.is_fifo() and link.is_symlink() and Path("/dev/null").is_char_device()


# --- config files: template paths, characters YAML does not take


def test_template_with_a_nul_character_is_one_line(write_yaml):
    config = write_yaml("c.yaml", 'template: "a\\0b.yaml"\n')
    with pytest.raises(ConfigError) as info:  # before: ValueError from Path.resolve()
        load_config(config)
    assert str(info.value).endswith("c.yaml: template: contains a NUL character")


def test_template_that_is_a_folder_or_a_fifo_says_so(write_yaml, tmp_path):
    # before: "template file 'sub' not found", for a folder that is there
    (tmp_path / "sub").mkdir()
    with pytest.raises(ConfigError, match=r"template file 'sub': is a folder, not a config file$"):
        load_config(write_yaml("c.yaml", "template: sub\n"))
    os.mkfifo(tmp_path / "pipe.yaml")
    with pytest.raises(ConfigError, match=r"template file 'pipe.yaml': not a regular file$"):
        load_config(write_yaml("d.yaml", "template: pipe.yaml\n"))


def test_a_control_character_names_its_line_and_what_it_is(write_yaml):
    # before: "c.yaml: YAML syntax error at invalid YAML" (a reader error has no mark)
    config = write_yaml("c.yaml", "ticks: 2\nrun_id: a\x07b\n")
    with pytest.raises(ConfigError) as info:
        load_config(config)
    assert str(info.value).endswith(
        "c.yaml: YAML syntax error at line 2, column 10: character #x0007: "
        "control characters are not allowed"
    )
    with pytest.raises(ConfigError) as info:
        load_config(write_yaml("d.yaml", "ticks: 2\n"), ["run_id=a\x01"])
    assert str(info.value) == (
        "--set: run_id: value 'a\\x01' is not valid YAML "
        "(character #x0001: control characters are not allowed)"
    )

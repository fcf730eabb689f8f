"""A terminal or pipe whose encoding cannot hold the output's characters
(PYTHONIOENCODING=ascii, a Latin-1 locale, a redirect on Windows): the
commands finish and show such characters escaped. Before, `view`, `analyze`
and a `--live` run ended in a UnicodeEncodeError traceback on the check
marks and dashes of their output."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import CONFIGS, REPO
from tests.helpers import small_mock_runs


def _run(*args: str, encoding: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONIOENCODING": encoding}
    return subprocess.run(
        [sys.executable, "-m", "orchestrator.cli", *args],
        capture_output=True,
        timeout=300,
        env=env,
    )


@pytest.mark.parametrize("encoding", ["ascii", "latin-1"])
def test_commands_finish_on_a_narrow_terminal(tmp_path, encoding):
    root = small_mock_runs(tmp_path / "s")
    for args in (
        ("view", "a"),
        ("analyze", "a"),
        (str(CONFIGS / "run.demo.yaml"), "--mock-model", "--live", "--set", "run_id=live"),
    ):
        proc = _run(*args, "--storage-root", str(root), encoding=encoding)
        out = proc.stdout + proc.stderr
        assert proc.returncode == 0, out.decode(encoding, "replace")[-2000:]
        assert b"Traceback" not in out and b"UnicodeEncodeError" not in out
        out.decode(encoding)  # every byte is in the terminal's encoding
    view = _run("view", "a", "--storage-root", str(root), encoding=encoding).stdout
    assert b"\\u2713" in view  # the check mark, escaped rather than a crash

"""Unusable storage roots give one line and exit code 2 before anything is
written: a file, /dev/null, a link loop, a path under a file, dumps/ that is a
file, a read-only folder. (A disk that fills mid-run: test_reliability_kill.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from orchestrator.errors import StorageError
from orchestrator.storage import check_writable_root, run_dir_for
from tests.helpers import cli
from tests.reliability_helpers import run_args


def _file(tmp: Path) -> Path:
    (tmp / "afile").write_text("x")
    return tmp / "afile"


def _loop(tmp: Path) -> Path:
    (tmp / "loop1").symlink_to(tmp / "loop2")
    (tmp / "loop2").symlink_to(tmp / "loop1")
    return tmp / "loop1"


def _under_file(tmp: Path) -> Path:
    return _file(tmp) / "sub"


def _dumps_is_file(tmp: Path) -> Path:
    (tmp / "root").mkdir()
    (tmp / "root" / "dumps").write_text("x")
    return tmp / "root"


@pytest.mark.parametrize(
    ("make", "fragment"),
    [
        (_file, "is not a folder"),
        (lambda tmp: Path("/dev/null"), "is not a folder"),
        (_loop, "symbolic link loop|cannot resolve"),
        (_under_file, "is not a folder"),
        (_dumps_is_file, "is not a folder"),
    ],
    ids=["file", "dev-null", "symlink-loop", "under-a-file", "dumps-is-a-file"],
)
def test_unusable_root_is_one_line_exit_2(tmp_path, make, fragment):
    root = make(tmp_path)
    with pytest.raises(StorageError, match=fragment):
        check_writable_root(root)
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = cli(*run_args(root, "r"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written


def test_symlink_loop_in_resume_is_one_line(tmp_path):
    root = _loop(tmp_path)
    with pytest.raises(StorageError, match="symbolic link loop|cannot resolve"):
        run_dir_for(root, "r")
    proc = cli("--resume", "r", "--storage-root", str(root))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_read_only_root_is_one_line_then_works_once_fixed(tmp_path):
    root = tmp_path / "ro"
    root.mkdir()
    root.chmod(0o555)
    try:
        proc = cli(*run_args(root, "r"))
        assert proc.returncode == 2 and "is not writable" in proc.stderr
        assert not (root / "dumps").exists()
    finally:
        root.chmod(0o755)
    assert cli(*run_args(root, "r")).returncode == 0

"""Checks a path a config or a command line names, without importing anything
heavy: the mock backend (which never imports torch) and the steering-vector
loader refuse a missing `steering.vectors` file with the same line, and every
path given with a leading `~` is expanded by one rule (expand_home)."""

from __future__ import annotations

import os
from pathlib import Path

from agents.errors import ModelError


def existing_file(name: str | Path, key: str) -> Path:
    """`name` as a Path if it is a file; else ModelError "KEY 'NAME': no such file"."""
    path = Path(name)
    try:
        found = path.is_file()
    except OSError:  # pathlib lets ENAMETOOLONG through: a name over 255 bytes
        found = False
    if not found:
        raise ModelError(f"{key} {str(path)!r}: no such file")
    return path


def expand_home(path: str) -> str:
    """`path` with a leading `~` or `~user` expanded as a shell does. ValueError
    when it cannot be: a `~user` of no such user (or `~` with no home) was kept
    literally, so a run wrote into a folder named '~nosuchuser' in the cwd."""
    expanded = os.path.expanduser(path)
    if expanded.startswith("~"):
        head = path.split("/", 1)[0]
        who = f"no user {head[1:]!r}" if len(head) > 1 else "no home folder (HOME is not set)"
        raise ValueError(f"{head} cannot be expanded ({who}); give the full path instead")
    return expanded

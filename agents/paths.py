"""Checks a file a config names, without importing anything heavy: the mock
backend (which never imports torch) and the steering-vector loader refuse a
missing `steering.vectors` file with the same line."""

from __future__ import annotations

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

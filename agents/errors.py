"""The root of the error hierarchy. Every error a user can cause is a
SteersimError whose message is one line that names the file, key or value and
how to fix it; the CLI prints it and exits with code 2. Anything else is a bug
and keeps its traceback. The run side adds its own subclasses
(orchestrator.errors)."""

from __future__ import annotations


class SteersimError(Exception):
    """A problem with the user's input or environment (exit code 2)."""

    exit_code = 2


class ModelError(SteersimError):
    """The model cannot be found or loaded, or the steering setup does not fit it."""


def one_line(text: str) -> str:
    """Escape what would break a one-line message (newlines, control characters)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")

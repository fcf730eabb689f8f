"""The error hierarchy. Every error a user can cause is a SteersimError whose
message is one line that names the file, key or value and how to fix it; the
CLI prints it and exits with code 2. Anything else is a bug and keeps its
traceback."""

from __future__ import annotations


class SteersimError(Exception):
    """A problem with the user's input or environment (exit code 2)."""

    exit_code = 2


class ConfigError(SteersimError):
    """The config file, a template or a --set override is wrong."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source, self.key, self.detail = source, key, message
        where = f"{one_line(source)}: {one_line(key)}" if key else one_line(source)
        super().__init__(f"{where}: {one_line(message)}")


def one_line(text: str) -> str:
    """Escape what would break a one-line message (newlines, control characters)."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


class RunDirError(SteersimError):
    """The output directory is taken, unsafe or unusable."""


class ModelError(SteersimError):
    """The model cannot be found or loaded, or the steering setup does not fit it."""


class ResumeError(SteersimError):
    """A run cannot be resumed as asked."""

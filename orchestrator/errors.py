"""The run side's errors: config, run directory and resume problems. They
extend agents.errors.SteersimError, so the CLI turns each into one line and
exit code 2."""

from __future__ import annotations

from agents.errors import ModelError, SteersimError, one_line

__all__ = [
    "ConfigError",
    "ModelError",
    "ResumeError",
    "RunDirError",
    "SteersimError",
    "StorageError",
    "one_line",
]


class ConfigError(SteersimError):
    """The config file, a template or a --set override is wrong."""

    def __init__(self, source: str, key: str | None, message: str) -> None:
        self.source, self.key, self.detail = source, key, message
        where = f"{one_line(source)}: {one_line(key)}" if key else one_line(source)
        super().__init__(f"{where}: {one_line(message)}")


class RunDirError(SteersimError):
    """The output directory is taken, unsafe or unusable."""


class ResumeError(SteersimError):
    """A run cannot be resumed as asked."""


class StorageError(SteersimError):
    """The storage root cannot be written (read-only, full, not a folder, a
    link loop). Exit code 2 before the run starts; 1 when a running run has to
    stop (its checkpoint stays resumable)."""

    def __init__(self, message: str, *, exit_code: int = 2) -> None:
        self.exit_code = exit_code
        super().__init__(one_line(message))

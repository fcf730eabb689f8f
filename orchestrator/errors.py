"""The run side's errors: config, run directory and resume problems. They
extend agents.errors.SteersimError, so the CLI turns each into one line and
exit code 2."""

from __future__ import annotations

from agents.errors import ModelError, SteersimError, one_line

__all__ = ["ConfigError", "ModelError", "ResumeError", "RunDirError", "SteersimError", "one_line"]


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

"""One writer per run: an OS lock (`fcntl.flock`) on `<run_dir>/run.lock`,
held from before the run folder is touched until the final manifest is
written. A second start, `--overwrite` or `--resume` of a locked run is refused
with one line naming the holder's PID.

The kernel drops a flock when its holder dies, however it dies, so a lock
file left by a killed process is stale by construction and the next run takes
it over. The holder unlinks the file when it releases it; an acquirer checks,
after locking, that the path still names the inode it locked (otherwise it
locked a file that was just unlinked, and tries again). The file is opened
with O_NOFOLLOW: a symlink planted in its place is refused, never followed.

This module knows nothing about what a run writes; storage and assemble do."""

from __future__ import annotations

import errno
import os
import socket
import stat
import time
from pathlib import Path

from orchestrator.errors import RunDirError, StorageError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows has no flock
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = "run.lock"
_ATTEMPTS = 20  # an acquirer may race a releasing holder a few times, not forever
_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


class RunLock:
    """A held lock; `release()` (or the process's death) gives it back."""

    def __init__(self, path: Path, fd: int | None) -> None:
        self.path, self._fd = path, fd

    @classmethod
    def acquire(cls, folder: Path) -> RunLock:
        """Lock `folder` (which must exist) for this process or refuse in one line."""
        path = folder / LOCK_NAME
        if fcntl is None:  # pragma: no cover
            return cls(path, None)
        for _ in range(_ATTEMPTS):
            fd = _open_lock_file(path)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise RunDirError(_in_use(folder, path)) from None
                raise StorageError(f"cannot lock {path}: {exc.strerror}") from None
            if _same_file(path, fd):
                _write_owner(fd)
                return cls(path, fd)
            os.close(fd)  # we locked a file its holder had just unlinked: start over
        raise RunDirError(f"{path}: could not take the run's lock; try again")

    def release(self) -> None:
        """Unlink the lock file, then unlock (closing the descriptor unlocks)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            if _same_file(self.path, fd):
                self.path.unlink()
        except OSError:
            pass  # a folder that became unwritable keeps a stale, unlocked file: harmless
        finally:
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None


def holder(folder: Path) -> int | None:
    """The PID holding `folder`'s lock, 0 if held by an unknown process, None if free.
    Probes with a shared lock, so two probes never block each other."""
    path = folder / LOCK_NAME
    if fcntl is None or not os.path.lexists(path):  # pragma: no cover - no flock
        return None
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None  # a symlink or unreadable file: acquire() gives the clear error
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _owner_pid(path) or 0
        return None
    finally:
        os.close(fd)


def check_free(folder: Path) -> None:
    """Refuse at once (before a model loads) if another process holds the lock."""
    if holder(folder) is not None:
        raise RunDirError(_in_use(folder, folder / LOCK_NAME))


def _open_lock_file(path: Path) -> int:
    try:
        fd = os.open(path, _FLAGS, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RunDirError(f"{path} is a symbolic link; remove it (not followed)") from None
        raise StorageError(f"cannot create {path}: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise RunDirError(f"{path} is not a regular file; remove it")
    return fd


def _same_file(path: Path, fd: int) -> bool:
    try:
        a, b = os.stat(path, follow_symlinks=False), os.fstat(fd)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _write_owner(fd: int) -> None:
    text = f"{os.getpid()} {socket.gethostname()}\n".encode()
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text, 0)
    except OSError:
        pass  # the lock holds without its label; a refusal then names no PID


def _owner_pid(path: Path) -> int | None:
    """The PID written in the lock file; retried briefly, as the holder writes
    it right after locking."""
    for _ in range(20):
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
            try:
                text = os.read(fd, 256).decode("ascii", "replace")
            finally:
                os.close(fd)
        except OSError:
            return None
        first = text.split()[:1]
        if first and first[0].isdigit():
            return int(first[0])
        time.sleep(0.005)
    return None


def _in_use(folder: Path, path: Path) -> str:
    pid = _owner_pid(path)
    who = f"process {pid}" if pid else "another process"
    return (
        f"run {folder.name!r} is being written by {who} (lock {path}); "
        "wait for it to finish or stop it, then try again"
    )

"""Signals and a vanishing terminal, turned into orderly stops.

- SIGINT (Ctrl+C), SIGTERM and SIGHUP (the terminal closed) ask the run to
  stop after the tick in progress: dumps and checkpoint stay consistent.
- A second signal raises KeyboardInterrupt at once (once: later ones are only
  logged), and while the run writes its final manifest (`shielded`) signals
  are only logged, so the manifest always says how the run ended. Every write
  is atomic, so stopping at once corrupts nothing either.
- A broken pipe on stdout (`--live | head`) is a stop request like SIGTERM.
- Until the CLI can catch KeyboardInterrupt (its imports take a few hundred
  ms), Ctrl+C exits with code 130 and one word instead of a traceback; once
  a stopped run exits 130, later signals are ignored (ignore_late_signals).

This module knows nothing of runs; the runner and the CLI use it."""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)

STOP_SIGNALS = tuple(
    s for s in (signal.SIGINT, signal.SIGTERM, getattr(signal, "SIGHUP", None)) if s is not None
)


class StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None
        self.shielded = False  # writing the final manifest: signals are logged, never raised
        self.raised = False  # KeyboardInterrupt was raised once already

    def request(self, reason: str) -> None:
        if not self.requested:
            self.requested, self.signal_name = True, reason


@contextmanager
def graceful_interrupt() -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals are only delivered to the main thread
        return

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        if not flag.requested:
            flag.request(name)
            log.warning("%s: finishing the current tick, then stopping (again to stop now)", name)
        elif flag.shielded or flag.raised:
            log.warning("%s: already stopping; writing the manifest", name)
        else:
            flag.raised = True
            raise KeyboardInterrupt

    previous = {s: signal.signal(s, handler) for s in STOP_SIGNALS}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)


def exit_quietly_on_interrupt() -> None:
    """Until default_interrupts(): Ctrl+C exits 130 with one word, whatever
    import it lands in (the CLI calls this before its heavy imports)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, _exit_interrupted)


def default_interrupts() -> None:
    """Python's own Ctrl+C again (KeyboardInterrupt), once the CLI catches it."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGINT, signal.default_int_handler)


def ignore_late_signals() -> None:
    """Once a stopped run has written everything and the CLI exits 130: a
    further Ctrl+C (or SIGTERM, SIGHUP) is ignored. While the interpreter
    shuts down, Python resets its handlers to the default action, so a signal
    landing then (the third of three quick Ctrl+Cs, say) would end the
    process by signal instead of with 130."""
    if threading.current_thread() is threading.main_thread():
        for s in STOP_SIGNALS:
            signal.signal(s, signal.SIG_IGN)


def _exit_interrupted(_signum: int, _frame: object) -> None:
    try:
        os.write(2, b"interrupted\n")
    finally:
        os._exit(130)  # nothing is written before the CLI is ready: nothing to clean up


def silence_stdout() -> None:
    """After a broken pipe on stdout, point it at /dev/null, so that later
    prints and the interpreter's final flush do not fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass

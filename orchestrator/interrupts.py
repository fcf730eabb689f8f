"""Graceful SIGINT / SIGTERM: the first signal asks the run to stop after the
tick in progress (dumps and checkpoint stay consistent); a second one raises
KeyboardInterrupt at once. Every write is atomic, so even that corrupts
nothing: the last complete checkpoint stays valid."""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)


class StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name: str | None = None


@contextmanager
def graceful_interrupt() -> Iterator[StopFlag]:
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag  # signals are only delivered to the main thread
        return

    def handler(signum: int, _frame: object) -> None:
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True
        flag.signal_name = signal.Signals(signum).name
        log.warning(
            "%s: finishing the current tick, then stopping (again to stop now)", flag.signal_name
        )

    previous = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in previous.items():
            signal.signal(s, h)

"""Runs the steersim command line with one fault injected at an exact moment,
for the crash-safety tests: `python tests/fault_launcher.py SPEC ARGS...`.

SPEC is JSON: {"action": A, "nth": N}. The durable steps of a run are the
calls to os.fsync (a file's bytes reach the disk: temp files, journal and
row-store appends) and os.replace (an atomic rename: a file is committed);
they are numbered in call order, on every thread ({"only": "replace"} numbers
only the renames).
- "kill_before" / "kill_after": SIGKILL the process just before / after step N;
- "enospc": step N and every later one fail with "No space left on device";
- "enospc_once": only step N fails so (space is freed right after);
- "count": no fault; the number of steps is written to stderr at exit as
  `steps: N`.
Only the test suite uses this; the program itself knows nothing of it."""

from __future__ import annotations

import atexit
import errno
import json
import os
import signal
import sys
import threading

SPEC = json.loads(sys.argv[1])
_lock = threading.Lock()
_count = 0


def _wrap(real, name: str):
    def step(*args, **kwargs):
        global _count
        if SPEC.get("only", name) != name:
            return real(*args, **kwargs)
        with _lock:
            _count += 1
            n = _count
        action, nth = SPEC["action"], SPEC.get("nth", 0)
        if action == "kill_before" and n == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        if (action == "enospc" and n >= nth) or (action == "enospc_once" and n == nth):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        out = real(*args, **kwargs)
        if action == "kill_after" and n == nth:
            os.kill(os.getpid(), signal.SIGKILL)
        return out

    return step


if SPEC["action"] == "count":
    atexit.register(lambda: sys.stderr.write(f"steps: {_count}\n"))
os.fsync = _wrap(os.fsync, "fsync")
os.replace = _wrap(os.replace, "replace")
sys.argv = ["steersim", *sys.argv[2:]]
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from orchestrator.cli import main  # noqa: E402 - after the patches, on purpose

main()

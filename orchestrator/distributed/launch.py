"""The built-in launcher: `python -m orchestrator.cli CONFIG` with
`distributed.enabled` starts the ranks on this machine through
torch.distributed's elastic launch (what torchrun runs; a free local port,
no restarts) and waits for them.

Each rank runs `python -m orchestrator.distributed.rank INVOCATION.json`
(torch starts every rank in its own session, so the terminal's Ctrl+C
reaches the launcher only). Ctrl+C: the launcher passes the first two on to
rank 0 (the first: finish the tick, then stop every rank; the second: stop
now); a third, or one before rank 0 is up, ends every rank. A rank that fails
ends the others; its error is printed once (by the rank itself, or here when
it died of a signal) and its exit code is the launcher's.

Knows nothing about the run beyond the invocation file it passes on."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
import uuid
from collections.abc import Callable, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

RANK_MODULE = "orchestrator.distributed.rank"
MONITOR_INTERVAL_S = 0.2  # how often the launcher looks at its ranks
STOP_AFTER_INTERRUPTS = 3  # the Ctrl+C that makes the launcher end every rank
RANK0_PID_FILE = "rank0.pid"  # beside the invocation file: where Ctrl+C goes


def launch(
    nproc: int,
    entrypoint: str | Callable[..., Any],
    args: Sequence[Any] = (),
    *,
    rank0_pid_file: Path | None = None,
) -> int:
    """Run `entrypoint(*args)` (a program, or a picklable function) on `nproc`
    local ranks; the exit code of the run (0 when every rank succeeded).
    Ctrl+C goes to the pid rank 0 wrote into `rank0_pid_file` (see above)."""
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    options: dict[str, Any] = dict(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=f"steersim-{uuid.uuid4().hex[:12]}",
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",  # a free port, as torchrun --standalone
        max_restarts=0,
        monitor_interval=MONITOR_INTERVAL_S,
    )
    names = {f.name for f in fields(LaunchConfig)}
    if "signals_to_handle" in names:  # SIGINT stays with the ranks (see the docstring)
        options["signals_to_handle"] = "SIGTERM,SIGHUP,SIGQUIT"
    os.environ["TORCHELASTIC_SIGNALS_TO_HANDLE"] = "SIGTERM,SIGHUP,SIGQUIT"
    logging.getLogger("torch.distributed.elastic").setLevel(logging.ERROR)
    previous = signal.signal(signal.SIGINT, _interrupt_forwarder(rank0_pid_file))
    try:
        elastic_launch(LaunchConfig(**options), entrypoint)(*args)
        return 0
    except ChildFailedError as exc:
        return _exit_code(exc)
    finally:
        signal.signal(signal.SIGINT, previous)


def launch_invocation(nproc: int, invocation_json: str) -> int:
    """Start `nproc` ranks of a run described by an Invocation's JSON."""
    with tempfile.TemporaryDirectory(prefix="steersim-launch-") as tmp:
        path = Path(tmp) / "invocation.json"
        path.write_text(invocation_json, encoding="utf-8")
        root = str(Path(__file__).resolve().parents[2])  # the ranks import this checkout
        os.environ["PYTHONPATH"] = os.pathsep.join(
            p for p in (root, os.environ.get("PYTHONPATH")) if p
        )
        return launch(
            nproc,
            sys.executable,
            ["-m", RANK_MODULE, str(path)],
            rank0_pid_file=path.with_name(RANK0_PID_FILE),
        )


def _interrupt_forwarder(pid_file: Path | None) -> Callable[[int, Any], None]:
    seen = [0]

    def handler(signum: int, _frame: Any) -> None:
        seen[0] += 1
        if seen[0] < STOP_AFTER_INTERRUPTS and pid_file is not None:
            try:
                os.kill(int(pid_file.read_text(encoding="utf-8")), signal.SIGINT)
                return
            except (OSError, ValueError):
                pass  # rank 0 is not up (or gone): end every rank
        signal.raise_signal(signal.SIGTERM)  # the elastic agent ends every rank

    return handler


def _exit_code(exc: Any) -> int:
    """The run's exit code: rank 0's when it ended on its own (it printed its
    error), else the first failure's, said here if it died of a signal."""
    failures = exc.failures
    own = failures.get(0)
    if own is not None and own.exitcode is not None and own.exitcode > 0:
        return own.exitcode
    rank, failure = exc.get_first_failure()
    code = failure.exitcode
    if code is None or code < 0:  # killed by a signal: nobody printed why
        what = failure.signal_name() if code is not None else "no exit code"
        sys.stderr.write(f"error: rank {rank} died ({what})\n")
        return 1
    return code

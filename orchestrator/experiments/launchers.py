"""How a sweep's runs are started: as local subprocesses, J at a time (each
on its own GPU where there are GPUs), or as a SLURM job array through
submitit (the optional `slurm` extra). A launcher takes jobs (an argv and
extra environment per run) and reports each one's end (exit code, the last
lines of its stderr, wall time) to a callback as it happens.

Knows nothing about configs, points or the index; the sweep does."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.errors import SteersimError

log = logging.getLogger(__name__)

TAIL_LINES = 20  # lines of a run's stderr kept for its error message


@dataclass(frozen=True, kw_only=True)
class Job:
    key: str  # the run id
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)  # added to the inherited environment
    log_path: Path | None = None  # stdout and stderr of the run


@dataclass(frozen=True, kw_only=True)
class Outcome:
    key: str
    returncode: int
    stderr_tail: str
    wall_s: float


class Launcher(Protocol):
    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job], None],
        on_end: Callable[[Outcome], None],
    ) -> bool:
        """Run the jobs; False when stopped early (Ctrl+C / SIGTERM)."""
        ...


def visible_gpus() -> list[str]:
    """The GPUs jobs may use: CUDA_VISIBLE_DEVICES when set, else what
    nvidia-smi lists, else none (no torch import: a mock sweep needs none)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [g.strip() for g in env.split(",") if g.strip() and g.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=20,
            check=True,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [line.strip() for line in out.splitlines() if line.strip()]


def _tail(text: str) -> str:
    return "\n".join(text.splitlines()[-TAIL_LINES:])


class LocalLauncher:
    """J subprocesses at a time. With GPUs, worker slot k runs its jobs with
    CUDA_VISIBLE_DEVICES set to GPU k mod (number of GPUs).

    Ctrl+C reaches the runs too (same process group): each finishes its tick
    and stops, and no further run is started. SIGTERM to the sweep is passed
    on to the runs, with the same effect."""

    def __init__(self, jobs: int = 1, gpus: Sequence[str] | None = None) -> None:
        if jobs < 1:
            raise SteersimError(f"--jobs must be >= 1, got {jobs}")
        self.jobs = jobs
        self.gpus = list(visible_gpus() if gpus is None else gpus)
        if self.gpus and jobs > len(self.gpus):
            log.warning("%d jobs share %d GPUs", jobs, len(self.gpus))
        self._stop = threading.Event()
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def run(
        self,
        jobs: Sequence[Job],
        on_start: Callable[[Job], None],
        on_end: Callable[[Outcome], None],
    ) -> bool:
        slots: queue.Queue[int] = queue.Queue()
        for k in range(self.jobs):
            slots.put(k)
        previous = _forward_sigterm(self._terminate_all)
        pool = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="sweep")
        try:
            futures = [pool.submit(self._one, job, slots, on_start) for job in jobs]
            for fut in as_completed(futures):
                outcome = fut.result()
                if outcome is not None:
                    on_end(outcome)
        except KeyboardInterrupt:
            self._stop.set()
            log.warning("stopping: the running runs finish their tick; no new run starts")
            for fut in futures:
                fut.cancel()
            for fut in futures:
                if not fut.cancelled():
                    outcome = _wait_quietly(fut)
                    if outcome is not None:
                        on_end(outcome)
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
        return not self._stop.is_set()

    def _one(self, job: Job, slots: queue.Queue[int], on_start) -> Outcome | None:
        if self._stop.is_set():
            return None
        slot = slots.get()
        try:
            if self._stop.is_set():
                return None
            env = {**os.environ, **job.env}
            if self.gpus:
                env["CUDA_VISIBLE_DEVICES"] = self.gpus[slot % len(self.gpus)]
            on_start(job)
            start = time.perf_counter()
            log_file = open(job.log_path, "w", encoding="utf-8") if job.log_path else None  # noqa: SIM115
            try:
                proc = subprocess.Popen(
                    list(job.argv),
                    stdout=log_file or subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                    env=env,
                )
                with self._lock:
                    self._procs[job.key] = proc
                _, err = proc.communicate()
            finally:
                with self._lock:
                    self._procs.pop(job.key, None)
                if log_file:
                    log_file.write(err or "")
                    log_file.close()
            return Outcome(
                key=job.key,
                returncode=proc.returncode,
                stderr_tail=_tail(err or ""),
                wall_s=time.perf_counter() - start,
            )
        finally:
            slots.put(slot)

    def _terminate_all(self) -> None:
        self._stop.set()
        with self._lock:
            for proc in self._procs.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)


def _wait_quietly(fut):
    """A running job's outcome after a first Ctrl+C; a second one stops waiting."""
    try:
        return fut.result()
    except KeyboardInterrupt:
        return None


def _forward_sigterm(action: Callable[[], None]):
    """On SIGTERM: run `action` (pass it on to the runs), then stop like Ctrl+C."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        action()
        raise KeyboardInterrupt

    return signal.signal(signal.SIGTERM, handler)


class SubmititLauncher:
    """Every run one task of a SLURM job array, through submitit (where SLURM
    is missing, submitit's local executor runs them as local processes).
    `params` go to executor.update_parameters (e.g. slurm_partition,
    timeout_min, gpus_per_node). Waits for the tasks and reports each end."""

    def __init__(self, folder: Path, params: dict[str, object], cluster: str | None = None) -> None:
        try:
            import submitit
        except ImportError:
            raise SteersimError(
                "--slurm needs submitit: pip install 'steersim[slurm]' (or pip install submitit)"
            ) from None
        self.executor = submitit.AutoExecutor(folder=str(folder), cluster=cluster)
        try:
            self.executor.update_parameters(**params)
        except (TypeError, ValueError) as exc:
            raise SteersimError(f"--slurm-param: {exc}") from None

    def run(self, jobs, on_start, on_end) -> bool:
        import submitit

        if not jobs:
            return True
        submitted = self.executor.map_array(
            _run_task, [list(j.argv) for j in jobs], [j.env for j in jobs]
        )
        by_id = {}
        for job, task in zip(jobs, submitted, strict=True):
            on_start(job)
            by_id[task.job_id] = job
        try:
            for task in submitit.helpers.as_completed(submitted, poll_frequency=2):
                job = by_id[task.job_id]
                try:
                    rc, tail, wall = task.result()
                except Exception as exc:  # the task itself died (node failure, time limit)
                    rc, tail, wall = 1, f"error: submitit task failed: {exc}", float("nan")
                on_end(Outcome(key=job.key, returncode=rc, stderr_tail=tail, wall_s=wall))
        except KeyboardInterrupt:
            for task in submitted:
                task.cancel(check=False)
            return False
        return True


def _run_task(argv: list[str], env: dict[str, str]) -> tuple[int, str, float]:
    """One run on a cluster node (a plain function: submitit pickles it)."""
    start = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **env})
    return proc.returncode, _tail(proc.stderr), time.perf_counter() - start

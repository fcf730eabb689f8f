#!/usr/bin/env python
"""The crash-safety and hostile-input figures of docs/crash-safety.md, measured
at full size (the test suite runs small versions of each):

    python scripts/reliability_check.py [--fuzz 1000] [--races 20] [--json PATH]

- kill -9 at every moment of tests/test_reliability_kill.kill_moments (the
  start, checkpoint writes, every step of the finish), recovery, dump equality;
- N fuzzed configs and N fuzzed overrides (tests/config_fuzz.py, derandomized),
  each timed and its peak Python memory traced: outcome, worst time and memory;
- hand-made worst cases (alias bomb, deep nesting, huge counts, 1 MiB documents);
- R races of two writers on one run (tests/test_reliability_lock.race);
- Ctrl+C sent to the command line 0 to 300 ms after it starts: tracebacks seen.

A development check: it needs the test dependencies (pytest, hypothesis)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from hypothesis import HealthCheck, given, settings  # noqa: E402

from orchestrator.config_loader import load_config  # noqa: E402
from orchestrator.errors import ConfigError  # noqa: E402
from tests.config_fuzz import hostile_document, hostile_override  # noqa: E402


def measure(fn) -> dict:
    """Outcome, wall and CPU seconds (untraced run) and peak traced MB (second
    run) of fn(). CPU seconds are what the work costs on a machine shared with
    other jobs, where wall time also counts the waiting."""
    t, c = time.perf_counter(), time.process_time()
    outcome = _outcome(fn)
    seconds, cpu = time.perf_counter() - t, time.process_time() - c
    tracemalloc.start()
    _outcome(fn)
    peak = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    return {"outcome": outcome, "s": seconds, "cpu_s": cpu, "peak_mb": peak}


def _outcome(fn) -> str:
    try:
        fn()
        return "accepted"
    except ConfigError as exc:
        return "rejected" if "\n" not in str(exc) else "multi-line"
    except Exception as exc:  # a traceback: what the check counts
        return f"traceback {exc.__class__.__name__}: {exc}"[:200]


def collect(strategy, n: int) -> list:
    out: list = []

    @settings(
        max_examples=n,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def gather(x):
        out.append(x)

    gather()
    return out


def fuzz(n: int, tmp: Path) -> dict:
    docs, overrides = collect(hostile_document(), n), collect(hostile_override(), n)
    base = REPO / "configs" / "run.fast.yaml"
    results = []
    for i, doc in enumerate(docs):
        path = tmp / f"fuzz{i}.yaml"
        path.write_text(doc)
        results.append(measure(lambda p=path: load_config(p)))
    for o in overrides:
        results.append(measure(lambda o=o: load_config(base, [o])))
    return summarise(results)


def worst_cases(tmp: Path) -> dict:
    bomb = "a0: &a0 [lol, lol]\n" + "".join(
        f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 30)
    )
    cases = {
        "alias bomb (9^29 values)": bomb + "world: {goals: *a29}\n",
        "nesting 1,000 deep": "ticks: " + "[" * 1000 + "]" * 1000 + "\n",
        "mapping 40 deep": "world: " + "{a: " * 40 + "1" + "}" * 40 + "\n",
        "agents: 10000000": "population: {agents: 10000000}\n",
        "ticks: true": "ticks: true\n",
        "99,000 wrong values": "world: {goals: [" + ",".join(["0"] * 99_000) + "]}\n",
        "240,000 values": "x: [" + ",".join(["0"] * 240_000) + "]\n",
        "50,000 duplicate locations": "world: {locations: ["
        + ", ".join(["cafe"] * 50_000)
        + "]}\n",
        "1 MiB + 1": "# " + "x" * (1 << 20) + "\n",
    }
    out = {}
    for name, text in cases.items():
        path = tmp / "worst.yaml"
        path.write_text(text)
        out[name] = measure(lambda p=path: load_config(p))
    return out


def summarise(results: list[dict]) -> dict:
    times = [r["s"] for r in results]
    peaks = [r["peak_mb"] for r in results]
    outcomes: dict[str, int] = {}
    for r in results:
        key = r["outcome"] if not r["outcome"].startswith("traceback") else "traceback"
        outcomes[key] = outcomes.get(key, 0) + 1
    rejected = [r for r in results if r["outcome"] == "rejected"]
    return {
        "cases": len(results),
        "outcomes": outcomes,
        "tracebacks": [r["outcome"] for r in results if r["outcome"].startswith("traceback")],
        "s_median": statistics.median(times),
        "s_max": max(times),
        "rejected_s_max": max((r["s"] for r in rejected), default=0.0),
        "rejected_within_1s": sum(r["s"] < 1.0 for r in rejected),
        "rejected_cpu_s_max": max((r["cpu_s"] for r in rejected), default=0.0),
        "peak_mb_max": max(peaks),
        "rejected_within_200mb": sum(r["peak_mb"] < 200 for r in rejected),
    }


def kills(tmp: Path) -> dict:
    from tests.reliability_helpers import complete_run, launch, run_args
    from tests.test_reliability_kill import kill_and_recover, kill_moments

    complete_run(tmp, "ref")
    counted = launch({"action": "count"}, *run_args(tmp, "counted"))
    steps = int(counted.stderr.rsplit("steps:", 1)[1])
    passed, failures = 0, []
    for action, nth in kill_moments(steps):
        try:
            kill_and_recover(tmp, tmp / "dumps" / "ref", action, nth)
            passed += 1
        except AssertionError as exc:
            failures.append(f"{action} {nth}: {str(exc)[:200]}")
    return {
        "steps": steps,
        "moments": passed + len(failures),
        "identical": passed,
        "failures": failures,
    }


def races(n: int, tmp: Path) -> dict:
    from tests.reliability_helpers import complete_run
    from tests.test_reliability_lock import race

    complete_run(tmp, "ref", ticks=8, agents=12)
    problems = [p for p in (race(tmp, tmp / "dumps" / "ref", seed) for seed in range(n)) if p]
    return {"tries": n, "corrupted": len(problems), "problems": problems}


def early_interrupts(tmp: Path) -> dict:
    seen = {}
    for ms in range(0, 301, 20):
        tracebacks = 0
        for _ in range(3):
            proc = subprocess.Popen(
                [sys.executable, "-m", "orchestrator.cli", "--help"],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                env={**os.environ, "PYTHONPATH": str(REPO)},
                cwd=tmp,
            )
            time.sleep(ms / 1000)
            proc.send_signal(signal.SIGINT)
            _, err = proc.communicate()
            tracebacks += b"Traceback" in err
        seen[ms] = tracebacks
    return {"tracebacks_of_3_by_ms": seen}


STEPS = ("worst", "fuzz", "kills", "races", "early")


def count(text: str) -> int:
    """An argparse type: an integer >= 0 (a negative count ran nothing, silently)."""
    n = int(text)
    if n < 0:
        raise ValueError(text)
    return n


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fuzz", type=count, default=1000)
    ap.add_argument("--races", type=count, default=20)
    ap.add_argument("--skip", nargs="*", default=[], choices=STEPS, help="steps to leave out")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    if args.json and not args.json.parent.is_dir():  # found now, not after the whole check
        ap.error(f"--json {args.json}: the folder {args.json.parent} does not exist")
    out: dict = {
        "machine": f"{platform.node()} {platform.machine()} {os.cpu_count()} cpus",
        "load_average_at_start": os.getloadavg(),
    }
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        steps = {
            "worst": lambda: worst_cases(tmp),
            "fuzz": lambda: fuzz(args.fuzz, tmp),
            "kills": lambda: kills(tmp / "kills"),
            "races": lambda: races(args.races, tmp / "races"),
            "early": lambda: early_interrupts(tmp),
        }
        for name, step in steps.items():
            if name in args.skip:
                continue
            t = time.perf_counter()
            out[name] = step()
            out[name]["took_s"] = round(time.perf_counter() - t, 1)
            print(json.dumps({name: out[name]}, indent=1, default=str), flush=True)
    out["load_average_at_end"] = os.getloadavg()
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()

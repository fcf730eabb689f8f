"""Steering verification of one run: the log checks, the action check (what
agents do against their coefficients, with an optional control run), the
behavioural check and the text check, gathered into one report with one verdict. The embedder
and the behavioural runner are passed in (None skips that check), so this
module loads no model itself; the verify_steering script builds them.

The verdict: passed when no check failed. A skipped check (asked for with
--skip-behavioural or --skip-text, or the behavioural check of a mock run,
which has no model) does not fail the run; the exit status then rests on the
checks that ran.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agents.typing import Embedder
from orchestrator.analysis.action_check import action_check
from orchestrator.analysis.action_check import as_check as action_as_check
from orchestrator.analysis.behavioural import BehaviouralOutcome
from orchestrator.analysis.checks import CheckResult, log_checks
from orchestrator.analysis.text_check import as_check, text_check
from orchestrator.dumps_reader import load_run
from orchestrator.storage import atomic_write, make_output_folder

log = logging.getLogger(__name__)

BehaviouralRunner = Callable[[dict[str, Any], Path], BehaviouralOutcome]


@dataclass(frozen=True, kw_only=True)
class VerificationReport:
    run_id: str
    run_dir: Path
    backend: str
    files_read: int
    rows: int
    log_checks: list[CheckResult]
    action: CheckResult
    behavioural: CheckResult
    behavioural_text: str | None  # the evaluation's full text report, when it ran
    behavioural_data: dict[str, Any] | None
    text: CheckResult

    @property
    def checks(self) -> list[CheckResult]:
        return [*self.log_checks, self.action, self.behavioural, self.text]

    @property
    def passed(self) -> bool:
        return not any(c.failed for c in self.checks)

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "run_dir": str(self.run_dir),
            "backend": self.backend,
            "files_read": self.files_read,
            "rows": self.rows,
            "passed": self.passed,
            "checks": [c.to_dict() for c in self.checks],
            "behavioural_report": self.behavioural_data,
        }

    def save(self, folder: Path) -> Path:
        make_output_folder(folder)
        path = folder / "verification.json"
        text = json.dumps(self.to_dict(), indent=2, default=str) + "\n"
        atomic_write(path, lambda p: p.write_text(text, encoding="utf-8"))  # never half-written
        if self.behavioural_text:
            behavioural = self.behavioural_text + "\n"
            atomic_write(
                folder / "behavioural_check.txt",
                lambda p: p.write_text(behavioural, encoding="utf-8"),
            )
        return path


def skipped(name: str, why: str) -> CheckResult:
    return CheckResult(name=name, status="skip", summary=f"{name} check skipped: {why}")


def verify_run(
    run_dir: Path,
    *,
    num_files: int | None = None,
    embedder: Embedder | Callable[[], Embedder] | None = None,
    behavioural: BehaviouralRunner | None = None,
    text_max_per_agent: int | None = 50,
    control_dir: Path | None = None,
) -> VerificationReport:
    """Run every check on the run at `run_dir` (first `num_files` tick files).
    `embedder` may be a factory, called only if the text check runs; its
    failure to load fails the text check rather than the whole verification.
    `control_dir`: a run of the same config with steering off, the action
    check's control (read in full)."""
    dumps = load_run(run_dir, num_files)
    checks = log_checks(dumps.messages, dumps.agents)
    control = None
    if control_dir is not None:
        ctl = load_run(control_dir)
        control = action_check(ctl.messages, ctl.agents)
    action = action_as_check(action_check(dumps.messages, dumps.agents, control=control))

    if behavioural is None:
        outcome = BehaviouralOutcome(check=skipped("behavioural", "--skip-behavioural"))
    else:
        outcome = behavioural(dumps.manifest, run_dir)

    if embedder is None:
        text = skipped("text", "--skip-text")
    else:
        text = _text(dumps.messages, embedder, text_max_per_agent)

    return VerificationReport(
        run_id=dumps.run_id,
        run_dir=run_dir,
        backend=dumps.backend,
        files_read=dumps.files_read,
        rows=len(dumps.messages),
        log_checks=checks,
        action=action,
        behavioural=outcome.check,
        behavioural_text=outcome.text,
        behavioural_data=outcome.data,
        text=text,
    )


def _text(messages, embedder, max_per_agent: int | None) -> CheckResult:
    if callable(embedder) and not hasattr(embedder, "embed"):
        try:
            embedder = embedder()
        except (ImportError, OSError) as exc:
            log.warning("sentence embedder unavailable: %s", exc)
            return CheckResult(
                name="text",
                status="fail",
                summary=f"text check unavailable: cannot load the sentence embedder ({exc})",
            )
    return as_check(text_check(messages, embedder, max_per_agent=max_per_agent))

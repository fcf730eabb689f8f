"""The behavioural check: load the run's model and steering vectors as
manifest.json describes them, and measure the held-out questionnaire under
steering with agents.steering.evaluation.evaluate_steering. This module only
adapts: it reads the manifest, calls the evaluation, and turns its report
into a CheckResult; the measurement and the pass rule belong to the
evaluation module.

A mock run has no model, so its behavioural check is skipped (status
"skip"). Anything that keeps the check from running on an hf run (the
evaluation module or the model missing) is a failure that says so, because
the log checks cannot stand in for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.analysis.checks import CheckResult

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class BehaviouralOutcome:
    check: CheckResult
    text: str | None = None  # SteeringReport.to_text()
    data: dict[str, Any] | None = None  # SteeringReport.to_dict()


def unavailable(why: str) -> BehaviouralOutcome:
    return BehaviouralOutcome(
        check=CheckResult(
            name="behavioural",
            status="fail",
            summary=f"behavioural check unavailable: {why} (pass --skip-behavioural to leave it out)",
        )
    )


def model_section(manifest: dict[str, Any]) -> dict[str, Any]:
    return dict(manifest.get("model") or {})


def run_behavioural(manifest: dict[str, Any], run_dir: Path) -> BehaviouralOutcome:
    """The behavioural check for the run at `run_dir` (see module docstring)."""
    model = model_section(manifest)
    backend = model.get("backend")
    if backend == "mock":
        return BehaviouralOutcome(
            check=CheckResult(
                name="behavioural",
                status="skip",
                summary="behavioural check skipped: the run used the mock backend (no model)",
            )
        )
    if not model or backend is None:
        return unavailable("manifest.json does not describe the run's model")
    try:
        from agents.steering import evaluation  # noqa: F401  torch loads here
    except ImportError as exc:
        return unavailable(f"the steering evaluation API cannot be imported ({exc})")
    return unavailable("not wired to the evaluation API yet")

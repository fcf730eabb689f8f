"""The verification report for the terminal: one ✓ PASS / ✗ FAIL / – SKIP
line per check with its counts, indented details, the behavioural
evaluation's own text report, and the verdict. A pure function of a
VerificationReport; the script prints it."""

from __future__ import annotations

from rich.console import Group, RenderableType
from rich.text import Text

from orchestrator.analysis.checks import CheckResult
from orchestrator.analysis.verify import VerificationReport
from orchestrator.safe_text import visible

MARKS = {
    "pass": ("✓ PASS", "bold green"),
    "fail": ("✗ FAIL", "bold red"),
    "skip": ("– SKIP", "bold yellow"),
}


def check_lines(check: CheckResult) -> list[Text]:
    mark, style = MARKS[check.status]
    lines = [Text.assemble("  ", (mark, style), "  ", check.summary)]
    lines += [Text(f"          {d}", style="dim") for d in check.details]
    return lines


def render_verification(report: VerificationReport) -> RenderableType:
    parts: list[RenderableType] = [
        Text(
            # the run id and backend come from the manifest: shown escaped, never as raw ESC
            f"Steering verification: run {visible(report.run_id)} ({visible(report.backend)} "
            "backend), "
            f"{report.files_read} tick files, {report.rows:,} messages",
            style="bold",
        ),
        Text("Log checks", style="underline"),
    ]
    for c in report.log_checks:
        parts += check_lines(c)
    parts.append(Text("Action check", style="underline"))
    parts += check_lines(report.action)
    parts.append(Text("Behavioural check", style="underline"))
    parts += check_lines(report.behavioural)
    if report.behavioural_text:
        parts.append(Text(report.behavioural_text))
    parts.append(Text("Text check", style="underline"))
    parts += check_lines(report.text)
    failed = [c.name for c in report.checks if c.failed]
    skipped = [c.name for c in report.checks if c.status == "skip"]
    if failed:
        verdict = Text(
            f"FAIL: {len(failed)} check(s) failed: {', '.join(failed)}", style="bold red"
        )
    else:
        note = f" ({', '.join(skipped)} skipped)" if skipped else ""
        verdict = Text(f"PASS: every check that ran passed{note}", style="bold green")
    parts.append(verdict)
    return Group(*parts)

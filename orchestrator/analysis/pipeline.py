"""One run's full analysis: load the dumps, compute the report, draw the four
figures (the last one with the action check's effects) and save report.md /
report.json beside them. The function the
analyze_simulation script (and tests) call."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.analysis import plots
from orchestrator.analysis.action_check import action_check, agent_actions
from orchestrator.analysis.report import render_markdown
from orchestrator.analysis.stats import RunReport, agent_profiles, build_report, per_tick_counts
from orchestrator.dumps_reader import default_analysis_dir, load_run
from orchestrator.storage import TMP_PREFIX, make_output_folder

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class AnalysisResult:
    out_dir: Path
    report: RunReport
    markdown: str
    figures: list[Path]
    markdown_path: Path
    json_path: Path


def analyse_run(run_dir: Path, out_dir: Path | None = None) -> AnalysisResult:
    """Analyse the run at `run_dir`; files go to `out_dir` (default: see
    dumps_reader.default_analysis_dir)."""
    dumps = load_run(run_dir)
    out = out_dir or default_analysis_dir(run_dir, dumps.run_id)
    report = build_report(dumps)
    run_id = dumps.run_id
    with _staged(out) as stage:
        drawn = [
            plots.action_distribution(
                report.actions, stage / plots.ACTION_DISTRIBUTION, run_id=run_id
            ),
            plots.steering_heatmap(
                agent_profiles(dumps.messages), stage / plots.STEERING_HEATMAP, run_id=run_id
            ),
            plots.activity_over_time(
                per_tick_counts(dumps.messages), stage / plots.ACTIVITY_OVER_TIME, run_id=run_id
            ),
            _behaviour_by_trait(dumps, stage / plots.BEHAVIOUR_BY_TRAIT),
        ]
        markdown = render_markdown(report, [f.name for f in drawn])
        (stage / "report.md").write_text(markdown, encoding="utf-8")
        text = json.dumps(report.to_dict(), indent=2, default=str) + "\n"
        (stage / "report.json").write_text(text, encoding="utf-8")
    figures = [out / f.name for f in drawn]
    md_path, json_path = out / "report.md", out / "report.json"
    log.info("analysis of %s saved in %s", dumps.run_id, out)
    return AnalysisResult(
        out_dir=out,
        report=report,
        markdown=markdown,
        figures=figures,
        markdown_path=md_path,
        json_path=json_path,
    )


@contextmanager
def _staged(out: Path) -> Iterator[Path]:
    """A temp folder in `out` whose files are moved into `out` once all are
    written. On an error (a figure matplotlib cannot draw) none of them is
    left, nor an `out` made for them: a half-written folder (one figure, no
    report) beside an older analysis's files read as a finished analysis."""
    made = not out.exists()
    make_output_folder(out)
    stage = Path(tempfile.mkdtemp(prefix=TMP_PREFIX, dir=out))
    try:
        yield stage
        for path in sorted(stage.iterdir()):
            os.replace(path, out / path.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if made and not any(out.iterdir()):
            out.rmdir()


def _behaviour_by_trait(dumps, path: Path) -> Path:
    """The action check's picture: shares against coefficients, its effects as lines."""
    per_agent = agent_actions(dumps.messages, dumps.agents)
    check = action_check(dumps.messages, dumps.agents, n_permutations=1000, n_bootstrap=0)
    return plots.behaviour_by_trait(
        per_agent.frame,
        check.slope,
        {t: check.p_trait[t] for t in check.tested},
        path,
        run_id=dumps.run_id,
        source=per_agent.source,
    )

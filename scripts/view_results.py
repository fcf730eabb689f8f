#!/usr/bin/env python
"""A run's messages in a Rich table with summary counts:
`view_results.py RUN [--agent NAME] [--tick N] [--action A] [--limit N] [--json PATH]`.
RUN is a run id or a run folder. A shim over orchestrator.analysis.commands."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from orchestrator.analysis.commands import main_view as main  # noqa: E402
from orchestrator.analysis.commands import view_app as app  # noqa: E402

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()

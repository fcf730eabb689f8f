#!/usr/bin/env python
"""Verify that a run's personality steering was applied and worked:
`verify_steering.py RUN [--num-files N] [--skip-behavioural] [--skip-text] [--save] [--json PATH]`.
RUN is a run id or a run folder; exit 0 only when no check fails.
A shim over orchestrator.analysis.commands."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from orchestrator.analysis.commands import main_verify as main  # noqa: E402
from orchestrator.analysis.commands import verify_app as app  # noqa: E402

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()

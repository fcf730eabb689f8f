#!/usr/bin/env python
"""Sweep steering settings on the held-out questionnaire to choose defaults:
`steering_sweep.py --layers 12 16 20 24 --strengths 0.1 0.2 0.3 [--per-trait E=20 ...]`.
A shim over orchestrator.analysis.steering_sweep (`--help` lists the options)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from orchestrator.analysis.steering_sweep import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())

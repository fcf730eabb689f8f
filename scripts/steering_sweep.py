#!/usr/bin/env python
"""Choose steering settings on the DEV questionnaire (never the test set):
`steering_sweep.py --pairs shipped --methods mean_diff lda --layer-sets 21 18-24 --strengths 0.17`.
A shim over orchestrator.analysis.steering_sweep (`--help` lists the options)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from orchestrator.analysis.steering_sweep import main  # noqa: E402

if __name__ == "__main__":
    raise SystemExit(main())

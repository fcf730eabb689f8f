#!/usr/bin/env python
"""A run's replay page: `replay.py RUN [--out FILE] [--storage-root DIR]` writes
one self-contained replay.html (default inside the run folder). RUN is a run
id or a run folder. A shim over `steersim replay` (orchestrator/commands/replay.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from orchestrator.commands.replay import app, main  # noqa: E402

__all__ = ["app", "main"]

if __name__ == "__main__":
    main()

#!/usr/bin/env python
"""steersim benchmarks: `benchmark.py {engine,batching,memory,gpu} [--json PATH] [options]`.
A thin shim over orchestrator.benchmarks.cli; `benchmark.py SUBCOMMAND --help` lists options."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout too

from orchestrator.benchmarks.cli import app, main  # noqa: E402

__all__ = ["app"]

if __name__ == "__main__":
    main()

"""steersim's benchmarks, one module per benchmark, each a function that
returns its numbers as a JSON-ready dict (`benchmark` names it) and never
asserts a target (the targets and results are in docs/):

- engine: the engine's own overhead in a mock run (no model)
- batching: one tick's requests in ONE batched call vs one at a time (SmolLM2 on CPU)
- memory: memory-stream retrieval at scale, and the RSS of a long mock run
- gpu: the HF backend on a GPU with random-weight models of real architectures
- constrained: the grammar mask's cost per decode step, and outputs inside the grammar

workload builds the agent requests they generate from; cli is the command
line (`python scripts/benchmark.py {engine,batching,memory,gpu}`)."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FAST_CONFIG = REPO / "configs" / "run.fast.yaml"  # benchmarks run from a checkout

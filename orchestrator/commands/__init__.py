"""The `steersim` command groups, one module each: run (a simulation), sweep,
compare and interview (experiments across runs). The analysis commands (view,
analyze, verify) live in orchestrator/analysis/commands.py, the benchmarks in
orchestrator/benchmarks/cli.py; orchestrator/cli.py registers them all.
Each module only parses options and prints; the work is in the libraries."""

"""Experiments across runs: sweeps (grid.py, sweep.py, launchers.py),
comparisons (compare.py, compare_plots.py) and interviews of a run's agents
(interview.py). The command lines are in orchestrator/commands/."""

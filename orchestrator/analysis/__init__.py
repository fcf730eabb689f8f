"""Post-run analysis and steering verification, as importable functions over
a run's dumps (orchestrator.dumps_reader). The scripts in scripts/ are thin
command lines over these modules:

- stats: the numbers of a run report (typed records)
- report: the report as markdown
- plots: the PNG figures (matplotlib, Agg)
- viewer: filtering and a Rich table of messages
- checks: the check result record and the log checks on steering columns
- text_check: trait scores of agents' messages against their coefficients
- behavioural: the questionnaire measurement of the run's model and vectors
"""

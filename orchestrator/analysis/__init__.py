"""Post-run analysis and steering verification, as importable functions over
a run's dumps (orchestrator.dumps_reader). The scripts in scripts/ are shims
that run the command lines in `commands`:

- stats: the numbers of a run report (typed records)
- report: the report as markdown
- plots: the PNG figures (matplotlib, Agg)
- pipeline: one run's report and figures, saved
- viewer: filtering and a Rich table of messages
- checks: the check result record and the log checks on steering columns
- text_check: trait scores of agents' messages against their coefficients
- behavioural: the questionnaire measurement of the run's model and vectors
- verify: the three checks gathered into one verdict
- render_checks: the verification as Rich text
- locate: naming a run on a command line (RUN = run id or run folder)
- cli_support: consoles, one-line errors, the one meaning of --json
- commands: view_results, analyze_simulation, verify_steering
- steering_sweep: choosing steering defaults on the questionnaire (loads a model)
"""

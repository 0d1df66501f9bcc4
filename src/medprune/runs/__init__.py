"""The orchestration layer: whole runs as plain functions, testable without Hydra's main.

- ``training.train``: train.py's run (fit, test, summary.json);
- ``sculpting.sculpt``: prune.py's run, with ``sculptor`` (what a step needs, built from a
  checkpoint), ``sculpt_steps`` (the step loop) and ``delivery`` (export, benchmark,
  summary.json, report.md);
- ``job``: the skeleton both share (fresh folder, config.yaml, seeds, loggers, closing W&B);
- ``config``: structured-config schemas and the cross-group checks made at compose time;
- ``checkpoints`` / ``resume``: reading trained checkpoints, checking a resume fits its run;
- ``summary``: summary.json and the printed table of a train.py run;
- ``multirun`` / ``fresh_folders``: what a job knows of its sweep, and the Hydra callback
  that refuses a used folder before Hydra writes into it.
"""

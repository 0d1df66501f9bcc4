"""Quality vs sparsity over a Hydra multirun of train.py: ``python -m medprune.report <dir>``
(see docs/sweeps.md)."""

from medprune.report.build import build_report
from medprune.report.jobs import Job, ReportError, load_jobs, main_metric
from medprune.report.table import aggregate, find_crossover, mean_std

__all__ = [
    "Job",
    "ReportError",
    "aggregate",
    "build_report",
    "find_crossover",
    "load_jobs",
    "main_metric",
    "mean_std",
]

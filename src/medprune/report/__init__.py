"""Quality vs sparsity over a Hydra multirun of train.py: ``python -m medprune.report <dir>``.

Jobs are grouped by (pruning scope, target sparsity) and averaged over seeds; the report says
where global pruning overtakes layer-wise pruning and lists every job that did not finish.
"""

from __future__ import annotations

from medprune.report.build import Report, build_report, log_report_to_wandb
from medprune.report.jobs import Job, JobSet, ReportError, load_jobs
from medprune.report.metric import main_metric
from medprune.report.table import Crossover, Group, MeanStd, aggregate, find_crossover, mean_std

__all__ = [
    "Crossover",
    "Group",
    "Job",
    "JobSet",
    "MeanStd",
    "Report",
    "ReportError",
    "aggregate",
    "build_report",
    "find_crossover",
    "load_jobs",
    "log_report_to_wandb",
    "main_metric",
    "mean_std",
]

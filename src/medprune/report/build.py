"""The whole report in one call: load the jobs, aggregate, find the crossover, write the files
and, when asked, log the table and the plot to Weights & Biases."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medprune.report.jobs import Job, ReportError, load_jobs
from medprune.report.markdown import PLOT_FILE, render_markdown
from medprune.report.metric import main_metric
from medprune.report.plot import plot_quality_vs_sparsity
from medprune.report.table import (
    Crossover,
    Group,
    aggregate,
    find_crossover,
    jobs_table,
    report_table,
    write_csv,
)

REPORT_CSV, JOBS_CSV, REPORT_MD = "report.csv", "jobs.csv", "report.md"
OUTPUTS = (REPORT_CSV, JOBS_CSV, REPORT_MD, PLOT_FILE)


@dataclass(frozen=True)
class Report:
    root: Path
    out: Path
    task: str
    metric: str
    mode: str  # "max": higher is better
    groups: list[Group]
    crossover: Crossover
    finished: list[Job]
    failed: list[Job]  # no summary.json: failed or still running
    skipped: list[str]  # groups the plot could not place (compression not finite)
    files: list[Path]


def build_report(
    root: str | Path,
    out: str | Path | None = None,
    *,
    metric: str | None = None,
    mode: str | None = None,
    select: Sequence[str] = (),
    force: bool = False,
    log_wandb: bool = False,
) -> Report:
    """Write report.csv, jobs.csv, report.md and quality_vs_sparsity.png to ``out`` (default:
    ``root``) for the train.py multirun under ``root``. Raises ReportError on bad input, and
    before writing anything if an output exists and ``force`` is false."""
    jobs = load_jobs(root, select)
    metric, mode = main_metric(jobs.finished, metric, mode)
    task = jobs.finished[0].task
    groups = aggregate(jobs.finished)
    crossover = find_crossover(groups, metric, mode)
    out = jobs.root if out is None else Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file: expected a folder for the report")
    files = [out / name for name in OUTPUTS]
    for path in files:
        if path.exists() and not force:
            raise ReportError(
                f"{path} exists: refusing to overwrite it (pass --force to replace "
                f"{', '.join(OUTPUTS)})"
            )
    out.mkdir(parents=True, exist_ok=True)
    skipped = plot_quality_vs_sparsity(
        out / PLOT_FILE, groups, crossover, task=task, metric=metric, mode=mode
    )
    write_csv(out / REPORT_CSV, *report_table(groups, task))
    write_csv(out / JOBS_CSV, *jobs_table(jobs.finished))
    markdown = render_markdown(
        root=jobs.root,
        task=task,
        metric=metric,
        mode=mode,
        groups=groups,
        crossover=crossover,
        finished=jobs.finished,
        failed=jobs.failed,
        skipped=skipped,
    )
    (out / REPORT_MD).write_text(markdown)
    report = Report(
        jobs.root, out, task, metric, mode, groups, crossover, jobs.finished, jobs.failed,
        skipped, files,
    )  # fmt: skip
    if log_wandb:
        log_report_to_wandb(report)
    return report


def log_report_to_wandb(report: Report) -> None:
    """One run per report (job_type "report") in the sweep's project and group, offline
    unless WANDB_MODE says otherwise."""
    import wandb  # only here: the report itself needs no W&B

    settings = _wandb_settings(report.finished)
    run = wandb.init(
        project=settings.get("project") or "medprune",
        group=settings.get("group") or report.task,
        job_type="report",
        name="report",
        dir=str(report.out),
        mode=os.environ.get("WANDB_MODE", "offline"),
    )
    try:
        columns, rows = report_table(report.groups, report.task)
        data = [[_wandb_value(value) for value in row] for row in rows]
        run.log(
            {
                "report/table": wandb.Table(columns=columns, data=data),
                "report/quality_vs_sparsity": wandb.Image(str(report.out / PLOT_FILE)),
            }
        )
        run.summary["report/crossover_sparsity"] = report.crossover.sparsity
        run.summary["report/crossover"] = report.crossover.text
    finally:
        run.finish()


def _wandb_settings(jobs: Sequence[Job]) -> dict[str, Any]:
    """logger.wandb of the first job that logged to W&B ({} if none did)."""
    for job in jobs:
        logger = (job.config or {}).get("logger")
        settings = logger.get("wandb") if isinstance(logger, dict) else None
        if isinstance(settings, dict):
            return settings
    return {}


def _wandb_value(value: Any) -> Any:
    return None if isinstance(value, float) and math.isnan(value) else value

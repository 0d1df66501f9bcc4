"""The whole report in one call: load the jobs, aggregate, find the crossover, write report.csv,
jobs.csv, report.md and the plot and, when asked, log the table and the plot to W&B."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from medprune.report.jobs import FAILED_REASON, Job, ReportError, load_jobs, main_metric
from medprune.report.table import (
    Crossover,
    Group,
    MeanStd,
    aggregate,
    find_crossover,
    format_ratio,
    jobs_table,
    metric_names,
    report_table,
    write_csv,
)

REPORT_CSV, JOBS_CSV, REPORT_MD = "report.csv", "jobs.csv", "report.md"
PLOT_FILE = "quality_vs_sparsity.png"
OUTPUTS = (REPORT_CSV, JOBS_CSV, REPORT_MD, PLOT_FILE)
HIDDEN_METRICS = ("test/loss",)  # in report.csv, too technical for the summary table


class Report(NamedTuple):
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
    """Write OUTPUTS to ``out`` (default: ``root``) for the train.py multirun under ``root``.
    Raises ReportError on bad input, and before writing anything if an output exists and
    ``force`` is false."""
    jobs = load_jobs(root, select)
    metric, mode = main_metric(jobs.finished, metric, mode)
    task, groups = jobs.finished[0].task, aggregate(jobs.finished)
    crossover = find_crossover(groups, metric, mode)
    out = jobs.root if out is None else Path(out)
    if out.exists() and not out.is_dir():
        raise ReportError(f"--out {out} is a file: expected a folder for the report")
    for path in (out / name for name in OUTPUTS):
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
    report = Report(
        jobs.root, out, task, metric, mode, groups, crossover, jobs.finished, jobs.failed, skipped
    )
    (out / REPORT_MD).write_text(render_markdown(report))
    if log_wandb:
        log_report_to_wandb(report)
    return report


def format_mean_std(value: MeanStd) -> str:
    """4 decimals; "—" for the std of a single seed."""
    std = "—" if math.isnan(value.std) else f"{value.std:.4f}"
    return f"{value.mean:.4f} ± {std}"


def render_markdown(r: Report) -> str:
    """report.md: the groups as one table, the crossover sentence, the failed jobs, the plot."""
    better = "higher" if r.mode == "max" else "lower"
    shown = [r.metric, *(n for n in metric_names(r.groups) if n not in (r.metric, *HIDDEN_METRICS))]
    columns = ["scope", "target sparsity", "compression", "n", *shown]
    lines = [
        f"# Quality vs sparsity: {r.task}",
        "",
        f"Multirun: `{r.root}`. Task: {r.task}. Main metric: {r.metric} ({better} is better).",
        f"Jobs: {len(r.finished)} finished, {len(r.failed)} failed. Each row: mean ± sample std "
        "over the seeds of one pruning scope and target sparsity (n jobs); compression = "
        "prunable weights / non-zero prunable weights.",
        "",
        "| " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns[1:]) + " |",
    ]
    for g in r.groups:
        cells = [f"{g.scope} (dense)" if g.dense else g.scope, f"{g.target_sparsity:g}"]
        cells += [format_ratio(g.compression_ratio), str(g.n)]
        cells += [format_mean_std(g.metrics[name]) for name in shown]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Crossover: {r.crossover.text}."]
    if r.skipped:
        lines += ["", f"Left out of the plot (compression not finite): {'; '.join(r.skipped)}."]
    if r.failed:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- `{j.name}`: {' '.join(j.overrides)} — {FAILED_REASON}" for j in r.failed]
    return "\n".join([*lines, "", f"![quality vs sparsity]({PLOT_FILE})"]) + "\n"


def plot_quality_vs_sparsity(
    path: Path, groups: Sequence[Group], crossover: Crossover, *, task: str, metric: str, mode: str
) -> list[str]:
    """The main metric against compression, one line per pruning scope, the dense model as a
    horizontal band. Returns the groups left out because their compression is not a finite
    positive number (a log axis cannot place them), for the report to mention."""
    # a Figure on the Agg canvas, not pyplot: no global backend or figure state changes in the
    # calling process; imported here because only the report draws
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter

    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    skipped: list[str] = []
    placed = False
    for scope in sorted({g.scope for g in groups if not g.dense}):
        points = []
        for g in (g for g in groups if g.scope == scope):
            x, value = g.compression_ratio, g.metrics[metric]
            if not (math.isfinite(x) and x > 0):
                skipped.append(f"{scope} at sparsity {g.target_sparsity:g} (compression {x})")
            else:
                points.append((x, value.mean, 0.0 if math.isnan(value.std) else value.std))
        if points:
            xs, ys, errors = zip(*points)
            ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=scope)
            placed = True
    # a dashed line at each dense mean and a light ±std band (if there are two seeds)
    dense = [g for g in groups if g.dense]
    for i, g in enumerate(dense):
        value, color = g.metrics[metric], ("0.2", "0.45", "0.6")[i % 3]
        if math.isnan(value.mean):
            continue
        label = "dense" if len(dense) == 1 else f"dense (target {g.target_sparsity:g})"
        ax.axhline(value.mean, linestyle="--", color=color, label=f"{label}, n={g.n}")
        if not math.isnan(value.std):
            low, high = value.mean - value.std, value.mean + value.std
            ax.axhspan(low, high, color=color, alpha=0.12, linewidth=0)
    ratio = crossover.compression_ratio  # set whenever the sparsity is, maybe infinite
    if crossover.sparsity is not None and math.isfinite(ratio):
        label = f"crossover: sparsity {crossover.sparsity:g} ({ratio:.1f}x)"
        ax.axvline(ratio, linestyle=":", color="tab:red", label=label)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))  # 16x, not 2^4
    if not placed:  # only dense rows: give the log axis a range of its own
        ax.set_xlim(1, 2)
    ax.set_xlabel("compression ratio (prunable weights / non-zero), log scale")
    ax.set_ylabel(f"{metric} ({'higher' if mode == 'max' else 'lower'} is better)")
    ax.set_title(f"{task}: {metric} vs compression (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    return skipped


def log_report_to_wandb(report: Report) -> None:
    """One run per report (job_type "report") in the project and group of the first job's
    logger.wandb, offline unless WANDB_MODE says otherwise."""
    import wandb  # only here: the report itself needs no W&B

    settings: dict = {}
    for job in report.finished:
        logger = (job.config or {}).get("logger")
        if isinstance(logger, dict) and isinstance(logger.get("wandb"), dict):
            settings = logger["wandb"]
            break
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
        nan_to_none = [[None if v != v else v for v in row] for row in rows]  # NaN != NaN
        run.log(
            {
                "report/table": wandb.Table(columns=columns, data=nan_to_none),
                "report/quality_vs_sparsity": wandb.Image(str(report.out / PLOT_FILE)),
            }
        )
        run.summary["report/crossover_sparsity"] = report.crossover.sparsity
        run.summary["report/crossover"] = report.crossover.text
    finally:
        run.finish()

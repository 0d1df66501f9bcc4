"""report.md: the groups as one table, the crossover sentence, the failed jobs and the plot."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from medprune.report.jobs import FAILED_REASON, Job
from medprune.report.table import Crossover, Group, MeanStd, format_ratio, metric_names

PLOT_FILE = "quality_vs_sparsity.png"
HIDDEN_METRICS = ("test/loss",)  # in report.csv, too technical for the summary table


def format_mean_std(value: MeanStd) -> str:
    """4 decimals; "—" for the std of a single seed."""
    std = "—" if math.isnan(value.std) else f"{value.std:.4f}"
    return f"{value.mean:.4f} ± {std}"


def render_markdown(
    *,
    root: Path,
    task: str,
    metric: str,
    mode: str,
    groups: Sequence[Group],
    crossover: Crossover,
    finished: Sequence[Job],
    failed: Sequence[Job],
    skipped: Sequence[str] = (),
) -> str:
    better = "higher" if mode == "max" else "lower"
    others = [n for n in metric_names(groups) if n not in (metric, *HIDDEN_METRICS)]
    columns = ["scope", "target sparsity", "compression", "n", metric, *others]
    lines = [
        f"# Quality vs sparsity: {task}",
        "",
        f"Multirun: `{root}`. Task: {task}. Main metric: {metric} ({better} is better).",
        f"Jobs: {len(finished)} finished, {len(failed)} failed. Each row: mean ± sample std "
        "over the seeds of one pruning scope and target sparsity (n jobs); compression = "
        "prunable weights / non-zero prunable weights.",
        "",
        "| " + " | ".join(columns) + " |",
        "| --- | " + " | ".join("---:" for _ in columns[1:]) + " |",
    ]
    for g in groups:
        scope = f"{g.scope} (dense)" if g.dense else g.scope
        cells = [scope, f"{g.target_sparsity:g}", format_ratio(g.compression_ratio), str(g.n)]
        cells += [format_mean_std(g.metrics[name]) for name in (metric, *others)]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Crossover: {crossover.text}."]
    if skipped:
        lines += ["", "Left out of the plot (compression not finite): " + "; ".join(skipped) + "."]
    if failed:
        lines += ["", "## Failed jobs", ""]
        lines += [f"- `{job.name}`: {' '.join(job.overrides)} — {FAILED_REASON}" for job in failed]
    lines += ["", f"![quality vs sparsity]({PLOT_FILE})"]
    return "\n".join(lines) + "\n"

"""quality_vs_sparsity.png: the main metric against compression, one line per pruning scope,
the dense model as a horizontal band.

Drawn on a ``matplotlib.figure.Figure`` with the Agg canvas: no pyplot, so no global backend
or figure state changes in the process that calls it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from medprune.report.jobs import ReportError
from medprune.report.table import Crossover, Group

X_LABEL = "compression ratio (prunable weights / non-zero), log scale"


def plot_quality_vs_sparsity(
    path: Path,
    groups: Sequence[Group],
    crossover: Crossover,
    *,
    task: str,
    metric: str,
    mode: str,
) -> list[str]:
    """Write the PNG; return the groups left out because their compression is not a finite
    positive number (a log axis cannot place them), for the report to mention."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import FuncFormatter
    except ImportError as err:  # not a dependency of training; only the report draws
        raise ReportError("the plot needs matplotlib: pip install matplotlib") from err

    figure = Figure(figsize=(7.5, 4.8), dpi=120)
    FigureCanvasAgg(figure)
    ax = figure.add_subplot()
    skipped: list[str] = []
    placed = 0
    for scope in sorted({g.scope for g in groups if not g.dense}):
        points = []
        for g in (g for g in groups if g.scope == scope):
            x = g.compression_ratio
            if not (math.isfinite(x) and x > 0):
                skipped.append(f"{scope} at sparsity {g.target_sparsity:g} (compression {x})")
                continue
            value = g.metrics[metric]
            points.append((x, value.mean, 0.0 if math.isnan(value.std) else value.std))
        if points:
            xs, ys, errors = zip(*points)
            ax.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, label=scope)
            placed += len(points)
    _draw_dense(ax, [g for g in groups if g.dense], metric)
    ratio = crossover.compression_ratio
    if crossover.sparsity is not None and ratio is not None and math.isfinite(ratio):
        label = f"crossover: sparsity {crossover.sparsity:g} ({ratio:.1f}x)"
        ax.axvline(ratio, linestyle=":", color="tab:red", label=label)
    ax.set_xscale("log", base=2)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: f"{x:g}x"))  # 16x, not 2^4
    if not placed:  # only dense rows: give the log axis a range of its own
        ax.set_xlim(1, 2)
    ax.set_xlabel(X_LABEL)
    better = "higher" if mode == "max" else "lower"
    ax.set_ylabel(f"{metric} ({better} is better)")
    ax.set_title(f"{task}: {metric} vs compression (mean ± std over seeds)")
    ax.grid(True, which="both", alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(loc="best", fontsize="small")
    figure.tight_layout()
    figure.savefig(path)
    return skipped


def _draw_dense(ax, dense: Sequence[Group], metric: str) -> None:
    """A dashed line at the dense mean and a light ±std band (if there are two seeds)."""
    for i, g in enumerate(dense):
        value = g.metrics[metric]
        if math.isnan(value.mean):
            continue
        color = ("0.2", "0.45", "0.6")[i % 3]
        label = "dense" if len(dense) == 1 else f"dense (target {g.target_sparsity:g})"
        ax.axhline(value.mean, linestyle="--", color=color, label=f"{label}, n={g.n}")
        if not math.isnan(value.std):
            low, high = value.mean - value.std, value.mean + value.std
            ax.axhspan(low, high, color=color, alpha=0.12, linewidth=0)

"""Rows of the report: jobs grouped by (pruning scope, target sparsity), every test metric as
mean ± sample std over the group's seeds, and where network-wide (global) pruning overtakes
layer-wise pruning.

Sparsities are fractions of the prunable weights (0.9375 = 93.75 % zeros); compression is
prunable weights / non-zero prunable weights (16.0 at 0.9375).
"""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from medprune.report.jobs import Job

DENSE = "none"  # the scope of train.py jobs without pruning
GLOBAL, LAYERWISE = "global", "layerwise"


class MeanStd(NamedTuple):
    mean: float
    std: float  # sample std (ddof=1); NaN for fewer than two values


@dataclass(frozen=True)
class Group:
    """The jobs of one (scope, target sparsity): one row of the report."""

    scope: str
    target_sparsity: float
    jobs: tuple[Job, ...]
    achieved_sparsity: float  # mean over the jobs
    compression_ratio: float  # mean over the jobs
    metrics: dict[str, MeanStd]

    @property
    def n(self) -> int:
        return len(self.jobs)

    @property
    def seeds(self) -> list[int | None]:
        return sorted((job.seed for job in self.jobs), key=lambda s: (s is None, s or 0))

    @property
    def dense(self) -> bool:
        return self.scope == DENSE


@dataclass(frozen=True)
class Crossover:
    """Where global pruning overtakes layer-wise pruning for good (Mahbod et al. 2022 report
    layer-wise ahead at small compression, global ahead at large)."""

    sparsity: float | None  # the smallest sparsity from which global stays better
    previous_sparsity: float | None  # the common grid point just below it
    compression_ratio: float | None  # global's mean compression at ``sparsity``
    margins: dict[float, float]  # global - layer-wise mean per common sparsity; > 0: global
    within_std: bool  # the margin at the crossover is smaller than the larger std there
    text: str  # one sentence for people


def mean_std(values: Sequence[float]) -> MeanStd:
    """Exact (rational) arithmetic for finite values, so equal seeds give std 0.0 and
    0.7, 0.8, 0.9 give mean 0.8; NaN or infinity propagate as in float arithmetic."""
    if not values:
        return MeanStd(math.nan, math.nan)
    if not all(math.isfinite(v) for v in values):
        return MeanStd(sum(values) / len(values), math.nan)
    std = statistics.stdev(values) if len(values) > 1 else math.nan
    return MeanStd(float(statistics.mean(values)), float(std))


def aggregate(jobs: Sequence[Job]) -> list[Group]:
    """One group per (scope, target sparsity): dense first, then scopes alphabetically,
    sparsity ascending. A metric some jobs lack is averaged over the jobs that have it."""
    members: dict[tuple[str, float], list[Job]] = {}
    for job in jobs:
        members.setdefault((job.scope, job.target_sparsity), []).append(job)
    names = metric_names(jobs)
    groups = [
        Group(
            scope=scope,
            target_sparsity=target,
            jobs=tuple(group),
            achieved_sparsity=mean_std([job.achieved_sparsity for job in group]).mean,
            compression_ratio=mean_std([job.compression_ratio for job in group]).mean,
            metrics={
                name: mean_std([job.metrics[name] for job in group if name in job.metrics])
                for name in names
            },
        )
        for (scope, target), group in members.items()
    ]
    return sorted(groups, key=lambda g: (not g.dense, g.scope, g.target_sparsity))


def find_crossover(groups: Sequence[Group], metric: str, mode: str = "max") -> Crossover:
    """Compare global and layer-wise at the sparsities both have, by the mean of ``metric``
    (``mode`` "min": lower is better). An exact tie is no win for global."""
    sign = 1.0 if mode == "max" else -1.0
    by_scope = {
        scope: {g.target_sparsity: g for g in groups if g.scope == scope}
        for scope in (GLOBAL, LAYERWISE)
    }
    glob, layer = by_scope[GLOBAL], by_scope[LAYERWISE]
    common = sorted(glob.keys() & layer.keys())
    if not glob or not layer or not common:
        why = "share no sparsity" if glob and layer else "were not both run"
        return Crossover(None, None, None, {}, False, f"no crossover: global and layer-wise {why}")
    margins = {
        s: sign * (glob[s].metrics[metric].mean - layer[s].metrics[metric].mean) for s in common
    }
    unknown = [s for s in common if not math.isfinite(margins[s])]
    if unknown:  # a NaN mean neither wins nor ties: compare where both have a number
        common = [s for s in common if s not in unknown]
        margins = {s: margins[s] for s in common}
        if not common:
            return Crossover(
                None, None, None, {}, False, "no crossover: no finite means to compare"
            )
    wins = [margins[s] > 0 for s in common]
    note = f" (not compared, no finite mean: sparsity {', '.join(f'{u:g}' for u in unknown)})"
    note = note if unknown else ""

    def none(text: str) -> Crossover:
        return Crossover(None, None, None, margins, False, text + note)

    if all(wins):
        return none("global is better at every sparsity (no crossover)")
    if not any(wins):
        return none("layer-wise is better or equal at every sparsity (global never overtakes)")
    if not wins[-1]:
        winners = ", ".join(f"{s:g} {_winner(margins[s])}" for s in common)
        flips = sum(a != b for a, b in zip(wins, wins[1:]))
        if flips == 1:  # global ahead at low sparsity, layer-wise at high: the other way round
            return none(f"no crossover: layer-wise overtakes global ({winners})")
        return none(f"no crossover: winners alternate ({winners})")
    start = len(wins) - 1
    while wins[start - 1]:
        start -= 1
    s, previous = common[start], common[start - 1]
    below = [margins[p] for p in common[:start]]
    if all(m < 0 for m in below):
        before = f"layer-wise better up to {previous:g}"
    elif all(m <= 0 for m in below):
        before = f"layer-wise better or equal up to {previous:g}"
    else:
        before = f"layer-wise {'better' if margins[previous] < 0 else 'equal'} at {previous:g}"
    compression = glob[s].compression_ratio
    text = f"global overtakes layer-wise at sparsity {s:g} ({format_ratio(compression)}; {before})"
    text += note
    stds = [g[s].metrics[metric].std for g in (glob, layer)]
    stds = [std for std in stds if not math.isnan(std)]
    within = bool(stds) and margins[s] < max(stds)
    if within:
        text += f"; the margin there ({margins[s]:.4f}) is within one std ({max(stds):.4f})"
    return Crossover(s, previous, compression, margins, within, text)


def format_ratio(ratio: float) -> str:
    return "inf" if math.isinf(ratio) else f"{ratio:.1f}x"


def report_table(groups: Sequence[Group], task: str) -> tuple[list[str], list[list[Any]]]:
    """report.csv's header and rows (raw values; NaN where a std needs two seeds)."""
    names = metric_names(groups)
    header = ["task", "scope", "target_sparsity", "n", "seeds", "achieved_sparsity"]
    header += ["compression_ratio"]
    header += [f"{name}_{part}" for name in names for part in ("mean", "std")]
    rows = []
    for g in groups:
        seeds = " ".join("?" if seed is None else str(seed) for seed in g.seeds)
        row = [task, g.scope, g.target_sparsity, g.n, seeds, g.achieved_sparsity]
        row.append(g.compression_ratio)
        for name in names:
            row += list(g.metrics.get(name, MeanStd(math.nan, math.nan)))
        rows.append(row)
    return header, rows


def jobs_table(jobs: Sequence[Job]) -> tuple[list[str], list[list[Any]]]:
    """jobs.csv: one row per finished job, the numbers behind every mean."""
    names = metric_names(jobs)
    header = ["job", "task", "scope", "target_sparsity", "seed", "achieved_sparsity"]
    header += ["compression_ratio", *names]
    rows = [
        [job.name, job.task, job.scope, job.target_sparsity, job.seed, job.achieved_sparsity]
        + [job.compression_ratio]
        + [job.metrics.get(name, math.nan) for name in names]
        for job in jobs
    ]
    return header, rows


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([[csv_cell(value) for value in row] for row in rows])


def csv_cell(value: Any) -> str:
    """Blank for NaN and None; 10 significant digits, so 0.7999999999999999 reads 0.8."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return format(value, ".10g")
    return str(value)


def metric_names(items: Sequence[Job | Group]) -> list[str]:
    """Every metric name of the jobs (or groups), sorted: a name some lack is still a column."""
    return sorted(set().union(*(item.metrics for item in items)))


def _winner(margin: float) -> str:
    if margin > 0:
        return "global"
    if margin < 0:
        return "layer-wise"
    return "tie" if margin == 0 else "n/a"

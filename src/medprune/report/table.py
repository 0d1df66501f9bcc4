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
from pathlib import Path
from typing import Any, NamedTuple

from medprune.report.jobs import Job

DENSE = "none"  # the scope of train.py jobs without pruning
SCOPES = ("global", "layerwise")  # compared by the crossover


class MeanStd(NamedTuple):
    mean: float
    std: float  # sample std (ddof=1); NaN for fewer than two values


class Group(NamedTuple):
    """The jobs of one (scope, target sparsity): one row of the report."""

    scope: str
    target_sparsity: float
    jobs: tuple[Job, ...]
    achieved_sparsity: float  # mean over the jobs
    compression_ratio: float  # mean over the jobs
    metrics: dict[str, MeanStd]

    n = property(lambda self: len(self.jobs))
    dense = property(lambda self: self.scope == DENSE)
    seeds = property(
        lambda self: sorted((job.seed for job in self.jobs), key=lambda s: (s is None, s or 0))
    )


class Crossover(NamedTuple):
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
    names, groups = metric_names(jobs), []
    for (scope, target), group in members.items():
        achieved = mean_std([job.achieved_sparsity for job in group]).mean
        compression = mean_std([job.compression_ratio for job in group]).mean
        metrics = {n: mean_std([j.metrics[n] for j in group if n in j.metrics]) for n in names}
        groups.append(Group(scope, target, tuple(group), achieved, compression, metrics))
    return sorted(groups, key=lambda g: (not g.dense, g.scope, g.target_sparsity))


def find_crossover(groups: Sequence[Group], metric: str, mode: str = "max") -> Crossover:
    """Compare global and layer-wise by the mean of ``metric`` at the sparsities both have
    (``mode`` "min": lower is better). An exact tie is no win for global."""
    sign = 1.0 if mode == "max" else -1.0
    glob, layer = ({g.target_sparsity: g for g in groups if g.scope == s} for s in SCOPES)
    common = sorted(glob.keys() & layer.keys())
    if not common:
        why = "share no sparsity" if glob and layer else "were not both run"
        return Crossover(None, None, None, {}, False, f"no crossover: global and layer-wise {why}")
    margins = {
        s: sign * (glob[s].metrics[metric].mean - layer[s].metrics[metric].mean) for s in common
    }
    # a NaN mean neither wins nor ties: compare where both have a number
    unknown = [s for s, m in margins.items() if not math.isfinite(m)]
    margins = {s: m for s, m in margins.items() if math.isfinite(m)}
    common = list(margins)
    if not common:
        return Crossover(None, None, None, {}, False, "no crossover: no finite means to compare")
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
        winners = ", ".join(
            f"{s:g} {'global' if m > 0 else 'layer-wise' if m < 0 else 'tie'}"
            for s, m in margins.items()
        )
        flips = sum(a != b for a, b in zip(wins, wins[1:]))
        # one flip: global ahead at low sparsity, layer-wise at high, the other way round
        kind = "layer-wise overtakes global" if flips == 1 else "winners alternate"
        return none(f"no crossover: {kind} ({winners})")
    start = max(i for i, win in enumerate(wins) if not win) + 1
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


def metric_names(items: Sequence[Job | Group]) -> list[str]:
    """Every metric name of the jobs (or groups), sorted: a name some lack is still a column."""
    return sorted(set().union(*(item.metrics for item in items)))


def report_table(groups: Sequence[Group], task: str) -> tuple[list[str], list[list[Any]]]:
    """report.csv's header and rows (raw values; NaN where a std needs two seeds)."""
    names = metric_names(groups)  # every group has every name (see aggregate)
    header = ["task", "scope", "target_sparsity", "n", "seeds", "achieved_sparsity"]
    header += ["compression_ratio", *(f"{n}_{part}" for n in names for part in ("mean", "std"))]
    rows = [
        [task, g.scope, g.target_sparsity, g.n, " ".join(map(_seed_text, g.seeds))]
        + [g.achieved_sparsity, g.compression_ratio, *(v for n in names for v in g.metrics[n])]
        for g in groups
    ]
    return header, rows


def _seed_text(seed: int | None) -> str:
    return "?" if seed is None else str(seed)  # "?": a job without config.yaml


def jobs_table(jobs: Sequence[Job]) -> tuple[list[str], list[list[Any]]]:
    """jobs.csv: one row per finished job, the numbers behind every mean."""
    names = metric_names(jobs)
    header = ["job", "task", "scope", "target_sparsity", "seed", "achieved_sparsity"]
    rows = [
        [job.name, job.task, job.scope, job.target_sparsity, job.seed, job.achieved_sparsity]
        + [job.compression_ratio, *(job.metrics.get(name, math.nan) for name in names)]
        for job in jobs
    ]
    return [*header, "compression_ratio", *names], rows


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(header)
        writer.writerows([[csv_cell(value) for value in row] for row in rows])


def csv_cell(value: Any) -> str:
    """Blank for NaN and None; 10 significant digits, so 0.7999999999999999 reads 0.8."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return format(value, ".10g") if isinstance(value, float) else str(value)

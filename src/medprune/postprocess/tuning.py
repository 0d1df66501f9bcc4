"""Grid search of the watershed thresholds on validation tiles.

The two thresholds of :func:`~medprune.postprocess.watershed.instances_from_maps` interact
(the foreground threshold decides which pixels can belong to a nucleus, the marker threshold
how many seeds split them) and their best values move as a network is pruned, so they are
chosen per model on held-out tiles instead of being hard-coded. Every (fg, marker) pair of the
two grids is scored with AJI or PQ per tile and averaged over tiles, the same way
:class:`~medprune.metrics.InstanceMetrics` averages them, so the tuned score is comparable to
the logged ``val/aji`` and ``val/pq``.

Ties: the best pair is the *first* one reaching the maximum mean score in grid order, the
foreground grid being the outer loop and the marker grid the inner one, both in the order
the caller gave them (``numpy.argmax`` over the ``(len(fg_grid), len(marker_grid))`` table).
Put the preferred values first, e.g. the defaults 0.5, to keep them unless beaten.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medprune.common.checks import check_choice, check_range
from medprune.metrics.instance import aggregated_jaccard_index, panoptic_quality
from medprune.postprocess.watershed import instances_from_maps

__all__ = ["ThresholdSearch", "ThresholdTuning", "best_pair", "score_sums", "tune_thresholds"]

_METRICS = ("aji", "pq")


@dataclass(frozen=True, eq=False)
class ThresholdSearch:
    """Outcome of :func:`tune_thresholds`; thresholds are unitless, in [0, 1].

    ``scores[i, j]`` is the mean per-tile ``metric`` at ``fg_grid[i]`` and ``marker_grid[j]``.
    """

    fg_threshold: float
    marker_threshold: float
    score: float
    metric: str
    fg_grid: tuple[float, ...]
    marker_grid: tuple[float, ...]
    scores: NDArray[np.float64]
    tiles: int  # how many tiles the means are over (all ranks' under DDP)

    def as_dict(self) -> dict[str, Any]:
        """Plain-Python (JSON-serialisable) view for loggers and ``summary.json``."""
        return {
            "fg_threshold": self.fg_threshold,
            "marker_threshold": self.marker_threshold,
            "score": self.score,
            "metric": self.metric,
            "fg_grid": list(self.fg_grid),
            "marker_grid": list(self.marker_grid),
            "scores": self.scores.tolist(),
            "tiles": self.tiles,
        }


def _check_grid(name: str, grid) -> tuple[float, ...]:
    if isinstance(grid, (str, bytes)) or not isinstance(grid, Sequence | np.ndarray):
        raise ValueError(f"{name} must be a sequence of thresholds in [0, 1], got {grid!r}")
    values = list(grid)
    if not values:
        raise ValueError(f"{name} must hold at least one threshold, got an empty grid")
    return tuple(
        check_range(v, f"{name}[{i}]", high_open=False, what="a threshold")
        for i, v in enumerate(values)
    )


def _check_tiles(
    probs: Sequence[ArrayLike], distances: Sequence[ArrayLike], instances: Sequence[ArrayLike]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    lengths = {"probs": len(probs), "distances": len(distances), "instances": len(instances)}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"probs, distances and instances must have equal lengths, got {lengths}")
    if lengths["probs"] == 0:
        raise ValueError("probs, distances and instances must hold at least one tile, got none")
    tiles = []
    for i, (p, d, t) in enumerate(zip(probs, distances, instances)):
        p, d, t = np.asarray(p), np.asarray(d), np.asarray(t)
        if p.ndim != 2 or p.shape != d.shape or p.shape != t.shape:
            raise ValueError(
                f"tile {i}: prob, distance and instances must be 2D maps of one shape, "
                f"got {p.shape}, {d.shape} and {t.shape}"
            )
        tiles.append((p, d, t))
    return tiles


def _tile_score(true: np.ndarray, pred: np.ndarray, metric: str) -> float:
    if metric == "aji":
        return aggregated_jaccard_index(true, pred)
    return float(panoptic_quality(true, pred)["pq"])


def tune_thresholds(
    probs: Sequence[ArrayLike],
    distances: Sequence[ArrayLike],
    instances: Sequence[ArrayLike],
    fg_grid: Sequence[float],
    marker_grid: Sequence[float],
    min_size: int = 10,
    metric: str = "aji",
) -> ThresholdSearch:
    """Pick the (fg_threshold, marker_threshold) pair maximising the mean per-tile ``metric``.

    ``probs`` (foreground probability), ``distances`` (normalised distance map) and
    ``instances`` (ground-truth label maps, 0 = background) are equal-length sequences of 2D
    tiles, or (N, H, W) arrays. ``min_size`` (pixels) is passed to ``instances_from_maps``
    unchanged; ``metric`` is ``"aji"`` or ``"pq"`` (PQ at IoU > 0.5). The cost is
    ``len(fg_grid) * len(marker_grid) * len(probs)`` watershed runs. Ties go to the first
    pair in grid order (see the module docstring).
    """
    check_choice(metric, "metric", _METRICS)
    fg_values = _check_grid("fg_grid", fg_grid)
    marker_values = _check_grid("marker_grid", marker_grid)
    tiles = _check_tiles(probs, distances, instances)

    scores = score_sums(tiles, fg_values, marker_values, min_size, metric) / len(tiles)
    return best_pair(scores, fg_values, marker_values, metric, len(tiles))


def score_sums(
    tiles: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]],
    fg_values: Sequence[float],
    marker_values: Sequence[float],
    min_size: int,
    metric: str,
) -> NDArray[np.float64]:
    """``(len(fg_values), len(marker_values))`` table of per-tile ``metric`` *sums* over
    (prob, distance, true instances) ``tiles``: sums from several processes add up to the
    table of all their tiles (divide by the total tile count for the means)."""
    sums = np.zeros((len(fg_values), len(marker_values)), dtype=np.float64)
    for i, fg in enumerate(fg_values):
        for j, marker in enumerate(marker_values):
            sums[i, j] = math.fsum(
                _tile_score(t, instances_from_maps(p, d, fg, marker, min_size), metric)
                for p, d, t in tiles
            )
    return sums


def best_pair(
    scores: NDArray[np.float64],
    fg_values: Sequence[float],
    marker_values: Sequence[float],
    metric: str,
    tiles: int,
) -> ThresholdSearch:
    """The first pair, in grid order, with the highest mean score in ``scores`` (means over
    ``tiles`` tiles)."""
    best_i, best_j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return ThresholdSearch(
        fg_threshold=fg_values[best_i],
        marker_threshold=marker_values[best_j],
        score=float(scores[best_i, best_j]),
        metric=metric,
        fg_grid=tuple(fg_values),
        marker_grid=tuple(marker_values),
        scores=scores,
        tiles=tiles,
    )


class ThresholdTuning:
    """The task's tuner (``task.tune_postprocess``): the grids and metric, checked at
    construction, and the validation tiles of the current epoch, added batch by batch."""

    def __init__(
        self,
        fg_grid: Sequence[float] = (0.5, 0.4, 0.6, 0.3, 0.7),
        marker_grid: Sequence[float] = (0.6, 0.5, 0.7, 0.4, 0.8, 0.3),
        metric: str = "aji",
    ) -> None:
        check_choice(metric, "task.tune_postprocess.metric", _METRICS)
        self.fg_grid = _check_grid("task.tune_postprocess.fg_grid", fg_grid)
        self.marker_grid = _check_grid("task.tune_postprocess.marker_grid", marker_grid)
        self.metric = metric
        self.tiles: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def add(self, probs: np.ndarray, distances: np.ndarray, instances: np.ndarray) -> None:
        """A batch of (N, H, W) maps: foreground probability, distance, true instances."""
        self.tiles.extend(zip(probs, distances, instances))

    def score_sums(self, min_size: int) -> tuple[NDArray[np.float64], int]:
        """This process's per-pair score sums and tile count; under DDP every rank holds a
        share of the tiles, and the sums and counts of all ranks are added before ``pick``."""
        sums = score_sums(self.tiles, self.fg_grid, self.marker_grid, min_size, self.metric)
        return sums, len(self.tiles)

    def pick(self, sums: NDArray[np.float64], count: int) -> ThresholdSearch:
        """The best pair from score sums over ``count`` tiles (of one or all processes)."""
        if count < 1:
            raise ValueError("threshold tuning needs at least one validation tile, got none")
        return best_pair(
            np.asarray(sums, np.float64) / count, self.fg_grid, self.marker_grid, self.metric, count
        )

    def clear(self) -> None:
        self.tiles.clear()

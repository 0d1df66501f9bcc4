"""Marker-controlled watershed merging the two network branches into instances.

After Mahbod et al. (2022): a semantic branch predicts a per-pixel foreground
*probability* and a regression branch predicts a per-nucleus *normalised
distance map* (distance to the nucleus border divided by that nucleus' maximum,
so each value is in [0, 1] and is 1 at every nucleus centre).

Thresholds (all unitless, in [0, 1]):

* ``fg_threshold`` -- a probability; pixels with ``prob > fg_threshold`` are
  foreground (nucleus).
* ``marker_threshold`` -- a normalised distance; foreground pixels with
  ``distance > marker_threshold`` form the seed markers, i.e. the inner cores of
  nuclei (0.5 keeps roughly the inner half of each nucleus' radius).
* ``min_size`` -- an area in pixels; smaller final instances are dropped.

The watershed floods ``-distance``: nucleus centres (distance 1) become basin
minima and the ridge lines between touching nuclei (low distance) become the
watershed lines, so flooding from the markers splits touching nuclei along
their contact line. Foreground components that received no marker are kept as
their own instances, so no foreground pixel is lost before the size filter.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import relabel_sequential, watershed

from medprune.common.checks import check_int, check_range

__all__ = ["foreground", "markers_from_distance", "instances_from_maps", "WatershedPostprocessor"]

_EIGHT = np.ones((3, 3), dtype=bool)  # 8-connectivity for 2D component labelling


def _check_threshold(name: str, value) -> float:
    return check_range(value, name, high_open=False, what="a threshold")


def _check_size(name: str, value) -> int:
    return check_int(value, name, 0)  # pixels


def _check_map(name: str, arr, ndim: int = 2) -> np.ndarray:
    arr = np.asarray(arr)
    if arr.ndim != ndim:
        raise ValueError(
            f"{name} must be a {ndim}D array, got ndim={arr.ndim} with shape {arr.shape}"
        )
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ValueError(f"{name} must be a numeric array, got dtype {arr.dtype}")
    return arr


def _remove_small(labels: np.ndarray, min_size: int) -> np.ndarray:
    """Zero every label with fewer than ``min_size`` pixels (label 0 untouched)."""
    if min_size <= 1 or labels.max() == 0:
        return labels
    counts = np.bincount(labels.ravel())
    small = counts < min_size
    small[0] = False
    out = labels.copy()
    out[small[labels]] = 0
    return out


def foreground(prob: np.ndarray, threshold: float) -> np.ndarray:
    """Boolean foreground mask ``prob > threshold``."""
    threshold = _check_threshold("threshold", threshold)
    return np.asarray(prob) > threshold


def markers_from_distance(
    distance: np.ndarray, fg: np.ndarray, threshold: float, min_marker_size: int = 2
) -> np.ndarray:
    """Label 8-connected components of ``(distance > threshold) & fg`` as int32 markers.

    Marker components smaller than ``min_marker_size`` pixels are removed; the
    remaining ids are consecutive 1..M.
    """
    threshold = _check_threshold("threshold", threshold)
    min_marker_size = _check_size("min_marker_size", min_marker_size)
    distance, fg = np.asarray(distance), np.asarray(fg, dtype=bool)
    if distance.shape != fg.shape:
        raise ValueError(
            f"distance and fg must have the same shape, got {distance.shape} and {fg.shape}"
        )
    markers, _ = ndi.label((distance > threshold) & fg, structure=_EIGHT)
    markers = _remove_small(markers, min_marker_size)
    return relabel_sequential(markers)[0].astype(np.int32)


def instances_from_maps(
    prob: np.ndarray,
    distance: np.ndarray,
    fg_threshold: float = 0.5,
    marker_threshold: float = 0.5,
    min_size: int = 10,
) -> np.ndarray:
    """Instance label map (H, W) int32, background 0, instances 1..N."""
    prob, distance = _check_map("prob", prob), _check_map("distance", distance)
    if prob.shape != distance.shape:
        raise ValueError(
            f"prob and distance must have the same shape, got {prob.shape} and {distance.shape}"
        )
    fg_threshold = _check_threshold("fg_threshold", fg_threshold)
    marker_threshold = _check_threshold("marker_threshold", marker_threshold)
    min_size = _check_size("min_size", min_size)

    fg = foreground(prob, fg_threshold)
    if not fg.any():
        return np.zeros(prob.shape, dtype=np.int32)
    markers = markers_from_distance(distance, fg, marker_threshold)
    labels = watershed(-distance.astype(np.float64), markers, mask=fg).astype(np.int32)
    # Foreground components without any marker are left at 0 by the watershed.
    orphans, n_orphans = ndi.label(fg & (labels == 0), structure=_EIGHT)
    if n_orphans:
        labels[orphans > 0] = orphans[orphans > 0] + labels.max()
    labels = _remove_small(labels, min_size)
    return relabel_sequential(labels)[0].astype(np.int32)


class WatershedPostprocessor:
    """Config-carrying wrapper around :func:`instances_from_maps`."""

    def __init__(
        self, fg_threshold: float = 0.5, marker_threshold: float = 0.5, min_size: int = 10
    ) -> None:
        self.fg_threshold = _check_threshold("fg_threshold", fg_threshold)
        self.marker_threshold = _check_threshold("marker_threshold", marker_threshold)
        self.min_size = _check_size("min_size", min_size)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(fg_threshold={self.fg_threshold}, "
            f"marker_threshold={self.marker_threshold}, min_size={self.min_size})"
        )

    def __call__(self, prob: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """One 2D (H, W) pair of maps -> (H, W) int32 instance labels."""
        return instances_from_maps(
            prob, distance, self.fg_threshold, self.marker_threshold, self.min_size
        )

    def batch(self, prob: np.ndarray, distance: np.ndarray) -> np.ndarray:
        """(N, H, W) maps -> (N, H, W) int32 instance labels (ids restart at 1 per tile)."""
        prob, distance = _check_map("prob", prob, ndim=3), _check_map("distance", distance, ndim=3)
        if prob.shape != distance.shape:
            raise ValueError(
                f"prob and distance must have the same shape, got {prob.shape} and {distance.shape}"
            )
        out = np.zeros(prob.shape, dtype=np.int32)
        for i in range(prob.shape[0]):
            out[i] = self(prob[i], distance[i])
        return out

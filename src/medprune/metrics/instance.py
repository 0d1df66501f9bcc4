"""Instance-segmentation metrics for nucleus-style label maps.

Inputs are 2D integer label maps: 0 is background, every positive id is one
instance; ids need not be consecutive and ``true``/``pred`` ids are unrelated.
All areas and intersections are pixel counts; every score is unitless in [0, 1].

* AJI, Aggregated Jaccard Index (Kumar et al., 2017, "A Dataset and a Technique
  for Generalized Nuclear Segmentation for Computational Pathology", IEEE TMI).
* PQ = DQ * SQ, Panoptic Quality (Kirillov et al., 2019, "Panoptic
  Segmentation", CVPR), used here for a single "thing" class. A pair matches
  when IoU > ``iou_threshold`` (strictly); with a threshold >= 0.5 each instance
  can match at most one other, so no assignment problem has to be solved.

Conventions for degenerate tiles (the metrics are 0/0 there otherwise):

* both maps empty          -> AJI = PQ = DQ = SQ = 1.0 (nothing to find, nothing found);
* ``true`` empty, ``pred`` not -> all 0.0 (everything predicted is false);
* ``pred`` empty, ``true`` not -> all 0.0 (everything missed);
* instances present but no true positive -> SQ = 0.0 (hence PQ = 0.0).

Averaging over tiles (``medprune.metrics.tiles.InstanceMetrics``) is per tile, as in the
literature, so an empty-vs-empty tile counts as a perfect one.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray

from medprune.common.checks import check_range

__all__ = [
    "Overlap",
    "overlap_matrix",
    "aggregated_jaccard_index",
    "panoptic_quality",
    "instance_scores",
]


class Overlap(NamedTuple):
    """Pixel-count overlap statistics between two label maps.

    ``intersection[i, j]`` is ``|true == true_ids[i]  &  pred == pred_ids[j]|``.
    It is dense (n_true x n_pred), which is cheap for tiles but quadratic in the
    number of instances, so do not feed it whole slides.
    """

    true_ids: NDArray[np.int64]
    pred_ids: NDArray[np.int64]
    intersection: NDArray[np.int64]
    true_areas: NDArray[np.int64]
    pred_areas: NDArray[np.int64]

    def union(self) -> NDArray[np.int64]:
        return self.true_areas[:, None] + self.pred_areas[None, :] - self.intersection

    def iou(self) -> NDArray[np.float64]:
        # Every instance has area >= 1, so the union is never zero.
        return self.intersection / self.union()


def _check_labels(name: str, labels: ArrayLike) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D label map (H, W), got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must have an integer dtype (instance ids), got {arr.dtype}")
    if arr.size and np.issubdtype(arr.dtype, np.signedinteger) and arr.min() < 0:
        raise ValueError(f"{name} must be non-negative (0 = background), found minimum {arr.min()}")
    return arr


def check_iou_threshold(iou_threshold: float) -> float:
    # Below 0.5 one instance could match several, which would need a Hungarian
    # assignment; at >= 1.0 no pair can ever match (IoU > 1 is impossible).
    return check_range(iou_threshold, "iou_threshold", 0.5, 1.0, what="an IoU threshold")


def _compact(flat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return (sorted positive ids, per-pixel index: 0 = background, k+1 = ids[k])."""
    if flat.size == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.intp)
    top = int(flat.max())
    if top <= 4 * flat.size + 1024:
        # Lookup table via bincount: O(n), much faster than the sort in np.unique.
        flat = flat.astype(np.intp, copy=False)
        ids = np.flatnonzero(np.bincount(flat, minlength=top + 1)[1:]) + 1
        lut = np.zeros(top + 1, np.intp)
        lut[ids] = np.arange(1, ids.size + 1)
        return ids.astype(np.int64), lut[flat]
    # Huge sparse ids (e.g. hashed or uint64 labels): fall back to sorting.
    uniq, inverse = np.unique(flat, return_inverse=True)
    inverse = inverse.reshape(-1)
    if uniq[0] == 0:
        return uniq[1:].astype(np.int64), inverse
    return uniq.astype(np.int64), inverse + 1


def overlap_matrix(true: ArrayLike, pred: ArrayLike) -> Overlap:
    """Validate two label maps and count all pairwise overlaps in one bincount."""
    t = _check_labels("true", true)
    p = _check_labels("pred", pred)
    if t.shape != p.shape:
        raise ValueError(f"true and pred must have the same shape, got {t.shape} and {p.shape}")
    true_ids, t_idx = _compact(t.ravel())
    pred_ids, p_idx = _compact(p.ravel())
    n_t, n_p = true_ids.size + 1, pred_ids.size + 1  # +1: the background row/column
    counts = (
        np.bincount(t_idx * n_p + p_idx, minlength=n_t * n_p).reshape(n_t, n_p).astype(np.int64)
    )
    return Overlap(
        true_ids=true_ids,
        pred_ids=pred_ids,
        intersection=counts[1:, 1:],
        true_areas=counts[1:, :].sum(axis=1),
        pred_areas=counts[:, 1:].sum(axis=0),
    )


def _aji(ov: Overlap) -> float:
    n_true, n_pred = ov.true_ids.size, ov.pred_ids.size
    if n_true == 0:
        return 1.0 if n_pred == 0 else 0.0
    if n_pred == 0:
        return 0.0
    union = ov.union()
    rows = np.arange(n_true)
    best = (ov.intersection / union).argmax(axis=1)  # ties -> smallest pred id
    hit = ov.intersection[rows, best] > 0
    inter_sum = ov.intersection[rows, best][hit].sum()
    union_sum = union[rows, best][hit].sum() + ov.true_areas[~hit].sum()
    used = np.zeros(n_pred, dtype=bool)
    used[best[hit]] = True
    union_sum += ov.pred_areas[~used].sum()
    return float(inter_sum / union_sum)


def _pq(ov: Overlap, thr: float) -> dict[str, float]:
    n_true, n_pred = ov.true_ids.size, ov.pred_ids.size
    if n_true == 0 and n_pred == 0:
        return {"pq": 1.0, "dq": 1.0, "sq": 1.0, "tp": 0, "fp": 0, "fn": 0}
    iou = ov.iou()
    matched = iou > thr
    tp = int(matched.sum())
    fp, fn = n_pred - tp, n_true - tp
    dq = tp / (tp + 0.5 * fp + 0.5 * fn)
    sq = float(iou[matched].mean()) if tp else 0.0
    return {"pq": dq * sq, "dq": dq, "sq": sq, "tp": tp, "fp": fp, "fn": fn}


def aggregated_jaccard_index(true: ArrayLike, pred: ArrayLike) -> float:
    """Aggregated Jaccard Index, following Kumar et al. (2017) literally.

    Each ground-truth instance takes the prediction with the highest IoU among
    those it intersects (ties: smallest pred id) and adds their intersection to
    C and their union to U; a ground truth touching no prediction adds only its
    area to U. Predictions picked by no ground truth add their area to U.
    As in the original definition a prediction may be picked by several ground
    truths (a merge), its area then entering several unions; this is what
    penalises merges, and it differs from the "AJI+" variant of Graham et al.
    """
    return _aji(overlap_matrix(true, pred))


def panoptic_quality(
    true: ArrayLike, pred: ArrayLike, iou_threshold: float = 0.5
) -> dict[str, float]:
    """Panoptic quality (Kirillov et al., 2019) for one instance class.

    Returns ``pq``, ``dq`` (F1-like detection quality), ``sq`` (mean IoU of
    matched pairs) as floats and the ``tp``/``fp``/``fn`` counts as ints.
    """
    thr = check_iou_threshold(iou_threshold)
    return _pq(overlap_matrix(true, pred), thr)


def instance_scores(
    true: ArrayLike, pred: ArrayLike, iou_threshold: float = 0.5
) -> dict[str, float]:
    """AJI, PQ, DQ and SQ of one tile from a single overlap matrix."""
    ov = overlap_matrix(true, pred)
    pq = _pq(ov, check_iou_threshold(iou_threshold))
    return {"aji": _aji(ov), "pq": pq["pq"], "dq": pq["dq"], "sq": pq["sq"]}

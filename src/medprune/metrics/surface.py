"""Per-structure Dice and HD95 (mm) for 3D semantic label volumes, e.g. cardiac MRI (ACDC).

Scores are computed per volume, per structure (binary mask ``labels == k``), in physical units:
``spacing`` is the voxel size in millimetres per array axis, in array order (for an ACDC volume
stored as (z, y, x) typically ``(10.0, 1.5625, 1.5625)``), so anisotropic voxels are handled
exactly. Dice is unitless in [0, 1]; every distance is in millimetres.

* Surface of a mask: its foreground voxels having at least one background neighbour in the
  connectivity-1 (face) neighbourhood of the full array (6 neighbours in 3D, 4 in 2D, never
  slice by slice); outside the array counts as background, so a mask touching the border has a
  surface there.
* HD95 follows MedPy's ``hd95``: the 95th percentile (numpy's default linear interpolation) of
  the *pooled* surface distances, ``percentile(hstack(d(pred->target), d(target->pred)), 95)``,
  not the maximum of the two directed 95th percentiles. Distances are between voxel centres,
  computed with ``scipy.ndimage.distance_transform_edt(..., sampling=spacing)``.

Conventions for a structure missing from the prediction and/or the ground truth (the metrics
are undefined there otherwise), chosen so that per-volume means stay finite:

* both empty            -> Dice 1.0, HD95 0.0 mm (nothing to find, nothing found);
* exactly one empty     -> Dice 0.0, HD95 = the diagonal of the image extent in mm,
  ``sqrt(sum((n_i * spacing_i) ** 2))``. That is strictly larger than any distance between two
  voxel centres of the volume, so a missed (or hallucinated) structure always scores worse than
  any prediction that finds it, however poor. It depends on the field of view, so compare HD95
  means only between runs on the same volumes.

Means over structures (``dice_mean``, ``hd95_mean``) are per volume; ``mean_scores`` then
averages volumes with equal weight, as in the ACDC challenge evaluation.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import ndimage

__all__ = [
    "ACDC_CLASSES",
    "dice",
    "surface_distances",
    "hd95",
    "volume_scores",
    "mean_scores",
]

ACDC_CLASSES: Mapping[int, str] = {1: "rv", 2: "myo", 3: "lv"}


def _as_mask(name: str, mask: ArrayLike) -> NDArray[np.bool_]:
    arr = np.asarray(mask)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be an array mask, got a scalar")
    if arr.dtype == np.bool_:
        return arr
    if not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)):
        raise ValueError(f"{name} must be a boolean or 0/1 numeric mask, got dtype {arr.dtype}")
    bad = np.setdiff1d(np.unique(arr), [0, 1])
    if bad.size:
        # Catches a label map passed where a binary mask is expected (use ``labels == k``).
        raise ValueError(
            f"{name} must be a binary mask (bool or 0/1), found other values {bad[:10].tolist()}"
        )
    return arr.astype(bool)


def _check_same_shape(a: np.ndarray, b: np.ndarray, names: tuple[str, str]) -> None:
    if a.shape != b.shape:
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape, got {a.shape} and {b.shape}"
        )


def _check_spacing(spacing: ArrayLike, ndim: int) -> tuple[float, ...]:
    try:
        sp = np.asarray(spacing, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise ValueError(f"spacing must be a sequence of numbers (mm), got {spacing!r}") from err
    if sp.ndim != 1 or sp.size != ndim:
        raise ValueError(
            f"spacing must have one entry per array axis ({ndim} for a {ndim}D array), "
            f"got {spacing!r}"
        )
    if not np.all(np.isfinite(sp) & (sp > 0)):
        raise ValueError(f"spacing must be positive and finite (mm per voxel), got {spacing!r}")
    return tuple(float(s) for s in sp)


def _surface(mask: NDArray[np.bool_]) -> NDArray[np.bool_]:
    # border_value=0: voxels on the array border erode away, i.e. outside counts as background.
    structure = ndimage.generate_binary_structure(mask.ndim, 1)
    return mask & ~ndimage.binary_erosion(mask, structure=structure, border_value=0)


def _crop_to_union(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Crop both masks to the bounding box of ``a | b`` plus one voxel (exact, and much faster).

    The one-voxel margin is background (or the array border, which counts as background anyway),
    so surfaces are unchanged, and every nearest surface voxel lies inside the box.
    """
    idx = np.nonzero(a | b)
    box = tuple(slice(max(int(i.min()) - 1, 0), int(i.max()) + 2) for i in idx)
    return a[box], b[box]


def _directed(surf_a: np.ndarray, surf_b: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    # EDT of ~surf_b = distance (mm) from every voxel to the nearest surface voxel of b.
    return ndimage.distance_transform_edt(~surf_b, sampling=spacing)[surf_a]


def _image_diagonal(shape: tuple[int, ...], spacing: tuple[float, ...]) -> float:
    return float(np.sqrt(sum((n * s) ** 2 for n, s in zip(shape, spacing))))


def dice(pred: ArrayLike, target: ArrayLike) -> float:
    """Dice coefficient ``2|P & T| / (|P| + |T|)`` of two binary masks; 1.0 if both are empty."""
    p, t = _as_mask("pred", pred), _as_mask("target", target)
    _check_same_shape(p, t, ("pred", "target"))
    total = int(np.count_nonzero(p)) + int(np.count_nonzero(t))
    if total == 0:
        return 1.0
    return 2.0 * int(np.count_nonzero(p & t)) / total


def surface_distances(a: ArrayLike, b: ArrayLike, spacing: ArrayLike) -> NDArray[np.float64]:
    """Distances (mm) from each surface voxel of ``a`` to the nearest surface voxel of ``b``.

    Works for masks of any dimension (2D and 3D are the intended uses); ``spacing`` gives the
    voxel size in mm per axis. Returns one distance per surface voxel of ``a`` in C order, an
    empty array if ``a`` is empty. An empty ``b`` with a non-empty ``a`` raises ``ValueError``:
    the distance is undefined (``hd95`` applies the missing-structure convention instead).
    """
    a_m, b_m = _as_mask("a", a), _as_mask("b", b)
    _check_same_shape(a_m, b_m, ("a", "b"))
    sp = _check_spacing(spacing, a_m.ndim)
    if not a_m.any():
        return np.zeros(0, dtype=np.float64)
    if not b_m.any():
        raise ValueError("b is empty: distances to an empty surface are undefined")
    a_m, b_m = _crop_to_union(a_m, b_m)
    return _directed(_surface(a_m), _surface(b_m), sp)


def hd95(pred: ArrayLike, target: ArrayLike, spacing: ArrayLike) -> float:
    """95th percentile Hausdorff distance in mm, MedPy convention (see the module docstring).

    ``percentile(hstack(d(pred->target), d(target->pred)), 95)`` over surface voxels, with
    numpy's linear interpolation. Both masks empty -> 0.0; exactly one empty -> the image
    diagonal ``sqrt(sum((n_i * spacing_i) ** 2))``, the worst case for this volume.
    """
    p, t = _as_mask("pred", pred), _as_mask("target", target)
    _check_same_shape(p, t, ("pred", "target"))
    sp = _check_spacing(spacing, p.ndim)
    has_p, has_t = bool(p.any()), bool(t.any())
    if not has_p and not has_t:
        return 0.0
    if has_p != has_t:
        return _image_diagonal(p.shape, sp)
    p, t = _crop_to_union(p, t)
    surf_p, surf_t = _surface(p), _surface(t)
    # A non-empty mask always has a surface voxel (e.g. its last one along axis 0).
    d = np.hstack([_directed(surf_p, surf_t, sp), _directed(surf_t, surf_p, sp)])
    return float(np.percentile(d, 95))


def _check_classes(classes: Mapping[int, str]) -> dict[int, str]:
    if not classes:
        raise ValueError("classes must map at least one label value to a name, got none")
    out: dict[int, str] = {}
    for label, name in classes.items():
        if isinstance(label, bool) or not isinstance(label, (int, np.integer)) or label <= 0:
            raise ValueError(
                f"classes keys must be positive int labels (0 = background), got {label!r}"
            )
        if not isinstance(name, str) or not name or name == "mean":
            raise ValueError(
                f"classes names must be non-empty strings other than 'mean', got {name!r}"
            )
        out[int(label)] = name
    if len(set(out.values())) != len(out):
        raise ValueError(f"classes names must be unique, got {list(out.values())}")
    return out


def _check_labels(name: str, labels: ArrayLike, allowed: list[int]) -> np.ndarray:
    arr = np.asarray(labels)
    if arr.ndim == 0:
        raise ValueError(f"{name} must be a label array, got a scalar")
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(f"{name} must be a numeric label array, got dtype {arr.dtype}")
    found = np.unique(arr)
    bad = found[~np.isin(found, allowed)]  # also rejects NaN and non-integral floats
    if bad.size:
        raise ValueError(
            f"{name} label values must be in {allowed} (0 = background plus the classes), "
            f"found values {found[:20].tolist()}; not allowed: {bad[:20].tolist()}"
        )
    return arr


def volume_scores(
    pred_labels: ArrayLike,
    target_labels: ArrayLike,
    spacing: ArrayLike,
    classes: Mapping[int, str] | None = None,
) -> dict[str, float]:
    """Per-structure Dice and HD95 (mm) of one label volume, plus their means over structures.

    ``classes`` maps label value -> name (default ``ACDC_CLASSES``: 1 rv, 2 myo, 3 lv); label 0
    is background, and any other value in either volume is an error. Returns ``dice_<name>`` for
    each class, ``dice_mean``, then ``hd95_<name>`` and ``hd95_mean`` (mm). Missing structures
    follow the module's conventions, so every value is finite.
    """
    cls = _check_classes(ACDC_CLASSES if classes is None else classes)
    allowed = [0, *sorted(cls)]
    p = _check_labels("pred_labels", pred_labels, allowed)
    t = _check_labels("target_labels", target_labels, allowed)
    _check_same_shape(p, t, ("pred_labels", "target_labels"))
    sp = _check_spacing(spacing, p.ndim)
    dices = {name: dice(p == k, t == k) for k, name in cls.items()}
    hds = {name: hd95(p == k, t == k, sp) for k, name in cls.items()}
    out = {f"dice_{name}": v for name, v in dices.items()}
    out["dice_mean"] = float(np.mean(list(dices.values())))
    out.update({f"hd95_{name}": v for name, v in hds.items()})
    out["hd95_mean"] = float(np.mean(list(hds.values())))
    return out


def mean_scores(scores: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """Average per-volume score dicts key by key (every volume weighs the same).

    All dicts must have the same keys (e.g. from ``volume_scores`` with the same ``classes``).
    """
    if len(scores) == 0:
        raise ValueError("mean_scores needs the scores of at least one volume, got none")
    keys = list(scores[0])
    for i, s in enumerate(scores):
        if set(s) != set(keys):
            raise ValueError(f"scores[{i}] has keys {sorted(s)}, expected {sorted(keys)}")
    return {k: float(np.mean([float(s[k]) for s in scores])) for k in keys}

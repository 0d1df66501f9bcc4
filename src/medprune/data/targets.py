"""Training targets derived from an instance label map (computed after augmentation).

The two-branch model (Mahbod et al. 2022) learns

* a semantic foreground mask (``foreground_mask``) for the U-Net segmentation
  branch, and
* a distance map (``distance_map``) for the regression branch.

Distance-map convention
-----------------------
For every nucleus we take the Euclidean distance transform of *that nucleus's
own mask*: the distance (px) from each of its pixels to the nearest pixel that
is not part of the same nucleus. Touching neighbours therefore count as
background, so two nuclei that touch get two separate peaks with a valley
between them instead of one merged plateau. Each nucleus is then divided by its
own maximum, so it spans (0, 1] with 1.0 at its centre and 0 on background.

Why per-nucleus normalisation: with raw distances a 3 px nucleus peaks at ~3
and a 9 px one at ~9, so thresholding the predicted map for watershed markers
would favour large nuclei and lose small ones. Normalised, small and large
nuclei give equally strong markers, and the map is a well-scaled regression
target in [0, 1]. At inference the watershed uses the (negated) predicted map
as its relief, seeded by its thresholded peaks and limited by the foreground
mask.

The transform is computed per instance on its bounding box with one pixel of
zero padding on every side (``scipy.ndimage.find_objects`` +
``distance_transform_edt``), which costs O(total nucleus area) instead of
O(N * image area). The padding also means that a nucleus cut by the tile
border treats the border as background, so its peak lies inside the visible
part.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def _check_instances(instances: np.ndarray) -> np.ndarray:
    """Validate a 2-D non-negative integer label map (0 = background)."""
    arr = np.asarray(instances)
    if arr.ndim != 2:
        raise ValueError(f"instances must be a 2-D label map, got shape {arr.shape}")
    if not (np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_):
        raise ValueError(f"instances must have an integer dtype, got {arr.dtype}")
    if arr.size and arr.min() < 0:
        raise ValueError("instances must be non-negative (0 = background)")
    return arr


def foreground_mask(instances: np.ndarray) -> np.ndarray:
    """Binary semantic target: float32 (H, W), 1.0 inside any nucleus, 0.0 elsewhere."""
    return (_check_instances(instances) > 0).astype(np.float32)


def distance_map(instances: np.ndarray) -> np.ndarray:
    """Per-nucleus normalised distance map: float32 (H, W) in [0, 1].

    Each nucleus holds its own Euclidean distance transform (px to the nearest
    pixel outside that nucleus, touching neighbours and the tile border count as
    outside) divided by its maximum, so it spans (0, 1] with 1.0 at its centre.
    Background is 0. Ids need not be consecutive.
    """
    arr = _check_instances(instances).astype(np.int64, copy=False)
    out = np.zeros(arr.shape, dtype=np.float32)
    if arr.size == 0 or arr.max() == 0:
        return out
    for idx, sl in enumerate(ndimage.find_objects(arr), start=1):
        if sl is None:
            continue
        mask = arr[sl] == idx
        edt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        out[sl][mask] = (edt[mask] / edt.max()).astype(np.float32)
    return out

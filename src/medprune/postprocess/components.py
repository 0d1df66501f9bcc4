"""Keep each structure's largest connected component in a 3D label map.

One RV, one myocardium and one LV cavity per heart: anything else a network predicts for a
class (a bright vessel, the other ventricle's apex) is a false island that costs Dice and,
far away from the heart, dominates HD95. nnU-Net applies the same step to ACDC.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from scipy import ndimage

# Neighbours: 8-connected within a slice, face-connected across slices (short-axis slices are
# 5-10 mm apart, so a diagonal step between slices is not evidence of one structure).
_STRUCTURE = np.zeros((3, 3, 3), dtype=bool)
_STRUCTURE[1] = True
_STRUCTURE[0, 1, 1] = _STRUCTURE[2, 1, 1] = True


def keep_largest_component(labels: np.ndarray, classes: Iterable[int]) -> np.ndarray:
    """``labels`` (Z, H, W) or (H, W) class map; for each class in ``classes``, voxels outside
    its largest connected component become background (0). Other classes are left alone."""
    labels = np.asarray(labels)
    if labels.ndim not in (2, 3):
        raise ValueError(
            f"keep_largest_component: expected (H, W) or (Z, H, W), got {labels.shape}"
        )
    volume = labels[None] if labels.ndim == 2 else labels
    out = volume.copy()
    for cls in classes:
        components, count = ndimage.label(volume == cls, structure=_STRUCTURE)
        if count < 2:
            continue
        sizes = np.bincount(components.ravel())
        sizes[0] = 0
        out[(components != 0) & (components != sizes.argmax())] = 0
    return out[0] if labels.ndim == 2 else out

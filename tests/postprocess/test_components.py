import numpy as np
import pytest

from medprune.postprocess import keep_largest_component


def test_keeps_each_listed_class_largest_3d_component():
    labels = np.zeros((3, 8, 8), np.uint8)
    labels[0:2, 1:4, 1:4] = 2  # 18 voxels across two slices: the myocardium
    labels[2, 6:8, 6:8] = 2  # 4-voxel island
    labels[1, 6, 0] = 3  # LV: single voxels, two components
    labels[1, 0, 6:8] = 3
    labels[0, 7, 0] = 1  # RV: one component, stays
    out = keep_largest_component(labels, (2, 3))
    assert (out == 2).sum() == 18 and out[2, 6:8, 6:8].sum() == 0
    assert (out == 3).sum() == 2 and out[1, 6, 0] == 0  # the larger LV piece (2 voxels) stays
    assert out[0, 7, 0] == 1
    assert labels[2, 6, 6] == 2  # input untouched


def test_connectivity_is_8_in_plane_and_face_across_slices():
    diagonal_in_plane = np.zeros((1, 4, 4), np.uint8)
    diagonal_in_plane[0, 0, 0] = diagonal_in_plane[0, 1, 1] = 1
    assert (keep_largest_component(diagonal_in_plane, [1]) == 1).sum() == 2
    diagonal_across = np.zeros((2, 4, 4), np.uint8)
    diagonal_across[0, 0, 0] = 1
    diagonal_across[1, 1, 1] = 1
    diagonal_across[1, 1, 2] = 1
    out = keep_largest_component(diagonal_across, [1])
    assert out[0, 0, 0] == 0 and (out == 1).sum() == 2


def test_2d_input_and_bad_shape():
    labels = np.zeros((5, 5), np.uint8)
    labels[0, 0], labels[2:4, 2:4] = 1, 1
    out = keep_largest_component(labels, [1])
    assert out.shape == (5, 5) and out[0, 0] == 0 and (out == 1).sum() == 4
    with pytest.raises(ValueError, match=r"expected \(H, W\) or \(Z, H, W\)"):
        keep_largest_component(np.zeros(4), [1])

"""Tests for foreground and per-nucleus normalised distance-map targets."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medprune.data.synthetic_nuclei import generate_nuclei_tile
from medprune.data.targets import distance_map, foreground_mask


def _disk(shape: tuple[int, int], cy: int, cx: int, r: int) -> np.ndarray:
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r


def test_single_disk_foreground_and_distance() -> None:
    disk = _disk((21, 21), 10, 10, 5)
    lab = disk.astype(np.int32)
    fg = foreground_mask(lab)
    assert fg.dtype == np.float32 and fg.shape == (21, 21)
    assert fg.sum() == disk.sum()
    dm = distance_map(lab)
    assert dm.dtype == np.float32 and dm.shape == (21, 21)
    assert dm[10, 10] == pytest.approx(1.0)
    assert dm.max() == pytest.approx(1.0)
    centre_edt = ndimage.distance_transform_edt(disk)[10, 10]
    assert centre_edt == pytest.approx(np.sqrt(26.0))  # nearest outside pixel is (11, 15)
    assert dm[10, 15] == pytest.approx(1.0 / centre_edt, rel=1e-6)  # boundary pixel: EDT 1
    assert np.all(dm[~disk] == 0.0)
    assert np.all(dm[disk] > 0.0)


def test_two_touching_disks_each_have_own_peak() -> None:
    lab = np.zeros((21, 31), dtype=np.int32)
    lab[_disk(lab.shape, 10, 10, 5)] = 1
    lab[_disk(lab.shape, 10, 20, 5)] = 2  # overlaps disk 1 at x=15, later wins
    assert ((lab[:, :-1] == 1) & (lab[:, 1:] == 2)).any()  # 4-adjacent
    dm = distance_map(lab)
    assert dm[lab == 1].max() == pytest.approx(1.0)
    assert dm[lab == 2].max() == pytest.approx(1.0)
    # the contact line is a valley: neighbours count as outside
    assert dm[10, 14] < 0.5 and dm[10, 15] < 0.5
    assert foreground_mask(lab).sum() == (lab > 0).sum()


def test_small_and_large_nuclei_equal_peaks() -> None:
    lab = np.zeros((40, 40), dtype=np.int32)
    lab[_disk(lab.shape, 8, 8, 2)] = 1
    lab[_disk(lab.shape, 25, 25, 9)] = 2
    dm = distance_map(lab)
    assert dm[lab == 1].max() == pytest.approx(1.0) and dm[lab == 2].max() == pytest.approx(1.0)


def test_empty_map_gives_zeros() -> None:
    lab = np.zeros((16, 12), dtype=np.int32)
    assert not foreground_mask(lab).any() and foreground_mask(lab).dtype == np.float32
    dm = distance_map(lab)
    assert dm.shape == (16, 12) and dm.dtype == np.float32 and not dm.any()


def test_non_consecutive_ids_and_border_nucleus() -> None:
    lab = np.zeros((20, 20), dtype=np.uint16)
    lab[0:5, 0:7] = 7  # touches the tile border: border counts as outside
    lab[10:15, 10:15] = 3
    dm = distance_map(lab)
    assert dm[lab == 7].max() == pytest.approx(1.0) and dm[lab == 3].max() == pytest.approx(1.0)
    assert dm[0, 0] < 1.0 and dm[2, 3] == pytest.approx(1.0)


def test_matches_full_image_reference_on_synthetic_tile() -> None:
    _, lab = generate_nuclei_tile(4)
    dm = distance_map(lab)
    ref = np.zeros(lab.shape, dtype=np.float64)
    for idx in range(1, lab.max() + 1):
        mask = lab == idx
        edt = ndimage.distance_transform_edt(np.pad(mask, 1))[1:-1, 1:-1]
        ref[mask] = edt[mask] / edt.max()
    np.testing.assert_allclose(dm, ref, rtol=1e-6, atol=1e-7)
    assert np.all((dm > 0) == (lab > 0)) and dm.max() <= 1.0


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        (np.zeros((4, 4, 1), dtype=np.int32), "2-D"),
        (np.zeros((4, 4), dtype=np.float32), "integer"),
        (np.full((4, 4), -1, dtype=np.int32), "non-negative"),
    ],
)
def test_input_validation(bad: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        distance_map(bad)
    with pytest.raises(ValueError, match=match):
        foreground_mask(bad)

import itertools
import math

import numpy as np
import pytest

from medprune.metrics.surface import (
    dice,
    hd95,
    mean_scores,
    surface_distances,
    volume_scores,
)

ACDC_SPACING = (10.0, 1.5625, 1.5625)

# --- independent brute force (no scipy): explicit surface points, all pairwise distances -----


def brute_surface_points(mask: np.ndarray) -> np.ndarray:
    """Foreground voxels with a face neighbour that is background or outside the array."""
    pts = []
    for idx in itertools.product(*(range(n) for n in mask.shape)):
        if not mask[idx]:
            continue
        for axis, step in itertools.product(range(mask.ndim), (-1, 1)):
            nb = list(idx)
            nb[axis] += step
            if not 0 <= nb[axis] < mask.shape[axis] or not mask[tuple(nb)]:
                pts.append(idx)
                break
    return np.array(pts, dtype=float)


def brute_directed(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    pa = brute_surface_points(a) * np.asarray(spacing)
    pb = brute_surface_points(b) * np.asarray(spacing)
    return np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)).min(axis=1)


def brute_hd95(a: np.ndarray, b: np.ndarray, spacing) -> float:
    d = np.hstack([brute_directed(a, b, spacing), brute_directed(b, a, spacing)])
    return float(np.percentile(d, 95))


def box(shape, *ranges) -> np.ndarray:
    """Boolean mask, True on the half-open index ranges (one (start, stop) per axis)."""
    m = np.zeros(shape, dtype=bool)
    m[tuple(slice(lo, hi) for lo, hi in ranges)] = True
    return m


# --- Dice ----------------------------------------------------------------------------------


def test_dice_overlapping_squares_exact():
    a = box((10, 10), (0, 4), (0, 4))  # 16 px
    b = box((10, 10), (2, 5), (2, 5))  # 9 px, overlap rows 2-3 x cols 2-3 = 4 px
    assert dice(a, b) == pytest.approx(2 * 4 / (16 + 9))
    assert dice(a.astype(np.uint8), b.astype(np.float32)) == pytest.approx(8 / 25)


def test_dice_identical_disjoint_and_empty():
    a = box((5, 6, 7), (1, 3), (1, 4), (2, 6))
    assert dice(a, a) == 1.0
    assert dice(a, box(a.shape, (1, 3), (1, 4), (0, 2))) == 0.0  # disjoint along x
    empty = np.zeros_like(a)
    assert dice(empty, empty) == 1.0
    assert dice(a, empty) == 0.0 and dice(empty, a) == 0.0


def test_dice_rejects_label_maps_and_shape_mismatch():
    with pytest.raises(ValueError, match=r"binary mask.*\[2\]"):
        dice(np.array([[0, 1, 2]]), np.array([[0, 1, 1]]))
    with pytest.raises(ValueError, match=r"\(2, 3\) and \(3, 2\)"):
        dice(np.zeros((2, 3), bool), np.zeros((3, 2), bool))


# --- surface distances and HD95 --------------------------------------------------------------


def test_surface_of_3x3_square_is_its_ring():
    a = box((5, 5), (1, 4), (1, 4))
    d = surface_distances(a, a, (1.0, 1.0))
    assert d.shape == (8,) and not d.any()  # 3x3 square: all but the centre pixel


def test_3x3_squares_shifted_3px_in_x_by_hand():
    # A cols 1-3, B cols 4-6, rows 1-3; spacing (y, x) = (1, 2) mm. B's left column is entirely
    # surface, so an A surface pixel in column c is (4 - c) * 2 mm away: column 1 (3 px) -> 6,
    # column 2 (top and bottom only) -> 4, column 3 (3 px) -> 2.  B->A is the mirror image.
    a = box((5, 8), (1, 4), (1, 4))
    b = box((5, 8), (1, 4), (4, 7))
    d = surface_distances(a, b, (1.0, 2.0))
    assert sorted(d.tolist()) == [2, 2, 2, 4, 4, 6, 6, 6]
    assert sorted(surface_distances(b, a, (1.0, 2.0)).tolist()) == [2, 2, 2, 4, 4, 6, 6, 6]
    # Pooled 16 values, 95th percentile at rank 14.25 of the sorted list: 6 and 6 -> 6.
    assert hd95(a, b, (1.0, 2.0)) == pytest.approx(6.0)


def test_hd95_pools_both_directions_medpy_convention():
    # pred = {p}, target = {p, q} with q 4 px away in x at 2 mm/px (8 mm).
    # d(pred->target) = [0], d(target->pred) = [0, 8]; pooled [0, 0, 8]:
    # 95th percentile = rank 1.9 -> 0 + 0.9 * 8 = 7.2 mm. (Max of the directed 95th
    # percentiles would give 0.95 * 8 = 7.6 mm instead.)
    pred = np.zeros((3, 7), bool)
    pred[1, 1] = True
    target = pred.copy()
    target[1, 5] = True
    assert hd95(pred, target, (1.0, 2.0)) == pytest.approx(7.2)
    assert hd95(target, pred, (1.0, 2.0)) == pytest.approx(7.2)


def test_hd95_ignores_a_rare_outlier_unlike_hausdorff():
    target = box((20, 30), (2, 12), (2, 12))  # 10x10: 36 surface px
    pred = target.copy()
    pred[18, 28] = True  # one far false positive: 1 of 73 pooled distances is non-zero
    # The outlier's nearest target surface pixel is the corner (11, 11): sqrt(7**2 + 17**2) px.
    assert surface_distances(pred, target, (1.0, 1.0)).max() == pytest.approx(math.hypot(7, 17))
    assert hd95(pred, target, (1.0, 1.0)) == 0.0


def test_10x10_squares_shifted_3px_match_brute_force():
    a = box((14, 20), (2, 12), (2, 12))
    b = box((14, 20), (2, 12), (5, 15))
    sp = (1.0, 2.0)
    np.testing.assert_allclose(
        np.sort(surface_distances(a, b, sp)), np.sort(brute_directed(a, b, sp))
    )
    assert hd95(a, b, sp) == pytest.approx(brute_hd95(a, b, sp))


def test_anisotropic_cubes_shifted_match_brute_force():
    a = box((6, 9, 9), (1, 4), (2, 7), (1, 6))
    b = box((6, 9, 9), (2, 5), (3, 8), (2, 7))
    assert hd95(a, b, ACDC_SPACING) == pytest.approx(brute_hd95(a, b, ACDC_SPACING))


@pytest.mark.parametrize("seed", range(4))
def test_random_blobs_touching_the_border_match_brute_force(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.random((2, 4, 6, 7)) < 0.4
    sp = (3.0, 0.7, 1.3)
    np.testing.assert_allclose(
        np.sort(surface_distances(a, b, sp)), np.sort(brute_directed(a, b, sp))
    )
    assert hd95(a, b, sp) == pytest.approx(brute_hd95(a, b, sp))


def test_z_spacing_scales_a_z_shift():
    # One-slice-thick squares: every voxel is surface and its nearest counterpart is straight
    # along z, 2 slices away -> HD95 = 2 * spacing_z exactly.
    a = box((6, 8, 8), (1, 2), (2, 6), (2, 6))
    b = box((6, 8, 8), (3, 4), (2, 6), (2, 6))
    assert hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(2.0)
    assert hd95(a, b, (10.0, 1.0, 1.0)) == pytest.approx(20.0)


def test_identical_masks_give_zero():
    a = box((4, 9, 9), (0, 4), (2, 7), (3, 8))
    assert hd95(a, a, ACDC_SPACING) == 0.0
    assert dice(a, a) == 1.0


def test_missing_structure_conventions():
    shape = (4, 10, 12)
    empty = np.zeros(shape, bool)
    present = box(shape, (1, 3), (2, 5), (2, 5))
    diagonal = math.sqrt(40.0**2 + (10 * 1.5625) ** 2 + (12 * 1.5625) ** 2)
    assert hd95(empty, empty, ACDC_SPACING) == 0.0
    assert hd95(empty, present, ACDC_SPACING) == pytest.approx(diagonal)  # missed
    assert hd95(present, empty, ACDC_SPACING) == pytest.approx(diagonal)  # hallucinated
    # The worst case exceeds any distance actually achievable in the volume.
    corner_a, corner_b = np.zeros(shape, bool), np.zeros(shape, bool)
    corner_a[0, 0, 0] = corner_b[-1, -1, -1] = True
    assert hd95(corner_a, corner_b, ACDC_SPACING) < diagonal
    assert surface_distances(empty, present, ACDC_SPACING).shape == (0,)
    with pytest.raises(ValueError, match="b is empty"):
        surface_distances(present, empty, ACDC_SPACING)


@pytest.mark.parametrize(
    "spacing, msg",
    [
        ((1.0, 1.0), "one entry per array axis"),
        ((1.0, 1.0, 1.0, 1.0), "one entry per array axis"),
        (1.0, "one entry per array axis"),
        ((10.0, 0.0, 1.0), "positive"),
        ((10.0, -1.5, 1.0), "positive"),
        ((10.0, float("nan"), 1.0), "positive"),
        (("a", "b", "c"), "sequence of numbers"),
    ],
)
def test_bad_spacing(spacing, msg):
    a = box((3, 4, 4), (0, 2), (0, 2), (0, 2))
    with pytest.raises(ValueError, match=rf"spacing.*{msg}|{msg}.*spacing"):
        hd95(a, a, spacing)
    with pytest.raises(ValueError, match="spacing"):
        surface_distances(a, a, spacing)
    with pytest.raises(ValueError, match="spacing"):
        volume_scores(a.astype(int), a.astype(int), spacing)


# --- volume scores ---------------------------------------------------------------------------


def make_volumes():
    shape = (3, 12, 14)
    target = np.zeros(shape, np.int64)
    target[:, 1:4, 1:4] = 1  # RV: 27 voxels
    target[:, 6:8, 1:5] = 2  # MYO: 24 voxels
    target[:, 6:10, 6:10] = 3  # LV: 48 voxels
    pred = np.zeros(shape, np.int64)
    pred[:, 1:4, 1:4] = 1  # RV exact
    pred[:, 6:10, 7:11] = 3  # LV shifted 1 px in x: overlap 36; MYO missed entirely
    return pred, target


def test_volume_scores_known_answers():
    pred, target = make_volumes()
    s = volume_scores(pred, target, ACDC_SPACING)
    assert list(s) == [
        "dice_rv",
        "dice_myo",
        "dice_lv",
        "dice_mean",
        "hd95_rv",
        "hd95_myo",
        "hd95_lv",
        "hd95_mean",
    ]
    diagonal = math.sqrt(30.0**2 + (12 * 1.5625) ** 2 + (14 * 1.5625) ** 2)
    hd_lv = brute_hd95(pred == 3, target == 3, ACDC_SPACING)
    assert s["dice_rv"] == 1.0 and s["hd95_rv"] == 0.0
    assert s["dice_myo"] == 0.0 and s["hd95_myo"] == pytest.approx(diagonal)
    assert s["dice_lv"] == pytest.approx(72 / 96)
    assert s["hd95_lv"] == pytest.approx(hd_lv)
    assert s["dice_mean"] == pytest.approx((1.0 + 0.0 + 0.75) / 3)
    assert s["hd95_mean"] == pytest.approx((0.0 + diagonal + hd_lv) / 3)
    # Float ground truth (as loaded from NIfTI) with integral values is accepted.
    assert volume_scores(pred, target.astype(np.float32), ACDC_SPACING) == s


def test_volume_scores_custom_classes():
    pred, target = make_volumes()
    pred, target = np.where(pred == 3, 3, 0), np.where(target == 3, 3, 0)  # LV only
    s = volume_scores(pred, target, ACDC_SPACING, classes={3: "lv"})
    assert s == pytest.approx(
        {"dice_lv": 0.75, "dice_mean": 0.75, "hd95_lv": s["hd95_lv"], "hd95_mean": s["hd95_lv"]}
    )


def test_volume_scores_errors():
    pred, target = make_volumes()
    with pytest.raises(
        ValueError, match=r"pred_labels and target_labels.*\(3, 12, 14\) and \(3, 12, 13\)"
    ):
        volume_scores(pred, target[..., :-1], ACDC_SPACING)
    bad = target.copy()
    bad[0, 0, 0] = 4
    with pytest.raises(ValueError, match=r"target_labels.*found values \[0, 1, 2, 3, 4\].*\[4\]"):
        volume_scores(pred, bad, ACDC_SPACING)
    with pytest.raises(ValueError, match=r"pred_labels.*not allowed: \[-1\]"):
        volume_scores(np.where(pred == 1, -1, pred), target, ACDC_SPACING)
    with pytest.raises(ValueError, match=r"not allowed: \[1.5\]"):
        volume_scores(pred, np.where(target == 1, 1.5, target), ACDC_SPACING)
    # Scoring only the LV: RV/MYO labels are then unexpected values, not silently background.
    with pytest.raises(ValueError, match=r"target_labels.*not allowed: \[1, 2\]"):
        volume_scores(np.where(pred == 3, 3, 0), target, ACDC_SPACING, classes={3: "lv"})
    with pytest.raises(ValueError, match="positive int labels"):
        volume_scores(pred, target, ACDC_SPACING, classes={0: "bg", 1: "rv"})
    with pytest.raises(ValueError, match="unique"):
        volume_scores(pred, target, ACDC_SPACING, classes={1: "x", 2: "x", 3: "lv"})


# --- averaging over volumes ------------------------------------------------------------------


def test_mean_scores_averages_per_volume():
    pred, target = make_volumes()
    s1 = volume_scores(pred, target, ACDC_SPACING)
    s2 = volume_scores(target, target, ACDC_SPACING)
    assert s2 == {k: (1.0 if k.startswith("dice") else 0.0) for k in s1}
    m = mean_scores([s1, s2])
    assert list(m) == list(s1)
    assert m == pytest.approx({k: (s1[k] + s2[k]) / 2 for k in s1})


def test_mean_scores_errors():
    with pytest.raises(ValueError, match="at least one volume"):
        mean_scores([])
    with pytest.raises(ValueError, match=r"scores\[1\] has keys"):
        mean_scores([{"dice_lv": 1.0}, {"dice_rv": 1.0}])

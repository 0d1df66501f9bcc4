"""Tests for the deterministic synthetic short-axis cardiac MRI generator."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scipy import ndimage

from medprune.data.synthetic_cardiac import (
    KIND_CLASSES,
    MISSING_KINDS,
    draw_slice_kind,
    generate_cardiac_slice,
    generate_cardiac_split,
)
from medprune.data.synthetic_nuclei import derive_tile_seed

BG, RV, MYO, LV = range(4)
FULL = np.ones((3, 3), dtype=bool)


def _kind(seed: int, **kw: float) -> str:
    return draw_slice_kind(np.random.default_rng(seed), **kw)


def _mid_seeds(count: int) -> list[int]:
    """Seeds whose slice has all four classes and a mid-ventricular geometry."""
    return [s for s in range(10 * count) if _kind(s) == "mid"][:count]


def test_shapes_dtypes_and_zscore() -> None:
    img, lab = generate_cardiac_slice(0, 96)
    assert img.shape == lab.shape == (96, 96)
    assert img.dtype == np.float32 and lab.dtype == np.uint8
    assert np.isfinite(img).all() and set(np.unique(lab)) <= {0, 1, 2, 3}
    assert abs(float(img.mean())) < 1e-4 and abs(float(img.std()) - 1.0) < 1e-3


def test_same_seed_identical_bytes_different_seed_differs() -> None:
    img1, lab1 = generate_cardiac_slice(7)
    img2, lab2 = generate_cardiac_slice(7)
    assert img1.tobytes() == img2.tobytes() and lab1.tobytes() == lab2.tobytes()
    img3, lab3 = generate_cardiac_slice(8)
    assert img1.tobytes() != img3.tobytes() and lab1.tobytes() != lab3.tobytes()


def test_generator_argument_matches_seed_and_is_advanced() -> None:
    rng = np.random.default_rng(5)
    img, lab = generate_cardiac_slice(rng)
    ref = generate_cardiac_slice(5)
    assert img.tobytes() == ref[0].tobytes() and lab.tobytes() == ref[1].tobytes()
    assert generate_cardiac_slice(rng)[0].tobytes() != img.tobytes()


def test_does_not_touch_global_random_state() -> None:
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    generate_cardiac_slice(1)
    assert np.array_equal(np.random.random(3), expected)


def test_kind_fractions_and_class_presence_over_200_slices() -> None:
    _, labs = generate_cardiac_split(200, 0, 64)
    kinds = [_kind(derive_tile_seed(0, i)) for i in range(200)]
    for kind, lab in zip(kinds, labs):  # each slice has exactly its kind's classes
        assert tuple(np.unique(lab)) == KIND_CLASSES[kind], kind
    all_four = np.mean([len(np.unique(lab)) == 4 for lab in labs])
    assert abs(all_four - 0.9) < 0.06  # documented: missing_prob 0.1 -> 90 % have every class
    counts = {k: kinds.count(k) for k in KIND_CLASSES}
    assert abs((counts["apical"] + counts["basal"]) / 200 - 0.9 * 0.2) < 0.07
    assert min(counts["apical"], counts["basal"], counts["no_rv"]) > 0


def test_draw_slice_kind_proportions() -> None:
    kinds = [_kind(s) for s in range(4000)]
    share = {k: kinds.count(k) / len(kinds) for k in KIND_CLASSES}
    assert abs(share["mid"] - 0.72) < 0.03 and abs(share["apical"] - 0.09) < 0.02
    assert abs(share["basal"] - 0.09) < 0.02
    for kind, rel in MISSING_KINDS.items():
        assert abs(share[kind] - 0.1 * rel) < 0.015
    assert {_kind(s, missing_prob=0.0, variant_prob=0.0) for s in range(200)} == {"mid"}
    assert set(KIND_CLASSES) - {_kind(s, missing_prob=1.0) for s in range(200)} == {
        "mid",
        "apical",
        "basal",
    }


def test_missing_prob_extremes() -> None:
    _, labs = generate_cardiac_split(40, 3, 64, missing_prob=0.0)
    assert all(len(np.unique(lab)) == 4 for lab in labs)
    _, labs = generate_cardiac_split(40, 3, 64, missing_prob=1.0)
    assert all(len(np.unique(lab)) < 4 for lab in labs)


@pytest.mark.parametrize("size", [32, 64, 128, 160])
def test_geometry_sealed_ring_and_shared_septum(size: int) -> None:
    for seed in range(12):
        kind = _kind(seed)
        _, lab = generate_cardiac_slice(seed, size)
        lv, myo, rv = lab == LV, lab == MYO, lab == RV
        if kind == "no_heart":
            continue
        # every pixel 8-adjacent to the cavity is myocardium; the cavity is off the border
        assert np.all(myo[ndimage.binary_dilation(lv, FULL) & ~lv])
        assert not (lv[0].any() or lv[-1].any() or lv[:, 0].any() or lv[:, -1].any())
        assert np.all(lv <= ndimage.binary_fill_holes(myo) & ~myo)  # cavity is the ring's hole
        for mask in (lv, myo, rv):  # one 4-connected component each (if present)
            assert ndimage.label(mask)[1] == int(mask.any())
        if rv.any():
            assert (ndimage.binary_dilation(rv) & myo).any()  # shares the septum
            assert not (ndimage.binary_dilation(rv, FULL) & lv).any()  # never touches cavity


def test_geometry_varies() -> None:
    areas = np.array(
        [np.bincount(generate_cardiac_slice(s)[1].ravel(), minlength=4) for s in _mid_seeds(10)]
    )
    for cls in (RV, MYO, LV):
        assert areas[:, cls].min() > 30 and areas[:, cls].std() > 0.1 * areas[:, cls].mean()


def test_intensity_order_bright_blood_dark_muscle() -> None:
    for seed in _mid_seeds(15):
        img, lab = generate_cardiac_slice(seed)
        lv, rv, myo = (float(img[lab == c].mean()) for c in (LV, RV, MYO))
        assert lv > myo + 0.5 and rv > myo + 0.3, seed
        assert lv > float(img[lab == BG].mean())


def test_split_shapes_and_slice_seeds() -> None:
    imgs, labs = generate_cardiac_split(3, 5, 64)
    assert imgs.shape == labs.shape == (3, 64, 64)
    assert imgs.dtype == np.float32 and labs.dtype == np.uint8
    img1, lab1 = generate_cardiac_slice(derive_tile_seed(5, 1), 64)
    assert np.array_equal(imgs[1], img1) and np.array_equal(labs[1], lab1)
    again = generate_cardiac_split(3, 5, 64)
    assert imgs.tobytes() == again[0].tobytes() and labs.tobytes() == again[1].tobytes()
    other, _ = generate_cardiac_split(3, 6, 64)
    assert {t.tobytes() for t in imgs}.isdisjoint({t.tobytes() for t in other})
    empty = generate_cardiac_split(0, 0, 48)
    assert empty[0].shape == empty[1].shape == (0, 48, 48)


def test_split_kwargs_forwarded() -> None:
    _, labs = generate_cardiac_split(2, 2, 64, variant_prob=1.0)
    ref = generate_cardiac_slice(derive_tile_seed(2, 1), 64, variant_prob=1.0)[1]
    assert np.array_equal(labs[1], ref)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 31}, "size=31: expected an integer >= 32"),
        ({"size": 64.0}, "size=64.0: expected an integer >= 32"),
        ({"size": True}, "size=True: expected an integer >= 32"),
        ({"missing_prob": 1.5}, r"missing_prob=1.5: expected a probability in \[0, 1\]"),
        ({"missing_prob": float("nan")}, r"missing_prob=nan: expected a probability in \[0, 1\]"),
        ({"variant_prob": -0.1}, r"variant_prob=-0.1: expected a probability in \[0, 1\]"),
        ({"variant_prob": "often"}, r"variant_prob='often': expected a probability in \[0, 1\]"),
    ],
)
def test_slice_argument_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_cardiac_slice(0, **kwargs)


@pytest.mark.parametrize("bad", [-1, 1.5, "3", None])
def test_rng_or_seed_validation(bad: object) -> None:
    message = f"rng_or_seed={bad!r}: expected a np.random.Generator or an integer >= 0"
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_cardiac_slice(bad)  # type: ignore[arg-type]


def test_split_argument_validation() -> None:
    with pytest.raises(ValueError, match="n=-1: expected an integer >= 0"):
        generate_cardiac_split(-1, 0)
    with pytest.raises(ValueError, match="seed=-3: expected an integer >= 0"):
        generate_cardiac_split(2, -3)
    with pytest.raises(ValueError, match="size=16: expected an integer >= 32"):
        generate_cardiac_split(2, 0, 16)
    with pytest.raises(ValueError, match=r"missing_prob=2: expected a probability in \[0, 1\]"):
        generate_cardiac_split(2, 0, 64, missing_prob=2)

"""Tests for the deterministic synthetic H&E nuclei generator."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from medprune.data.synthetic_nuclei import (
    MIN_INSTANCE_AREA,
    derive_tile_seed,
    generate_nuclei_split,
    generate_nuclei_tile,
)


def _touching_pairs(lab: np.ndarray) -> set[tuple[int, int]]:
    """Pairs of different instances that are 4-adjacent."""
    pairs: set[tuple[int, int]] = set()
    for a, b in ((lab[:, :-1], lab[:, 1:]), (lab[:-1], lab[1:])):
        m = (a > 0) & (b > 0) & (a != b)
        pairs |= {(min(x, y), max(x, y)) for x, y in zip(a[m].tolist(), b[m].tolist())}
    return pairs


def test_shapes_and_dtypes() -> None:
    img, lab = generate_nuclei_tile(0, 96)
    assert img.shape == (96, 96, 3) and img.dtype == np.uint8
    assert lab.shape == (96, 96) and lab.dtype == np.int32


def test_same_seed_identical_bytes_different_seed_differs() -> None:
    img1, lab1 = generate_nuclei_tile(7)
    img2, lab2 = generate_nuclei_tile(7)
    assert img1.tobytes() == img2.tobytes() and lab1.tobytes() == lab2.tobytes()
    img3, lab3 = generate_nuclei_tile(8)
    assert img1.tobytes() != img3.tobytes() and lab1.tobytes() != lab3.tobytes()


def test_does_not_touch_global_random_state() -> None:
    np.random.seed(123)
    expected = np.random.random(3)
    np.random.seed(123)
    generate_nuclei_tile(1)
    assert np.array_equal(np.random.random(3), expected)


@pytest.mark.parametrize("seed", range(6))
def test_instances_consecutive_connected_and_large_enough(seed: int) -> None:
    _, lab = generate_nuclei_tile(seed)
    n = int(lab.max())
    assert 10 <= n <= 60  # ~15-40 nuclei per 128x128 tile by default
    assert np.array_equal(np.unique(lab), np.arange(n + 1))
    areas = np.bincount(lab.ravel())[1:]
    assert areas.min() >= MIN_INSTANCE_AREA
    for idx, sl in enumerate(ndimage.find_objects(lab), start=1):
        _, n_cc = ndimage.label(lab[sl] == idx)  # 4-connectivity
        assert n_cc == 1, f"instance {idx} has {n_cc} components"


def test_min_area_parameter_respected() -> None:
    _, lab = generate_nuclei_tile(3, min_area=40)
    assert np.bincount(lab.ravel())[1:].min() >= 40


def test_clusters_have_touching_instances() -> None:
    with_touching = [len(_touching_pairs(generate_nuclei_tile(s)[1])) > 0 for s in range(10)]
    assert sum(with_touching) >= 8
    # connected components alone must under-count: clusters need the distance map
    _, lab = generate_nuclei_tile(0)
    assert ndimage.label(lab > 0)[1] < lab.max()


def test_no_clusters_gives_few_touching() -> None:
    clustered = sum(len(_touching_pairs(generate_nuclei_tile(s)[1])) for s in range(5))
    isolated = sum(
        len(_touching_pairs(generate_nuclei_tile(s, cluster_fraction=0.0)[1])) for s in range(5)
    )
    assert isolated < clustered


def test_colour_sanity_nuclei_darker_and_purpler() -> None:
    for seed in range(5):
        img, lab = generate_nuclei_tile(seed)
        px = img.reshape(-1, 3).astype(float)
        fg, bg = px[lab.ravel() > 0].mean(0), px[lab.ravel() == 0].mean(0)
        assert fg.sum() < 0.75 * bg.sum()  # nuclei darker
        assert fg[2] - fg[0] > bg[2] - bg[0]  # nuclei bluer relative to red
        assert fg[2] > fg[1]  # purple/blue, not green
        assert bg[0] > bg[1] and bg[2] > bg[1]  # pink/magenta eosin background


def test_density_scales_count() -> None:
    few = np.mean([generate_nuclei_tile(s, nuclei_density=0.5)[1].max() for s in range(4)])
    many = np.mean([generate_nuclei_tile(s, nuclei_density=2.5)[1].max() for s in range(4)])
    assert many > few


def test_split_shapes_and_tile_seeds() -> None:
    imgs, labs = generate_nuclei_split(5, 3, 64)
    assert imgs.shape == (3, 64, 64, 3) and imgs.dtype == np.uint8
    assert labs.shape == (3, 64, 64) and labs.dtype == np.int32
    img1, lab1 = generate_nuclei_tile(derive_tile_seed(5, 1), 64)
    assert np.array_equal(imgs[1], img1) and np.array_equal(labs[1], lab1)
    again = generate_nuclei_split(5, 3, 64)
    assert imgs.tobytes() == again[0].tobytes() and labs.tobytes() == again[1].tobytes()


def test_splits_with_different_seeds_share_no_tiles() -> None:
    a, _ = generate_nuclei_split(0, 4, 48)
    b, _ = generate_nuclei_split(1, 4, 48)
    hashes_a = {t.tobytes() for t in a}
    assert len(hashes_a) == 4
    assert hashes_a.isdisjoint({t.tobytes() for t in b})
    seeds = {derive_tile_seed(s, i) for s in range(3) for i in range(50)}
    assert len(seeds) == 150


def test_split_kwargs_forwarded_and_empty_split() -> None:
    imgs, labs = generate_nuclei_split(2, 2, 64, cluster_fraction=0.0, mean_radius=4.0)
    assert np.array_equal(
        labs[0],
        generate_nuclei_tile(derive_tile_seed(2, 0), 64, cluster_fraction=0.0, mean_radius=4.0)[1],
    )
    imgs, labs = generate_nuclei_split(0, 0, 64)
    assert imgs.shape == (0, 64, 64, 3) and labs.shape == (0, 64, 64)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"size": 31}, "size=31: expected an integer >= 32"),
        ({"size": 64.0}, "size=64.0: expected an integer >= 32"),
        ({"nuclei_density": 0.0}, "nuclei_density=0.0: expected a number > 0"),
        ({"nuclei_density": float("nan")}, "nuclei_density=nan: expected a number > 0"),
        ({"mean_radius": -2.0}, "mean_radius=-2.0: expected a number > 0"),
        ({"mean_radius": "big"}, "mean_radius='big': expected a number > 0"),
        ({"cluster_fraction": 1.5}, r"cluster_fraction=1.5: expected a fraction in \[0, 1\]"),
        ({"min_area": 0}, "min_area=0: expected an integer >= 1"),
    ],
)
def test_tile_argument_validation(kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        generate_nuclei_tile(0, **kwargs)


def test_seed_and_count_validation() -> None:
    with pytest.raises(ValueError, match="seed=-1: expected an integer >= 0"):
        generate_nuclei_tile(-1)
    with pytest.raises(ValueError, match="count=-1: expected an integer >= 0"):
        generate_nuclei_split(0, -1, 64)
    with pytest.raises(ValueError, match="size=16: expected an integer >= 32"):
        generate_nuclei_split(0, 2, 16)
    with pytest.raises(ValueError, match="mean_radius=0: expected a number > 0"):
        generate_nuclei_split(0, 2, 64, mean_radius=0)

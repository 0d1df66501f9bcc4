import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from medprune.postprocess import (
    WatershedPostprocessor,
    foreground,
    instances_from_maps,
    markers_from_distance,
)

H, W, R = 40, 60, 8


def disk(cy, cx, r=R, shape=(H, W)):
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def maps_from_disks(disks, shape=(H, W)):
    """prob = 1 inside the union; distance = per-disk EDT normalised to 1 at its centre."""
    prob = np.zeros(shape, dtype=np.float32)
    dist = np.zeros(shape, dtype=np.float32)
    for d in disks:
        prob[d] = 1.0
        edt = distance_transform_edt(d)
        dist = np.maximum(dist, edt / edt.max())
    return prob, dist


def test_two_touching_disks_split_into_two():
    a, b = disk(20, 22), disk(20, 37)  # centres 15 px apart, radius 8 -> overlap
    assert (a & b).any()
    prob, dist = maps_from_disks([a, b])
    labels = instances_from_maps(prob, dist)
    assert labels.dtype == np.int32 and labels.shape == (H, W)
    assert set(np.unique(labels)) == {0, 1, 2}
    assert ((labels > 0) == (a | b)).all()  # no foreground lost
    la, lb = labels[20, 22], labels[20, 37]
    assert la != lb and la > 0 and lb > 0
    for lab, d in ((la, a), (lb, b)):
        area = int((labels == lab).sum())
        expected = int(d.sum()) - int((a & b).sum()) / 2  # each takes ~half the overlap
        assert abs(area - expected) <= 6


def test_single_disk_one_instance():
    d = disk(20, 30)
    prob, dist = maps_from_disks([d])
    labels = instances_from_maps(prob, dist)
    assert labels.max() == 1
    assert ((labels == 1) == d).all()


def test_empty_prob_gives_zeros():
    labels = instances_from_maps(np.zeros((H, W)), np.zeros((H, W)))
    assert labels.dtype == np.int32 and not labels.any()


def test_unmarked_foreground_still_an_instance():
    d = disk(20, 30)
    prob = d.astype(np.float32)
    dist = np.where(d, 0.2, 0.0).astype(np.float32)  # below marker threshold everywhere
    assert not markers_from_distance(dist, d, 0.5).any()
    labels = instances_from_maps(prob, dist)
    assert labels.max() == 1 and ((labels == 1) == d).all()


def test_unmarked_component_next_to_marked_one():
    big = disk(20, 15)
    blob = disk(20, 45, r=4)
    prob, dist = maps_from_disks([big])
    prob[blob] = 1.0  # second blob has foreground but zero distance
    labels = instances_from_maps(prob, dist)
    assert labels.max() == 2
    assert ((labels > 0) == (big | blob)).all()


def test_min_size_removes_tiny_blob():
    big, tiny = disk(20, 20), disk(20, 45, r=1)  # tiny has 5 px
    prob, dist = maps_from_disks([big, tiny])
    labels = instances_from_maps(prob, dist, min_size=10)
    assert labels.max() == 1 and not labels[tiny].any()
    assert instances_from_maps(prob, dist, min_size=0).max() == 2


def test_ids_consecutive():
    # r=1 disks (5 px) are dropped in the middle of the raster order, leaving gaps to close
    disks = [disk(10, 10, 5), disk(10, 30, 1), disk(30, 20, 5), disk(30, 45, 5), disk(10, 50, 1)]
    prob, dist = maps_from_disks(disks)
    labels = instances_from_maps(prob, dist, min_size=10)
    assert list(np.unique(labels)) == [0, 1, 2, 3]


def test_foreground_and_markers_helpers():
    prob = np.array([[0.2, 0.5, 0.9]])
    assert foreground(prob, 0.5).tolist() == [[False, False, True]]
    dist = np.array([[0.9, 0.9, 0.0, 0.9, 0.1]])
    fg = np.ones_like(dist, dtype=bool)
    m = markers_from_distance(dist, fg, 0.5, min_marker_size=1)
    assert m.dtype == np.int32 and m.tolist() == [[1, 1, 0, 2, 0]]
    assert markers_from_distance(dist, fg, 0.5, min_marker_size=2).tolist() == [[1, 1, 0, 0, 0]]


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(prob=np.zeros((4, 4)), distance=np.zeros((4, 5))), "same shape"),
        (dict(prob=np.zeros((2, 4, 4)), distance=np.zeros((2, 4, 4))), "prob must be a 2D"),
        (dict(prob=np.zeros((4, 4)), distance=np.zeros(4)), "distance must be a 2D"),
        (dict(fg_threshold=1.5), r"fg_threshold=1.5: expected a threshold in \[0, 1\]"),
        (dict(marker_threshold=-0.1), r"marker_threshold=-0.1: expected a threshold in \[0, 1\]"),
        (dict(min_size=-1), "min_size=-1: expected an integer >= 0"),
        (dict(min_size=2.5), "min_size=2.5: expected an integer >= 0"),
    ],
)
def test_validation_errors(kwargs, match):
    args = dict(prob=np.zeros((4, 4)), distance=np.zeros((4, 4)))
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        instances_from_maps(**args)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(fg_threshold=2), r"fg_threshold=2: expected a threshold in \[0, 1\]"),
        (dict(marker_threshold="a"), r"marker_threshold='a': expected a threshold in \[0, 1\]"),
        (dict(min_size=-3), "min_size=-3: expected an integer >= 0"),
    ],
)
def test_postprocessor_constructor_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        WatershedPostprocessor(**kwargs)


def test_batch_equals_per_tile_calls():
    tiles = [[disk(20, 22), disk(20, 37)], [disk(20, 30)], [], [disk(10, 10, 5), disk(30, 45, 6)]]
    pairs = [maps_from_disks(t) for t in tiles]
    prob = np.stack([p for p, _ in pairs])
    dist = np.stack([d for _, d in pairs])
    post = WatershedPostprocessor(fg_threshold=0.5, marker_threshold=0.5, min_size=10)
    out = post.batch(prob, dist)
    assert out.shape == (4, H, W) and out.dtype == np.int32
    for i in range(4):
        assert np.array_equal(out[i], post(prob[i], dist[i]))
    assert [int(o.max()) for o in out] == [2, 1, 0, 2]
    with pytest.raises(ValueError, match="prob must be a 3D"):
        post.batch(prob[0], dist[0])

import json

import numpy as np
import pytest
from scipy.ndimage import distance_transform_edt

from medprune.metrics import aggregated_jaccard_index
from medprune.postprocess import instances_from_maps
from medprune.postprocess.tuning import ThresholdSearch, ThresholdTuning, tune_thresholds

H, W = 48, 64
FG_GRID = (0.3, 0.5, 0.7)
MARKER_GRID = (0.4, 0.6, 0.8)


def disk(cy, cx, r):
    yy, xx = np.mgrid[:H, :W]
    return (yy - cy) ** 2 + (xx - cx) ** 2 <= r**2


def normalised_distance(mask):
    edt = distance_transform_edt(mask)
    return edt / edt.max()


def constructed_tile():
    """A tile whose only right answer is fg 0.5, marker 0.6.

    * A and B touch. B's distance peaks at 0.75 and a 0.5 ridge joins the two cores, so the
      markers merge at 0.4 (one seed through the ridge), split at 0.6, and B loses its seed at
      0.8 (A's seed then floods B): only marker 0.6 separates them.
    * C has probability 0.6: lost at fg 0.7.
    * D is background with probability 0.4: a false nucleus at fg 0.3.
    """
    a_full, b_full, c = disk(16, 16, 8), disk(16, 30, 8), disk(36, 50, 6)
    a, b = a_full, b_full & ~a_full
    d = np.zeros((H, W), bool)
    d[36:42, 8:16] = True
    true = np.zeros((H, W), np.int32)
    true[a], true[b], true[c] = 1, 2, 3
    prob = np.zeros((H, W), np.float32)
    prob[a | b], prob[c], prob[d] = 0.9, 0.6, 0.4
    dist = np.maximum.reduce(
        [normalised_distance(a_full), 0.75 * normalised_distance(b_full), normalised_distance(c)]
    )
    ridge = np.zeros((H, W), bool)
    ridge[15:18, 16:31] = True
    ridge &= a | b
    dist[ridge] = np.maximum(dist[ridge], 0.5)
    return prob, dist.astype(np.float32), true


@pytest.mark.parametrize("metric", ["aji", "pq"])
def test_picks_the_only_right_pair(metric):
    prob, dist, true = constructed_tile()
    result = tune_thresholds([prob], [dist], [true], FG_GRID, MARKER_GRID, metric=metric)
    assert isinstance(result, ThresholdSearch)
    assert (result.fg_threshold, result.marker_threshold) == (0.5, 0.6)
    assert result.metric == metric and result.scores.shape == (3, 3)
    assert result.score == result.scores[1, 1] > 0.95
    others = np.delete(result.scores.ravel(), 4)
    assert (others < result.score - 0.05).all()  # a clear winner, not a rounding accident


def test_right_pair_gives_three_separate_nuclei():
    prob, dist, true = constructed_tile()
    labels = instances_from_maps(prob, dist, 0.5, 0.6)
    assert labels.max() == 3
    for wrong in [(0.5, 0.4), (0.5, 0.8)]:  # A and B merged
        assert instances_from_maps(prob, dist, *wrong).max() == 2
    assert instances_from_maps(prob, dist, 0.7, 0.6).max() == 2  # C lost
    assert instances_from_maps(prob, dist, 0.3, 0.6).max() == 4  # D found


def test_scores_are_per_tile_means():
    prob, dist, true = constructed_tile()
    empty = np.zeros((H, W), np.float32)
    probs, dists = [prob, empty], [dist, empty]
    trues = [true, np.zeros((H, W), np.int32)]  # empty vs empty counts as a perfect tile
    result = tune_thresholds(probs, dists, trues, FG_GRID, MARKER_GRID, min_size=5)
    for i, fg in enumerate(FG_GRID):
        for j, marker in enumerate(MARKER_GRID):
            first = aggregated_jaccard_index(true, instances_from_maps(prob, dist, fg, marker, 5))
            assert result.scores[i, j] == pytest.approx((first + 1.0) / 2)
    # A stacked (N, H, W) array works as a sequence of tiles.
    stacked = tune_thresholds(np.stack(probs), np.stack(dists), np.stack(trues), [0.5], [0.6])
    assert stacked.score == pytest.approx(result.scores[1, 1])


def test_ties_go_to_the_first_pair_in_grid_order():
    mask = disk(24, 32, 8)
    prob, dist = mask.astype(np.float32), normalised_distance(mask)
    true = mask.astype(np.int32)
    fg, marker = [0.3, 0.5, 0.7], [0.2, 0.4]
    result = tune_thresholds([prob], [dist], [true], fg, marker)
    assert (result.scores == 1.0).all()
    assert (result.fg_threshold, result.marker_threshold) == (0.3, 0.2)
    flipped = tune_thresholds([prob], [dist], [true], fg[::-1], marker[::-1])
    assert (flipped.fg_threshold, flipped.marker_threshold) == (0.7, 0.4)

    # Partial tie on the constructed tile: fg 0.5 and 0.55 give the same instances.
    prob, dist, true = constructed_tile()
    first = tune_thresholds([prob], [dist], [true], [0.7, 0.5, 0.55], [0.6])
    second = tune_thresholds([prob], [dist], [true], [0.7, 0.55, 0.5], [0.6])
    assert first.scores[1, 0] == first.scores[2, 0] == first.score
    assert first.fg_threshold == 0.5 and second.fg_threshold == 0.55


def test_as_dict_is_json_ready():
    prob, dist, true = constructed_tile()
    result = tune_thresholds([prob], [dist], [true], [0.5], [0.4, 0.6])
    logged = json.loads(json.dumps(result.as_dict()))
    assert logged["fg_threshold"] == 0.5 and logged["marker_threshold"] == 0.6
    assert logged["metric"] == "aji" and logged["marker_grid"] == [0.4, 0.6]
    assert np.allclose(logged["scores"], result.scores)
    assert logged["tiles"] == 1


def faint_nucleus_tile():
    """One nucleus at probability 0.35: found only at fg 0.3 (AJI 1), missed above (AJI 0)."""
    mask = disk(24, 32, 8)
    return (0.35 * mask).astype(np.float32), normalised_distance(mask), mask.astype(np.int32)


def test_score_sums_of_two_ranks_pick_from_all_tiles():
    # Rank 0 alone would pick (0.5, 0.6) and rank 1 alone (0.3, 0.4); with both ranks' sums
    # added, the constructed tile's best marker and the faint tile's fg 0.3 win: (0.3, 0.6).
    grids = {"fg_grid": FG_GRID, "marker_grid": MARKER_GRID}
    ranks = [ThresholdTuning(**grids), ThresholdTuning(**grids)]
    tiles = [constructed_tile(), faint_nucleus_tile(), faint_nucleus_tile()]
    ranks[0].add(*(np.stack(m) for m in zip(tiles[0])))
    ranks[1].add(*(np.stack(m) for m in zip(*tiles[1:])))
    (s0, n0), (s1, n1) = (r.score_sums(min_size=10) for r in ranks)
    assert (n0, n1) == (1, 2)
    alone = [r.pick(*r.score_sums(10)) for r in ranks]
    assert [(a.fg_threshold, a.marker_threshold) for a in alone] == [(0.5, 0.6), (0.3, 0.4)]
    both = ranks[0].pick(s0 + s1, n0 + n1)
    assert (both.fg_threshold, both.marker_threshold, both.tiles) == (0.3, 0.6, 3)
    every = tune_thresholds(*zip(*tiles), FG_GRID, MARKER_GRID)
    np.testing.assert_allclose(both.scores, every.scores)
    with pytest.raises(ValueError, match="at least one validation tile"):
        ranks[0].pick(s0 * 0, 0)


@pytest.mark.parametrize(
    ("fg_grid", "marker_grid", "match"),
    [
        ([], [0.5], "fg_grid must hold at least one"),
        ([0.5], [], "marker_grid must hold at least one"),
        ([0.5, 1.5], [0.5], r"fg_grid\[1\]=1.5: expected a threshold in \[0, 1\]"),
        ([0.5], [-0.1], r"marker_grid\[0\]=-0.1: expected a threshold in \[0, 1\]"),
        ([float("nan")], [0.5], r"fg_grid\[0\]=nan: expected a threshold in \[0, 1\]"),
        ([True], [0.5], r"fg_grid\[0\]=True: expected a threshold in \[0, 1\]"),
        (["0.5"], [0.5], r"fg_grid\[0\]='0.5': expected a threshold in \[0, 1\]"),
        (0.5, [0.5], "fg_grid must be a sequence"),
        ([0.5], "0.5", "marker_grid must be a sequence"),
    ],
)
def test_bad_grids_raise(fg_grid, marker_grid, match):
    prob, dist, true = constructed_tile()
    with pytest.raises(ValueError, match=match):
        tune_thresholds([prob], [dist], [true], fg_grid, marker_grid)


def test_bad_tiles_and_metric_raise():
    prob, dist, true = constructed_tile()
    with pytest.raises(ValueError, match="equal lengths"):
        tune_thresholds([prob, prob], [dist], [true], [0.5], [0.5])
    with pytest.raises(ValueError, match="at least one tile"):
        tune_thresholds([], [], [], [0.5], [0.5])
    with pytest.raises(ValueError, match="tile 0: .* one shape"):
        tune_thresholds([prob], [dist[:-1]], [true], [0.5], [0.5])
    with pytest.raises(ValueError, match="metric='dice': expected one of aji, pq"):
        tune_thresholds([prob], [dist], [true], [0.5], [0.5], metric="dice")
    with pytest.raises(ValueError, match="min_size=-1: expected an integer >= 0"):
        tune_thresholds([prob], [dist], [true], [0.5], [0.5], min_size=-1)

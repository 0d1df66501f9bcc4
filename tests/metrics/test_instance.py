import numpy as np
import pytest

from medprune.metrics.instance import (
    aggregated_jaccard_index,
    overlap_matrix,
    panoptic_quality,
)
from medprune.metrics.tiles import InstanceMetrics

# --- hand-made tiles -----------------------------------------------------------

TRUE_4x4 = np.array(
    [
        [1, 1, 0, 0],
        [1, 1, 0, 2],
        [0, 0, 0, 2],
        [3, 0, 0, 2],
    ]
)
# Same objects, ids permuted and non-consecutive: 1 -> 7, 2 -> 3, 3 -> 1.
PRED_4x4 = np.array(
    [
        [7, 7, 0, 0],
        [7, 7, 0, 3],
        [0, 0, 0, 3],
        [1, 0, 0, 3],
    ]
)

# Split: one GT (area 4) covered by pred 5 (3 px, IoU 3/4) and pred 9 (1 px, IoU 1/4).
SPLIT_TRUE = np.array([[0, 1, 1, 1, 1, 0]])
SPLIT_PRED = np.array([[0, 5, 5, 5, 9, 0]])

# Merge: GT 1 (area 4) and GT 2 (area 1) both inside pred 4 (area 6, incl. one background px).
MERGE_TRUE = np.array([[1, 1, 1, 1, 0, 2]])
MERGE_PRED = np.array([[4, 4, 4, 4, 4, 4]])


def pq_tuple(res):
    return res["pq"], res["dq"], res["sq"], res["tp"], res["fp"], res["fn"]


def test_overlap_matrix_counts():
    ov = overlap_matrix(MERGE_TRUE, np.array([[0, 3, 3, 8, 8, 8]]))
    assert ov.true_ids.tolist() == [1, 2]
    assert ov.pred_ids.tolist() == [3, 8]
    # GT1 = cols 0-3, GT2 = col 5; pred 3 = cols 1-2, pred 8 = cols 3-5.
    assert ov.intersection.tolist() == [[2, 1], [0, 1]]
    assert ov.true_areas.tolist() == [4, 1]
    assert ov.pred_areas.tolist() == [2, 3]


def test_overlap_matrix_huge_ids_uses_same_answer():
    big = np.where(MERGE_TRUE > 0, MERGE_TRUE * 10**12, 0)
    ov = overlap_matrix(big, MERGE_PRED.astype(np.uint64))
    assert ov.true_ids.tolist() == [10**12, 2 * 10**12]
    assert ov.intersection.tolist() == [[4], [1]]


def test_perfect_match_with_permuted_ids():
    assert aggregated_jaccard_index(TRUE_4x4, PRED_4x4) == 1.0
    # 3 TP, IoU 1 each.
    assert pq_tuple(panoptic_quality(TRUE_4x4, PRED_4x4)) == (1.0, 1.0, 1.0, 3, 0, 0)


def test_empty_prediction():
    empty = np.zeros_like(TRUE_4x4)
    assert aggregated_jaccard_index(TRUE_4x4, empty) == 0.0
    assert pq_tuple(panoptic_quality(TRUE_4x4, empty)) == (0.0, 0.0, 0.0, 0, 0, 3)


def test_empty_ground_truth():
    empty = np.zeros_like(PRED_4x4)
    assert aggregated_jaccard_index(empty, PRED_4x4) == 0.0
    assert pq_tuple(panoptic_quality(empty, PRED_4x4)) == (0.0, 0.0, 0.0, 0, 3, 0)


def test_both_empty_is_perfect():
    empty = np.zeros((3, 5), dtype=np.uint16)
    assert aggregated_jaccard_index(empty, empty) == 1.0
    assert pq_tuple(panoptic_quality(empty, empty)) == (1.0, 1.0, 1.0, 0, 0, 0)


def test_split_one_gt_two_preds():
    # AJI: GT picks pred 5 -> C = 3, U = 4; pred 9 unused -> U += 1.  AJI = 3/5 = 0.6
    assert aggregated_jaccard_index(SPLIT_TRUE, SPLIT_PRED) == pytest.approx(0.6)
    # PQ: TP = (GT, pred 5) IoU 0.75; FP = pred 9; FN = 0.
    # DQ = 1 / (1 + 0.5) = 2/3, SQ = 0.75, PQ = 0.5
    pq, dq, sq, tp, fp, fn = pq_tuple(panoptic_quality(SPLIT_TRUE, SPLIT_PRED))
    assert (tp, fp, fn) == (1, 1, 0)
    assert dq == pytest.approx(2 / 3)
    assert sq == pytest.approx(0.75)
    assert pq == pytest.approx(0.5)


def test_merge_two_gts_one_pred_counts_pred_twice():
    # Kumar AJI: GT1 -> pred 4: C = 4, U = 6; GT2 -> pred 4 again: C += 1, U += 6.
    # AJI = 5 / 12 (pred area enters both unions).
    assert aggregated_jaccard_index(MERGE_TRUE, MERGE_PRED) == pytest.approx(5 / 12)
    # PQ: TP = (GT1, pred 4) IoU 4/6; GT2 IoU 1/6 -> FN. DQ = 1/1.5 = 2/3, SQ = 2/3, PQ = 4/9.
    pq, dq, sq, tp, fp, fn = pq_tuple(panoptic_quality(MERGE_TRUE, MERGE_PRED))
    assert (tp, fp, fn) == (1, 0, 1)
    assert dq == pytest.approx(2 / 3)
    assert sq == pytest.approx(2 / 3)
    assert pq == pytest.approx(4 / 9)


def test_gt_without_any_overlap_adds_its_area_to_union():
    true = np.array([[1, 1, 0, 2]])
    pred = np.array([[3, 3, 0, 0]])
    # GT1 <-> pred 3: C = 2, U = 2; GT2 touches nothing: U += 1.  AJI = 2/3.
    assert aggregated_jaccard_index(true, pred) == pytest.approx(2 / 3)
    # TP 1 (IoU 1), FN 1: DQ = 2/3, SQ = 1, PQ = 2/3.
    pq, dq, sq, tp, fp, fn = pq_tuple(panoptic_quality(true, pred))
    assert (pq, sq, tp, fp, fn) == (pytest.approx(2 / 3), 1.0, 1, 0, 1)


@pytest.mark.parametrize(
    "covered, expected_tp, expected_sq",
    [
        (49, 0, 0.0),  # IoU 0.49 -> no match: FP 1, FN 1
        (50, 0, 0.0),  # IoU exactly 0.5 -> no match (strict >)
        (51, 1, 0.51),  # IoU 0.51 -> match, DQ 1, PQ = SQ = 0.51
    ],
)
def test_pq_threshold_boundary(covered, expected_tp, expected_sq):
    true = np.ones((1, 100), dtype=np.int32)  # one GT of area 100
    pred = np.zeros_like(true)
    pred[0, :covered] = 2  # pred inside the GT: IoU = covered / 100
    res = panoptic_quality(true, pred)
    assert res["tp"] == expected_tp
    assert (res["fp"], res["fn"]) == ((0, 0) if expected_tp else (1, 1))
    assert res["sq"] == pytest.approx(expected_sq)
    assert res["pq"] == pytest.approx(expected_sq)
    assert res["dq"] == (1.0 if expected_tp else 0.0)
    # AJI is threshold-free: C = covered, U = 100.
    assert aggregated_jaccard_index(true, pred) == pytest.approx(covered / 100)


def test_pq_higher_threshold_rejects_weak_match():
    true = np.ones((1, 100), dtype=np.int32)
    pred = np.zeros_like(true)
    pred[0, :51] = 1  # IoU 0.51 < 0.6
    assert panoptic_quality(true, pred, iou_threshold=0.6)["tp"] == 0


@pytest.mark.parametrize("thr", [0.4, 1.0, float("nan")])
def test_pq_threshold_validation(thr):
    message = rf"iou_threshold={thr!r}: expected an IoU threshold in \[0.5, 1\)"
    with pytest.raises(ValueError, match=message):
        panoptic_quality(TRUE_4x4, PRED_4x4, iou_threshold=thr)
    with pytest.raises(ValueError, match=message):
        InstanceMetrics(iou_threshold=thr)


@pytest.mark.parametrize("fn", [aggregated_jaccard_index, panoptic_quality, overlap_matrix])
def test_input_validation(fn):
    with pytest.raises(ValueError, match="same shape"):
        fn(TRUE_4x4, PRED_4x4[:3])
    with pytest.raises(ValueError, match="pred must have an integer dtype"):
        fn(TRUE_4x4, PRED_4x4.astype(np.float32))
    with pytest.raises(ValueError, match="true must be non-negative"):
        fn(-TRUE_4x4, PRED_4x4)
    with pytest.raises(ValueError, match="true must be a 2D"):
        fn(TRUE_4x4[None], PRED_4x4[None])
    with pytest.raises(ValueError, match="true must have an integer dtype"):
        fn(TRUE_4x4 > 0, PRED_4x4)


def _pad(a, shape=(4, 6)):
    out = np.zeros(shape, dtype=np.int64)
    out[: a.shape[0], : a.shape[1]] = a
    return out


def test_instance_metrics_mean_over_tiles_and_batch():
    # Tile A perfect: (1, 1, 1, 1). Tile B split: AJI 0.6, PQ 0.5, DQ 2/3, SQ 0.75.
    expected = {"aji": 0.8, "pq": 0.75, "dq": 5 / 6, "sq": 0.875}
    m = InstanceMetrics()
    m.update(TRUE_4x4, PRED_4x4)
    m.update(SPLIT_TRUE, SPLIT_PRED)
    assert len(m) == 2
    assert m.compute() == pytest.approx(expected)

    batch = InstanceMetrics()
    batch.update(
        np.stack([_pad(TRUE_4x4), _pad(SPLIT_TRUE)]),
        np.stack([_pad(PRED_4x4), _pad(SPLIT_PRED)]),
    )
    assert len(batch) == 2
    assert batch.compute() == pytest.approx(expected)


def test_instance_metrics_reset_and_errors():
    m = InstanceMetrics()
    with pytest.raises(RuntimeError, match="no tiles"):
        m.compute()
    m.update(SPLIT_TRUE, SPLIT_PRED)
    m.reset()
    with pytest.raises(RuntimeError, match="no tiles"):
        m.compute()
    m.update(MERGE_TRUE, MERGE_PRED)
    assert m.compute() == pytest.approx({"aji": 5 / 12, "pq": 4 / 9, "dq": 2 / 3, "sq": 2 / 3})
    with pytest.raises(ValueError, match="same shape"):
        m.update(TRUE_4x4, PRED_4x4[:3])
    with pytest.raises(ValueError, match=r"\(N, H, W\)"):
        m.update(TRUE_4x4.ravel(), PRED_4x4.ravel())
    # A batch with a bad tile leaves the accumulated state untouched.
    bad = np.stack([TRUE_4x4, -TRUE_4x4])
    with pytest.raises(ValueError, match="non-negative"):
        m.update(bad, np.stack([PRED_4x4, PRED_4x4]))
    assert len(m) == 1


def _reference(true, pred):
    """Slow per-pair reference of AJI (Kumar) and PQ@0.5 for cross-checking."""
    tids = [i for i in np.unique(true) if i]
    pids = [j for j in np.unique(pred) if j]
    c = u = 0
    used, ious = set(), []
    for i in tids:
        g = true == i
        best, best_iou = None, 0.0
        for j in pids:
            s = pred == j
            inter, union = (g & s).sum(), (g | s).sum()
            if inter and inter / union > best_iou:
                best, best_iou = j, inter / union
            if inter / union > 0.5:
                ious.append(inter / union)
        if best is None:
            u += g.sum()
        else:
            s = pred == best
            c += (g & s).sum()
            u += (g | s).sum()
            used.add(best)
    u += sum((pred == j).sum() for j in pids if j not in used)
    tp = len(ious)
    denom = tp + 0.5 * (len(pids) - tp) + 0.5 * (len(tids) - tp)
    pq = (tp / denom) * (np.mean(ious) if tp else 0.0)
    return c / u, pq


@pytest.mark.parametrize("seed", range(5))
def test_matches_slow_reference_on_random_maps(seed):
    # Blocky multi-part instances; pred = GT with 15% of blocks relabelled, shifted 1 px.
    rng = np.random.default_rng(seed)
    blocks = rng.integers(0, 10, size=(8, 8))
    noisy = np.where(
        rng.random(blocks.shape) < 0.15, rng.integers(0, 12, size=blocks.shape), blocks
    )
    true = blocks.repeat(4, 0).repeat(4, 1)
    pred = np.roll(noisy.repeat(4, 0).repeat(4, 1), 1, axis=1) * 7
    aji_ref, pq_ref = _reference(true, pred)
    res = panoptic_quality(true, pred)
    assert res["tp"] > 0 and res["fp"] + res["fn"] > 0  # non-trivial case
    assert aggregated_jaccard_index(true, pred) == pytest.approx(aji_ref)
    assert res["pq"] == pytest.approx(pq_ref)

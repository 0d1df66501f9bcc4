import csv
import math

import pytest

from medprune.report import Job, aggregate, find_crossover, mean_std
from medprune.report.build import format_mean_std
from medprune.report.table import MeanStd, csv_cell, jobs_table, report_table, write_csv


def job(scope, sparsity, seed, metrics, compression=None, name="j"):
    if compression is None:
        compression = 1 / (1 - sparsity)
    summary = {
        "task": "nuclei",
        "pruning": {
            "scope": scope,
            "target_sparsity": sparsity,
            "achieved_sparsity": sparsity,
            "compression_ratio": compression,
        },
        "metrics": metrics,
    }
    return Job(None, name, (), {"seed": seed}, summary)


def sweep(points, metric="test/aji"):
    """(scope, sparsity, [values per seed]) -> groups."""
    jobs = [
        job(scope, sparsity, seed, {metric: value})
        for scope, sparsity, values in points
        for seed, value in enumerate(values)
    ]
    return aggregate(jobs)


def head_to_head(values):
    """{sparsity: (global, layer-wise)} -> groups, one seed each."""
    return sweep(
        [
            (scope, s, [v[i]])
            for s, v in values.items()
            for i, scope in enumerate(("global", "layerwise"))
        ]
    )


def test_mean_std_known_answers():
    assert mean_std([0.7, 0.8, 0.9]) == pytest.approx((0.8, 0.1))
    assert mean_std([2.0, 4.0]) == pytest.approx((3.0, math.sqrt(2)))  # ddof=1
    single = mean_std([0.5])
    assert single.mean == 0.5 and math.isnan(single.std)
    assert all(math.isnan(v) for v in mean_std([]))


def test_aggregate_groups_orders_and_averages():
    jobs = [
        job("layerwise", 0.9375, 1, {"test/aji": 0.6, "test/dq": 0.5}),
        job("global", 0.9375, 0, {"test/aji": 0.7, "test/dq": 0.6}),
        job("global", 0.5, 0, {"test/aji": 0.8, "test/dq": 0.7}),
        job("none", 0.0, 2, {"test/aji": 0.9, "test/dq": 0.8}, compression=1.0),
        job("none", 0.0, 0, {"test/aji": 0.7, "test/dq": 0.8}, compression=1.0),
        job("none", 0.0, 1, {"test/aji": 0.8, "test/dq": 0.8}, compression=1.0),
        job("layerwise", 0.9375, 0, {"test/aji": 0.64, "test/dq": 0.5}),
        job("global", 0.9375000001, 1, {"test/aji": 0.72, "test/dq": 0.6}),  # same group
    ]
    groups = aggregate(jobs)
    order = [(g.scope, g.target_sparsity) for g in groups]
    assert order == [("none", 0.0), ("global", 0.5), ("global", 0.9375), ("layerwise", 0.9375)]
    dense = groups[0]
    assert dense.dense and dense.n == 3 and dense.seeds == [0, 1, 2]
    assert dense.metrics["test/aji"] == pytest.approx((0.8, 0.1))
    assert dense.compression_ratio == 1.0
    assert groups[2].n == 2 and groups[2].compression_ratio == pytest.approx(16.0)
    assert groups[2].metrics["test/aji"].mean == pytest.approx(0.71)
    assert math.isnan(groups[1].metrics["test/aji"].std)  # one seed


def test_report_csv_rows(tmp_path):
    groups = aggregate(
        [job("none", 0.0, seed, {"test/aji": v}, 1.0) for seed, v in enumerate((0.7, 0.8, 0.9))]
        + [job("global", 0.75, 4, {"test/aji": 0.5})]
    )
    header, rows = report_table(groups, "nuclei")
    assert header == [
        "task",
        "scope",
        "target_sparsity",
        "n",
        "seeds",
        "achieved_sparsity",
        "compression_ratio",
        "test/aji_mean",
        "test/aji_std",
    ]
    write_csv(tmp_path / "r.csv", header, rows)
    read = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert read[0]["scope"] == "none" and read[0]["seeds"] == "0 1 2" and read[0]["n"] == "3"
    assert read[0]["test/aji_mean"] == "0.8" and read[0]["test/aji_std"] == "0.1"
    assert read[1]["compression_ratio"] == "4" and read[1]["test/aji_std"] == ""
    assert csv_cell(math.inf) == "inf" and csv_cell(None) == ""


def test_jobs_table_one_row_per_job():
    header, rows = jobs_table([job("global", 0.5, 3, {"test/aji": 0.5}, name="7")])
    assert header[:5] == ["job", "task", "scope", "target_sparsity", "seed"]
    assert header[-1] == "test/aji" and rows == [["7", "nuclei", "global", 0.5, 3, 0.5, 2.0, 0.5]]


def test_format_mean_std():
    assert format_mean_std(MeanStd(0.8, 0.1)) == "0.8000 ± 0.1000"
    assert format_mean_std(MeanStd(0.8, math.nan)) == "0.8000 ± —"


def test_clean_crossover():
    groups = sweep(
        [
            ("none", 0.0, [0.8]),
            ("global", 0.5, [0.77]),
            ("layerwise", 0.5, [0.80]),
            ("global", 0.75, [0.74]),
            ("layerwise", 0.75, [0.75]),
            ("global", 0.875, [0.72]),
            ("layerwise", 0.875, [0.70]),
            ("global", 0.9375, [0.71]),
            ("layerwise", 0.9375, [0.62]),
            ("global", 0.99, [0.5]),  # layer-wise has no 0.99: not compared
        ]
    )
    c = find_crossover(groups, "test/aji", "max")
    assert c.sparsity == 0.875 and c.previous_sparsity == 0.75
    assert c.compression_ratio == pytest.approx(8.0)
    assert list(c.margins) == [0.5, 0.75, 0.875, 0.9375]
    assert c.margins[0.5] == pytest.approx(-0.03) and c.margins[0.9375] == pytest.approx(0.09)
    assert not c.within_std
    assert c.text == (
        "global overtakes layer-wise at sparsity 0.875 (8.0x; layer-wise better up to 0.75)"
    )


def test_crossover_within_one_std_and_tie_below():
    groups = sweep(
        [
            ("global", 0.5, [0.7, 0.7]),
            ("layerwise", 0.5, [0.7, 0.7]),  # exact tie: no win for global
            ("global", 0.9375, [0.70, 0.74]),  # mean 0.72, std 0.028
            ("layerwise", 0.9375, [0.70, 0.72]),  # mean 0.71
        ]
    )
    c = find_crossover(groups, "test/aji")
    assert c.sparsity == 0.9375 and c.previous_sparsity == 0.5 and c.within_std
    assert "16.0x; layer-wise better or equal up to 0.5" in c.text
    assert c.text.endswith("within one std (0.0283)")


def test_global_better_everywhere():
    groups = sweep([("global", s, [0.8]) for s in (0.5, 0.9)] + [("layerwise", 0.5, [0.7])])
    groups += sweep([("layerwise", 0.9, [0.79])])
    c = find_crossover(groups, "test/aji")
    assert c.sparsity is None and c.previous_sparsity is None
    assert c.text == "global is better at every sparsity (no crossover)"


def test_global_never_overtakes():
    groups = sweep([(scope, s, [0.8]) for scope in ("global", "layerwise") for s in (0.5, 0.9)])
    c = find_crossover(groups, "test/aji")  # ties everywhere
    assert c.sparsity is None and c.margins == {0.5: 0.0, 0.9: 0.0}
    assert c.text == "layer-wise is better or equal at every sparsity (global never overtakes)"


def test_min_mode_lower_is_better():
    points = [
        ("global", 0.5, [5.0]),
        ("layerwise", 0.5, [4.0]),  # layer-wise lower hd95: better
        ("global", 0.9, [6.0]),
        ("layerwise", 0.9, [9.0]),
    ]
    groups = sweep(points, "test/hd95_mean")
    c = find_crossover(groups, "test/hd95_mean", "min")
    assert c.sparsity == 0.9 and c.margins == {0.5: -1.0, 0.9: 3.0}
    assert "layer-wise better up to 0.5" in c.text
    # read as higher-is-better the same numbers say the opposite
    assert find_crossover(groups, "test/hd95_mean", "max").sparsity is None


def test_winners_alternate_without_final_global_run():
    groups = head_to_head(
        {0.5: (0.8, 0.7), 0.75: (0.7, 0.8), 0.875: (0.8, 0.7), 0.9375: (0.6, 0.7)}
    )
    c = find_crossover(groups, "test/aji")
    assert c.sparsity is None
    assert c.text == (
        "no crossover: winners alternate (0.5 global, 0.75 layer-wise, 0.875 global, "
        "0.9375 layer-wise)"
    )


def test_layerwise_overtakes_global_is_no_crossover():
    groups = head_to_head({0.5: (0.8, 0.7), 0.9: (0.6, 0.7)})
    c = find_crossover(groups, "test/aji")
    assert c.sparsity is None
    assert c.text == "no crossover: layer-wise overtakes global (0.5 global, 0.9 layer-wise)"


def test_crossover_needs_both_scopes_on_a_common_sparsity():
    only_global = find_crossover(sweep([("global", 0.5, [0.8])]), "test/aji")
    assert only_global.sparsity is None and "were not both run" in only_global.text
    apart = find_crossover(sweep([("global", 0.5, [0.8]), ("layerwise", 0.9, [0.7])]), "test/aji")
    assert apart.text == "no crossover: global and layer-wise share no sparsity"


def test_mean_std_of_equal_seeds_is_exactly_zero_and_infinity_propagates():
    assert mean_std([0.1, 0.1, 0.1]) == (0.1, 0.0)
    assert mean_std([0.7, 0.8, 0.9]).mean == 0.8
    mean, std = mean_std([math.inf, 2.0])
    assert mean == math.inf and math.isnan(std)


def test_several_dense_targets_each_get_a_row_first():
    groups = aggregate(
        [
            job("global", 0.5, 0, {"test/aji": 0.7}),
            job("none", 0.5, 0, {"test/aji": 0.8}, compression=1.0),
            job("none", 0.0, 0, {"test/aji": 0.81}, compression=1.0),
        ]
    )
    assert [(g.scope, g.target_sparsity, g.dense) for g in groups] == [
        ("none", 0.0, True),
        ("none", 0.5, True),
        ("global", 0.5, False),
    ]


def test_a_nan_mean_is_not_compared_and_said_so():
    groups = head_to_head({0.5: (math.nan, 0.4), 0.75: (0.3, 0.4), 0.9: (0.3, 0.2)})
    c = find_crossover(groups, "test/aji")
    assert c.sparsity == 0.9 and c.previous_sparsity == 0.75 and list(c.margins) == [0.75, 0.9]
    assert c.text.endswith("(not compared, no finite mean: sparsity 0.5)")
    assert "equal" not in c.text
    assert find_crossover(head_to_head({0.5: (math.nan, 0.4)}), "test/aji").text == (
        "no crossover: no finite means to compare"
    )

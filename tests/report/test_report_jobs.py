import json
import re

import pytest
from fake_jobs import CROSSOVER_SWEEP, nuclei, write_job, write_sweep

from medprune.report import ReportError, load_jobs, main_metric
from medprune.report.jobs import find_job_folders, parse_override


def test_finds_jobs_in_natural_order_and_skips_logs(tmp_path):
    write_sweep(tmp_path, [("global", 0.5, seed, nuclei(0.5)) for seed in range(12)])
    (tmp_path / ".submitit" / "123_0").mkdir(parents=True)
    (tmp_path / ".submitit" / "123_0" / "summary.json").write_text("{}")
    (tmp_path / "3" / "wandb" / "run").mkdir(parents=True)
    (tmp_path / "3" / "wandb" / "run" / "summary.json").write_text("{}")
    folders = find_job_folders(tmp_path)
    assert [f.name for f in folders] == [str(i) for i in range(12)]  # 2 before 10
    jobs = load_jobs(tmp_path)
    assert [j.name for j in jobs.finished][:3] == ["0", "1", "2"] and not jobs.failed


def test_root_may_be_one_job_at_any_depth(tmp_path):
    job = write_job(tmp_path / "a" / "b", "global", 0.5, 0, nuclei(0.5))
    assert load_jobs(job).finished[0].name == "."
    assert load_jobs(tmp_path).finished[0].name == "a/b"


def test_failed_jobs_are_kept_with_overrides(tmp_path):
    write_sweep(tmp_path, CROSSOVER_SWEEP[:2])
    write_job(tmp_path / "9", "global", 0.9, 1, {}, finished=False)
    jobs = load_jobs(tmp_path)
    assert len(jobs.finished) == 2
    assert [(j.name, j.overrides) for j in jobs.failed] == [
        ("9", ("pruning=global", "sparsity=0.9", "seed=1"))
    ]


def test_job_fields(tmp_path):
    write_job(tmp_path, "layerwise", 0.9375, 3, {"test/aji": 0.5, "test/pq": None, "epoch": 3})
    job = load_jobs(tmp_path).finished[0]
    assert (job.task, job.scope, job.target_sparsity, job.seed) == (
        "nuclei",
        "layerwise",
        0.9375,
        3,
    )
    assert job.compression_ratio == 16.0 and job.achieved_sparsity == 0.9375
    assert job.metrics["test/aji"] == 0.5 and set(job.metrics) == {"test/aji", "test/pq"}


def test_parse_override():
    assert parse_override("++model.depth=3") == ("model.depth", "3")
    assert parse_override("+seed=1") == ("seed", "1")
    assert parse_override("~logger") == ("logger", "(deleted)")


def test_root_missing_or_a_file(tmp_path):
    with pytest.raises(ReportError, match=r"nope does not exist: expected the folder of a"):
        load_jobs(tmp_path / "nope")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(ReportError, match=r"f\.txt is not a folder"):
        load_jobs(tmp_path / "f.txt")


def test_no_jobs(tmp_path):
    (tmp_path / "wandb").mkdir()
    (tmp_path / "wandb" / "summary.json").write_text("{}")
    with pytest.raises(
        ReportError, match=r"no train\.py job found under .*: expected <job>/summary"
    ):
        load_jobs(tmp_path)


def test_none_finished_lists_them(tmp_path):
    write_job(tmp_path / "0", "global", 0.5, 0, {}, finished=False)
    write_job(tmp_path / "1", "global", 0.5, 1, {}, finished=False)
    with pytest.raises(ReportError, match=r"none of the 2 jobs .* finished") as err:
        load_jobs(tmp_path)
    assert "0 (pruning=global sparsity=0.5 seed=0); 1 (pruning=global" in str(err.value)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", r"0/summary\.json is not valid JSON"),
        ("[1, 2]", r"0/summary\.json: expected a JSON object with keys task, pruning, metrics"),
        (
            json.dumps({"task": "nuclei", "ckpt": "x.ckpt", "baseline": {}, "pruning": {}}),
            r"0/summary\.json is a prune\.py summary",
        ),
        (
            json.dumps({"task": "nuclei", "pruning": {}}),
            r"0/summary\.json lacks key 'metrics'",
        ),
        (
            json.dumps({"task": "nuclei", "pruning": {"scope": "global"}, "metrics": {}}),
            r"0/summary\.json lacks key 'pruning\.target_sparsity'",
        ),
    ],
)
def test_bad_summary(tmp_path, content, message):
    write_job(tmp_path / "0", "global", 0.5, 0, {}, finished=False)
    (tmp_path / "0" / "summary.json").write_text(content)
    with pytest.raises(ReportError, match=message):
        load_jobs(tmp_path)


def test_bad_overrides_yaml(tmp_path):
    write_job(tmp_path / "0", "global", 0.5, 0, nuclei(0.5))
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("a: [")
    with pytest.raises(ReportError, match=r"overrides\.yaml is not valid YAML"):
        load_jobs(tmp_path)


def test_mixed_tasks(tmp_path):
    write_sweep(tmp_path, [("global", 0.5, s, nuclei(0.5)) for s in range(2)])
    write_job(tmp_path / "7", "global", 0.5, 0, {"test/dice_mean": 0.8}, task="cardiac")
    with pytest.raises(
        ReportError, match=re.escape("2 tasks: cardiac (1 job, e.g. 7), nuclei (2 jobs, e.g. 0)")
    ):
        load_jobs(tmp_path)


def test_jobs_differing_in_another_override(tmp_path):
    for i, channels in enumerate((4, 8)):
        overrides = [
            "pruning=global",
            "sparsity=0.5",
            f"seed={i}",
            f"model.base_channels={channels}",
        ]
        write_job(tmp_path / str(i), "global", 0.5, i, nuclei(0.5), overrides=overrides)
    with pytest.raises(
        ReportError,
        match=r"differ in override 'model\.base_channels' \(values: 4, 8\): the report averages "
        r"over seeds only",
    ) as err:
        load_jobs(tmp_path)
    assert "--select model.base_channels=4" in str(err.value)
    jobs = load_jobs(tmp_path, select=["model.base_channels=8"])
    assert [j.name for j in jobs.finished] == ["1"]
    with pytest.raises(ReportError, match=r"no job under .* has the overrides model\.depth=3"):
        load_jobs(tmp_path, select=["model.depth=3"])


def test_override_missing_in_some_jobs_counts_as_a_difference(tmp_path):
    write_job(tmp_path / "0", "global", 0.5, 0, nuclei(0.5), overrides=["+trainer.max_epochs=2"])
    write_job(tmp_path / "1", "global", 0.5, 1, nuclei(0.5), overrides=["seed=1"])
    with pytest.raises(ReportError, match=r"'trainer\.max_epochs' \(values: \(not set\), 2\)"):
        load_jobs(tmp_path)


def test_main_metric_from_monitor(tmp_path):
    write_job(
        tmp_path / "0",
        "none",
        0.0,
        0,
        {"test/dice_mean": 0.8, "test/hd95_mean": 3.0},
        task="cardiac",
    )
    jobs = load_jobs(tmp_path).finished
    assert main_metric(jobs) == ("test/dice_mean", "max")
    assert main_metric(jobs, "test/hd95_mean") == ("test/hd95_mean", "min")
    assert main_metric(jobs, "test/hd95_mean", "max") == ("test/hd95_mean", "max")


def test_main_metric_fallback_without_config(tmp_path):
    write_job(tmp_path / "0", "none", 0.0, 0, nuclei(0.5), config=False)
    job = load_jobs(tmp_path).finished[0]
    assert job.seed is None and main_metric([job]) == ("test/aji", "max")


def test_main_metric_missing_names_the_available_ones(tmp_path):
    write_job(tmp_path / "0", "none", 0.0, 0, {"test/dice": 0.9, "test/loss": 0.1})
    with pytest.raises(
        ReportError,
        match=r"0/summary\.json has no metric 'test/aji' \(available test metrics: test/dice, "
        r"test/loss\)",
    ):
        main_metric(load_jobs(tmp_path).finished)


def test_a_seed_repeated_in_a_row_is_refused_naming_both_jobs(tmp_path):
    # what Hydra's basic sweeper makes of pruning=none,global sparsity=0.5,0.75: dense twice
    write_sweep(
        tmp_path,
        [("none", 0.0, 0, nuclei(0.8)), ("none", 0.0, 0, nuclei(0.8))]
        + [("global", s, 0, nuclei(0.7)) for s in (0.5, 0.75)],
        overrides=["pruning=x"],
    )
    with pytest.raises(
        ReportError, match=r"jobs 0 and 1 are both none at target sparsity 0 with seed 0"
    ):
        load_jobs(tmp_path)


@pytest.mark.parametrize(
    ("target", "seed", "message"),
    [
        (None, 0, r"0/summary\.json: pruning\.target_sparsity=None, expected a number"),
        ("half", 0, r"pruning\.target_sparsity='half', expected a number"),
        (0.5, "abc", r"0/config\.yaml: seed='abc', expected an integer"),
    ],
)
def test_values_of_the_wrong_type_name_file_and_key(tmp_path, target, seed, message):
    write_job(tmp_path / "0", "global", 0.5, 0, nuclei(0.5))
    summary = json.loads((tmp_path / "0" / "summary.json").read_text())
    summary["pruning"]["target_sparsity"] = target
    (tmp_path / "0" / "summary.json").write_text(json.dumps(summary))
    (tmp_path / "0" / "config.yaml").write_text(f"seed: {seed}\ntask_name: nuclei\n")
    with pytest.raises(ReportError, match=message):
        load_jobs(tmp_path)

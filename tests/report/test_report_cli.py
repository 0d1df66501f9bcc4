import csv
import sys
import types

import pytest
from fake_jobs import CROSSOVER_SWEEP, nuclei, write_job, write_sweep
from PIL import Image

from medprune.report import build_report
from medprune.report.__main__ import main

OUTPUTS = ("report.csv", "jobs.csv", "report.md", "quality_vs_sparsity.png")


@pytest.fixture
def sweep(tmp_path):
    root = tmp_path / "multiruns" / "2026-01-01_00-00-00"
    write_sweep(root, CROSSOVER_SWEEP)
    n = len(CROSSOVER_SWEEP)
    write_job(root / str(n), "global", 0.99, 0, {}, finished=False)
    return root


def read_csv(path):
    with path.open(newline="") as file:
        return list(csv.DictReader(file))


def test_cli_writes_the_report(sweep, capsys):
    assert main([str(sweep)]) == 0
    out, err = capsys.readouterr()
    assert f"to {sweep}" in out
    assert "crossover: global overtakes layer-wise at sparsity 0.875 (8.0x;" in out
    assert "failed job 15 (pruning=global sparsity=0.99 seed=0): no summary.json" in err
    assert all((sweep / name).is_file() for name in OUTPUTS)

    rows = read_csv(sweep / "report.csv")
    keys = [(r["scope"], r["target_sparsity"]) for r in rows]
    assert keys == [("none", "0")] + [
        (scope, s) for scope in ("global", "layerwise") for s in ("0.5", "0.75", "0.875", "0.9375")
    ]
    dense = rows[0]
    assert (dense["task"], dense["n"], dense["seeds"]) == ("nuclei", "3", "0 1 2")
    assert (dense["test/aji_mean"], dense["test/aji_std"]) == ("0.8", "0.1")
    assert dense["compression_ratio"] == "1" and dense["test/loss_mean"] == "0.1"
    g16 = rows[4]
    assert g16["compression_ratio"] == "16" and g16["test/aji_mean"] == "0.71"
    assert rows[2]["test/aji_std"] == ""  # one seed
    assert len(read_csv(sweep / "jobs.csv")) == len(CROSSOVER_SWEEP)

    md = (sweep / "report.md").read_text()
    assert "Main metric: test/aji (higher is better)" in md
    assert "Jobs: 15 finished, 1 failed." in md
    assert "| scope | target sparsity | compression | n | test/aji | test/dice |" in md
    assert "test/loss |" not in md
    assert "| none (dense) | 0 | 1.0x | 3 | 0.8000 ± 0.1000 | 0.9000 ± 0.0000 |" in md
    assert "| global | 0.75 | 4.0x | 1 | 0.7400 ± — |" in md
    assert "Crossover: global overtakes layer-wise at sparsity 0.875" in md
    assert "## Failed jobs" in md
    assert "- `15`: pruning=global sparsity=0.99 seed=0 — no summary.json (the job failed" in md
    assert "![quality vs sparsity](quality_vs_sparsity.png)" in md

    with Image.open(sweep / "quality_vs_sparsity.png") as png:
        assert png.format == "PNG" and png.size[0] > 400 and png.size[1] > 300


def test_api_returns_failed_jobs_and_crossover(sweep, tmp_path):
    report = build_report(sweep, tmp_path / "out")
    assert [job.name for job in report.failed] == ["15"]
    assert report.crossover.sparsity == 0.875 and report.crossover.previous_sparsity == 0.75
    assert (report.metric, report.mode, report.task) == ("test/aji", "max", "nuclei")
    assert all((tmp_path / "out" / name).is_file() for name in OUTPUTS)
    assert not (sweep / "report.md").exists()


def test_refuses_to_overwrite_without_force(sweep, capsys):
    assert main([str(sweep)]) == 0
    capsys.readouterr()
    (sweep / "report.md").write_text("my notes")
    assert main([str(sweep)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {sweep / 'report.csv'} exists: refusing to overwrite it")
    assert "--force" in err
    assert (sweep / "report.md").read_text() == "my notes"
    assert main([str(sweep), "--force"]) == 0
    assert (sweep / "report.md").read_text().startswith("# Quality vs sparsity: nuclei")


def test_bad_input_exits_2_with_the_message(tmp_path, capsys):
    assert main([str(tmp_path / "missing")]) == 2
    assert capsys.readouterr().err == (
        f"error: {tmp_path / 'missing'} does not exist: expected the folder of a train.py "
        "multirun (e.g. logs/nuclei/multiruns/<time>)\n"
    )
    write_job(tmp_path / "0", "global", 0.5, 0, nuclei(0.5))
    assert main([str(tmp_path), "--metric", "test/pq"]) == 2
    assert "has no metric 'test/pq'" in capsys.readouterr().err
    assert not (tmp_path / "report.csv").exists()


def test_min_mode_and_metric_option(tmp_path, capsys):
    specs = [
        ("global", 0.5, 0, {"test/dice_mean": 0.8, "test/hd95_mean": 5.0}),
        ("layerwise", 0.5, 0, {"test/dice_mean": 0.9, "test/hd95_mean": 4.0}),
        ("global", 0.9, 0, {"test/dice_mean": 0.7, "test/hd95_mean": 6.0}),
        ("layerwise", 0.9, 0, {"test/dice_mean": 0.6, "test/hd95_mean": 9.0}),
    ]
    write_sweep(tmp_path, specs, task="cardiac")
    assert main([str(tmp_path), "--metric", "test/hd95_mean"]) == 0
    assert "global overtakes layer-wise at sparsity 0.9" in capsys.readouterr().out
    md = (tmp_path / "report.md").read_text()
    assert "Main metric: test/hd95_mean (lower is better)" in md and "Failed jobs" not in md


def test_infinite_compression_is_left_out_of_the_plot(tmp_path):
    write_sweep(tmp_path, [("none", 0.0, 0, nuclei(0.8)), ("global", 1.0, 0, nuclei(0.1))])
    report = build_report(tmp_path)
    assert report.skipped == ["global at sparsity 1 (compression inf)"]
    md = (tmp_path / "report.md").read_text()
    assert "| global | 1 | inf | 1 |" in md
    assert "Left out of the plot (compression not finite): global at sparsity 1" in md
    assert read_csv(tmp_path / "report.csv")[1]["compression_ratio"] == "inf"
    with Image.open(tmp_path / "quality_vs_sparsity.png") as png:
        assert png.size[0] > 400


def test_help_explains_inputs_and_outputs(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for word in ("summary.json", "report.csv", "--force", "--wandb", "logs/nuclei/multiruns"):
        assert word in text


class FakeWandb(types.ModuleType):
    """Records what the report hands to W&B."""

    def __init__(self):
        super().__init__("wandb")
        self.calls = []

    def init(self, **kwargs):
        self.calls.append(("init", kwargs))
        fake = self

        class Run:
            summary = {}

            def log(self, data):
                fake.calls.append(("log", data))

            def finish(self):
                fake.calls.append(("finish", self.summary))

        return Run()

    class Table:
        def __init__(self, columns, data):
            self.columns, self.data = columns, data

    class Image:
        def __init__(self, path):
            self.path = path


def test_wandb_logs_table_and_plot(tmp_path, monkeypatch, capsys):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    logger = {"wandb": {"project": "prune-study", "group": "nuclei-sweep-3"}}
    write_sweep(tmp_path, CROSSOVER_SWEEP, logger=logger)
    assert main([str(tmp_path), "--wandb"]) == 0
    (_, init), (_, logged), (_, summary) = fake.calls
    assert init["project"] == "prune-study" and init["group"] == "nuclei-sweep-3"
    assert (init["job_type"], init["name"], init["mode"]) == ("report", "report", "offline")
    assert init["dir"] == str(tmp_path)
    table = logged["report/table"]
    assert table.columns[:5] == ["task", "scope", "target_sparsity", "n", "seeds"]
    assert "test/aji_mean" in table.columns and len(table.data) == 9
    dense = dict(zip(table.columns, table.data[0]))
    assert dense["scope"] == "none" and dense["test/aji_mean"] == pytest.approx(0.8)
    assert dict(zip(table.columns, table.data[2]))["test/aji_std"] is None  # one seed
    assert logged["report/quality_vs_sparsity"].path.endswith("quality_vs_sparsity.png")
    assert summary["report/crossover_sparsity"] == 0.875


def test_wandb_defaults_without_a_wandb_logger(tmp_path, monkeypatch):
    fake = FakeWandb()
    monkeypatch.setitem(sys.modules, "wandb", fake)
    monkeypatch.setenv("WANDB_MODE", "disabled")
    write_sweep(tmp_path, CROSSOVER_SWEEP[:3], logger={"csv": {"name": "csv"}})
    build_report(tmp_path, log_wandb=True)
    init = fake.calls[0][1]
    assert (init["project"], init["group"], init["mode"]) == ("medprune", "nuclei", "disabled")
    assert fake.calls[-1][0] == "finish"


def test_plot_with_several_dense_rows_and_no_pruned_jobs(tmp_path):
    write_job(tmp_path / "0", "none", 0.0, 0, nuclei(0.8), compression=1.0)
    write_job(tmp_path / "1", "none", 0.5, 0, nuclei(0.7), compression=1.0)
    report = build_report(tmp_path)
    assert [g.target_sparsity for g in report.groups] == [0.0, 0.5] and not report.skipped
    md = (tmp_path / "report.md").read_text()
    assert "| none (dense) | 0.5 | 1.0x | 1 | 0.7000 ± — |" in md
    with Image.open(tmp_path / "quality_vs_sparsity.png") as png:
        assert png.size[1] > 300

"""Sweeps end to end, in subprocesses as a user runs them: ``python train.py -m ...``."""

import csv
import json
import os
import subprocess
import sys

import pytest
import yaml
from PIL import Image

from conftest import ROOT, TINY
from medprune.report.__main__ import main as report_main


def run_multirun(args, sweep_dir, timeout=300):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "train.py", "-m", *args, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def job_dirs(sweep_dir):
    return sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith("."))


def test_a_2x2_sweep_in_parallel_gives_4_jobs_each_its_folder_run_and_summary(tmp_path):
    sweep = tmp_path / "multiruns" / "2026-11-22_21-00-00"
    tiny = [o for o in TINY if not o.startswith("logger=")]
    args = ["pruning=global,layerwise", "sparsity=0.5,0.75", "logger=wandb", *tiny]
    proc = run_multirun([*args, "hydra/launcher=joblib"], sweep)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0", "1", "2", "3"]
    seen = set()
    for job in jobs:
        summary = json.loads((job / "summary.json").read_text())
        scope, target = summary["pruning"]["scope"], summary["pruning"]["target_sparsity"]
        assert summary["pruning"]["achieved_sparsity"] == pytest.approx(target, abs=1e-3)
        # joblib runs a job per core and gives each worker cores / n_jobs threads
        assert summary["threads"] == 1
        seen.add((scope, target))
        wandb = yaml.safe_load((job / "config.yaml").read_text())["logger"]["wandb"]
        assert wandb["group"] == "nuclei-2026-11-22_21-00-00"  # one group per sweep
        assert wandb["tags"] == ["nuclei", scope, f"sparsity={target}", "seed=42"]
        assert wandb["save_dir"] == str(job)  # its own W&B run, in its own folder
    assert seen == {(s, t) for s in ("global", "layerwise") for t in (0.5, 0.75)}

    # the report on it: one row per scope and sparsity, a table and a plot that opens
    assert report_main([str(sweep)]) == 0
    rows = list(csv.DictReader((sweep / "report.csv").open()))
    assert [(r["scope"], float(r["target_sparsity"]), r["n"]) for r in rows] == [
        ("global", 0.5, "1"),
        ("global", 0.75, "1"),
        ("layerwise", 0.5, "1"),
        ("layerwise", 0.75, "1"),
    ]
    assert [float(r["compression_ratio"]) for r in rows] == pytest.approx([2, 4, 2, 4], abs=0.01)
    markdown = (sweep / "report.md").read_text()
    assert (
        "Jobs: 4 finished, 0 failed" in markdown and "| layerwise | 0.75 | 4.0x | 1 |" in markdown
    )
    with Image.open(sweep / "quality_vs_sparsity.png") as png:
        assert png.format == "PNG" and png.size[0] > 300 and png.size[1] > 200


def test_ddp_jobs_of_a_sweep_start_their_ranks_in_their_own_folder(tmp_path):
    sweep = tmp_path / "sweep"
    tiny = [o for o in TINY if o != "data.train_tiles=8"]
    args = ["trainer=ddp", "pruning=global", "sparsity=0.5,0.75", "data.train_tiles=16", *tiny]
    args.append(f"paths.log_dir={tmp_path}")  # where a rank's stray single run would land
    proc = run_multirun(args, sweep)
    assert proc.returncode == 0, proc.stderr[-3000:]
    jobs = job_dirs(sweep)
    assert [j.name for j in jobs] == ["0", "1"]  # the ranks did not start the sweep again
    for job, target in zip(jobs, (0.5, 0.75)):
        summary = json.loads((job / "summary.json").read_text())
        digests = summary["pruning"]["mask_digests_per_rank"]
        assert len(digests) == 2 and digests[0] == digests[1]
        assert summary["pruning"]["achieved_sparsity"] == pytest.approx(target, abs=1e-3)
        assert (job / "train_ddp_process_1.log").is_file()  # rank 1 ran in this job's folder
    assert not (ROOT / "outputs").exists() and not (tmp_path / "nuclei" / "runs").exists()
    assert not (tmp_path / "nuclei" / "multiruns").exists()  # nor a second sweep

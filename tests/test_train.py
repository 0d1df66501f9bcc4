"""train(cfg) end to end on tiny settings, in process and through the train.py CLI."""

import csv
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, TINY
from medprune.models import TwoBranchUNet
from medprune.pruning import prunable_parameters
from medprune.run import train

METRICS = ["test/dice", "test/aji", "test/pq", "test/dq", "test/sq", "test/mse"]
PRUNING_KEYS = [
    "scope",
    "target_sparsity",
    "achieved_sparsity",
    "prunable_params",
    "nonzero_prunable_params",
    "total_params",
    "nonzero_params",
    "compression_ratio",
]


@pytest.mark.parametrize(
    ("scope", "sparsity"), [("global", 0.9375), ("layerwise", 0.8), ("none", 0.0)]
)
def test_train_writes_complete_summary_and_loadable_checkpoints(tiny_cfg, scope, sparsity):
    cfg = tiny_cfg(f"pruning={scope}", f"sparsity={sparsity}")
    train(cfg)
    out = ROOT / cfg.paths.output_dir
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task"] == "nuclei"
    assert list(summary["pruning"]) == PRUNING_KEYS
    assert set(METRICS) <= set(summary["metrics"])
    assert summary["steps"] == 4 and summary["wall_time_s"] > 0
    p = summary["pruning"]
    assert p["scope"] == scope and p["target_sparsity"] == sparsity
    # measured from the weights: exactly round(s * n) zeros (layerwise rounds per layer)
    net = TwoBranchUNet(base_channels=4, depth=3)
    state = torch.load(out / "checkpoints" / "last.ckpt", weights_only=False)["state_dict"]
    net.load_state_dict({k.removeprefix("net."): v for k, v in state.items()}, strict=True)
    weights = prunable_parameters(net)
    zeros = sum(int((w == 0).sum()) for w in weights.values())
    expected = {
        "global": round(sparsity * p["prunable_params"]),
        "layerwise": sum(round(sparsity * w.numel()) for w in weights.values()),
        "none": 0,
    }[scope]
    assert zeros == expected == p["prunable_params"] - p["nonzero_prunable_params"]
    assert p["achieved_sparsity"] == pytest.approx(zeros / p["prunable_params"])
    assert p["compression_ratio"] == pytest.approx(
        p["prunable_params"] / p["nonzero_prunable_params"]
    )
    assert (out / "checkpoints" / "best.ckpt").is_file()
    rows = list(csv.DictReader((out / "csv" / "version_0" / "metrics.csv").open()))
    updates = [r for r in rows if r.get("pruning/sparsity")]
    if scope == "none":
        assert not updates
    else:  # 4 steps: schedule 0..3 (begin round(0.4), end round(2.8)); step 1 subsumes step 0
        assert [int(r["step"]) for r in updates] == [1, 2, 3]
        assert float(updates[-1]["pruning/target_sparsity"]) == sparsity
        assert float(updates[-1]["pruning/sparsity"]) == pytest.approx(p["achieved_sparsity"])
        assert updates[-1]["pruning/sparsity_seg"] and updates[-1]["pruning/sparsity_dist"]
    assert "${" not in (out / "config.yaml").read_text()  # resolved


def test_a_run_never_overwrites_an_earlier_run(tiny_cfg):
    cfg = tiny_cfg("pruning=none")
    train(cfg)
    summary = ROOT / cfg.paths.output_dir / "summary.json"
    ckpt = summary.parent / "checkpoints" / "last.ckpt"
    ckpt_before = ckpt.read_bytes()
    with pytest.raises(FileExistsError, match="summary.json exists: .* holds an earlier run"):
        train(cfg)
    summary.unlink()  # even without a summary, its checkpoints are kept
    with pytest.raises(FileExistsError, match="checkpoints exists: .* holds an earlier run"):
        train(cfg)
    assert ckpt.read_bytes() == ckpt_before


def run_cli(args, tmp_path):
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "train.py", *args, f"hydra.run.dir={tmp_path}/run"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_cli_main_command_with_wandb_logger(tmp_path):
    overrides = [o for o in TINY if not o.startswith("logger=")]
    proc = run_cli(["pruning=global", "sparsity=0.9375", "logger=wandb", *overrides], tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.9375, abs=1e-4)
    assert "medprune summary: nuclei" in proc.stdout


def test_cli_bad_pruning_config_stops_before_training(tmp_path):
    proc = run_cli(["pruning=global", "sparsity=1.5", *TINY], tmp_path)
    assert proc.returncode != 0
    assert (
        "pruning.target_sparsity (set by sparsity=)=1.5: expected a value in [0, 1)" in proc.stderr
    )
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_callback_entry_without_target_fails_naming_it(tiny_cfg):
    cfg = tiny_cfg("pruning=none", "+callbacks.my_callback.patience=3")
    with pytest.raises(ValueError, match="callbacks.my_callback has no _target_"):
        train(cfg)

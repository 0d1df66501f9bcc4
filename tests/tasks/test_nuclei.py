"""The nuclei task's whole-tile evaluation: when thresholds are tuned and where they end up."""

import json

import pytest
import torch

from conftest import ROOT
from medprune.models import TwoBranchUNet
from medprune.run import train
from medprune.tasks import NucleiSegmentationTask


def read(cfg, name):
    return ROOT / cfg.paths.output_dir / name


@pytest.mark.parametrize(("epochs", "validations"), [(2, 1), (3, 2)])
def test_thresholds_are_tuned_once_after_training(tiny_cfg, epochs, validations):
    """Validation every 2 epochs: with 2 epochs the last one validates and tunes; with 3 it
    does not, so ``finish_fit`` runs one more validation to tune and rewrites last.ckpt."""
    cfg = tiny_cfg(
        f"trainer.max_epochs={epochs}",
        "task.tune_postprocess.fg_grid=[0.5,0.3]",
        "task.tune_postprocess.marker_grid=[0.6,0.4]",
    )
    summary = train(cfg)
    post = json.loads(read(cfg, "summary.json").read_text())["postprocess"]
    assert post == summary["postprocess"] and post["tuned"]
    search = post["search"]
    assert len(search["scores"]) == 2 and len(search["scores"][0]) == 2
    assert (post["fg_threshold"], post["marker_threshold"]) == (
        search["fg_threshold"],
        search["marker_threshold"],
    )
    best = max(max(row) for row in search["scores"])
    assert search["score"] == best
    ckpt = torch.load(read(cfg, "checkpoints/last.ckpt"), weights_only=False)
    assert ckpt["postprocess"]["fg_threshold"] == post["fg_threshold"]
    assert ckpt["postprocess"]["marker_threshold"] == post["marker_threshold"]
    metrics = (read(cfg, "csv/version_0/metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    tuned = [row for row in metrics[1:] if row.split(",")[header.index("val/fg_threshold")]]
    assert len(tuned) == 1  # one grid search per run
    assert sum(1 for row in metrics[1:] if row.split(",")[header.index("val/aji")]) == validations


def test_fixed_thresholds_when_tuning_is_off(tiny_cfg):
    cfg = tiny_cfg("task.tune_postprocess=null", "task.postprocess.marker_threshold=0.7")
    post = train(cfg)["postprocess"]
    assert not post["tuned"] and post["marker_threshold"] == 0.7 and "search" not in post


def test_window_must_suit_the_unet():
    net = TwoBranchUNet(base_channels=2, depth=3)
    with pytest.raises(ValueError, match=r"task.window=30: .* divisible by 4"):
        NucleiSegmentationTask(net, window=30)
    with pytest.raises(ValueError, match=r"task.tune_postprocess.fg_grid values"):
        NucleiSegmentationTask(net, tune_postprocess={"fg_grid": [1.5]})
    with pytest.raises(ValueError, match=r"task.overlap=1.0"):
        NucleiSegmentationTask(net, overlap=1.0)

"""The nuclei task's whole-tile evaluation: when thresholds are tuned and where they end up."""

import json
from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from conftest import ROOT
from medprune.models import TwoBranchUNet
from medprune.runs.training import train
from medprune.tasks import NucleiSegmentationTask
from medprune.tasks.nuclei import latest_checkpoint_paths


def read(cfg, name):
    return ROOT / cfg.paths.output_dir / name


@pytest.mark.parametrize(("epochs", "validations"), [(2, 1), (3, 2)])
def test_thresholds_are_tuned_once_after_training(tiny_cfg, epochs, validations):
    """Validation every 2 epochs: with 2 epochs the last one validates and tunes; with 3 it
    does not, so ``finish_fit`` runs one more validation to tune and rewrites last.ckpt."""
    cfg = tiny_cfg(
        f"trainer.max_epochs={epochs}",
        # neither pair is the config's fixed 0.5 / 0.6, so a stale checkpoint cannot pass
        "task.tune_postprocess.fg_grid=[0.45,0.3]",
        "task.tune_postprocess.marker_grid=[0.65,0.4]",
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
    assert ckpt["global_step"] == summary["steps"] and ckpt["postprocess"]["tuned"]
    assert ckpt["postprocess"]["fg_threshold"] == post["fg_threshold"] in (0.45, 0.3)
    assert ckpt["postprocess"]["marker_threshold"] == post["marker_threshold"] in (0.65, 0.4)
    metrics = (read(cfg, "csv/version_0/metrics.csv")).read_text().splitlines()
    header = metrics[0].split(",")
    tuned = [row for row in metrics[1:] if row.split(",")[header.index("val/fg_threshold")]]
    assert len(tuned) == 1  # one grid search per run
    assert sum(1 for row in metrics[1:] if row.split(",")[header.index("val/aji")]) == validations


def test_checkpoints_rewritten_after_tuning_stay_in_this_runs_folder(tmp_path):
    """On resume Lightning restores a checkpoint callback's best_model_path from the old run;
    the rewrite after tuning must go to this run's own folder, never there."""
    last = ModelCheckpoint(dirpath=tmp_path / "new", filename="last", monitor=None)
    last.best_model_path = str(tmp_path / "old" / "last.ckpt")
    best = ModelCheckpoint(dirpath=tmp_path / "new", filename="best", monitor="val/aji")
    per_epoch = ModelCheckpoint(dirpath=tmp_path / "new", filename="e{epoch}", monitor=None)
    keeps_last = ModelCheckpoint(dirpath=tmp_path / "new", monitor="val/aji", save_last=True)
    trainer = SimpleNamespace(checkpoint_callbacks=[last, best, per_epoch, keeps_last])
    paths = latest_checkpoint_paths(trainer)
    assert paths == [tmp_path / "new" / "last.ckpt", tmp_path / "new" / "last.ckpt"]


def test_fixed_thresholds_when_tuning_is_off(tiny_cfg):
    cfg = tiny_cfg("task.tune_postprocess=null", "task.postprocess.marker_threshold=0.7")
    post = train(cfg)["postprocess"]
    assert not post["tuned"] and post["marker_threshold"] == 0.7 and "search" not in post


def test_fixed_validation_scores_with_the_thresholds_as_they_are(tiny_cfg):
    # a one-epoch Trainer would tune in an ordinary validation (its last epoch); this one
    # must not: prune.py scores the int8 model with the fp32 model's deployed thresholds
    import lightning as L

    from medprune.runs.job import build_data, build_task

    cfg = tiny_cfg("task.postprocess.fg_threshold=0.45", "task.postprocess.marker_threshold=0.65")
    _, module = build_task(cfg)
    tuning = module.tuning
    trainer = L.Trainer(max_epochs=1, logger=False, enable_progress_bar=False)
    val = module.fixed_validation(trainer, build_data(cfg.data))
    assert "val/aji" in val and "val/fg_threshold" not in val
    assert (module.postprocess.fg_threshold, module.postprocess.marker_threshold) == (0.45, 0.65)
    assert module.tuning is tuning and module.search is None
    assert "val/fg_threshold" in module.tuned_validation(trainer, build_data(cfg.data))


def test_window_must_suit_the_unet():
    net = TwoBranchUNet(base_channels=2, depth=3)
    with pytest.raises(ValueError, match=r"task.window=30: .* divisible by 4"):
        NucleiSegmentationTask(net, window=30)
    with pytest.raises(
        ValueError,
        match=r"task.tune_postprocess.fg_grid\[0\]=1.5: expected a threshold in \[0, 1\]",
    ):
        NucleiSegmentationTask(net, tune_postprocess={"fg_grid": [1.5]})
    with pytest.raises(ValueError, match=r"task.window=0: expected null or a positive"):
        NucleiSegmentationTask(net, window=0)
    with pytest.raises(ValueError, match=r"task.overlap=1.0: expected a fraction in \[0, 1\)"):
        NucleiSegmentationTask(net, overlap=1.0)
    with pytest.raises(ValueError, match=r"task.overlap='a': expected a fraction in \[0, 1\)"):
        NucleiSegmentationTask(net, overlap="a")


def test_a_negative_distance_loss_weight_names_its_key():
    net = TwoBranchUNet(base_channels=2, depth=3)
    with pytest.raises(
        ValueError, match=r"task.dist_loss_weight=-1: expected a loss weight in \[0, inf\)"
    ):
        NucleiSegmentationTask(net, dist_loss_weight=-1)


def test_training_patches_must_suit_the_unet():
    task = NucleiSegmentationTask(TwoBranchUNet(base_channels=2, depth=3))
    batch = {"image": torch.zeros(1, 3, 30, 32)}
    with pytest.raises(ValueError, match=r"30x32 px.*data.patch_size .* multiple of 4"):
        task.training_step(batch, 0)


def test_checkpoint_thresholds_replace_the_configs_and_say_so(caplog):
    task = NucleiSegmentationTask(TwoBranchUNet(base_channels=2, depth=3))
    saved = {"fg_threshold": 0.3, "marker_threshold": 0.7, "min_size": 5, "tuned": True}
    with caplog.at_level("INFO"):
        task.on_load_checkpoint({"postprocess": saved})
    pp = task.postprocess
    assert (pp.fg_threshold, pp.marker_threshold, pp.min_size) == (0.3, 0.7, 5)
    assert "checkpoint's watershed thresholds fg 0.3, marker 0.7 (tuned: True)" in caplog.text
    assert "instead of the config's fg 0.5, marker 0.5" in caplog.text
    caplog.clear()
    with caplog.at_level("INFO"):
        task.on_load_checkpoint({"postprocess": saved})  # same pair: nothing to report
    assert "watershed thresholds" not in caplog.text

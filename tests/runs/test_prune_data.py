"""prune.py follows moved data: ``data.root``/``test_root``/loader settings apply on top of
the checkpoint's data config; anything else, or a key that data config lacks, is refused."""

from __future__ import annotations

import json

import pytest
from hydra.errors import ConfigCompositionException

from acdc_fixtures import write_patient
from conftest import CARDIAC_TINY, compose_prune, compose_train
from medprune.runs.sculpting import sculpt
from medprune.runs.training import train

FAST = ["pruning=global", "sparsity=0.5", "target.compression=1.5", "target.max_quality_drop=0.99",
        "finetune.epochs=1", "export.onnx=false", "bench.warmup=0", "bench.repeats=1",
        "logger=none", "trainer.enable_progress_bar=false"]  # fmt: skip


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """An ACDC checkpoint whose data folder was moved after training."""
    base = tmp_path_factory.mktemp("moved")
    for number, group in enumerate(["NOR", "NOR", "DCM", "DCM", "HCM"], start=1):
        write_patient(base / "acdc", number, group)
    overrides = ["task=cardiac", "data=acdc", f"data.root={base / 'acdc'}", "data.crop_size=16",
                 "data.batch_size=4", "model.base_channels=4", "model.depth=3", "logger=none",
                 "trainer.max_epochs=1", "trainer.enable_progress_bar=false"]  # fmt: skip
    train(compose_train(overrides, base / "run"))
    (base / "acdc").rename(base / "elsewhere")
    return base


def test_prune_follows_data_moved_after_training(moved, tmp_path):
    ckpt = moved / "run" / "checkpoints" / "last.ckpt"
    old_root = moved / "acdc"
    with pytest.raises(
        FileNotFoundError,
        match=f"data.root={old_root}: no such folder.*if the "
        "data has moved since training, pass its new",
    ):
        sculpt(compose_prune([f"ckpt={ckpt}", *FAST, f"paths.output_dir={tmp_path / 'a'}"]))
    new_root = moved / "elsewhere"
    cfg = compose_prune([f"ckpt={ckpt}", *FAST, f"data.root={new_root}", "data.batch_size=2",
                         f"paths.output_dir={tmp_path / 'b'}"])  # fmt: skip
    summary = sculpt(cfg)
    assert summary["data"]["root"] == str(new_root) and summary["data"]["batch_size"] == 2
    assert json.loads((tmp_path / "b" / "summary.json").read_text())["data"]["root"] == str(
        new_root
    )


def test_other_data_keys_are_refused_naming_them(moved, tmp_path):
    ckpt = moved / "run" / "checkpoints" / "last.ckpt"
    out = f"paths.output_dir={tmp_path / 'p'}"
    with pytest.raises(
        ValueError,
        match=r"data.val_fraction: prune.py takes the checkpoint's "
        r"data config and changes only data.root, ",
    ):
        sculpt(compose_prune([f"ckpt={ckpt}", *FAST, "+data.val_fraction=0.5", out]))
    with pytest.raises(ConfigCompositionException):  # not in prune.yaml's data: Hydra refuses
        compose_prune([f"ckpt={ckpt}", "data.val_fraction=0.5"])
    assert not (tmp_path / "p").exists()


def test_a_key_the_checkpoints_data_config_lacks_is_refused(tmp_path):
    train(compose_train(CARDIAC_TINY, tmp_path / "run"))  # built-in slices: no data.root
    ckpt = tmp_path / "run" / "checkpoints" / "last.ckpt"
    cfg = compose_prune([f"ckpt={ckpt}", *FAST, "data.root=/x", f"paths.output_dir={tmp_path}/p"])
    with pytest.raises(
        ValueError,
        match=r"data.root=/x: the checkpoint's data config "
        r"\(medprune.data.CardiacSyntheticDataModule\) has no 'root'",
    ):
        sculpt(cfg)

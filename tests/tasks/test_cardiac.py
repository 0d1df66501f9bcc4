"""The cardiac task end to end on tiny settings, its per-volume metric and its data module."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from acdc_fixtures import write_patient
from conftest import CARDIAC_TINY, ROOT, compose_train
from medprune.data import CardiacSyntheticDataModule
from medprune.data.acdc import load_patient
from medprune.inference.torch_network import labels_on_grid
from medprune.metrics.surface import volume_scores
from medprune.metrics.volume import VolumeMetrics
from medprune.runs.training import train
from medprune.tasks import CardiacSegmentationTask

KEYS = ["dice_rv", "dice_myo", "dice_lv", "dice_mean", "hd95_rv", "hd95_myo", "hd95_lv"]


@pytest.mark.parametrize(
    ("pruning", "sparsity"), [("none", 0.0), ("global", 0.9), ("layerwise", 0.8)]
)
def test_cardiac_task_end_to_end_with_every_pruning_config(tmp_path, pruning, sparsity):
    cfg = compose_train([*CARDIAC_TINY, f"pruning={pruning}", f"sparsity={sparsity}"], tmp_path)
    summary = train(cfg)
    written = json.loads((ROOT / cfg.paths.output_dir / "summary.json").read_text())
    assert written["task"] == "cardiac" and summary["steps"] == 4
    assert {f"test/{k}" for k in [*KEYS, "hd95_mean", "loss"]} <= set(written["metrics"])
    for k in KEYS[:4]:
        assert 0.0 <= written["metrics"][f"test/{k}"] <= 1.0
    p = written["pruning"]
    if pruning == "none":
        assert p["achieved_sparsity"] == 0.0 and "export" not in written
    else:  # the first conv and the head stay dense; the rest reaches the target
        assert p["achieved_sparsity"] == pytest.approx(sparsity, abs=2e-3)
        assert "encoder.0.0.weight" not in p["layers"] and "head.weight" not in p["layers"]
        assert written["export"]["sparse_bytes"] < written["export"]["dense_bytes"]


def test_volume_metrics_average_volumes_equally_and_score_single_slices_in_2d():
    target = np.zeros((2, 12, 12), dtype=np.uint8)
    target[:, 2:6, 2:6], target[:, 6:9, 6:9], target[:, 8:11, 1:4] = 3, 2, 1
    shifted = np.roll(target, 1, axis=2)
    metric = VolumeMetrics()
    metric.update(target, target, (10.0, 1.5, 1.5))
    metric.update(shifted, target, (10.0, 1.5, 1.5))
    first = volume_scores(target, target, (10.0, 1.5, 1.5))
    second = volume_scores(shifted, target, (10.0, 1.5, 1.5))
    values = metric.compute()
    for key in [*KEYS, "hd95_mean"]:
        expected = (first[key] + second[key]) / 2
        assert values[key].item() == pytest.approx(expected, rel=1e-6)
    assert values["dice_mean"].item() < 1.0 and first["dice_mean"] == 1.0
    single = VolumeMetrics()
    single.update(shifted[:1], target[:1], (10.0, 1.5, 1.5))
    scores_2d = volume_scores(shifted[0], target[0], (1.5, 1.5))
    assert single.compute()["hd95_lv"].item() == pytest.approx(scores_2d["hd95_lv"], rel=1e-6)
    with pytest.raises(RuntimeError, match="no volumes"):
        VolumeMetrics().compute()


def test_synthetic_data_module_items_and_determinism():
    def make():
        dm = CardiacSyntheticDataModule(
            seed=3, size=32, train_slices=4, val_slices=2, test_slices=2, batch_size=2
        )
        dm.setup("fit")
        return dm

    dm = make()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 1, 32, 32) and batch["image"].dtype == torch.float32
    assert batch["label"].shape == (2, 32, 32) and batch["label"].dtype == torch.int64
    volume = next(iter(dm.val_dataloader()))
    assert volume["image"].shape == (1, 1, 32, 32) and volume["label"].shape == (1, 32, 32)
    assert volume["spacing"].tolist() == [1.0, 1.5625, 1.5625]
    assert volume["size"].tolist() == [32, 32] and torch.equal(
        volume["scored_label"], volume["label"]
    )
    again = make()  # same seed, same volumes (training items are augmented at random)
    assert torch.equal(dm.splits["val"][1]["image"], again.splits["val"][1]["image"])
    with pytest.raises(ValueError, match="data.train_slices=0"):
        CardiacSyntheticDataModule(train_slices=0)
    with pytest.raises(ValueError, match="data.spacing_mm=0: expected a pixel size in mm > 0"):
        CardiacSyntheticDataModule(spacing_mm=0)


def test_cardiac_task_on_acdc_layout_data(tmp_path):
    root = tmp_path / "acdc"
    for number, group in enumerate(["NOR", "NOR", "DCM", "DCM"], start=1):
        write_patient(root, number, group=group)
    overrides = [o for o in CARDIAC_TINY if not o.startswith("data.")]
    data = ["data=acdc", f"data.root={root}", "data.target_spacing=null", "data.crop_size=32"]
    data += ["data.batch_size=4", "data.pad_multiple=4", "data.val_fraction=0.5"]
    cfg = compose_train([*overrides, *data, "pruning=global", "sparsity=0.5"], tmp_path / "run")
    summary = train(cfg)
    # 2 training patients x 2 phases x 3 slices = 12 slices: 3 batches of 4 per epoch
    assert summary["steps"] == 6
    # val = test = one patient per group, both phases: scored per 3D volume
    assert {f"test/{k}" for k in KEYS} <= set(summary["metrics"])
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.5, abs=2e-3)


def test_labels_on_grid_undoes_padding_and_resampling():
    # classes by column on a 4 x 6 input centre-padded to 8 x 8: rows 2-5, columns 1-6
    cols = torch.tensor([3, 3, 1, 1, 2, 2])
    inner = 10.0 * torch.nn.functional.one_hot(cols, 4).T[:, None, :].expand(4, 4, 6)
    padded = torch.zeros(1, 4, 8, 8)
    padded[0, :, 2:6, 1:7] = inner
    same = labels_on_grid(padded, (4, 6), (4, 6))
    assert torch.equal(same[0], cols.expand(4, 6))
    # back onto a grid twice as fine (2 mm -> 1 mm): each column becomes two
    fine = labels_on_grid(padded, (4, 6), (8, 12))
    assert torch.equal(fine[0], cols.repeat_interleave(2).expand(8, 12))


def test_acdc_evaluation_scores_the_labels_as_read(tmp_path):
    from medprune.data import AcdcDataModule

    for number, group in enumerate(["NOR", "NOR", "DCM", "DCM"], start=1):
        write_patient(tmp_path, number, group=group)
    dm = AcdcDataModule(root=str(tmp_path), target_spacing=(2.5, 2.5), val_fraction=0.5)
    dm.setup("fit")
    raw = {(v.patient_id, v.phase): v for p in sorted(tmp_path.iterdir()) for v in load_patient(p)}
    for (vol, _), item in zip(dm.splits["val"].pairs, dm.splits["val"]):
        original = raw[(vol.patient_id, vol.phase)]
        assert item["size"].tolist() == list(vol.image.shape[1:]) != list(original.label.shape[1:])
        assert np.array_equal(item["scored_label"].numpy(), original.label)
        assert item["spacing"].tolist() == list(original.spacing)


def test_acdc_test_fraction_tests_on_other_patients_than_val(tmp_path):
    from medprune.data import AcdcDataModule

    for number, group in enumerate(["NOR"] * 4 + ["DCM"] * 4, start=1):
        write_patient(tmp_path, number, group=group)
    split = {}
    for test_fraction in (None, 0.25):
        dm = AcdcDataModule(root=str(tmp_path), val_fraction=0.25, test_fraction=test_fraction)
        dm.setup("fit")
        dm.setup("test")
        split[test_fraction] = {
            name: sorted({vol.patient_id for vol, _ in dm.splits[name].pairs})
            for name in ("val", "test")
        }
        split[test_fraction]["train"] = sorted({v.patient_id for v in dm.splits["train"].volumes})
    # without: test = val; with: 2 of each group held out, 1 to val and 1 to test
    assert split[None]["test"] == split[None]["val"] and len(split[None]["val"]) == 2
    val, test, train = split[0.25]["val"], split[0.25]["test"], split[0.25]["train"]
    assert len(val) == len(test) == 2 and not set(val) & set(test)
    assert len(train) == 4 and not set(train) & (set(val) | set(test))


def test_acdc_data_module_errors_name_the_key(tmp_path):
    from medprune.data import AcdcDataModule

    with pytest.raises(FileNotFoundError, match="data.root=.*nowhere: no such folder"):
        AcdcDataModule(root=str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="data.crop_size=8"):
        AcdcDataModule(root=str(tmp_path), crop_size=8)
    with pytest.raises(ValueError, match="data.test_fraction=0.1 with data.test_root="):
        AcdcDataModule(root=str(tmp_path), test_root=str(tmp_path), test_fraction=0.1)
    with pytest.raises(ValueError, match=r"data.val_fraction \+ data.test_fraction=1.0"):
        AcdcDataModule(root=str(tmp_path), val_fraction=0.5, test_fraction=0.5)


def test_tasks_reject_a_non_positive_learning_rate():
    from medprune.models import TwoBranchUNet, UNet
    from medprune.tasks import CardiacSegmentationTask, NucleiSegmentationTask

    with pytest.raises(ValueError, match=r"task.lr=0: expected a learning rate > 0"):
        CardiacSegmentationTask(UNet(1, 4, base_channels=2, depth=2), lr=0)
    with pytest.raises(ValueError, match=r"task.lr=-1.0: expected a learning rate > 0"):
        NucleiSegmentationTask(TwoBranchUNet(base_channels=2, depth=2), lr=-1.0)


class FixedLogits(torch.nn.Module):
    """A 'network' whose prediction is a given class map, whatever the input."""

    def __init__(self, labels: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("logits", 10.0 * F.one_hot(labels, 4).permute(0, 3, 1, 2).float())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.logits.clone()


@pytest.mark.parametrize(
    ("largest_component", "dice_lv"), [(True, 1.0), (False, 2 * 18 / (18 + 22))]
)
def test_evaluation_keeps_the_largest_component_of_each_structure(largest_component, dice_lv):
    target = torch.zeros(2, 8, 8, dtype=torch.int64)
    target[:, 1:4, 1:4] = 3  # LV: 18 voxels over 2 slices
    pred = target.clone()
    pred[0, 6:8, 6:8] = 3  # a 4-voxel island far from the heart
    task = CardiacSegmentationTask(FixedLogits(pred), largest_component=largest_component)
    batch = {
        "image": torch.zeros(2, 1, 8, 8),
        "label": target,
        "size": torch.tensor([8, 8]),
        "scored_label": target,
        "spacing": torch.tensor([10.0, 1.0, 1.0], dtype=torch.float64),
    }
    with torch.no_grad():
        task._eval_step(batch, "test")
    scores = task.metrics["test"].compute()
    assert scores["dice_lv"].item() == pytest.approx(dice_lv)

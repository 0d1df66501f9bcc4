"""prune.py export.int8=true: calibrated on training items only, scored, deployed or not."""

from __future__ import annotations

import json

import lightning as L
import nibabel as nib
import numpy as np
import pytest
import torch

import medprune.runs.int8 as int8_step
from acdc_fixtures import frame_data, write_nifti
from conftest import CARDIAC_TINY, TINY, compose_predict, compose_prune, compose_train
from medprune.inference.models import load_model
from medprune.inference.predict import predict
from medprune.runs.int8 import calibration_batches
from medprune.runs.sculpting import sculpt
from medprune.runs.training import train

QUICK = ["bench.warmup=1", "bench.repeats=3", "logger=none", "trainer.enable_progress_bar=false"]
# no speed condition here: int8 of a U-Net of width 4 need not be faster than fp32
DENSE_INT8 = ["pruning=none", "export.int8=true", "export.calibration_items=6", *QUICK]
DENSE_INT8.append("export.int8_min_speedup=0")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A checkpoint of the cardiac task (U-Net widths 4-8-16, 4 classes, 32 px slices)."""
    out = tmp_path_factory.mktemp("trained") / "run"
    train(compose_train(CARDIAC_TINY, out))
    return out / "checkpoints" / "last.ckpt"


class Marked(L.LightningDataModule):
    """Train items are filled with their index + 1 (> 0); val and test must not be read."""

    def train_dataloader(self):
        return [{"image": torch.arange(i, i + 3, dtype=torch.float32).view(3, 1, 1, 1) + 1}
                for i in range(0, 9, 3)]  # fmt: skip

    def val_dataloader(self):
        raise AssertionError("calibration read the val split")

    def test_dataloader(self):
        raise AssertionError("calibration read the test split")


def test_calibration_draws_exactly_the_first_training_items():
    batches = calibration_batches(Marked(), 5)
    assert [b.ravel().tolist() for b in batches] == [[1, 2, 3], [4, 5]]
    # more items than one pass holds: the loader is drawn again
    assert sum(len(b) for b in calibration_batches(Marked(), 13)) == 13


@pytest.fixture(scope="module")
def dense_int8(trained, tmp_path_factory):
    """prune.py pruning=none export.int8=true on ``trained``: (output folder, summary)."""
    out = tmp_path_factory.mktemp("dense_int8") / "prune"
    cfg = compose_prune([f"ckpt={trained}", *DENSE_INT8, "target.max_quality_drop=0.99",
                         f"paths.output_dir={out}"])  # fmt: skip
    return out, sculpt(cfg)


def test_dense_int8_is_scored_recorded_and_deployed(dense_int8):
    out, summary = dense_int8
    q = summary["int8"]
    assert json.loads((out / "summary.json").read_text())["int8"] == q
    assert q["deployed"] is True and q["path"] == str(out / "model.int8.onnx")
    assert q["calibration"] == {"items": 6, "split": "train", "method": "minmax"}
    assert q["qdq_nodes"]["QuantizeLinear"] > 0 and q["file_bytes"] < q["fp32_file_bytes"]
    # the int8 model was scored through the task's val and test loops, per structure
    assert {"val/dice_mean", "val/dice_lv"} <= set(q["val_metrics"])
    assert {"test/dice_mean", "test/hd95_mean", "test/dice_rv"} <= set(q["metrics"])
    assert q["val_quality"] == q["val_metrics"]["val/dice_mean"]
    assert summary["bench"]["pruned"]["onnxruntime_int8"]["median_ms"] == q["onnx_latency_ms"]
    assert summary["pruned"]["step"] == 0 and summary["stopped"].startswith("pruning=none")
    report = (out / "report.md").read_text()
    assert "| pruned int8 |" in report and "int8 (minmax calibration on 6 training items)" in report
    assert "| test/dice_mean |" in report
    # the folder deploys the int8 model: prediction loads model.int8.onnx
    assert json.loads((out / "inference.json").read_text())["onnx"] == "model.int8.onnx"
    _, _, meta = load_model(str(out), "auto", None)
    assert meta == {"model": str(out / "model.int8.onnx"), "kind": "onnx"}


def test_int8_slower_than_fp32_hands_back_fp32(trained, tmp_path):
    out = tmp_path / "prune"
    cfg = compose_prune([f"ckpt={trained}", *DENSE_INT8, "target.max_quality_drop=0.99",
                         "export.int8_min_speedup=1e9", f"paths.output_dir={out}"])  # fmt: skip
    q = sculpt(cfg)["int8"]
    assert q["deployed"] is False and "export.int8_min_speedup=1e+09" in q["reason"]
    assert "onnx" not in json.loads((out / "inference.json").read_text())


def test_int8_past_the_quality_tolerance_hands_back_fp32(trained, tmp_path, monkeypatch):
    real = int8_step.score_onnx

    def halved(sculptor, path):  # the forced case: int8 loses half the main metric
        val, test = real(sculptor, path)
        return {**val, sculptor.metric: val[sculptor.metric] / 2 - 0.01}, test

    monkeypatch.setattr(int8_step, "score_onnx", halved)
    out = tmp_path / "prune"
    summary = sculpt(compose_prune([f"ckpt={trained}", *DENSE_INT8, f"paths.output_dir={out}"]))
    q = summary["int8"]
    assert q["deployed"] is False and q["quality_drop"] > 0.04
    assert "target.max_quality_drop=0.04" in q["reason"]
    assert q["speedup_vs_fp32"] == pytest.approx(
        summary["pruned"]["onnx_latency_ms"] / q["onnx_latency_ms"]
    )
    assert "onnx" not in json.loads((out / "inference.json").read_text())
    _, _, meta = load_model(str(out), "auto", None)
    assert meta["model"] == str(out / "model.onnx")
    assert "NOT deployed, the folder deploys fp32 model.onnx" in (out / "report.md").read_text()
    assert (out / "model.int8.onnx").is_file()  # kept beside, for comparison


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["export.onnx=false"], "export.int8=true with export.onnx=false"),
        (["export.calibration_items=0"], "export.calibration_items=0: expected an integer >= 1"),
        (["export.calibration_method=kl"], "export.calibration_method='kl': expected one of"),
        (["export.int8_min_speedup=-1"], "export.int8_min_speedup=-1"),
    ],
)
def test_bad_int8_settings_fail_before_anything_is_written(trained, tmp_path, overrides, message):
    out = tmp_path / "prune"
    cfg = compose_prune([f"ckpt={trained}", *DENSE_INT8, *overrides, f"paths.output_dir={out}"])
    with pytest.raises(ValueError, match=message):
        sculpt(cfg)
    assert not out.exists()


def test_predict_runs_the_int8_folder(dense_int8, tmp_path):
    out = dense_int8[0]
    write_nifti(tmp_path / "scan.nii.gz", frame_data(3)[0], np.int16)
    args = [f"model={out}", f"input={tmp_path / 'scan.nii.gz'}", f"output={tmp_path / 'pred'}"]
    assert predict(compose_predict(args)) == 0
    labels = nib.load(tmp_path / "pred" / "scan_seg.nii.gz").get_fdata()
    assert labels.shape == frame_data(3)[0].shape and set(np.unique(labels)) <= {0, 1, 2, 3}


def test_nuclei_int8_runs_both_branches_and_keeps_the_fp32_thresholds(tmp_path):
    run = tmp_path / "run"
    train(compose_train(TINY, run))
    out = tmp_path / "prune"
    cfg = compose_prune([f"ckpt={run / 'checkpoints' / 'last.ckpt'}", *DENSE_INT8,
                         "target.max_quality_drop=0.99", f"paths.output_dir={out}"])  # fmt: skip
    summary = sculpt(cfg)
    q = summary["int8"]
    assert {"test/aji", "test/pq", "test/dice"} <= set(q["metrics"])
    assert q["val_quality"] == q["val_metrics"]["val/aji"]
    # the folder deploys the fp32 model's thresholds with the int8 network
    deployed = json.loads((out / "inference.json").read_text())["postprocess"]
    for key in ("fg_threshold", "marker_threshold"):
        assert deployed[key] == summary["pruned"]["postprocess"][key]

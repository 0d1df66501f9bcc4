"""``python -m medprune.predict`` on a tiny cardiac checkpoint trained on ACDC-layout volumes:
the label volume keeps the input's grid, evaluation equals train.py's test, the ONNX folder
agrees with torch, and a broken volume is named."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from acdc_fixtures import SHAPE_XYZ, SPACING_XYZ, write_patient
from conftest import TINY_RUN, compose_predict, compose_train, predict_without_torch
from medprune.inference.predict import predict
from medprune.runs.training import train

# (number, group, ED, ES): other frames per patient, so volumes differ
PATIENTS = [(1, "NOR", 1, 7), (2, "NOR", 2, 8), (3, "DCM", 3, 9), (4, "DCM", 1, 5)]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    base = tmp_path_factory.mktemp("cardiac")
    for number, group, ed, es in PATIENTS:
        write_patient(base / "train", number, group, ed, es)
    for number, group, ed, es in ((5, "NOR", 2, 6), (6, "DCM", 3, 8)):
        write_patient(base / "test", number, group, ed, es, dtype=np.float32)
    overrides = [
        "task=cardiac",
        "data=acdc",
        f"data.root={base / 'train'}",
        f"data.test_root={base / 'test'}",
        "data.val_fraction=0.5",
        "data.crop_size=16",
        "data.batch_size=4",
        "task.lr=0.02",
        *TINY_RUN,
        "trainer.max_epochs=6",
    ]
    summary = train(compose_train(overrides, base / "run"))
    return {"run": base / "run", "summary": summary, "test": base / "test", "base": base}


def test_label_volume_keeps_shape_spacing_and_affine(run, tmp_path):
    out = tmp_path / "pred"
    frame = run["test"] / "patient005" / "patient005_frame02.nii.gz"
    assert predict(compose_predict([f"model={run['run']}", f"input={frame}", f"output={out}"])) == 0
    seg = nib.load(out / "patient005_frame02_seg.nii.gz")
    source = nib.load(frame)
    assert seg.shape == SHAPE_XYZ
    np.testing.assert_allclose(seg.affine, source.affine)
    assert seg.header.get_zooms() == pytest.approx(SPACING_XYZ)
    assert seg.get_data_dtype() == np.uint8
    assert set(np.unique(np.asarray(seg.dataobj))) <= {0, 1, 2, 3}
    assert (out / "patient005_frame02_overlay.png").is_file()


def test_evaluate_equals_train_test_metrics(run, tmp_path):
    out = tmp_path / "eval"
    args = [f"model={run['run']}", f"input={run['test']}", f"labels={run['test']}", f"output={out}"]
    assert predict(compose_predict(args)) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["scored"] == 4  # ED and ES of two patients, the decoy frame skipped
    tested = run["summary"]["metrics"]
    assert tested["test/dice_mean"] > 0.1  # a model that finds something: the match means something
    for key in (
        "dice_rv",
        "dice_myo",
        "dice_lv",
        "dice_mean",
        "hd95_rv",
        "hd95_myo",
        "hd95_lv",
        "hd95_mean",
    ):
        assert summary["mean"][key] == pytest.approx(tested[f"test/{key}"], rel=1e-5), key


def test_onnx_folder_agrees_with_torch_on_a_plain_folder(run, tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in ("patient005_frame02.nii.gz", "patient005_frame02_gt.nii.gz"):
        shutil.copy(run["test"] / "patient005" / name, flat / name)  # the _gt is no input
    (flat / "broken.nii.gz").write_bytes(
        (run["test"] / "patient006" / "patient006_frame03.nii.gz").read_bytes()[:300]
    )
    deploy = tmp_path / "deploy"
    assert predict(compose_predict([f"model={run['run']}", f"export={deploy}"])) == 0
    settings = json.loads((deploy / "inference.json").read_text())
    assert settings["preprocess"]["target_spacing_mm"] == [1.5625, 1.5625]
    outs = {"torch": tmp_path / "torch", "onnxruntime": tmp_path / "onnx"}
    args = [f"input={flat}", f"output={outs['torch']}", "runtime=torch"]
    assert predict(compose_predict([f"model={run['run']}", *args])) == 1  # the broken volume
    proc = predict_without_torch(
        [f"model={deploy}", f"input={flat}", f"output={outs['onnxruntime']}"]
    )
    assert proc.returncode == 1, proc.stderr[-3000:]
    for out in outs.values():
        rows = (out / "predictions.csv").read_text()
        assert "broken.nii.gz,failed" in rows and "cannot" in rows
    a, b = (
        np.asarray(nib.load(outs[k] / "patient005_frame02_seg.nii.gz").dataobj)
        for k in ("torch", "onnxruntime")
    )
    assert (a == b).mean() >= 0.99
    assert sorted(p.name for p in outs["torch"].glob("*.nii.gz")) == [
        "patient005_frame02_seg.nii.gz"
    ]


def test_missing_label_is_a_named_failure(run, tmp_path):
    out = tmp_path / "eval"
    frame = run["test"] / "patient006" / "patient006_frame03.nii.gz"
    args = [f"model={run['run']}", f"input={frame}", f"labels={tmp_path}", f"output={out}"]
    assert predict(compose_predict(args)) == 1
    rows = (out / "predictions.csv").read_text()
    assert "failed" in rows and "patient006_frame03_gt.nii.gz" in rows
    assert (out / "patient006_frame03_seg.nii.gz").is_file()  # predicted, only not scored
    assert Path(out / "metrics.json").is_file()

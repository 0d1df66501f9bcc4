"""inference.json's schema and checks; which files a prediction reads and which are labels."""

from __future__ import annotations

import json

import numpy as np
import pytest

from acdc_fixtures import write_patient
from medprune.inference.inputs import find_inputs, find_label
from medprune.inference.settings import read_settings, settings_from_run, write_settings
from monuseg_fixtures import write_tile

NUCLEI_RUN = {
    "task_name": "nuclei",
    "model": {"in_channels": 3, "base_channels": 4, "depth": 5},
    "task": {"window": 256, "overlap": 0.25, "postprocess": {"fg_threshold": 0.5}},
    "data": {"tile_size": 128},
}
CARDIAC_RUN = {
    "task_name": "cardiac",
    "model": {"in_channels": 1, "depth": 3},
    "task": {"largest_component": True},
    "data": {"spacing_mm": 1.25, "pad_multiple": 16},
}


def test_settings_from_a_run_and_the_checkpoint_thresholds():
    s = settings_from_run(NUCLEI_RUN, {"fg_threshold": 0.3, "marker_threshold": 0.7,
                                       "min_size": 5, "tuned": True})  # fmt: skip
    assert s["preprocess"]["size_multiple"] == 16 and s["preprocess"]["window"] == 256
    assert s["postprocess"] == {"fg_threshold": 0.3, "marker_threshold": 0.7, "min_size": 5,
                                "tuned": True}  # fmt: skip
    c = settings_from_run(CARDIAC_RUN, None)
    assert c["preprocess"]["target_spacing_mm"] == [1.25, 1.25]  # the built-in pixel size
    assert c["preprocess"]["size_multiple"] == 16  # the data's padding, as val/test pad
    assert c["classes"]["3"] == "LV" and c["postprocess"]["largest_component"] is True
    with pytest.raises(ValueError, match="task_name='other'"):
        settings_from_run({**NUCLEI_RUN, "task_name": "other"}, None)


def test_settings_round_trip_and_named_errors(tmp_path):
    settings = settings_from_run(NUCLEI_RUN, None)
    path = write_settings(settings, tmp_path, checkpoint="x.ckpt")
    assert read_settings(tmp_path)["source"] == {"checkpoint": "x.ckpt"}
    with pytest.raises(FileExistsError):
        write_settings(settings, tmp_path)
    with pytest.raises(FileNotFoundError, match="inference.json: no such file"):
        read_settings(tmp_path / "elsewhere")
    for change, key in (
        ({"version": 2}, "version=2"),
        ({"task": "lungs"}, "task='lungs'"),
        ({"postprocess": {**settings["postprocess"], "fg_threshold": 1.5}},
         "postprocess.fg_threshold=1.5"),
        ({"preprocess": {**settings["preprocess"], "window": 100}}, "preprocess.window=100"),
        ({"onnx": "../model.onnx"}, "onnx='../model.onnx', expected a file name in the folder"),
    ):  # fmt: skip
        path.write_text(json.dumps({**settings, **change}))
        with pytest.raises(ValueError, match=key.replace("[", r"\[")) as err:
            read_settings(tmp_path)
        assert str(path) in str(err.value)
    path.write_text("{not json")
    with pytest.raises(ValueError, match="not a readable JSON"):
        read_settings(tmp_path)


def test_cardiac_inputs_acdc_layout_and_plain_folder(tmp_path):
    write_patient(tmp_path / "acdc", 1, ed=1, es=7)  # also writes a decoy frame 04
    frames, problems = find_inputs(tmp_path / "acdc", "cardiac")
    assert problems == []
    assert [p.name for p in frames] == ["patient001_frame01.nii.gz", "patient001_frame07.nii.gz"]
    assert (
        find_label(frames[0], tmp_path / "acdc", "cardiac").name == "patient001_frame01_gt.nii.gz"
    )
    plain = tmp_path / "acdc" / "patient001"
    (plain / "Info.cfg").unlink()  # now a plain folder: every volume except the _gt ones
    assert [p.name for p in find_inputs(plain, "cardiac")[0]] == [
        "patient001_frame01.nii.gz", "patient001_frame04.nii.gz", "patient001_frame07.nii.gz"
    ]  # fmt: skip
    with pytest.raises(ValueError, match="expected a .nii.gz/.nii file"):
        find_inputs(write_tile(tmp_path / "m", "x"), "cardiac")  # a .tif for a cardiac model


def test_nuclei_inputs_and_labels(tmp_path):
    tif = write_tile(tmp_path / "monuseg", "TCGA-1", compression="packbits")
    assert find_inputs(tmp_path / "monuseg", "nuclei") == ([tif], [])
    # MoNuSeg keeps the XML beside the tile: the tile is never its own label
    assert find_label(tif, tmp_path / "monuseg", "nuclei").name == "TCGA-1.xml"
    folder = tmp_path / "folder"
    (folder / "images").mkdir(parents=True)
    (folder / "labels").mkdir()
    (folder / "images" / "a.png").write_bytes(b"")
    np.save(folder / "labels" / "a.npy", np.zeros((2, 2), np.int32))
    assert [p.name for p in find_inputs(folder, "nuclei")[0]] == ["a.png"]
    assert find_label(folder / "images" / "a.png", folder, "nuclei").name == "a.npy"
    with pytest.raises(FileNotFoundError, match="no label found in labels="):
        find_label(folder / "images" / "a.png", tmp_path / "monuseg", "nuclei")
    (folder / "images" / "a.tif").write_bytes(b"")
    with pytest.raises(ValueError, match="share the name 'a'"):
        find_inputs(folder / "images", "nuclei")
    with pytest.raises(FileNotFoundError, match="no .png/.tif"):
        find_inputs(folder / "labels", "nuclei")
    with pytest.raises(FileNotFoundError, match="no such file or folder"):
        find_inputs(folder / "missing", "nuclei")


def test_bad_keys_and_models_fail_before_anything_is_written(tmp_path):
    from conftest import compose_predict
    from medprune.inference.predict import predict

    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"not a checkpoint")
    out = tmp_path / "out"
    base = [f"input={tmp_path}", f"output={out}"]
    cases = [
        (
            [f"model={junk}", "runtime=tensorrt"],
            ValueError,
            "runtime='tensorrt': expected one of auto, torch, onnxruntime",
        ),
        ([f"model={junk}", "threads=0"], ValueError, "threads=0: expected null or an integer >= 1"),
        (
            [f"model={junk}", "batch_size=1.5"],
            ValueError,
            "batch_size=1.5: expected null or an integer >= 1",
        ),
        (
            [f"model={junk}", "pixel_size=-1"],
            ValueError,
            "pixel_size=-1: expected null or a pixel size in µm > 0",
        ),
        ([f"model={junk}", f"labels={tmp_path / 'none'}"], FileNotFoundError, "labels="),
        ([f"model={junk}"], ValueError, f"model={junk}: not a readable PyTorch checkpoint"),
        ([f"model={tmp_path}"], FileNotFoundError, "expected a train.py checkpoint"),
        ([f"model={junk}", "runtime=onnxruntime"], ValueError, "export it first"),
    ]
    for overrides, error, message in cases:
        with pytest.raises(error, match=message.replace("(", r"\(")):
            predict(compose_predict([*base, *overrides]))
    assert not out.exists()
    with pytest.raises(ValueError, match="input=<file or folder> is required"):
        predict(compose_predict([f"model={junk}", f"output={out}"]))

"""``python -m medprune.predict`` on a tiny pruned nuclei checkpoint: outputs, the per-nucleus
table, evaluation equal to train.py's test, the torch-free ONNX folder, and bad input."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from PIL import Image

from conftest import ROOT, TINY_RUN, compose_predict, compose_train, predict_without_torch
from medprune.data.synthetic_nuclei import generate_nuclei_split
from medprune.inference.predict import predict
from medprune.metrics.instance import aggregated_jaccard_index
from medprune.runs.training import train
from monuseg_fixtures import write_tiff

TEST_SHAPES = [(60, 70), (64, 64), (48, 90)]  # not all multiples of 4 or within one window


def write_folder(root: Path, seed: int, shapes: list[tuple[int, int]]) -> Path:
    """An image/label-folder dataset (data=nuclei_folder layout) of built-in tiles."""
    images, instances = generate_nuclei_split(seed, len(shapes), 96)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i, (h, w) in enumerate(shapes):
        Image.fromarray(np.ascontiguousarray(images[i][:h, :w])).save(root / "images" / f"t{i}.png")
        np.save(root / "labels" / f"t{i}.npy", instances[i][:h, :w].astype(np.int32))
    return root


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A global 50 % pruned two-branch checkpoint (widths 4-8-16), tested by train.py on
    folder tiles through 32 px sliding windows."""
    base = tmp_path_factory.mktemp("nuclei")
    train_root = write_folder(base / "train", 11, [(64, 64)] * 4)
    test_root = write_folder(base / "test", 12, TEST_SHAPES)
    out = base / "run"
    overrides = [
        "data=nuclei_folder",
        f"data.root={train_root}",
        f"data.test_root={test_root}",
        "data.val_tiles=1",
        "data.patch_size=32",
        "data.patches_per_epoch=32",
        "data.batch_size=4",
        "task.window=32",
        "task.lr=0.03",
        "pruning=global",
        "sparsity=0.5",
        *TINY_RUN,
        "trainer.max_epochs=8",  # 64 steps: enough to find nuclei, so the scores mean something
    ]
    summary = train(compose_train(overrides, out))
    inputs = base / "inputs"
    inputs.mkdir()
    tile = generate_nuclei_split(5, 1, 450)[0][0]
    Image.fromarray(np.ascontiguousarray(tile[:300])).save(inputs / "wide.png")  # 300 x 450
    write_tiff(inputs / "packed.tif", np.ascontiguousarray(tile[:80, :100]), "packbits")
    return {"ckpt": out / "checkpoints" / "last.ckpt", "summary": summary, "test": test_root,
            "inputs": inputs, "base": base}  # fmt: skip


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_outputs_shapes_and_table(run, tmp_path):
    out = tmp_path / "pred"
    status = predict(compose_predict([f"model={run['ckpt']}", f"input={run['inputs']}",
                                      f"output={out}", "pixel_size=0.5"]))  # fmt: skip
    assert status == 0
    for stem, shape in (("wide", (300, 450)), ("packed", (80, 100))):
        labels = tifffile.imread(out / f"{stem}_instances.tif")
        assert labels.shape == shape and labels.dtype == np.uint16
        overlay = np.asarray(Image.open(out / f"{stem}_overlay.png"))
        assert overlay.shape == (*shape, 3)
        table = read_csv(out / f"{stem}_nuclei.csv")
        ids, counts = np.unique(labels[labels > 0], return_counts=True)
        assert [int(r["id"]) for r in table] == ids.tolist()
        assert [int(r["area_px"]) for r in table] == counts.tolist()
        for row in table:
            assert float(row["area_um2"]) == pytest.approx(0.25 * int(row["area_px"]), abs=1e-3)
            ys, xs = np.nonzero(labels == int(row["id"]))
            assert float(row["centroid_x_px"]) == pytest.approx(xs.mean(), abs=0.01)
            assert float(row["centroid_y_px"]) == pytest.approx(ys.mean(), abs=0.01)
            assert 0.0 <= float(row["mean_fg_prob"]) <= 1.0
    rows = {Path(r["input"]).stem: r for r in read_csv(out / "predictions.csv")}
    assert rows["wide"]["status"] == "ok" and rows["wide"]["shape"] == "450x300"
    assert int(rows["packed"]["nuclei"]) == len(read_csv(out / "packed_nuclei.csv"))


def test_evaluate_equals_train_test_metrics(run, tmp_path):
    out = tmp_path / "eval"
    labels = run["test"]  # labels/ under it, beside images/
    cfg = compose_predict([f"model={run['ckpt']}", f"input={run['test']}", f"labels={labels}",
                           f"output={out}"])  # fmt: skip
    assert predict(cfg) == 0
    summary = json.loads((out / "metrics.json").read_text())
    assert summary["scored"] == summary["inputs"] == len(TEST_SHAPES)
    tested = run["summary"]["metrics"]
    for key in ("aji", "pq", "dq", "sq", "dice"):
        assert summary["mean"][key] == pytest.approx(tested[f"test/{key}"], abs=1e-6), key
    per_tile = read_csv(out / "metrics.csv")
    assert [Path(r["label"]).name for r in per_tile] == ["t0.npy", "t1.npy", "t2.npy"]


def test_onnx_folder_equals_torch_without_torch(run, tmp_path):
    deploy = tmp_path / "deploy"
    assert predict(compose_predict([f"model={run['ckpt']}", f"export={deploy}"])) == 0
    assert sorted(p.name for p in deploy.iterdir()) == ["inference.json", "model.onnx"]
    settings = json.loads((deploy / "inference.json").read_text())
    saved = run["summary"]["postprocess"]
    assert settings["postprocess"]["fg_threshold"] == saved["fg_threshold"]
    assert settings["preprocess"]["window"] == 32 and settings["preprocess"]["size_multiple"] == 4
    torch_out, onnx_out = tmp_path / "torch", tmp_path / "onnx"
    predict(
        compose_predict([f"model={run['ckpt']}", f"input={run['inputs']}", f"output={torch_out}"])
    )
    proc = predict_without_torch(
        [f"model={deploy}", f"input={run['inputs']}", f"output={onnx_out}"]
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "onnxruntime" in proc.stdout
    for stem in ("wide", "packed"):
        a = tifffile.imread(torch_out / f"{stem}_instances.tif")
        b = tifffile.imread(onnx_out / f"{stem}_instances.tif")
        assert (a == b).all() or aggregated_jaccard_index(a, b) >= 0.99


def test_corrupt_input_is_named_others_still_run(run, tmp_path):
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for name in ("wide.png", "packed.tif"):
        (inputs / name).write_bytes((run["inputs"] / name).read_bytes())
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    out = tmp_path / "out"
    args = [f"model={run['ckpt']}", f"input={inputs}", f"output={out}", "progress=false"]
    proc = subprocess.run([sys.executable, "-m", "medprune.predict", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 1
    assert f"{inputs / 'broken.png'}" in proc.stdout + proc.stderr
    rows = {Path(r["input"]).name: r for r in read_csv(out / "predictions.csv")}
    assert rows["broken.png"]["status"] == "failed"
    assert "broken.png" in rows["broken.png"]["error"] and rows["broken.png"]["outputs"] == ""
    for stem in ("wide", "packed"):
        assert rows[f"{stem}.{'png' if stem == 'wide' else 'tif'}"]["status"] == "ok"
        assert (out / f"{stem}_instances.tif").is_file()


def test_existing_output_folder_is_refused(run, tmp_path):
    out = tmp_path / "taken"
    out.mkdir()
    (out / "mine.txt").write_text("keep")
    cfg = compose_predict([f"model={run['ckpt']}", f"input={run['inputs']}", f"output={out}"])
    with pytest.raises(FileExistsError, match="output="):
        predict(cfg)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    with pytest.raises(FileExistsError, match="export="):
        predict(compose_predict([f"model={run['ckpt']}", f"export={out}"]))

"""Whole tiles of any size evaluate: 66x66 and 1000x1000 px tiles with a depth-5 U-Net (sides
must be multiples of 16) are padded to its size rule and cropped back, in train.py's val/test
and in ``python -m medprune.predict``, whether a tile is one window or many."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import TINY_RUN, compose_predict, compose_train
from medprune.inference.predict import predict
from medprune.runs.training import train
from monuseg_fixtures import tile_image, write_tiff, write_xml


def write_tiles(root: Path, sizes: list[int], seed: int) -> Path:
    """MoNuSeg-layout tiles (TIFF + Aperio XML) of the given sizes, the fixture's polygons."""
    root.mkdir(parents=True)
    for i, size in enumerate(sizes):
        stem = f"TCGA-{seed:02d}-{i:04d}-01Z-00-DX1"
        write_xml(root / f"{stem}.xml")
        write_tiff(root / f"{stem}.tif", tile_image((size, size), seed=seed + i))
    return root


@pytest.fixture(scope="module")
def tiles(tmp_path_factory):
    base = tmp_path_factory.mktemp("odd")
    return write_tiles(base / "train", [66] * 4, 1), write_tiles(base / "test", [66, 1000], 7)


@pytest.mark.parametrize("window", ["null", "64"])
def test_depth_5_trains_tests_and_predicts_66_and_1000_px_tiles(tiles, tmp_path, window):
    train_root, test_root = tiles
    overrides = ["data=monuseg", f"data.root={train_root}", f"data.test_root={test_root}",
                 "data.val_tiles=2", "data.patch_size=32", "data.patches_per_epoch=8",
                 "data.batch_size=4", "data.augment=false", *TINY_RUN, "model.depth=5",
                 "model.base_channels=2", "trainer.max_epochs=1", f"task.window={window}",
                 "task.tune_postprocess=null"]  # fmt: skip
    summary = train(compose_train(overrides, tmp_path / "run"))
    assert summary["data"]["tiles"]["test"] == sorted(p.stem for p in test_root.glob("*.tif"))
    for key in ("test/aji", "test/pq", "test/dice", "test/mse"):
        assert summary["metrics"][key] == summary["metrics"][key]  # a number, not NaN
    out = tmp_path / "eval"
    cfg = compose_predict([f"model={tmp_path / 'run'}", f"input={test_root}",
                           f"labels={test_root}", f"output={out}"])  # fmt: skip
    assert predict(cfg) == 0
    scores = json.loads((out / "metrics.json").read_text())
    assert scores["scored"] == 2
    for key in ("aji", "pq", "dice"):
        assert scores["mean"][key] == pytest.approx(summary["metrics"][f"test/{key}"], abs=1e-6)

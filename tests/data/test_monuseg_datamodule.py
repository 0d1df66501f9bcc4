"""NucleiFolderDataModule on MoNuSeg-layout and image/label-folder fixtures, and the nuclei
task on whole tiles (sliding window, tuned thresholds) end to end."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import ROOT, TINY_RUN, compose_train
from medprune.data import NucleiFolderDataModule, seeding
from medprune.data.monuseg_datamodule import NucleiPatches
from medprune.data.nuclei_datamodule import NucleiTiles
from medprune.data.transforms import he_train_transform
from medprune.runs.training import train
from monuseg_fixtures import SHAPE, expected_instances, tile_image, write_tile

# every fixture tile carries one 2-vertex region on purpose (tests/data/test_monuseg.py)
pytestmark = pytest.mark.filterwarnings("ignore:.*skipped 1 of 7 polygons")


def monuseg_root(tmp_path, tiles=4):
    root = tmp_path / "monuseg"
    root.mkdir()
    for i in range(tiles):
        write_tile(root, f"TCGA-{i:02d}", compression="packbits" if i % 2 else "tiff_lzw", seed=i)
    return root


def test_tile_split_patches_and_whole_tiles(tmp_path):
    dm = NucleiFolderDataModule(
        str(monuseg_root(tmp_path)), val_tiles=1, patch_size=32, patches_per_epoch=6, batch_size=3
    )
    with pytest.warns(UserWarning, match="data.test_root is not set: test scores the validation"):
        dm.setup("fit")
    names = dm.tile_names
    assert len(names["train"]) == 3 and len(names["val"]) == 1
    assert not set(names["train"]) & set(names["val"]) and names["test"] == names["val"]
    batches = list(dm.train_dataloader())
    assert len(batches) == 2
    batch = batches[0]
    assert batch["image"].shape == (3, 3, 32, 32) and batch["instances"].shape == (3, 32, 32)
    # targets are computed from the augmented instance map
    assert torch.equal(batch["foreground"][:, 0] > 0, batch["instances"] > 0)
    tile = next(iter(dm.val_dataloader()))
    assert tile["image"].shape == (1, 3, *SHAPE)
    assert np.array_equal(tile["instances"][0].numpy(), expected_instances())


def test_foreground_bias_one_always_shows_a_nucleus_and_small_tiles_are_padded():
    instances = np.zeros((20, 24), np.int32)
    instances[18:20, 0:2] = 7  # one nucleus in a corner
    image = np.full((20, 24, 3), 200, np.uint8)
    patches = NucleiPatches([image], [instances], window=16, length=30, foreground_bias=1.0)
    assert all(patches[i]["instances"].max() == 7 for i in range(30))
    padded = NucleiPatches([image], [instances], window=32, length=1, foreground_bias=0.0)
    item = padded[0]
    assert item["image"].shape == (3, 32, 32)
    # the pad is the tile's median colour (200) and instance 0
    assert torch.allclose(item["image"][:, 0, 0], torch.full((3,), 200 / 255))
    assert int((item["instances"] == 7).sum()) == 4


def test_patch_draws_repeat_per_seed_and_differ_across_ranks(monkeypatch):
    image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    instances = np.zeros((64, 64), np.int32)

    def draws(rank: int, seed: int) -> torch.Tensor:
        monkeypatch.setattr(seeding, "process_rank", lambda: rank)
        torch.manual_seed(seed)  # what seed_everything sets on every rank alike
        patches = NucleiPatches([image], [instances], window=16, length=6, foreground_bias=0.0)
        return torch.stack([patches[i]["image"] for i in range(6)])

    assert torch.equal(draws(0, 1), draws(0, 1))
    assert not torch.equal(draws(0, 1), draws(1, 1))  # DDP ranks see different patches
    assert not torch.equal(draws(0, 1), draws(0, 2))


def test_image_label_folder_layout(tmp_path):
    root = tmp_path / "folder"
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    for i in range(3):
        Image.fromarray(tile_image(seed=i)).save(root / "images" / f"t{i}.png")
        np.save(root / "labels" / f"t{i}.npy", expected_instances())
    dm = NucleiFolderDataModule(str(root), layout="folder", val_tiles=1, patch_size=32)
    dm.setup("fit")
    assert len(dm.tile_names["train"]) == 2
    assert next(iter(dm.val_dataloader()))["instances"].max() == expected_instances().max()


def test_bad_input_names_the_key_or_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.root=.*nowhere: no such folder"):
        NucleiFolderDataModule(str(tmp_path / "nowhere"))
    with pytest.raises(ValueError, match="data.layout='tiles': expected one of monuseg, folder"):
        NucleiFolderDataModule(str(tmp_path), layout="tiles")
    with pytest.raises(
        ValueError, match=r"data.foreground_bias=1.5: expected a fraction in \[0, 1\]"
    ):
        NucleiFolderDataModule(str(tmp_path), foreground_bias=1.5)
    with pytest.raises(ValueError, match="data.patch_size=8"):
        NucleiFolderDataModule(str(tmp_path), patch_size=8)
    root = monuseg_root(tmp_path, tiles=2)
    with pytest.raises(ValueError, match=r"data.val_tiles=2: .* has only 2 tiles"):
        NucleiFolderDataModule(str(root), val_tiles=2).setup("fit")
    (root / "TCGA-01.xml").unlink()
    with pytest.raises(FileNotFoundError, match="TCGA-01.tif"):
        NucleiFolderDataModule(str(root), val_tiles=1).setup("fit")


def test_nuclei_task_on_monuseg_tiles_end_to_end(tmp_path):
    root = monuseg_root(tmp_path)
    data = ["data=monuseg", f"data.root={root}", "data.val_tiles=1", "data.patch_size=32"]
    data += ["data.patches_per_epoch=4", "data.batch_size=2", "task.window=32"]
    grids = ["task.tune_postprocess.fg_grid=[0.5,0.3]", "task.tune_postprocess.marker_grid=[0.6]"]
    cfg = compose_train(
        [*TINY_RUN, *data, *grids, "pruning=global", "sparsity=0.5"], tmp_path / "r"
    )
    summary = train(cfg)
    written = json.loads((ROOT / cfg.paths.output_dir / "summary.json").read_text())
    assert summary["steps"] == 4 and {"test/aji", "test/pq"} <= set(written["metrics"])
    post = written["postprocess"]
    assert post["tuned"] and post["fg_threshold"] in (0.5, 0.3) and post["marker_threshold"] == 0.6
    assert np.array(post["search"]["scores"]).shape == (2, 1)
    ckpt = torch.load(ROOT / cfg.paths.output_dir / "checkpoints" / "last.ckpt", weights_only=False)
    assert ckpt["postprocess"]["fg_threshold"] == post["fg_threshold"]
    tiles = written["data"]["tiles"]
    assert written["data"]["test_on"] == "the validation tiles" and tiles["test"] == tiles["val"]
    assert len(tiles["train"]) == 3 and len(tiles["val"]) == 1


def test_augmentations_repeat_per_seed_and_differ_across_ranks(monkeypatch):
    # albumentations' Compose ignores global seeds; SeededCompose follows torch's seed + rank
    image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    instances = np.zeros((40, 40), np.int32)
    instances[5:15, 8:20] = 1

    def augmented(rank: int, seed: int) -> torch.Tensor:
        monkeypatch.setattr(seeding, "process_rank", lambda: rank)
        torch.manual_seed(seed)
        tiles = NucleiTiles([image] * 8, [instances] * 8, he_train_transform(32))
        return torch.stack([tiles[i]["image"] for i in range(8)])

    assert torch.equal(augmented(0, 1), augmented(0, 1))
    assert not torch.equal(augmented(0, 1), augmented(1, 1))
    assert not torch.equal(augmented(0, 1), augmented(0, 2))

import numpy as np
import pytest
import torch

from medprune.data import NucleiSyntheticDataModule, NucleiTiles
from medprune.data.transforms import nuclei_train_transform


def test_splits_shapes_and_targets_follow_augmented_instances():
    dm = NucleiSyntheticDataModule(seed=1, tile_size=64, train_tiles=4, val_tiles=2, test_tiles=3)
    dm.setup()
    assert [len(dm.splits[s]) for s in ("train", "val", "test")] == [4, 2, 3]
    # splits never share a tile
    assert not np.array_equal(dm.splits["val"].images[0], dm.splits["test"].images[0])
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (4, 3, 64, 64) and batch["image"].dtype == torch.float32
    assert 0.0 <= batch["image"].min() and batch["image"].max() <= 1.0
    assert batch["foreground"].shape == batch["distance"].shape == (4, 1, 64, 64)
    # targets are made after augmentation: they agree with the augmented instance map
    assert torch.equal(batch["foreground"][:, 0] > 0, batch["instances"] > 0)
    assert torch.equal(batch["distance"][:, 0] > 0, batch["instances"] > 0)


def test_augmentation_moves_image_and_instances_together():
    image = np.zeros((32, 32, 3), np.uint8)
    instances = np.zeros((32, 32), np.int32)
    image[2:6, 3:9] = 200  # a bright block where instance 7 is
    instances[2:6, 3:9] = 7
    ds = NucleiTiles(image[None], instances[None], nuclei_train_transform())
    for _ in range(10):
        item = ds[0]
        assert torch.equal(item["image"].mean(0) > 0.5, item["instances"] == 7)


def test_bad_arguments_name_the_key():
    with pytest.raises(ValueError, match="data.batch_size=0"):
        NucleiSyntheticDataModule(batch_size=0)
    with pytest.raises(
        ValueError, match=r"expected images \(H, W, 3\) with instances \(H, W\) per tile"
    ):
        NucleiTiles(np.zeros((2, 8, 8, 3), np.uint8), np.zeros((2, 8, 9), np.int32))

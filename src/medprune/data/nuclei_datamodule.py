"""Nuclei tiles as a LightningDataModule: image, foreground mask, distance map, instances.

Targets are computed after augmentation from the (augmented) instance map, so the
foreground and distance targets always match the image the network sees.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medprune.common.checks import check_data_ints
from medprune.data.synthetic_nuclei import generate_nuclei_split
from medprune.data.targets import distance_map, foreground_mask
from medprune.data.transforms import nuclei_train_transform


def nuclei_item(
    image: np.ndarray, instances: np.ndarray, transform: Callable | None = None
) -> dict[str, torch.Tensor]:
    """One training/eval item from an (H, W, 3) uint8 image and its (H, W) instance map:
    ``image`` (3, H, W) float in [0, 1], ``foreground`` and ``distance`` (1, H, W) float,
    ``instances`` (H, W) int64 (0 = background). Targets come after ``transform``."""
    if transform is not None:
        out = transform(image=image, mask=instances)
        image, instances = out["image"], out["mask"]
    return {
        "image": torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float() / 255,
        "foreground": torch.from_numpy(foreground_mask(instances))[None],
        "distance": torch.from_numpy(distance_map(instances))[None],
        "instances": torch.from_numpy(instances.astype(np.int64)),
    }


class NucleiTiles(Dataset):
    """Whole tiles as ``nuclei_item`` dicts; ``images`` (N, H, W, 3) and ``instances``
    (N, H, W), arrays or sequences of per-tile arrays (tiles may then differ in size)."""

    def __init__(
        self,
        images: np.ndarray | Sequence[np.ndarray],
        instances: np.ndarray | Sequence[np.ndarray],
        transform: Callable | None = None,
    ) -> None:
        if len(images) != len(instances) or any(
            img.ndim != 3 or img.shape[-1] != 3 or img.shape[:2] != inst.shape
            for img, inst in zip(images, instances)
        ):
            shapes = [(i.shape, j.shape) for i, j in zip(images, instances)][:3]
            raise ValueError(
                f"NucleiTiles: expected images (H, W, 3) with instances (H, W) per tile, got "
                f"{len(images)} images and {len(instances)} maps, first shapes {shapes}"
            )
        self.images, self.instances, self.transform = images, instances, transform

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return nuclei_item(self.images[index], self.instances[index], self.transform)


class NucleiSyntheticDataModule(L.LightningDataModule):
    """Built-in H&E-like tiles (``medprune.data.synthetic_nuclei``), generated in ``setup``.

    The three splits come from independent seeds derived from ``seed``, so no tile is shared.
    Training sees random ``train_crop`` px patches of its tiles (more distinct views per epoch,
    cheaper steps); val and test are scored on whole tiles.
    """

    def __init__(
        self,
        seed: int = 0,
        tile_size: int = 128,
        train_tiles: int = 64,
        val_tiles: int = 16,
        test_tiles: int = 64,
        batch_size: int = 8,
        num_workers: int = 0,
        augment: bool = True,
        train_crop: int | None = None,
    ) -> None:
        super().__init__()
        check_data_ints(
            train_tiles=(train_tiles, 1),
            val_tiles=(val_tiles, 1),
            test_tiles=(test_tiles, 1),
            batch_size=(batch_size, 1),
            num_workers=(num_workers, 0),
        )
        if train_crop is not None and not (
            isinstance(train_crop, int) and 16 <= train_crop <= tile_size
        ):
            raise ValueError(
                f"data.train_crop={train_crop!r}: expected null or an integer in "
                f"[16, data.tile_size={tile_size}] px"
            )
        self.save_hyperparameters()
        self.splits: dict[str, NucleiTiles] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        counts = {"train": hp.train_tiles, "val": hp.val_tiles, "test": hp.test_tiles}
        for offset, (split, count) in enumerate(counts.items()):
            images, instances = generate_nuclei_split(hp.seed * 3 + offset, count, hp.tile_size)
            transform = (
                nuclei_train_transform(hp.train_crop, hp.augment) if split == "train" else None
            )
            self.splits[split] = NucleiTiles(images, instances, transform)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.splits[split],
            batch_size=self.hparams.batch_size,
            shuffle=shuffle,
            num_workers=self.hparams.num_workers,
            persistent_workers=self.hparams.num_workers > 0,
            drop_last=shuffle and len(self.splits[split]) > self.hparams.batch_size,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

"""Cardiac DataModules: 2D slices for training, whole volumes for evaluation.

Training batches are dicts ``{"image": (N, 1, H, W) float32, "label": (N, H, W) int64}``.
Validation and test yield one volume per batch (``batch_size=None``):
``{"image": (Z, 1, H, W), "label": (Z, H, W), "spacing": (3,) float64 in mm, z, y, x}``, so the
task scores each volume as a whole.
"""

from __future__ import annotations

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medprune.data.synthetic_cardiac import generate_cardiac_split


class CardiacSlices(Dataset):
    """(N, H, W) images and labels as training items."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(self.images[index][None].astype(np.float32)),
            "label": torch.from_numpy(self.labels[index].astype(np.int64)),
        }


class CardiacVolumes(Dataset):
    """Volumes for evaluation: lists of (Z, H, W) images and labels with their spacings."""

    def __init__(self, images, labels, spacings) -> None:
        self.images, self.labels, self.spacings = images, labels, spacings

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "image": torch.from_numpy(self.images[index][:, None].astype(np.float32)),
            "label": torch.from_numpy(self.labels[index].astype(np.int64)),
            "spacing": torch.tensor(self.spacings[index], dtype=torch.float64),
        }


class CardiacSyntheticDataModule(L.LightningDataModule):
    """Built-in short-axis slices (``medprune.data.synthetic_cardiac``), deterministic per
    ``seed``. A synthetic slice has no neighbours, so each val/test slice is its own volume
    (Z = 1, scored in 2D) with in-plane spacing ``spacing_mm``."""

    def __init__(
        self,
        seed: int = 0,
        size: int = 128,
        train_slices: int = 256,
        val_slices: int = 32,
        test_slices: int = 64,
        batch_size: int = 16,
        num_workers: int = 0,
        spacing_mm: float = 1.5625,
    ) -> None:
        super().__init__()
        for name, value in (
            ("train_slices", train_slices),
            ("val_slices", val_slices),
            ("test_slices", test_slices),
            ("batch_size", batch_size),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"data.{name}={value!r}: expected an integer >= 1")
        if not isinstance(num_workers, int) or num_workers < 0:
            raise ValueError(f"data.num_workers={num_workers!r}: expected an integer >= 0")
        if not spacing_mm > 0:
            raise ValueError(f"data.spacing_mm={spacing_mm!r}: expected a pixel size > 0 mm")
        self.save_hyperparameters()
        self.splits: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        counts = {"train": hp.train_slices, "val": hp.val_slices, "test": hp.test_slices}
        for offset, (split, count) in enumerate(counts.items()):
            images, labels = generate_cardiac_split(
                n=count, seed=hp.seed * 3 + offset, size=hp.size
            )
            if split == "train":
                self.splits[split] = CardiacSlices(images, labels)
            else:
                spacing = (1.0, hp.spacing_mm, hp.spacing_mm)  # z unused for a single slice
                self.splits[split] = CardiacVolumes(
                    list(images[:, None]), list(labels[:, None]), [spacing] * count
                )

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self.splits["train"],
            batch_size=hp.batch_size,
            shuffle=True,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
            drop_last=len(self.splits["train"]) > hp.batch_size,
        )

    def _volumes(self, split: str) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=None, num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._volumes("val")

    def test_dataloader(self) -> DataLoader:
        return self._volumes("test")

"""Cardiac DataModules: 2D slices for training, whole volumes for evaluation.

Both the built-in data and ACDC become lists of ``Volume`` (``medprune.data.acdc``). Training
batches are ``{"image": (N, 1, H, W) float32, "label": (N, H, W) int64}`` from ``AcdcSlices``.
Validation and test yield one volume per batch (``batch_size=None``): the network's input
``"image"`` (Z, 1, H, W) and ``"label"`` (Z, H, W) (for the loss), padded (never cropped) to a
multiple of ``pad_multiple`` px so the U-Net accepts it and no structure is cut, with
``"size"`` (2,) = their (h, w) before padding; and what is scored, ``"scored_label"``
(Z, H0, W0) with ``"spacing"`` (3,) float64 mm (z, y, x): the volume as read, before in-plane
resampling, so ACDC metrics are computed on each patient's own voxel grid.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from medprune.common.checks import check_data_ints, check_positive, check_range
from medprune.data.acdc import (
    Volume,
    center_crop_or_pad,
    find_patients,
    load_patient,
    pad_volume,
    preprocess_volume,
    split_patients,
)
from medprune.data.synthetic_cardiac import generate_cardiac_split
from medprune.data.transforms import cardiac_train_transform


class AcdcSlices(Dataset):
    """2D short-axis slices of preprocessed volumes (ACDC or built-in). Items: ``{"image":
    (1, H, W) float32, "label": (H, W) int64}``, with (H, W) = ``size`` (int or (h, w); None
    keeps each slice's own shape).

    Images are padded with their volume's minimum (the dark background after normalisation,
    not the mean grey that 0 would be), labels with 0. ``transform``, if given, is called
    albumentations-style as ``transform(image=, mask=)`` on the (H, W) arrays after cropping,
    with the image mapped linearly from its volume's [min, max] to [0, 1] and back afterwards:
    albumentations' intensity transforms clip float images to [0, 1], which would cut a
    z-scored slice's whole negative half, and its affine fill 0 is then the dark background.
    ``volumes`` and ``slices_of(v)`` give the dataset indices of volume ``v`` in slice order,
    for per-volume evaluation (undo the crop with ``center_crop_or_pad(pred, (y, x))``).
    """

    def __init__(
        self,
        volumes: Sequence[Volume],
        size: int | Sequence[int] | None,
        transform: Callable | None = None,
    ) -> None:
        self.volumes = list(volumes)
        self.size, self.transform = size, transform
        self.index = [(v, k) for v, vol in enumerate(self.volumes) for k in range(len(vol.image))]
        self._fill = [float(vol.image.min()) if vol.image.size else 0.0 for vol in self.volumes]
        self._span = [
            max(float(vol.image.max()) - low, 1e-6) if vol.image.size else 1.0
            for vol, low in zip(self.volumes, self._fill)
        ]
        self._starts = np.cumsum([0] + [len(vol.image) for vol in self.volumes])

    def __len__(self) -> int:
        return len(self.index)

    def slices_of(self, volume_index: int) -> range:
        """Dataset indices of the slices of ``self.volumes[volume_index]``, z ascending."""
        return range(int(self._starts[volume_index]), int(self._starts[volume_index + 1]))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        v, k = self.index[index]
        image, label = self.volumes[v].image[k], self.volumes[v].label[k]
        if self.size is not None:
            image = center_crop_or_pad(image, self.size, fill=self._fill[v])
            label = center_crop_or_pad(label, self.size, fill=0)
        if self.transform is not None:
            low, span = self._fill[v], self._span[v]
            unit = ((image - low) / span).astype(np.float32)
            out = self.transform(image=unit, mask=label)
            image, label = out["image"] * span + low, out["mask"]
        image = torch.from_numpy(np.ascontiguousarray(image, dtype=np.float32))[None]
        return {"image": image, "label": torch.from_numpy(np.ascontiguousarray(label, np.int64))}


class CardiacVolumes(Dataset):
    """Whole volumes for per-volume evaluation, from ``(network-grid volume, scored volume)``
    pairs; the two are the same object when nothing was resampled."""

    def __init__(self, pairs: Sequence[tuple[Volume, Volume]], pad_multiple: int = 16) -> None:
        self.pairs, self.pad_multiple = list(pairs), pad_multiple

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        vol, scored = self.pairs[index]
        image = pad_volume(vol.image, self.pad_multiple)
        label = np.stack([center_crop_or_pad(s, image.shape[1:], fill=0) for s in vol.label])
        return {
            "image": torch.from_numpy(image)[:, None],
            "label": torch.from_numpy(label.astype(np.int64)),
            "size": torch.tensor(vol.image.shape[1:], dtype=torch.int64),
            "scored_label": torch.from_numpy(scored.label.astype(np.int64)),
            "spacing": torch.tensor(scored.spacing, dtype=torch.float64),
        }


class _CardiacDataModule(L.LightningDataModule):
    """Loaders shared by the cardiac data modules; subclasses build the three volume lists."""

    def __init__(self, batch_size: int, num_workers: int, pad_multiple: int) -> None:
        super().__init__()
        check_data_ints(
            batch_size=(batch_size, 1), num_workers=(num_workers, 0), pad_multiple=(pad_multiple, 1)
        )
        self.splits: dict[str, Dataset] = {}

    # Each subclass defines where its volumes come from and how training slices are cut:
    # training volumes, then val and test as (network-grid volume, scored volume) pairs.
    def build(
        self,
    ) -> tuple[list[Volume], list[tuple[Volume, Volume]], list[tuple[Volume, Volume]]]:
        raise NotImplementedError(f"{type(self).__name__} must define build()")

    def train_dataset(self, volumes: list[Volume]) -> Dataset:
        raise NotImplementedError(f"{type(self).__name__} must define train_dataset()")

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        train, val, test = self.build()
        self.splits["train"] = self.train_dataset(train)
        for split, pairs in (("val", val), ("test", test)):
            self.splits[split] = CardiacVolumes(pairs, self.hparams.pad_multiple)

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


class CardiacSyntheticDataModule(_CardiacDataModule):
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
        augment: bool = True,
        pad_multiple: int = 16,
    ) -> None:
        super().__init__(batch_size, num_workers, pad_multiple)
        check_data_ints(
            train_slices=(train_slices, 1), val_slices=(val_slices, 1), test_slices=(test_slices, 1)
        )
        check_positive(spacing_mm, "data.spacing_mm", what="a pixel size in mm")
        self.save_hyperparameters()

    def build(
        self,
    ) -> tuple[list[Volume], list[tuple[Volume, Volume]], list[tuple[Volume, Volume]]]:
        hp = self.hparams
        counts = {"train": hp.train_slices, "val": hp.val_slices, "test": hp.test_slices}
        splits = []
        for offset, (split, count) in enumerate(counts.items()):
            images, labels = generate_cardiac_split(
                n=count, seed=hp.seed * 3 + offset, size=hp.size
            )
            spacing = (1.0, hp.spacing_mm, hp.spacing_mm)  # z unused for a single slice
            splits.append(
                [
                    Volume(f"{split}{i:04d}", "ED", 1, None, img[None], lab[None], spacing)
                    for i, (img, lab) in enumerate(zip(images, labels))
                ]
            )
        train, val, test = splits
        return train, [(v, v) for v in val], [(v, v) for v in test]

    def train_dataset(self, volumes: list[Volume]) -> Dataset:
        return AcdcSlices(volumes, None, cardiac_train_transform(self.hparams.augment))


class AcdcDataModule(_CardiacDataModule):
    """ACDC in its original layout (``patientNNN/Info.cfg`` + ED/ES NIfTI frames).

    ``root`` is split by patient, stratified by group, into train and val (``val_fraction``,
    ``split_seed``); test uses ``test_root`` if given, else ``test_fraction`` of the patients
    held out beside val (other patients than val's: steps are chosen on val, scored on
    test), else the val patients. Volumes are
    resampled in-plane to ``target_spacing`` mm (null: keep) and z-scored per volume;
    training uses random ``crop_size`` px windows of every slice (padded where smaller).
    Val/test predictions are scored against the labels as read, on each volume's own grid.
    """

    def __init__(
        self,
        root: str,
        test_root: str | None = None,
        val_fraction: float = 0.2,
        split_seed: int = 0,
        test_fraction: float | None = None,
        target_spacing: Sequence[float] | None = (1.5625, 1.5625),
        crop_size: int = 160,
        batch_size: int = 16,
        num_workers: int = 0,
        augment: bool = True,
        pad_multiple: int = 16,
    ) -> None:
        super().__init__(batch_size, num_workers, pad_multiple)
        if not Path(root).is_dir():
            raise FileNotFoundError(f"data.root={root}: no such folder of patientNNN dirs")
        if test_root is not None and not Path(test_root).is_dir():
            raise FileNotFoundError(f"data.test_root={test_root}: no such folder")
        if test_fraction is not None:
            if test_root is not None:
                raise ValueError(
                    f"data.test_fraction={test_fraction} with data.test_root={test_root}: "
                    "test on one of them (set the other to null)"
                )
            check_range(test_fraction, "data.test_fraction", low_open=True)
            check_range(val_fraction + test_fraction, "data.val_fraction + data.test_fraction")
        check_data_ints(crop_size=(crop_size, 16))  # px
        self.save_hyperparameters()

    def _load(self, dirs: Sequence[Path]) -> list[tuple[Volume, Volume]]:
        """(preprocessed, as read) per volume."""
        spacing = self.hparams.target_spacing
        spacing = tuple(spacing) if spacing is not None else None
        return [(preprocess_volume(v, spacing), v) for d in dirs for v in load_patient(d)]

    def build(
        self,
    ) -> tuple[list[Volume], list[tuple[Volume, Volume]], list[tuple[Volume, Volume]]]:
        hp = self.hparams
        held_out = hp.val_fraction + (hp.test_fraction or 0.0)
        train_dirs, val_dirs = split_patients(find_patients(hp.root), held_out, hp.split_seed)
        test_dirs = None
        if hp.test_fraction is not None:  # the held-out patients, stratified into val and test
            val_dirs, test_dirs = split_patients(
                val_dirs, hp.test_fraction / held_out, hp.split_seed
            )
        train, val = [v for v, _ in self._load(train_dirs)], self._load(val_dirs)
        if hp.test_root:
            test_dirs = find_patients(hp.test_root)
        return train, val, val if test_dirs is None else self._load(test_dirs)

    def train_dataset(self, volumes: list[Volume]) -> Dataset:
        hp = self.hparams
        return AcdcSlices(volumes, None, cardiac_train_transform(hp.augment, hp.crop_size))

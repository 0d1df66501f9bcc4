"""Real nuclei tiles as a LightningDataModule: MoNuSeg's layout or an image/label folder.

Training draws ``patches_per_epoch`` random ``patch_size`` px patches per epoch from the
training tiles (``NucleiPatches``); with probability ``foreground_bias`` a patch is centred
on a random nucleus pixel, so tiles with sparse nuclei still teach nuclei. Validation and test
use whole tiles, one per batch (tiles may differ in size); the task runs sliding-window
inference over them, so metrics are per tile as in the literature.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from medprune.common.checks import check_choice, check_data_ints, check_range
from medprune.data.monuseg import (
    find_instance_pairs,
    find_tiles,
    load_instance_pair,
    load_monuseg_tile,
)
from medprune.data.nuclei_datamodule import NucleiTiles, nuclei_item
from medprune.data.seeding import ProcessSeeded
from medprune.data.transforms import he_patch_margin, he_train_transform

LAYOUTS = ("monuseg", "folder")


def load_nuclei_folder(root: str | Path, layout: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, image (H, W, 3) uint8, instances (H, W) int32) per tile, sorted by name.
    ``monuseg``: ``*.tif`` + Aperio ``*.xml``; ``folder``: ``images/`` + ``labels/``."""
    if layout == "monuseg":
        return [(tif.stem, *load_monuseg_tile(tif, xml)) for tif, xml in find_tiles(root)]
    return [(img.stem, *load_instance_pair(img, lab)) for img, lab in find_instance_pairs(root)]


class NucleiPatches(ProcessSeeded, Dataset):
    """``length`` random windows of ``window`` px per epoch, each passed through
    ``transform`` (which crops the final patch) and turned into a ``nuclei_item``.

    Positions come from a generator seeded by ``process_seed`` (``ProcessSeeded``), so runs
    repeat and ranks and workers draw different patches (with torch's global RNG every DDP
    rank would draw the same ones: ranks are seeded alike and the sampler's indices are
    ignored here). Tiles smaller than the window are padded with their median colour (the
    slide background) and instance 0.
    """

    def __init__(
        self,
        images: Sequence[np.ndarray],
        instances: Sequence[np.ndarray],
        window: int,
        length: int,
        foreground_bias: float = 0.5,
        transform: Callable | None = None,
    ) -> None:
        self.window, self.length = window, length
        self.foreground_bias, self.transform = foreground_bias, transform
        self.images, self.instances = [], []
        for image, inst in zip(images, instances):
            pad = [
                (max(0, window - n) // 2, max(0, window - n) - max(0, window - n) // 2)
                for n in inst.shape
            ]
            if any(sum(p) for p in pad):
                fill = np.median(image.reshape(-1, 3), axis=0).astype(np.uint8)
                image = np.stack(
                    [np.pad(image[..., c], pad, constant_values=fill[c]) for c in range(3)], -1
                )
                inst = np.pad(inst, pad)
            self.images.append(image)
            self.instances.append(inst)
        self.nuclei = [np.flatnonzero(inst) for inst in self.instances]  # flat pixel indices
        self._generator = torch.Generator()  # seeded on first use in each process

    def __len__(self) -> int:
        return self.length

    def _rng(self) -> torch.Generator:
        seed = self.new_process_seed(stream=1)
        if seed is not None:
            self._generator.manual_seed(seed)
        return self._generator

    def _pick(self, n: int) -> int:
        return int(torch.randint(n, (), generator=self._rng()).item())

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        t = self._pick(len(self.images))
        image, inst = self.images[t], self.instances[t]
        (h, w), size = inst.shape, self.window
        if (
            len(self.nuclei[t])
            and float(torch.rand((), generator=self._rng())) < self.foreground_bias
        ):
            cy, cx = divmod(int(self.nuclei[t][self._pick(len(self.nuclei[t]))]), w)
            top = min(max(cy - size // 2, 0), h - size)
            left = min(max(cx - size // 2, 0), w - size)
        else:
            top, left = self._pick(h - size + 1), self._pick(w - size + 1)
        window = (slice(top, top + size), slice(left, left + size))
        return nuclei_item(image[window], inst[window], self.transform)


class NucleiFolderDataModule(L.LightningDataModule):
    """Nuclei tiles from ``root`` (``layout`` monuseg or folder), split by tile: ``val_tiles``
    tiles (chosen by ``split_seed``) validate, the rest train; test uses ``test_root`` (same
    layout) if given, else the val tiles."""

    def __init__(
        self,
        root: str,
        test_root: str | None = None,
        layout: str = "monuseg",
        val_tiles: int = 3,
        split_seed: int = 0,
        patch_size: int = 256,
        patches_per_epoch: int = 160,
        foreground_bias: float = 0.5,
        batch_size: int = 8,
        num_workers: int = 0,
        augment: bool = True,
    ) -> None:
        super().__init__()
        check_choice(layout, "data.layout", LAYOUTS)
        for name, folder in (("root", root), ("test_root", test_root)):
            if folder is not None and not Path(folder).is_dir():
                raise FileNotFoundError(f"data.{name}={folder}: no such folder")
        check_data_ints(
            val_tiles=(val_tiles, 1),
            patch_size=(patch_size, 16),
            patches_per_epoch=(patches_per_epoch, 1),
            batch_size=(batch_size, 1),
            num_workers=(num_workers, 0),
        )
        check_range(foreground_bias, "data.foreground_bias", high_open=False, what="a fraction")
        self.save_hyperparameters()
        self.splits: dict[str, Dataset] = {}
        self.tile_names: dict[str, list[str]] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        hp = self.hparams
        tiles = load_nuclei_folder(hp.root, hp.layout)
        if len(tiles) <= hp.val_tiles:
            raise ValueError(
                f"data.val_tiles={hp.val_tiles}: {hp.root} has only {len(tiles)} tiles; at least "
                "one must remain for training"
            )
        order = list(range(len(tiles)))
        random.Random(hp.split_seed).shuffle(order)
        val = sorted(order[: hp.val_tiles])
        train = [i for i in range(len(tiles)) if i not in val]
        test = (
            load_nuclei_folder(hp.test_root, hp.layout) if hp.test_root else [tiles[i] for i in val]
        )
        window = he_patch_margin(hp.patch_size, hp.augment)
        self.splits["train"] = NucleiPatches(
            [tiles[i][1] for i in train],
            [tiles[i][2] for i in train],
            window,
            hp.patches_per_epoch,
            hp.foreground_bias,
            he_train_transform(hp.patch_size, hp.augment),
        )
        for split, chosen in (("val", [tiles[i] for i in val]), ("test", test)):
            self.splits[split] = NucleiTiles([t[1] for t in chosen], [t[2] for t in chosen])
            self.tile_names[split] = [t[0] for t in chosen]
        self.tile_names["train"] = [tiles[i][0] for i in train]
        if not hp.test_root:
            rank_zero_warn(
                "data.test_root is not set: test scores the validation tiles, on which the "
                "watershed thresholds are tuned (an optimistic estimate); pass "
                "data.test_root=<folder> for scores on held-out tiles"
            )

    def run_summary(self) -> dict[str, object]:
        """For summary.json: the tiles of each split and where test tiles came from."""
        test_on = "data.test_root" if self.hparams.test_root else "the validation tiles"
        return {"test_on": test_on, "tiles": {k: list(v) for k, v in self.tile_names.items()}}

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        return DataLoader(
            self.splits["train"],
            batch_size=hp.batch_size,
            num_workers=hp.num_workers,
            persistent_workers=hp.num_workers > 0,
        )

    def _tiles(self, split: str) -> DataLoader:
        return DataLoader(self.splits[split], batch_size=1, num_workers=self.hparams.num_workers)

    def val_dataloader(self) -> DataLoader:
        return self._tiles("val")

    def test_dataloader(self) -> DataLoader:
        return self._tiles("test")

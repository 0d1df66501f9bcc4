"""``VolumeMetrics``: per-volume cardiac scores (``volume_scores``) averaged over volumes.

A torchmetrics ``Metric`` so that validation under DDP averages over every rank's volumes:
the state is one sum per score key and a volume count, summed across processes.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import torch
import torchmetrics
from numpy.typing import ArrayLike

from medprune.metrics.surface import ACDC_CLASSES, volume_scores


class VolumeMetrics(torchmetrics.Metric):
    """Dice and HD95 (mm) per structure and their means, each volume weighted equally."""

    full_state_update = False

    def __init__(self, classes: Mapping[int, str] | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.classes = dict(classes or ACDC_CLASSES)
        names = list(self.classes.values())
        self.keys = tuple(
            [f"dice_{n}" for n in names] + ["dice_mean"] + [f"hd95_{n}" for n in names]
        ) + ("hd95_mean",)
        self.add_state(
            "sums", torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: ArrayLike, target: ArrayLike, spacing: ArrayLike) -> None:
        """One volume: (Z, H, W) label maps and the voxel spacing (z, y, x) in mm. A single
        slice (Z = 1) is scored in 2D with the in-plane spacing."""
        pred, target = np.asarray(pred), np.asarray(target)
        spacing = tuple(float(s) for s in np.asarray(spacing).reshape(-1))
        if pred.ndim == 3 and pred.shape[0] == 1:
            pred, target, spacing = pred[0], target[0], spacing[1:]
        scores = volume_scores(pred, target, spacing, self.classes)
        values = [scores[k] for k in self.keys]
        self.sums += torch.tensor(values, dtype=torch.float64, device=self.sums.device)
        self.count += 1

    def compute(self) -> dict[str, torch.Tensor]:
        if int(self.count) == 0:
            raise RuntimeError("VolumeMetrics.compute() called with no volumes; call update()")
        means = self.sums / self.count
        return {k: means[i].float() for i, k in enumerate(self.keys)}

"""``InstanceMetrics``: per-tile instance scores (``instance_scores``) averaged over tiles.

A torchmetrics ``Metric`` so that validation under DDP averages over every rank's tiles: the
state is one sum per score and a tile count, summed across processes. The scores themselves
are numpy (``medprune.metrics.instance``), which the torch-free prediction path uses directly.
"""

from __future__ import annotations

import numpy as np
import torch
import torchmetrics
from numpy.typing import ArrayLike

from medprune.metrics.instance import check_iou_threshold, instance_scores


class InstanceMetrics(torchmetrics.Metric):
    """Per-tile AJI, PQ, DQ and SQ averaged over tiles, as a torchmetrics ``Metric``.

    Scores are computed at ``update`` time (on the CPU, from numpy label maps), so the state is
    four sums and a tile count; under DDP they are summed across processes before ``compute``.
    """

    keys = ("aji", "pq", "dq", "sq")
    full_state_update = False

    def __init__(self, iou_threshold: float = 0.5, **kwargs) -> None:
        super().__init__(**kwargs)
        self.iou_threshold = check_iou_threshold(iou_threshold)
        self.add_state(
            "sums", torch.zeros(len(self.keys), dtype=torch.float64), dist_reduce_fx="sum"
        )
        self.add_state("count", torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def __len__(self) -> int:
        return int(self.count)

    def update(self, true: ArrayLike, pred: ArrayLike) -> None:
        """Score one (H, W) tile or a batch (N, H, W) of tiles (numpy arrays or CPU tensors)."""
        t, p = np.asarray(true), np.asarray(pred)
        if t.shape != p.shape:
            raise ValueError(f"true and pred must have the same shape, got {t.shape} and {p.shape}")
        if t.ndim == 2:
            t, p = t[None], p[None]
        elif t.ndim != 3:
            raise ValueError(f"true and pred must be (H, W) or (N, H, W), got shape {t.shape}")
        # Score the whole batch before touching the state, so a bad tile leaves no partial state.
        scores = [instance_scores(a, b, self.iou_threshold) for a, b in zip(t, p)]
        for s in scores:
            self.sums += torch.tensor(
                [s[k] for k in self.keys], dtype=torch.float64, device=self.sums.device
            )
        self.count += len(scores)

    def compute(self) -> dict[str, torch.Tensor]:
        if int(self.count) == 0:
            raise RuntimeError(
                "InstanceMetrics.compute() called with no tiles; call update() first"
            )
        means = self.sums / self.count
        return {k: means[i].float() for i, k in enumerate(self.keys)}

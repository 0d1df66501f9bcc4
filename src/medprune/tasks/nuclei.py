"""Nuclei instance segmentation task: trains the two-branch network, scores instances.

Knows nothing of pruning. Logged keys: ``train/loss`` (+ ``train/seg_loss``,
``train/dist_loss``), and per stage ``{val,test}/loss``, ``/dice`` (foreground Dice of the
seg branch at probability 0.5), ``/mse`` (distance-map MSE), ``/aji``, ``/pq``, ``/dq``,
``/sq`` (instances after watershed, averaged per tile).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanSquaredError
from torchmetrics.segmentation import DiceScore

from medprune.metrics import InstanceMetrics
from medprune.postprocess import WatershedPostprocessor
from medprune.tasks.base import SegmentationTask
from medprune.tasks.losses import seg_loss


class NucleiSegmentationTask(SegmentationTask):
    """``net`` maps (N, 3, H, W) to ``(seg_logits, distance)``, each (N, 1, H, W)."""

    def __init__(
        self,
        net: nn.Module,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        dist_loss_weight: float = 1.0,
        cosine_schedule: bool = True,
        channels_last: bool = True,
        postprocess: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        if not dist_loss_weight >= 0:
            raise ValueError(f"task.dist_loss_weight={dist_loss_weight!r}: expected >= 0")
        self.save_hyperparameters(ignore=["net"])
        self.attach(net)
        self.postprocess = WatershedPostprocessor(**dict(postprocess or {}))
        self.metrics = nn.ModuleDict(
            {
                stage: nn.ModuleDict(
                    {
                        # index format: (N, H, W) class maps; Dice of the foreground class only
                        "dice": DiceScore(
                            num_classes=2, include_background=False, input_format="index"
                        ),
                        "mse": MeanSquaredError(),
                        "instances": InstanceMetrics(),
                    }
                )
                for stage in ("val", "test")
            }
        )

    def _losses(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], ...]:
        seg_logits, distance = self(batch["image"])
        seg = seg_loss(seg_logits, batch["foreground"])
        dist = F.mse_loss(distance, batch["distance"])
        loss = seg + self.hparams.dist_loss_weight * dist
        return {"loss": loss, "seg_loss": seg, "dist_loss": dist}, seg_logits, distance

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        losses, _, _ = self._losses(batch)
        n = batch["image"].shape[0]
        self.log("train/loss", losses["loss"], prog_bar=True, batch_size=n)
        self.log_dict({f"train/{k}": losses[k] for k in ("seg_loss", "dist_loss")}, batch_size=n)
        return losses["loss"]

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        losses, seg_logits, distance = self._losses(batch)
        n = batch["image"].shape[0]
        self.log(f"{stage}/loss", losses["loss"], batch_size=n)
        prob = torch.sigmoid(seg_logits)[:, 0]
        metrics = self.metrics[stage]
        metrics["dice"].update((prob > 0.5).long(), batch["foreground"][:, 0].long())
        metrics["mse"].update(distance, batch["distance"])
        pred = self.postprocess.batch(
            prob.float().cpu().numpy(), distance[:, 0].float().cpu().numpy()
        )
        metrics["instances"].update(batch["instances"].cpu().numpy(), pred)

    def _eval_epoch_end(self, stage: str) -> None:
        metrics = self.metrics[stage]
        values = {
            f"{stage}/dice": metrics["dice"].compute(),
            f"{stage}/mse": metrics["mse"].compute(),
        }
        values.update({f"{stage}/{k}": v for k, v in metrics["instances"].compute().items()})
        self.log_dict(values, prog_bar=stage == "val")
        for metric in metrics.values():
            metric.reset()

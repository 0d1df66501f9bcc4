"""Cardiac MRI segmentation task (ACDC labels 1 RV, 2 MYO, 3 LV): a 2D U-Net on slices.

Knows nothing of pruning. Trains on batches of 2D slices with Dice + cross-entropy; evaluates
whole volumes (one per batch, see ``medprune.data.cardiac_datamodule``), so Dice and HD95 are
computed per 3D volume as in the ACDC challenge, on the scored label's own grid and spacing,
after keeping each structure's largest connected component (``largest_component``).
Logged keys: ``train/loss``, ``{val,test}/loss``, ``/dice_rv``, ``/dice_myo``, ``/dice_lv``,
``/dice_mean``, ``/hd95_rv``, ``/hd95_myo``, ``/hd95_lv``, ``/hd95_mean`` (mm).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from medprune.inference.sliding_window import whole_image_outputs
from medprune.inference.torch_network import labels_on_grid
from medprune.metrics.surface import ACDC_CLASSES
from medprune.metrics.volume import VolumeMetrics
from medprune.postprocess.components import keep_largest_component
from medprune.tasks.base import SegmentationTask
from medprune.tasks.losses import dice_ce_loss


class CardiacSegmentationTask(SegmentationTask):
    """``net`` maps (N, 1, H, W) to class logits (N, 4, H, W)."""

    def __init__(
        self,
        net: nn.Module,
        lr: float = 2e-3,
        weight_decay: float = 0.0,
        cosine_schedule: bool = True,
        channels_last: bool = True,
        largest_component: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["net"])
        self.attach(net)
        self.metrics = nn.ModuleDict({stage: VolumeMetrics() for stage in ("val", "test")})

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.check_patch(batch["image"], "data.crop_size (ACDC) or data.size (built-in)")
        logits = self(batch["image"])
        loss = self.distilled(batch["image"], logits, dice_ce_loss(logits, batch["label"]))
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0])
        return loss

    def distillation_loss(self, outputs: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Per-pixel KL(teacher || network) of the class distributions, mean over pixels."""
        log_p = F.log_softmax(outputs, dim=1)
        log_q = F.log_softmax(target, dim=1)
        return (log_q.exp() * (log_q - log_p)).sum(dim=1).mean()

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        # Slices of any size: padded to the U-Net's size rule and cropped back (data.pad_multiple
        # below the rule, or a volume cropped to an odd size, still evaluates).
        logits = whole_image_outputs(self, batch["image"], None, 0.0, self.multiple)
        self.log(f"{stage}/loss", dice_ce_loss(logits, batch["label"]), batch_size=1)
        scored = batch["scored_label"]
        pred = labels_on_grid(logits, batch["size"].tolist(), tuple(scored.shape[-2:]))
        pred = pred.cpu().numpy()
        if self.hparams.largest_component:
            pred = keep_largest_component(pred, ACDC_CLASSES)
        self.metrics[stage].update(pred, scored.cpu().numpy(), batch["spacing"].cpu().numpy())

    def _eval_epoch_end(self, stage: str) -> None:
        values = self.metrics[stage].compute()
        self.log_dict({f"{stage}/{k}": v for k, v in values.items()}, prog_bar=stage == "val")
        self.metrics[stage].reset()

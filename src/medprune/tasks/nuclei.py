"""Nuclei instance segmentation task: trains the two-branch network, scores instances.

Knows nothing of pruning. Logged keys: ``train/loss`` (+ ``train/seg_loss``,
``train/dist_loss``), and per stage ``{val,test}/loss``, ``/dice`` (foreground Dice of the
seg branch at probability 0.5), ``/mse`` (distance-map MSE), ``/aji``, ``/pq``, ``/dq``,
``/sq`` (instances after watershed, averaged per tile).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import rank_zero_info
from torch import nn
from torchmetrics import MeanSquaredError
from torchmetrics.segmentation import DiceScore

from medprune.common.checks import check_range
from medprune.inference.sliding_window import whole_image_outputs
from medprune.metrics.tiles import InstanceMetrics
from medprune.postprocess import WatershedPostprocessor
from medprune.postprocess.tuning import ThresholdSearch, ThresholdTuning
from medprune.tasks.base import SegmentationTask
from medprune.tasks.losses import seg_loss


def latest_checkpoint_paths(trainer: L.Trainer) -> list[Path]:
    """Files this run's checkpoint callbacks keep the latest weights in (see ``finish_fit``)."""
    paths = []
    for callback in trainer.checkpoint_callbacks:
        if not getattr(callback, "dirpath", None):
            continue
        folder, ext = Path(callback.dirpath), callback.FILE_EXTENSION
        if callback.monitor is None and callback.filename and "{" not in callback.filename:
            paths.append(folder / f"{callback.filename}{ext}")
        if callback.save_last:
            paths.append(folder / f"{callback.CHECKPOINT_NAME_LAST}{ext}")
    return paths


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
        tune_postprocess: dict[str, Any] | None = None,
        window: int | None = 256,
        overlap: float = 0.25,
    ) -> None:
        super().__init__()
        check_range(
            dist_loss_weight, "task.dist_loss_weight", 0, float("inf"), what="a loss weight"
        )
        self.save_hyperparameters(ignore=["net"])
        self.attach(net)
        self.postprocess = WatershedPostprocessor(**dict(postprocess or {}))
        self.tuning = ThresholdTuning(**dict(tune_postprocess)) if tune_postprocess else None
        self.search: ThresholdSearch | None = None  # the last tuning, for the summary
        self.force_tuning = False  # set by tuned_validation (finish_fit, prune.py)
        if window is not None and (
            isinstance(window, bool)
            or not isinstance(window, int)
            or window < 1
            or window % self.multiple
        ):
            raise ValueError(
                f"task.window={window!r}: expected null or a positive integer divisible by "
                f"{self.multiple} (2 ** (model.depth - 1)) px"
            )
        check_range(overlap, "task.overlap", what="a fraction")
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

    def _predict(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The network on a whole tile: directly if it fits one ``window`` and the U-Net's
        size rule, else by sliding-window inference with ``overlap`` and Gaussian blending."""
        hp = self.hparams
        return whole_image_outputs(self, image, hp.window, hp.overlap, self.multiple)

    def _losses(
        self, batch: dict[str, torch.Tensor], whole_tiles: bool = False
    ) -> tuple[dict[str, torch.Tensor], ...]:
        image = batch["image"]
        seg_logits, distance = self._predict(image) if whole_tiles else self(image)
        seg = seg_loss(seg_logits, batch["foreground"])
        dist = F.mse_loss(distance, batch["distance"])
        loss = seg + self.hparams.dist_loss_weight * dist
        return {"loss": loss, "seg_loss": seg, "dist_loss": dist}, seg_logits, distance

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        self.check_patch(
            batch["image"], "data.patch_size (real tiles) or data.train_crop (built-in)"
        )
        losses, seg_logits, distance = self._losses(batch)
        loss = self.distilled(batch["image"], (seg_logits, distance), losses["loss"])
        n = batch["image"].shape[0]
        self.log("train/loss", loss, prog_bar=True, batch_size=n)
        self.log_dict({f"train/{k}": losses[k] for k in ("seg_loss", "dist_loss")}, batch_size=n)
        return loss

    def distillation_loss(
        self,
        outputs: tuple[torch.Tensor, torch.Tensor],
        target: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """Per-pixel KL(teacher || network) of the foreground probability, plus the MSE to
        the teacher's distance map weighted by ``dist_loss_weight`` as in the task loss."""
        (seg, distance), (seg_teacher, distance_teacher) = outputs, target
        p = torch.sigmoid(seg_teacher)
        kl = p * (F.logsigmoid(seg_teacher) - F.logsigmoid(seg)) + (1 - p) * (
            F.logsigmoid(-seg_teacher) - F.logsigmoid(-seg)
        )
        return kl.mean() + self.hparams.dist_loss_weight * F.mse_loss(distance, distance_teacher)

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        losses, seg_logits, distance = self._losses(batch, whole_tiles=True)
        n = batch["image"].shape[0]
        self.log(f"{stage}/loss", losses["loss"], batch_size=n)
        prob = torch.sigmoid(seg_logits)[:, 0]
        metrics = self.metrics[stage]
        metrics["dice"].update((prob > 0.5).long(), batch["foreground"][:, 0].long())
        metrics["mse"].update(distance, batch["distance"])
        maps = (prob.float().cpu().numpy(), distance[:, 0].float().cpu().numpy())
        true = batch["instances"].cpu().numpy()
        if stage == "val" and self._tuning_epoch():
            self.tuning.add(*maps, true)  # scored at epoch end, with the tuned thresholds
        else:
            metrics["instances"].update(true, self.postprocess.batch(*maps))

    def _tuning_epoch(self) -> bool:
        """Thresholds are tuned once, after training: at the validation of the last epoch
        (or when training stops early), or in ``finish_fit``'s extra pass. Earlier
        validations use the current thresholds, so tuning costs one grid search per run."""
        if self.tuning is None:
            return False
        if self.force_tuning or self._trainer is None:
            return True
        t = self.trainer
        if t.sanity_checking:
            return False
        last_epoch = t.max_epochs is not None and 0 < t.max_epochs <= t.current_epoch + 1
        last_step = t.max_steps is not None and 0 < t.max_steps <= t.global_step
        return last_epoch or last_step or t.should_stop

    def finish_fit(self, trainer: L.Trainer, datamodule: L.LightningDataModule) -> None:
        """If training ended without a tuning validation (the last epoch had none), run one
        validation pass to tune, then rewrite this run's checkpoint(s) of the latest weights
        so they carry the thresholds: ``last.ckpt`` of a checkpoint callback without a
        monitor and with a fixed file name, or its ``save_last`` file, always inside the
        callback's own folder (on resume, a restored path may point at another run's)."""
        if self.tuning is None or self.search is not None or trainer.limit_val_batches == 0:
            return
        self.tuned_validation(trainer, datamodule)
        for path in sorted(set(latest_checkpoint_paths(trainer))):
            trainer.save_checkpoint(path)

    def tuned_validation(
        self, trainer: L.Trainer, datamodule: L.LightningDataModule
    ) -> dict[str, float]:
        self.force_tuning = True
        try:
            return super().tuned_validation(trainer, datamodule)
        finally:
            self.force_tuning = False

    def fixed_validation(
        self, trainer: L.Trainer, datamodule: L.LightningDataModule
    ) -> dict[str, float]:
        tuning, self.tuning = self.tuning, None  # no tuning object: _tuning_epoch is False
        try:
            return super().fixed_validation(trainer, datamodule)
        finally:
            self.tuning = tuning

    def _tune(self) -> None:
        """Pick thresholds on this validation epoch's maps and score them with the pick.
        Under DDP each rank scores the grid on its share of the tiles and the score sums
        and tile counts of all ranks are added, so every rank picks from all tiles."""
        sums, count = self.tuning.score_sums(self.postprocess.min_size)
        if self._trainer is not None:
            table = torch.tensor([*sums.ravel(), count], dtype=torch.float64, device=self.device)
            table = self.trainer.strategy.reduce(table, reduce_op="sum").cpu().numpy()
            sums, count = table[:-1].reshape(sums.shape), int(round(table[-1]))
        self.search = search = self.tuning.pick(sums, count)
        self.postprocess = WatershedPostprocessor(
            search.fg_threshold, search.marker_threshold, self.postprocess.min_size
        )
        for prob, distance, true in self.tuning.tiles:
            self.metrics["val"]["instances"].update(
                true[None], self.postprocess.batch(prob[None], distance[None])
            )
        self.tuning.clear()
        self.log_dict(
            {
                "val/fg_threshold": search.fg_threshold,
                "val/marker_threshold": search.marker_threshold,
            }
        )

    def _eval_epoch_end(self, stage: str) -> None:
        if stage == "val" and self.tuning is not None and self.tuning.tiles:
            self._tune()
        metrics = self.metrics[stage]
        values = {
            f"{stage}/dice": metrics["dice"].compute(),
            f"{stage}/mse": metrics["mse"].compute(),
        }
        values.update({f"{stage}/{k}": v for k, v in metrics["instances"].compute().items()})
        self.log_dict(values, prog_bar=stage == "val")
        for metric in metrics.values():
            metric.reset()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["postprocess"] = self.postprocess_summary()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("postprocess")
        if saved:
            pp = self.postprocess
            if (pp.fg_threshold, pp.marker_threshold) != (
                saved["fg_threshold"],
                saved["marker_threshold"],
            ):
                rank_zero_info(
                    f"task.postprocess: using the checkpoint's watershed thresholds fg "
                    f"{saved['fg_threshold']}, marker {saved['marker_threshold']} (tuned: "
                    f"{saved.get('tuned', False)}) instead of the config's fg "
                    f"{pp.fg_threshold}, marker {pp.marker_threshold}"
                )
            self.postprocess = WatershedPostprocessor(
                saved["fg_threshold"], saved["marker_threshold"], saved["min_size"]
            )

    def postprocess_summary(self) -> dict[str, Any]:
        """The watershed thresholds in use and, if they were tuned, the search behind them."""
        pp = self.postprocess
        out = {
            "fg_threshold": pp.fg_threshold,
            "marker_threshold": pp.marker_threshold,
            "min_size": pp.min_size,
            "tuned": self.search is not None,
        }
        if self.search is not None:
            out["search"] = self.search.as_dict()
        return out

    def run_summary(self) -> dict[str, Any]:
        return {"postprocess": self.postprocess_summary()}

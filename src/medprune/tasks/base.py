"""What every medprune task shares: the network in channels-last, Adam with an optional cosine
decay, optional distillation from a frozen teacher, and val/test hooks routed to the task's own
``_eval_step`` / ``_eval_epoch_end``."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn

from medprune.common.checks import check_positive


class SegmentationTask(L.LightningModule):
    """Subclasses call ``save_hyperparameters`` (with ``lr``, ``weight_decay``,
    ``cosine_schedule``, ``channels_last``) and then ``self.attach(net)``."""

    # (teacher,): a tuple so the teacher is no submodule, hence not in parameters() (the
    # optimizer), the state_dict or checkpoints. None: no distillation.
    _teacher: tuple[nn.Module] | None = None
    _distill_weight = 0.0

    def attach(self, net: nn.Module) -> None:
        check_positive(self.hparams.lr, "task.lr", what="a learning rate")
        # NHWC convolutions: 257 -> 193 ms per training step of the default nuclei model on 2
        # CPU cores (batch 8, 96 px; benchmarks/train_step_time.py). Parameters stay the same
        # objects, so pruning masks and state_dict keys are unaffected.
        self.net = net.to(memory_format=torch.channels_last) if self.hparams.channels_last else net

    @property
    def multiple(self) -> int:
        """The U-Net takes sides that are multiples of this many px (2 ** (model.depth - 1))."""
        return 2 ** (getattr(self.net, "depth", 1) - 1)

    def check_patch(self, image: torch.Tensor, keys: str) -> None:
        """Training patches must suit the U-Net (else a cryptic skip-concat shape error);
        ``keys`` names the data settings that set their size."""
        h, w = image.shape[-2:]
        if h % self.multiple or w % self.multiple:
            raise ValueError(
                f"training patches are {h}x{w} px, but the U-Net (model.depth) needs sides "
                f"divisible by {self.multiple}: set {keys} to a multiple of {self.multiple}"
            )

    def forward(self, image: torch.Tensor) -> Any:
        return self.net(self._net_input(image))

    def _net_input(self, image: torch.Tensor) -> torch.Tensor:
        """The batch in the memory format the network's weights have (student and teacher)."""
        if self.hparams.channels_last:
            return image.contiguous(memory_format=torch.channels_last)
        return image

    def set_teacher(self, teacher: nn.Module | None, weight: float = 1.0) -> None:
        """Knowledge distillation (prune.py fine-tuning): the training loss gains ``weight *
        distillation_loss(outputs, teacher outputs)``. The teacher is frozen and run in eval
        mode (BatchNorm running statistics); ``None`` switches distillation off."""
        if teacher is not None:
            check_positive(weight, "weight", what="a distillation weight")
        if (
            teacher is not None
            and type(self).distillation_loss is SegmentationTask.distillation_loss
        ):
            raise ValueError(
                f"{type(self).__name__} defines no distillation_loss: finetune.distill needs one"
            )
        self._teacher = None if teacher is None else (teacher.eval().requires_grad_(False),)
        self._distill_weight = float(weight)

    def distilled(self, image: torch.Tensor, outputs: Any, loss: torch.Tensor) -> torch.Tensor:
        """``loss`` plus the weighted distillation term when a teacher is set (logged as
        ``train/distill_loss``)."""
        if self._teacher is None:
            return loss
        (teacher,) = self._teacher
        # The Trainer moves and casts the student only (e.g. trainer.precision=bf16-true)
        dtype = next(self.net.parameters()).dtype
        with torch.no_grad():
            target = teacher.to(device=image.device, dtype=dtype)(self._net_input(image))
        distill = self.distillation_loss(outputs, target)
        self.log("train/distill_loss", distill, batch_size=image.shape[0])
        return loss + self._distill_weight * distill

    def distillation_loss(self, outputs: Any, target: Any) -> torch.Tensor:
        """How far the network's raw outputs are from the teacher's, per task."""
        raise NotImplementedError(f"{type(self).__name__} does not support distillation")

    def finish_fit(self, trainer: L.Trainer, datamodule: L.LightningDataModule) -> None:
        """Work after ``trainer.fit`` and before the test (e.g. tuning post-processing)."""

    def tuned_validation(
        self, trainer: L.Trainer, datamodule: L.LightningDataModule
    ) -> dict[str, float]:
        """One validation pass that also tunes any post-processing on it (prune.py scores
        the dense and the pruned model this way); returns the logged val metrics."""
        (metrics,) = trainer.validate(self, datamodule=datamodule, verbose=False)
        return {k: float(v) for k, v in metrics.items()}

    def fixed_validation(
        self, trainer: L.Trainer, datamodule: L.LightningDataModule
    ) -> dict[str, float]:
        """One validation pass with the post-processing as it is, never tuned (prune.py
        scores the int8 model with the fp32 model's settings, as it is deployed)."""
        (metrics,) = trainer.validate(self, datamodule=datamodule, verbose=False)
        return {k: float(v) for k, v in metrics.items()}

    def run_summary(self) -> dict[str, Any]:
        """Task-specific entries for summary.json (e.g. tuned post-processing); none here."""
        return {}

    def _eval_step(self, batch: dict[str, torch.Tensor], stage: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _eval_step()")

    def _eval_epoch_end(self, stage: str) -> None:
        raise NotImplementedError(f"{type(self).__name__} must define _eval_epoch_end()")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._eval_epoch_end("val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._eval_epoch_end("test")

    def configure_optimizers(self) -> dict[str, Any]:
        """Adam; the cosine runs over the run's optimizer steps to zero."""
        hp = self.hparams
        optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if not hp.cosine_schedule:
            return {"optimizer": optimizer}
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

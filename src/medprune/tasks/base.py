"""What every medprune task shares: the network in channels-last, Adam with an optional cosine
decay, and val/test hooks routed to the task's own ``_eval_step`` / ``_eval_epoch_end``."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn


class SegmentationTask(L.LightningModule):
    """Subclasses call ``save_hyperparameters`` (with ``lr``, ``weight_decay``,
    ``cosine_schedule``, ``channels_last``) and then ``self.attach(net)``."""

    def attach(self, net: nn.Module) -> None:
        if not self.hparams.lr > 0:
            raise ValueError(f"task.lr={self.hparams.lr!r}: expected a learning rate > 0")
        # NHWC convolutions: 257 -> 193 ms per training step of the default nuclei model on 2
        # CPU cores (batch 8, 96 px; benchmarks/train_step_time.py). Parameters stay the same
        # objects, so pruning masks and state_dict keys are unaffected.
        self.net = net.to(memory_format=torch.channels_last) if self.hparams.channels_last else net

    def forward(self, image: torch.Tensor) -> Any:
        if self.hparams.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        return self.net(image)

    def finish_fit(self, trainer: L.Trainer, datamodule: L.LightningDataModule) -> None:
        """Work after ``trainer.fit`` and before the test (e.g. tuning post-processing)."""

    def tuned_validation(
        self, trainer: L.Trainer, datamodule: L.LightningDataModule
    ) -> dict[str, float]:
        """One validation pass that also tunes any post-processing on it (prune.py scores
        the dense and the pruned model this way); returns the logged val metrics."""
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

"""The optimizer every task uses: Adam, optionally with a per-step cosine learning-rate decay."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch


def adam_with_cosine(
    module: L.LightningModule, lr: float, weight_decay: float, cosine_schedule: bool
) -> dict[str, Any]:
    """Lightning's ``configure_optimizers`` return value; the cosine runs over the run's
    optimizer steps (``trainer.estimated_stepping_batches``) to zero."""
    optimizer = torch.optim.Adam(module.parameters(), lr=lr, weight_decay=weight_decay)
    if not cosine_schedule:
        return {"optimizer": optimizer}
    total = max(1, int(module.trainer.estimated_stepping_batches))
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=total)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

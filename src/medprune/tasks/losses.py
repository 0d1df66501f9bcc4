"""Losses of the two-branch nuclei model (Mahbod et al. 2022)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor, eps: float = 1.0) -> torch.Tensor:
    """1 - soft Dice over the whole batch; ``eps`` (in pixels) keeps empty batches finite."""
    prob = torch.sigmoid(logits)
    intersection = (prob * target).sum()
    return 1.0 - (2.0 * intersection + eps) / (prob.sum() + target.sum() + eps)


def seg_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Semantic branch: 0.5 * BCE + (1 - Dice), as in the paper."""
    return 0.5 * F.binary_cross_entropy_with_logits(logits, target) + soft_dice_loss(logits, target)

"""Losses of the two-branch nuclei model (Mahbod et al. 2022) and the cardiac model."""

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


def multiclass_dice_loss(
    logits: torch.Tensor, target: torch.Tensor, include_background: bool = False, eps: float = 1.0
) -> torch.Tensor:
    """1 - mean over classes of the soft Dice of softmax probabilities, each class summed over
    the whole batch. ``logits`` (N, C, H, W), ``target`` (N, H, W) class indices. Background is
    left out by default: it covers most pixels and would dominate the mean; ``eps`` (pixels)
    keeps a class absent from prediction and target at Dice 1."""
    if logits.dim() != 4 or target.shape != logits.shape[:1] + logits.shape[2:]:
        raise ValueError(
            f"multiclass_dice_loss: logits (N, C, H, W) and target (N, H, W) expected, got "
            f"{tuple(logits.shape)} and {tuple(target.shape)}"
        )
    prob = torch.softmax(logits, dim=1)
    onehot = F.one_hot(target.long(), logits.shape[1]).permute(0, 3, 1, 2).to(prob.dtype)
    first = 0 if include_background else 1
    prob, onehot = prob[:, first:], onehot[:, first:]
    intersection = (prob * onehot).sum(dim=(0, 2, 3))
    dice = (2.0 * intersection + eps) / (prob.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3)) + eps)
    return 1.0 - dice.mean()


def dice_ce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cardiac segmentation: cross-entropy + (1 - mean foreground soft Dice), equally weighted
    as in nnU-Net: CE trains every pixel, Dice keeps small structures (RV at the apex) from
    being drowned by the background."""
    return F.cross_entropy(logits, target.long()) + multiclass_dice_loss(logits, target)

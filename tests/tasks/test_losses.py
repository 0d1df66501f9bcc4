import math

import pytest
import torch

from medprune.tasks.losses import seg_loss, soft_dice_loss


def test_soft_dice_known_value():
    # probabilities 0.5 everywhere (logit 0) on 4 px, target 2 px foreground:
    # intersection 1, sums 2 + 2; with eps 1: 1 - (2 * 1 + 1) / (4 + 1) = 0.4
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    assert soft_dice_loss(logits, target).item() == pytest.approx(0.4)


def test_seg_loss_is_half_bce_plus_dice_loss():
    logits = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 1.0], [0.0, 0.0]]]])
    # BCE of p = 0.5 is ln 2 for every pixel
    assert seg_loss(logits, target).item() == pytest.approx(0.5 * math.log(2) + 0.4)


def test_confident_correct_prediction_has_near_zero_loss():
    target = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    logits = (target * 2 - 1) * 20
    assert seg_loss(logits, target).item() < 1e-6

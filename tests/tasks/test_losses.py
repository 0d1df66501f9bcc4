import math

import pytest
import torch

from medprune.tasks.losses import dice_ce_loss, multiclass_dice_loss, seg_loss, soft_dice_loss


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


def test_multiclass_dice_known_value():
    # 3 classes, uniform probabilities 1/3 on 4 px; target classes [0, 1, 1, 2].
    # class 1: intersection 2/3, sums 4/3 + 2 -> (4/3 + 1) / (10/3 + 1) = 7/13
    # class 2: intersection 1/3, sums 4/3 + 1 -> (2/3 + 1) / (7/3 + 1) = 1/2
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [1, 2]]])
    expected = 1 - (7 / 13 + 1 / 2) / 2
    assert multiclass_dice_loss(logits, target).item() == pytest.approx(expected)
    # with background: class 0 has intersection 1/3, sums 4/3 + 1 -> 1/2 as well
    expected_bg = 1 - (1 / 2 + 7 / 13 + 1 / 2) / 3
    assert multiclass_dice_loss(logits, target, include_background=True).item() == (
        pytest.approx(expected_bg)
    )


def test_dice_ce_is_cross_entropy_plus_dice_loss_and_near_zero_when_right():
    logits = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([[[0, 1], [1, 2]]])
    assert dice_ce_loss(logits, target).item() == pytest.approx(
        math.log(3) + multiclass_dice_loss(logits, target).item()
    )
    confident = torch.nn.functional.one_hot(target, 3).permute(0, 3, 1, 2).float() * 40
    assert dice_ce_loss(confident, target).item() < 1e-6


def test_multiclass_dice_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match=r"got \(1, 3, 2, 2\) and \(1, 3, 3\)"):
        multiclass_dice_loss(torch.zeros(1, 3, 2, 2), torch.zeros(1, 3, 3, dtype=torch.long))

"""Distillation from a frozen teacher (prune.py fine-tuning): known losses, a frozen teacher
that stays out of the optimizer and the state_dict, and the term added to the training loss."""

import copy
import math

import lightning as L
import pytest
import torch

from medprune.data import CardiacSyntheticDataModule
from medprune.models import TwoBranchUNet, UNet
from medprune.tasks import CardiacSegmentationTask, NucleiSegmentationTask
from medprune.tasks.base import SegmentationTask
from medprune.tasks.losses import dice_ce_loss

# KL((0.75, 0.25) || (0.5, 0.5)) = 0.75 ln 1.5 + 0.25 ln 0.5
KL_75_50 = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)


def cardiac_task(**kwargs) -> CardiacSegmentationTask:
    torch.manual_seed(0)
    return CardiacSegmentationTask(UNet(1, 4, 2, 2), channels_last=False, **kwargs)


def test_cardiac_distillation_loss_is_the_per_pixel_kl_to_the_teacher():
    task = cardiac_task()
    student = torch.zeros(2, 2, 3, 3)  # two classes, equal odds everywhere
    teacher = torch.zeros(2, 2, 3, 3)
    assert task.distillation_loss(student, teacher).item() == pytest.approx(0.0, abs=1e-7)
    teacher[:, 0] = math.log(3.0)  # class 0 at 3:1 odds, probability 0.75
    assert task.distillation_loss(student, teacher).item() == pytest.approx(KL_75_50, rel=1e-6)


def test_nuclei_distillation_loss_adds_the_weighted_distance_error():
    task = NucleiSegmentationTask(TwoBranchUNet(3, 2, 2), dist_loss_weight=0.5)
    seg, distance = torch.zeros(1, 1, 4, 4), torch.zeros(1, 1, 4, 4)
    same = task.distillation_loss((seg, distance), (seg.clone(), distance.clone()))
    assert same.item() == pytest.approx(0.0, abs=1e-7)
    teacher = (torch.full_like(seg, math.log(3.0)), torch.full_like(distance, 2.0))
    # binary KL of 0.75 vs 0.5, plus 0.5 * (2 - 0)^2
    expected = KL_75_50 + 0.5 * 4.0
    assert task.distillation_loss((seg, distance), teacher).item() == pytest.approx(expected)


def test_teacher_is_frozen_and_outside_the_optimizer_and_state_dict():
    task = cardiac_task()
    keys, count = set(task.state_dict()), len(list(task.parameters()))
    teacher = copy.deepcopy(task.net).train()
    task.set_teacher(teacher, 0.5)
    assert set(task.state_dict()) == keys
    assert len(list(task.parameters())) == count
    assert not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="weight=0: expected a distillation weight > 0"):
        task.set_teacher(teacher, 0)

    class NoDistillation(CardiacSegmentationTask):
        distillation_loss = SegmentationTask.distillation_loss

    plain = NoDistillation(UNet(1, 4, 2, 2))
    with pytest.raises(ValueError, match="NoDistillation defines no distillation_loss"):
        plain.set_teacher(teacher)


@pytest.mark.filterwarnings("ignore:You are trying to `self.log\\(\\)`")  # no Trainer here
def test_training_loss_gains_the_weighted_distillation_term():
    task = cardiac_task()
    torch.manual_seed(1)
    teacher = UNet(1, 4, 2, 2).eval()
    image, label = torch.randn(2, 1, 8, 8), torch.randint(0, 4, (2, 8, 8))
    batch = {"image": image, "label": label}
    plain = task.training_step(batch, 0).item()
    task.set_teacher(teacher, 0.5)
    with torch.no_grad():
        logits, target = task(image), teacher(image)
    expected = dice_ce_loss(logits, label) + 0.5 * task.distillation_loss(logits, target)
    assert task.training_step(batch, 0).item() == pytest.approx(expected.item(), rel=1e-5)
    assert task.training_step(batch, 0).item() > plain
    task.set_teacher(None)
    assert task.training_step(batch, 0).item() == pytest.approx(plain, rel=1e-6)


def test_fit_with_a_teacher_trains_the_student_only():
    task = cardiac_task()
    teacher = copy.deepcopy(task.net)
    task.set_teacher(teacher)
    before = {k: v.clone() for k, v in teacher.state_dict().items()}
    student = {k: v.clone() for k, v in task.net.state_dict().items()}
    data = CardiacSyntheticDataModule(size=32, train_slices=8, val_slices=2, test_slices=2)
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(task, datamodule=data)
    # weights and BatchNorm running statistics untouched: eval mode through the fit
    assert all(torch.equal(before[k], v) for k, v in teacher.state_dict().items())
    assert not teacher.training
    assert any(not torch.equal(student[k], v) for k, v in task.net.state_dict().items())
    assert trainer.callback_metrics["train/distill_loss"] > 0


def test_teacher_follows_the_students_precision():
    """trainer.precision=bf16-true casts the student and the batch, not the teacher."""
    task = cardiac_task()
    task.set_teacher(copy.deepcopy(task.net))
    task.net.to(torch.bfloat16)
    image = torch.randn(1, 1, 8, 8, dtype=torch.bfloat16)
    logits = task(image)
    loss = task.distilled(image, logits, torch.zeros((), dtype=torch.bfloat16))
    assert loss.dtype == torch.bfloat16 and torch.isfinite(loss)

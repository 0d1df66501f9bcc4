"""The pruning callback's per-branch targets, schedules, rewinding, density floor, tables."""

import lightning as L
import pytest
import torch
from tiny_lightning import TwoBranchModule, fit

from medprune.pruning import GradualMagnitudePruning, prunable_parameters


def _branch_zeros(module, branch):
    params = {n: w for n, w in prunable_parameters(module.net).items() if n.startswith(branch)}
    zeros = sum(int((w == 0).sum()) for w in params.values())
    return zeros, sum(w.numel() for w in params.values())


def test_per_branch_targets_met_per_branch_global(tmp_path):
    targets = {"seg": 0.75, "dist": 0.5}
    cb = GradualMagnitudePruning("global", targets=targets, frequency=2)
    module, trainer, _ = fit(cb, tmp_path, module=TwoBranchModule())
    for branch, target in targets.items():
        zeros, total = _branch_zeros(module, branch)
        assert zeros == round(target * total)
    step, last = trainer.logger.records[-1]
    assert last["pruning/target_seg"] == 0.75 and last["pruning/target_dist"] == 0.5
    assert last["pruning/sparsity_seg"] == pytest.approx(0.75, abs=0.01)
    assert last["pruning/sparsity_dist"] == pytest.approx(0.5, abs=0.01)
    # the overall target weighs each branch by its size (both branches hold 144 weights)
    assert last["pruning/target_sparsity"] == pytest.approx(0.625)


def test_per_branch_targets_layerwise_and_one_branch_only(tmp_path):
    cb = GradualMagnitudePruning("layerwise", targets={"seg": 0.75, "dist": 0.5}, frequency=2)
    module, _, _ = fit(cb, tmp_path, module=TwoBranchModule())
    for branch, target in {"seg": 0.75, "dist": 0.5}.items():
        for conv in module.net[branch]:
            assert int((conv.weight == 0).sum()) == round(target * conv.weight.numel())
    # only one branch has a target (a None entry has none of its own): the other stays dense
    cb = GradualMagnitudePruning("global", targets={"seg": None, "dist": 0.5}, frequency=2)
    module, _, _ = fit(cb, tmp_path, module=TwoBranchModule())
    assert _branch_zeros(module, "seg")[0] == 0
    zeros, total = _branch_zeros(module, "dist")
    assert zeros == round(0.5 * total)
    with pytest.raises(ValueError, match="pruning.targets.cls: the network has no branch 'cls'"):
        fit(GradualMagnitudePruning(targets={"cls": 0.5}), tmp_path, module=TwoBranchModule())


def test_all_none_targets_follow_target_sparsity():
    cb = GradualMagnitudePruning("global", 0.8, targets={"seg": None, "dist": None})
    assert cb.targets == {} and cb.target_sparsity == 0.8


def test_one_shot_constant_and_iterative_schedules_in_training(tmp_path):
    # one-shot: dense for the first half, the full target at step 10, then fine-tuning
    cb = GradualMagnitudePruning("global", 0.75, schedule="one_shot", begin=0.5)
    _, _, watcher = fit(cb, tmp_path)
    sparsity, n = watcher.sparsity()
    assert max(sparsity[:9]) == 0.0 and sparsity[9] == pytest.approx(0.75, abs=1 / n)
    assert sparsity[-1] == pytest.approx(0.75, abs=1 / n)
    # constant: the target from the first step on (pruned at initialisation)
    cb = GradualMagnitudePruning("global", 0.75, schedule="constant")
    _, _, watcher = fit(cb, tmp_path)
    sparsity, n = watcher.sparsity()
    assert all(s == pytest.approx(0.75, abs=1 / n) for s in sparsity)
    # iterative: 3 rounds at steps 0, 10, 20; each keeps the same fraction of what was left
    cb = GradualMagnitudePruning(
        "global", 0.875, schedule="iterative", rounds=3, begin=0.0, end=1.0
    )
    _, _, watcher = fit(cb, tmp_path)
    sparsity, n = watcher.sparsity()
    assert sparsity[0] == pytest.approx(0.5, abs=1 / n)  # 1 - 0.125 ** (1/3)
    assert sparsity[9] == pytest.approx(0.75, abs=1 / n)
    assert sparsity[19] == pytest.approx(0.875, abs=1 / n)


class WeightsAt(L.Callback):
    def __init__(self, step):
        self.step, self.weights = step, None

    def on_train_start(self, trainer, pl_module):
        self.initial = {k: v.clone() for k, v in pl_module.net.state_dict().items()}

    def on_train_batch_end(self, trainer, pl_module, *args):
        if trainer.global_step == self.step:
            self.weights = {k: v.clone() for k, v in pl_module.net.state_dict().items()}


def test_rewinding_restores_initial_weights_under_the_mask(tmp_path):
    watch = WeightsAt(step=10)
    cb = GradualMagnitudePruning(
        "global", 0.75, schedule="one_shot", begin=0.5, rewind=0.0, min_density=0.1
    )
    module, _, _ = fit(cb, tmp_path, extra=[watch])
    for name, mask in cb.masks.items():
        assert torch.equal(watch.weights[name], watch.initial[name] * mask)
    bias = "4.bias"
    assert torch.equal(watch.weights[bias], watch.initial[bias])  # everything rewinds
    assert not torch.equal(module.net.state_dict()[bias], watch.initial[bias])  # then trains
    # off by default: the pruned step keeps the trained weights
    watch = WeightsAt(step=10)
    cb = GradualMagnitudePruning("global", 0.75, schedule="one_shot", begin=0.5)
    fit(cb, tmp_path, extra=[watch])
    assert not torch.equal(watch.weights["4.bias"], watch.initial["4.bias"])


def test_min_density_floor_in_training(tmp_path):
    cb = GradualMagnitudePruning("global", 0.75, frequency=1, min_density=0.2)
    module, _, _ = fit(cb, tmp_path)
    params = cb.params
    total = sum(w.numel() for w in params.values())
    assert sum(int((w == 0).sum()) for w in params.values()) == round(0.75 * total)
    assert all(int(torch.count_nonzero(w)) >= 0.2 * w.numel() for w in params.values())


def test_layer_table_reaches_table_loggers_at_each_update_and_at_the_end(tmp_path):
    cb = GradualMagnitudePruning("global", 0.5, begin=0.0, end=0.5, frequency=5)
    module, trainer, _ = fit(cb, tmp_path)
    tables = trainer.logger.tables
    # updates at steps 0, 5, 10 and the end-of-training table at step 20
    assert [t[3] for t in tables] == [0, 5, 10, 20]
    key, columns, rows, _ = tables[-1]
    assert key == "pruning/layers" and columns == ["layer", "shape", "params", "sparsity"]
    assert [r[0] for r in rows] == ["0.weight", "4.weight", "6.weight"]
    assert rows[1][:3] == ["4.weight", "16x128", 2048]
    assert rows[1][3] == pytest.approx(float((module.net[4].weight == 0).float().mean()))

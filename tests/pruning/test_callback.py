import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from medprune.pruning import GradualMagnitudePruning, prunable_parameters


class TinyModule(L.LightningModule):
    """A conv + linear regressor; the network lives in ``net`` as in medprune's tasks."""

    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(1, 8, 3, padding=1),
            nn.BatchNorm2d(8),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(8 * 4 * 4, 16),
            nn.ReLU(),
            nn.Linear(16, 1),
        )
        self.nonzero_after_step = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


class ZeroWatcher(L.Callback):
    """After each batch (after pruning's re-zeroing) record which weights are zero."""

    def __init__(self, pruning):
        self.pruning, self.history = pruning, []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.history.append({n: (w == 0).clone() for n, w in self.pruning._params.items()})


class MemoryLogger(Logger):
    """Keeps every ``log_metrics`` call, to see what reached the loggers and at which step."""

    name, version = "memory", 0

    def __init__(self):
        super().__init__()
        self.records = []

    def log_metrics(self, metrics, step=None):
        self.records.append((step, dict(metrics)))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def fit(callback, steps=20, tmp_path=None, **trainer_kw):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(steps * 4, 1, 4, 4), torch.randn(steps * 4, 1))
    module = TinyModule()
    watcher = ZeroWatcher(callback)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[callback, watcher],
        logger=MemoryLogger(),
        log_every_n_steps=50,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
        **trainer_kw,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return module, trainer, watcher


def test_global_reaches_exact_target_and_pruned_stay_zero(tmp_path):
    cb = GradualMagnitudePruning("global", 0.9, begin=0.1, end=0.6, frequency=3)
    module, trainer, watcher = fit(cb, tmp_path=tmp_path)
    params = prunable_parameters(module.net)
    total = sum(w.numel() for w in params.values())
    zeros = sum(int((w == 0).sum()) for w in params.values())
    assert zeros == round(0.9 * total)
    # schedule over 20 steps: begin 2, end 12, updates every 3 steps and at the end
    assert (cb.begin_step, cb.end_step) == (2, 12) and cb.last_update_step == 12
    # biases and BatchNorm are never pruned
    assert all(
        torch.count_nonzero(m.bias) == m.bias.numel()
        for m in module.net
        if hasattr(m, "bias") and m.bias is not None
    )
    # once zero, zero for good: each step's zero set contains the previous one
    for before, after in zip(watcher.history, watcher.history[1:]):
        assert all(torch.all(after[n] | ~before[n]) for n in before)
    assert trainer.callback_metrics["pruning/sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert trainer.callback_metrics["pruning/target_sparsity"] == pytest.approx(0.9)
    # every mask update reaches the logger, although log_every_n_steps=50 > the run's 20 steps
    logged = [(step, m) for step, m in trainer.logger.records if "pruning/sparsity" in m]
    assert [step for step, _ in logged] == [2, 5, 8, 11, 12]
    assert logged[-1][1]["pruning/target_sparsity"] == pytest.approx(0.9)
    assert logged[-1][1]["pruning/sparsity"] == pytest.approx(0.9, abs=1e-3)
    # sparsity per top-level child of the network (the seg/dist branches of the nuclei model)
    assert set(logged[0][1]) == {
        "pruning/target_sparsity",
        "pruning/sparsity",
        "pruning/nonzero_params",
        "pruning/sparsity_0",
        "pruning/sparsity_4",
        "pruning/sparsity_6",
    }


def test_layerwise_prunes_each_layer_to_target(tmp_path):
    cb = GradualMagnitudePruning("layerwise", 0.75, begin=0.0, end=0.5, frequency=2)
    module, _, _ = fit(cb, tmp_path=tmp_path)
    for name, w in prunable_parameters(module.net).items():
        assert int((w == 0).sum()) == round(0.75 * w.numel()), name


def test_sparsity_rises_along_the_cubic_schedule(tmp_path):
    cb = GradualMagnitudePruning("global", 0.8, begin=0.0, end=1.0, frequency=5)
    _, _, watcher = fit(cb, tmp_path=tmp_path)
    n = sum(z.numel() for z in watcher.history[0].values())
    sparsity = [sum(int(z.sum()) for z in h.values()) / n for h in watcher.history]
    # masks change at steps 5, 10, 15, 20: s_t = 0.8 * (1 - (1 - t/20)^3)
    for step, expected in [
        (5, 0.8 * (1 - 0.75**3)),
        (10, 0.7),
        (15, 0.8 * (1 - 0.25**3)),
        (20, 0.8),
    ]:
        assert sparsity[step - 1] == pytest.approx(expected, abs=1.0 / n)


def test_state_round_trip_and_strict_load_into_unpruned_model(tmp_path):
    cb = GradualMagnitudePruning("global", 0.5, frequency=1)
    module, _, _ = fit(cb, tmp_path=tmp_path)
    restored = GradualMagnitudePruning("global", 0.5, frequency=1)
    restored.load_state_dict(cb.state_dict())
    assert restored.last_update_step == cb.last_update_step
    assert all(torch.equal(restored.masks[n], cb.masks[n].cpu()) for n in cb.masks)
    fresh = TinyModule()
    fresh.net.load_state_dict(module.net.state_dict(), strict=True)
    assert not any("_orig" in k or "_mask" in k for k in module.net.state_dict())


def test_include_exclude_selects_layers_and_bad_globs_fail(tmp_path):
    cb = GradualMagnitudePruning("global", 0.5, include=["4.*"], frequency=1)
    module, _, _ = fit(cb, tmp_path=tmp_path)
    assert torch.count_nonzero(module.net[0].weight) == module.net[0].weight.numel()
    assert int((module.net[4].weight == 0).sum()) == round(0.5 * module.net[4].weight.numel())
    with pytest.raises(ValueError, match=r"pruning.include pattern 'nothing\*' matches no"):
        fit(GradualMagnitudePruning("global", 0.5, include=["nothing*"]), tmp_path=tmp_path)
    with pytest.raises(ValueError, match="pruning selects no weights"):
        fit(GradualMagnitudePruning("global", 0.5, exclude=["*"]), tmp_path=tmp_path)


def test_adam_moments_of_pruned_weights_are_zero_and_stay_zero(tmp_path):
    cb = GradualMagnitudePruning("global", 0.8, begin=0.1, end=0.5, frequency=2)
    module, trainer, _ = fit(cb, tmp_path=tmp_path)
    (optimizer,) = trainer.optimizers
    kept_moving = 0
    for name, weight in cb.params.items():
        pruned = ~cb.masks[name]
        state = optimizer.state[weight]
        # 10 more Adam steps after the last update: masked gradients kept them at zero
        assert state["exp_avg"][pruned].eq(0).all() and state["exp_avg_sq"][pruned].eq(0).all()
        kept_moving += int(state["exp_avg_sq"][~pruned].ne(0).sum())
    assert kept_moving == sum(int(m.sum()) for m in cb.masks.values())


class TwoBranchModule(TinyModule):
    def __init__(self):
        super().__init__()
        self.net = nn.ModuleDict(
            {
                "seg": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 1, 3, padding=1)),
                "dist": nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.Conv2d(8, 1, 3, padding=1)),
            }
        )

    def training_step(self, batch, batch_idx):
        x, y = batch
        out = self.net["seg"](x).mean((1, 2, 3)) + self.net["dist"](x).mean((1, 2, 3))
        return nn.functional.mse_loss(out, y.squeeze(1))


def _branch_sparsity(module, branch):
    params = {n: w for n, w in prunable_parameters(module.net).items() if n.startswith(branch)}
    zeros = sum(int((w == 0).sum()) for w in params.values())
    return zeros, sum(w.numel() for w in params.values())


@pytest.mark.parametrize("scope", ["global", "layerwise"])
def test_per_branch_targets_met_per_branch(tmp_path, monkeypatch, scope):
    monkeypatch.setattr(__import__(__name__), "TinyModule", TinyModule, raising=False)
    targets = {"seg": 0.75, "dist": 0.5}
    cb = GradualMagnitudePruning(scope, targets=targets, frequency=2)
    module = _fit_module(TwoBranchModule(), cb, tmp_path)
    for branch, target in targets.items():
        zeros, total = _branch_sparsity(module, branch)
        assert zeros == round(target * total) if scope == "global" else zeros >= 0
        if scope == "layerwise":
            for n, w in module.net[branch].named_parameters():
                if n.endswith("weight"):
                    assert int((w == 0).sum()) == round(target * w.numel())
    logged = trainer_metrics = cb.log_values()
    assert trainer_metrics["pruning/target_seg"] == 0.75
    assert logged["pruning/sparsity_seg"] == pytest.approx(0.75, abs=0.01)
    # only one branch: the other stays dense
    cb = GradualMagnitudePruning("global", targets={"dist": 0.5}, frequency=2)
    module = _fit_module(TwoBranchModule(), cb, tmp_path)
    assert _branch_sparsity(module, "seg")[0] == 0
    zeros, total = _branch_sparsity(module, "dist")
    assert zeros == round(0.5 * total)
    with pytest.raises(ValueError, match="pruning.targets.cls: the network has no branch 'cls'"):
        _fit_module(TwoBranchModule(), GradualMagnitudePruning(targets={"cls": 0.5}), tmp_path)


def _fit_module(module, callback, tmp_path, steps=20, extra=()):
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(steps * 4, 1, 4, 4), torch.randn(steps * 4, 1))
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[callback, *extra],
        logger=MemoryLogger(),
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return module


def _zero_history(cb, watcher):
    n = sum(z.numel() for z in watcher.history[0].values())
    return [sum(int(z.sum()) for z in h.values()) / n for h in watcher.history], n


def test_one_shot_constant_and_iterative_schedules_in_training(tmp_path):
    # one-shot: dense for the first half, the full target at step 10, then fine-tuning
    cb = GradualMagnitudePruning("global", 0.75, schedule="one_shot", begin=0.5)
    _, _, watcher = fit(cb, tmp_path=tmp_path)
    sparsity, n = _zero_history(cb, watcher)
    assert max(sparsity[:9]) == 0.0 and sparsity[9] == pytest.approx(0.75, abs=1 / n)
    assert sparsity[-1] == pytest.approx(0.75, abs=1 / n)
    # constant: the target from the first step on (pruned at initialisation)
    cb = GradualMagnitudePruning("global", 0.75, schedule="constant")
    _, _, watcher = fit(cb, tmp_path=tmp_path)
    sparsity, n = _zero_history(cb, watcher)
    assert all(s == pytest.approx(0.75, abs=1 / n) for s in sparsity)
    # iterative: 3 rounds at steps 0, 10, 20; each keeps the same fraction of what was left
    cb = GradualMagnitudePruning(
        "global", 0.875, schedule="iterative", rounds=3, begin=0.0, end=1.0
    )
    _, _, watcher = fit(cb, tmp_path=tmp_path)
    sparsity, n = _zero_history(cb, watcher)
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
    module = _fit_module(TinyModule(), cb, tmp_path, extra=[watch])
    for name, mask in cb.masks.items():
        assert torch.equal(watch.weights[name], watch.initial[name] * mask)
    bias = "4.bias"
    assert torch.equal(watch.weights[bias], watch.initial[bias])  # everything rewinds
    assert not torch.equal(module.net.state_dict()[bias], watch.initial[bias])  # then trains
    # off by default: the pruned step keeps the trained weights
    watch = WeightsAt(step=10)
    cb = GradualMagnitudePruning("global", 0.75, schedule="one_shot", begin=0.5)
    _fit_module(TinyModule(), cb, tmp_path, extra=[watch])
    assert not torch.equal(watch.weights["4.bias"], watch.initial["4.bias"])


def test_min_density_floor_in_training(tmp_path):
    cb = GradualMagnitudePruning("global", 0.75, frequency=1, min_density=0.2)
    module, _, _ = fit(cb, tmp_path=tmp_path)
    params = cb.params
    total = sum(w.numel() for w in params.values())
    assert sum(int((w == 0).sum()) for w in params.values()) == round(0.75 * total)
    assert all(int(torch.count_nonzero(w)) >= 0.2 * w.numel() for w in params.values())


def test_layer_table_reaches_table_loggers_at_each_update_and_at_the_end(tmp_path):
    class TableLogger(MemoryLogger):
        def __init__(self):
            super().__init__()
            self.tables = []

        def log_table(self, key, columns=None, data=None, step=None):
            self.tables.append((key, columns, data, step))

    cb = GradualMagnitudePruning("global", 0.5, begin=0.0, end=0.5, frequency=5)
    logger = TableLogger()
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(80, 1, 4, 4), torch.randn(80, 1))
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[cb],
        logger=logger,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module = TinyModule()
    trainer.fit(module, DataLoader(data, batch_size=4))
    # updates at steps 0, 5, 10 and the end-of-training table at step 20
    assert [t[3] for t in logger.tables] == [0, 5, 10, 20]
    key, columns, rows, _ = logger.tables[-1]
    assert key == "pruning/layers" and columns == ["layer", "shape", "params", "sparsity"]
    assert rows[1][:3] == ["4.weight", "16x128", 2048]
    assert rows[1][3] == pytest.approx(float((module.net[4].weight == 0).float().mean()))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_sparsity": 1.0}, r"target_sparsity=1.0: expected a value in \[0, 1\)"),
        ({"scope": "random"}, "scope='random': expected one of global, layerwise"),
        (
            {"begin": 0.5, "end": 0.4},
            r"end=0.4: expected a fraction of the run in \(begin=0.5, 1\]",
        ),
        ({"frequency": 0}, "frequency=0"),
        ({"initial_sparsity": 0.6, "target_sparsity": 0.5}, "initial_sparsity=0.6 must be <="),
    ],
)
def test_constructor_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradualMagnitudePruning(**kwargs)

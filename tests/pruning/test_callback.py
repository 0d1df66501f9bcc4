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


def test_include_exclude_selects_layers_and_empty_selection_fails(tmp_path):
    cb = GradualMagnitudePruning("global", 0.5, include=["4.*"], frequency=1)
    module, _, _ = fit(cb, tmp_path=tmp_path)
    assert torch.count_nonzero(module.net[0].weight) == module.net[0].weight.numel()
    assert int((module.net[4].weight == 0).sum()) == round(0.5 * module.net[4].weight.numel())
    with pytest.raises(ValueError, match=r"no prunable weights match include=\['nothing\*'\]"):
        fit(GradualMagnitudePruning("global", 0.5, include=["nothing*"]), tmp_path=tmp_path)


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

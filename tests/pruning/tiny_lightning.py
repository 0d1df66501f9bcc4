"""Tiny Lightning modules, loggers and a fit helper shared by the pruning-callback tests."""

import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from torch import nn
from torch.utils.data import DataLoader, TensorDataset


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

    def training_step(self, batch, batch_idx):
        x, y = batch
        return nn.functional.mse_loss(self.net(x), y)

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=0.05)


class TwoBranchModule(TinyModule):
    """Two top-level children, ``seg`` and ``dist``, like the nuclei model's branches."""

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


class ZeroWatcher(L.Callback):
    """After each batch (after pruning's re-zeroing) record which weights are zero."""

    def __init__(self, pruning):
        self.pruning, self.history = pruning, []

    def on_train_batch_end(self, trainer, pl_module, *args):
        self.history.append({n: (w == 0).clone() for n, w in self.pruning.params.items()})

    def sparsity(self):
        """Fraction of the selected weights that are zero after each step, and their count."""
        n = sum(z.numel() for z in self.history[0].values())
        return [sum(int(z.sum()) for z in h.values()) / n for h in self.history], n


class MemoryLogger(Logger):
    """Keeps every ``log_metrics`` and ``log_table`` call, to see what reached the loggers."""

    name, version = "memory", 0

    def __init__(self):
        super().__init__()
        self.records, self.tables = [], []

    def log_metrics(self, metrics, step=None):
        self.records.append((step, dict(metrics)))

    def log_table(self, key, columns=None, data=None, step=None):
        self.tables.append((key, columns, data, step))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def fit(callback, tmp_path, module=None, steps=20, extra=()):
    """One epoch of ``steps`` optimizer steps (batch 4) with ``callback`` first."""
    torch.manual_seed(0)
    data = TensorDataset(torch.randn(steps * 4, 1, 4, 4), torch.randn(steps * 4, 1))
    module = module or TinyModule()
    watcher = ZeroWatcher(callback)
    trainer = L.Trainer(
        max_epochs=1,
        callbacks=[callback, watcher, *extra],
        logger=MemoryLogger(),
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(module, DataLoader(data, batch_size=4))
    return module, trainer, watcher

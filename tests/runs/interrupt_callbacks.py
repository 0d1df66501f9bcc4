"""Callbacks the resume tests add to a run (``+callbacks.<name>._target_=...``) to stop it
at a known point: the checkpoint of the epoch before is complete on disk by then."""

from __future__ import annotations

import time
from pathlib import Path

import lightning as L


class PauseAtEpoch(L.Callback):
    """At the start of ``epoch``, write ``marker`` and sleep: the test kills the process."""

    def __init__(self, epoch: int, marker: str) -> None:
        self.epoch, self.marker = epoch, Path(marker)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.current_epoch == self.epoch:
            self.marker.write_text(str(trainer.global_step))
            time.sleep(600)


class StopAfterSteps(L.Callback):
    """Asks the Trainer to stop after ``steps`` optimizer steps (as early stopping would)."""

    def __init__(self, steps: int) -> None:
        self.steps = steps

    def on_train_batch_end(self, trainer: L.Trainer, *args) -> None:
        if trainer.global_step >= self.steps:
            trainer.should_stop = True

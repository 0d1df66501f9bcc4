"""``GradualMagnitudePruning``: unstructured magnitude pruning during training (Zhu & Gupta 2017).

The callback sees only a module: it picks conv/linear weights by name glob, recomputes masks
with ``magnitude_masks`` on a cubic schedule over optimizer steps, and multiplies the weights
by their masks after every optimizer step so pruned weights are exactly zero. Masks and the
schedule position are the callback's own state, saved by Lightning in every checkpoint; the
model's ``state_dict`` keeps plain parameter names, so a pruned checkpoint loads into an
unpruned model with ``strict=True``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch import nn

from medprune.pruning.masks import (
    SCOPES,
    check_sparsity,
    magnitude_masks,
    prunable_parameters,
    sparsity_stats,
)
from medprune.pruning.schedule import cubic_sparsity, update_steps


class GradualMagnitudePruning(L.Callback):
    """Prune ``pl_module.<module>`` from ``initial_sparsity`` to ``target_sparsity``.

    Args:
        scope: ``"global"`` (one threshold over all prunable weights, network-wide) or
            ``"layerwise"`` (every prunable layer to the same sparsity).
        target_sparsity: final fraction of prunable weights that are zero, in [0, 1).
        initial_sparsity: fraction pruned at the first mask update.
        begin, end: schedule start and end as fractions of the run's optimizer steps
            (``trainer.estimated_stepping_batches``); the tail after ``end`` fine-tunes at
            the final sparsity.
        frequency: optimizer steps between mask updates (Zhu & Gupta's dt).
        include, exclude: globs over parameter names such as ``seg.encoder.0.0.weight``.
        module: attribute of the LightningModule holding the network ("" = the module itself).
    """

    def __init__(
        self,
        scope: str = "global",
        target_sparsity: float = 0.9,
        initial_sparsity: float = 0.0,
        begin: float = 0.1,
        end: float = 0.7,
        frequency: int = 10,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        module: str = "net",
    ) -> None:
        if scope not in SCOPES:
            raise ValueError(
                f"GradualMagnitudePruning scope={scope!r}: expected one of {', '.join(SCOPES)}"
            )
        self.target_sparsity = check_sparsity(target_sparsity, "target_sparsity")
        self.initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
        if self.initial_sparsity > self.target_sparsity:
            raise ValueError(
                f"initial_sparsity={initial_sparsity} must be <= target_sparsity={target_sparsity}"
            )
        if not 0.0 <= begin < 1.0:
            raise ValueError(f"begin={begin!r}: expected a fraction of the run in [0, 1)")
        if not begin < end <= 1.0:
            raise ValueError(f"end={end!r}: expected a fraction of the run in (begin={begin}, 1]")
        if isinstance(frequency, bool) or not isinstance(frequency, int) or frequency < 1:
            raise ValueError(f"frequency={frequency!r}: expected an integer number of steps >= 1")
        self.scope = scope
        self.begin, self.end, self.frequency = float(begin), float(end), frequency
        self.include, self.exclude = tuple(include), tuple(exclude)
        self.module = module
        self.masks: dict[str, torch.Tensor] = {}
        self.last_update_step = -1
        self.current_target = 0.0
        self.begin_step = self.end_step = None
        self._params: dict[str, nn.Parameter] = {}

    # -- selection ---------------------------------------------------------------------------
    def network(self, pl_module: nn.Module) -> nn.Module:
        return getattr(pl_module, self.module) if self.module else pl_module

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self._params = prunable_parameters(self.network(pl_module), self.include, self.exclude)
        if not self._params:
            raise ValueError(
                f"GradualMagnitudePruning: no prunable weights match include={list(self.include)} "
                f"exclude={list(self.exclude)} (conv and linear weights are prunable)"
            )

    # -- schedule ----------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.begin_step is None:  # a resumed run keeps the schedule it started with
            total = trainer.estimated_stepping_batches
            if total == float("inf"):
                raise ValueError(
                    "GradualMagnitudePruning needs a finite run to place its schedule: "
                    "set trainer.max_epochs or trainer.max_steps"
                )
            total = int(total)
            self.begin_step = round(self.begin * total)
            self.end_step = max(self.begin_step + 1, round(self.end * total))
        self._updates = update_steps(self.begin_step, self.end_step, self.frequency)
        self.apply_masks()

    def target_at(self, step: int) -> float:
        return cubic_sparsity(
            step,
            initial=self.initial_sparsity,
            final=self.target_sparsity,
            begin_step=self.begin_step,
            end_step=self.end_step,
        )

    def on_train_batch_end(
        self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any
    ) -> None:
        step = trainer.global_step  # optimizer steps taken so far
        due = [s for s in self._updates if s <= step]
        if due and due[-1] > self.last_update_step:
            self.update_masks(due[-1])
            self.apply_masks()
            self.log_to(trainer)
        else:
            self.apply_masks()

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.last_update_step < self.end_step:
            warnings.warn(
                f"training stopped at step {trainer.global_step}, before the pruning schedule "
                f"ended (step {self.end_step}): sparsity target {self.current_target:.4f} of "
                f"{self.target_sparsity:.4f} reached",
                stacklevel=1,
            )

    # -- masks -------------------------------------------------------------------------------
    def update_masks(self, step: int) -> None:
        self.current_target = self.target_at(step)
        self.masks = magnitude_masks(self._masked_weights(), self.current_target, self.scope)
        self.last_update_step = step

    def _masked_weights(self) -> dict[str, torch.Tensor]:
        """The optimizer step just moved pruned weights off zero: rank them as zero again, so
        pruned weights stay pruned and masks only grow sparser."""
        if not self.masks:
            return dict(self._params)
        return {n: w * self.masks[n].to(w.device) for n, w in self._params.items()}

    @torch.no_grad()
    def apply_masks(self) -> None:
        for name, mask in self.masks.items():
            weight = self._params[name]
            if mask.device != weight.device:
                self.masks[name] = mask = mask.to(weight.device)
            weight.mul_(mask)

    def log_to(self, trainer: L.Trainer) -> None:
        """Straight to the loggers: every mask update is recorded, whatever
        ``log_every_n_steps`` says (``self.log`` would drop updates between logging steps)."""
        values = self.log_values()
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})

    def log_values(self) -> dict[str, float]:
        stats = sparsity_stats(self._params)
        values = {
            "pruning/target_sparsity": self.current_target,
            "pruning/sparsity": stats["sparsity"],
            "pruning/nonzero_params": float(stats["nonzero"]),
        }
        for branch in sorted({name.split(".")[0] for name in self._params}):
            branch_params = {n: w for n, w in self._params.items() if n.split(".")[0] == branch}
            if len(branch_params) < len(self._params):
                values[f"pruning/sparsity_{branch}"] = sparsity_stats(branch_params)["sparsity"]
        return values

    # -- checkpoint state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "masks": {n: m.cpu() for n, m in self.masks.items()},
            "last_update_step": self.last_update_step,
            "current_target": self.current_target,
            "begin_step": self.begin_step,
            "end_step": self.end_step,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.masks = dict(state_dict["masks"])
        self.last_update_step = state_dict["last_update_step"]
        self.current_target = state_dict["current_target"]
        self.begin_step, self.end_step = state_dict["begin_step"], state_dict["end_step"]

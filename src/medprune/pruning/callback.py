"""``GradualMagnitudePruning``: unstructured magnitude pruning during training.

The callback sees only a module: it picks conv/linear weights by name glob, recomputes masks
with ``magnitude_masks`` on a schedule over optimizer steps, masks gradients before every
optimizer step, zeroes the optimizer's moments of pruned weights at every mask update and
multiplies weights by their masks after every step, so pruned weights are exactly zero and
stay zero. Masks, the schedule position and the rewind snapshot are the callback's own state,
saved by Lightning in every checkpoint; the model's ``state_dict`` keeps plain parameter
names, so a pruned checkpoint loads into an unpruned model with ``strict=True``.

Resuming (``ckpt_path=``) places the schedule on the resumed run's length and continues it;
targets never go down and pruned weights rank below all others, so nothing regrows and the
run still ends at exactly its target.
"""

from __future__ import annotations

import bisect
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from medprune.common.checks import check_choice, check_int, check_range
from medprune.pruning import sparsity_log, zeroing
from medprune.pruning.masks import SCOPES, check_density_floor, check_sparsity, magnitude_masks
from medprune.pruning.schedule import REWIND_SCHEDULES, SCHEDULES, schedule_steps, sparsity_at
from medprune.pruning.selection import describe_selection, select_groups


class GradualMagnitudePruning(L.Callback):
    """Prune ``pl_module.<module>`` to ``target_sparsity`` (or per-branch ``targets``).

    Args:
        scope: ``"global"`` (one threshold per group, network-wide) or ``"layerwise"``
            (every prunable layer of a group to the group's sparsity).
        target_sparsity: final fraction of the selected weights that are zero, in [0, 1).
        targets: per-branch targets ``{"seg": 0.9375, "dist": 0.95}`` replacing
            ``target_sparsity``; branches without a target stay dense. A ``None`` entry is a
            branch with no target of its own (the task config lists its branches that way so
            ``pruning.targets.seg=...`` needs no ``+``); all ``None`` = ``target_sparsity``.
        schedule: one of ``cubic``, ``linear``, ``constant``, ``one_shot``, ``iterative``
            (see ``medprune.pruning.schedule``).
        initial_sparsity: sparsity of the first update of the cubic/linear/iterative ramp.
        begin, end: schedule window as fractions of the run's optimizer steps; the tail after
            ``end`` fine-tunes at the final sparsity.
        frequency: optimizer steps between mask updates (Zhu & Gupta's dt).
        rounds: prune-then-fine-tune rounds of the ``iterative`` schedule.
        rewind: ``None`` (default) or the fraction of the run whose weights are restored at
            every mask update of the ``iterative`` or ``one_shot`` schedule (lottery-ticket
            rewinding; 0.0 = the initialisation). The learning-rate schedule is not rewound.
        min_density: fraction of every layer's weights that is never pruned.
        include, exclude: globs over parameter names such as ``seg.encoder.0.0.weight``.
        module: attribute of the LightningModule holding the network ("" = the module itself).
    """

    def __init__(
        self,
        scope: str = "global",
        target_sparsity: float = 0.9,
        targets: Mapping[str, float | None] | None = None,
        schedule: str = "cubic",
        initial_sparsity: float = 0.0,
        begin: float = 0.1,
        end: float = 0.7,
        frequency: int = 10,
        rounds: int = 3,
        rewind: float | None = None,
        min_density: float = 0.01,
        include: Sequence[str] = ("*",),
        exclude: Sequence[str] = (),
        module: str = "net",
    ) -> None:
        check_choice(scope, "scope", SCOPES)
        check_choice(schedule, "schedule", SCHEDULES)
        self.target_sparsity = check_sparsity(target_sparsity, "target_sparsity")
        self.targets = {
            k: check_sparsity(v, f"targets.{k}")
            for k, v in (targets or {}).items()
            if v is not None
        }
        self.initial_sparsity = check_sparsity(initial_sparsity, "initial_sparsity")
        lowest_key, lowest = min(
            [(f"targets.{k}", v) for k, v in self.targets.items()]
            or [("target_sparsity", self.target_sparsity)],
            key=lambda kv: kv[1],
        )
        if self.initial_sparsity > lowest:
            raise ValueError(
                f"initial_sparsity={initial_sparsity}: expected <= {lowest_key}={lowest}"
            )
        check_range(begin, "begin", what="a fraction of the run's steps")
        check_range(end, "end", high_open=False, what="a fraction of the run's steps")
        if end <= begin:
            raise ValueError(
                f"end={end}: the schedule must end after it begins (begin={begin}); both are "
                "fractions of the run's steps"
            )
        check_int(frequency, "frequency")  # optimizer steps between mask updates
        check_int(rounds, "rounds")
        if rewind is not None:
            if check_range(rewind, "rewind", what="a fraction of the run's steps") >= begin:
                raise ValueError(
                    f"rewind={rewind!r}: expected a fraction of the run's steps "
                    f"in [0, begin={begin})"
                )
            if schedule not in REWIND_SCHEDULES:
                raise ValueError(
                    f"rewind={rewind} needs schedule={' or '.join(REWIND_SCHEDULES)} (few large "
                    f"pruning steps), not {schedule!r}"
                )
        check_range(min_density, "min_density", high_open=False, what="a fraction")
        self.scope, self.schedule = scope, schedule
        self.begin, self.end = float(begin), float(end)
        self.frequency, self.rounds = frequency, rounds
        self.rewind, self.min_density = rewind, float(min_density)
        self.include, self.exclude, self.module = tuple(include), tuple(exclude), module
        self.masks: dict[str, torch.Tensor] = {}  # bool, True = kept; saved in checkpoints
        self._multipliers: dict[str, torch.Tensor] = {}  # the same as 0/1 in the weights' layout
        self.current_targets: dict[str, float] = {}
        self.last_update_step = -1
        self.begin_step = self.end_step = self.rewind_step = None
        self.rewind_state: dict[str, torch.Tensor] | None = None
        self.rank_mask_digests: list[str] = []
        self._groups: dict[str, tuple[float, dict[str, nn.Parameter]]] = {}
        self._params: dict[str, nn.Parameter] = {}
        self._steps: list[int] = []

    # -- selection ---------------------------------------------------------------------------
    def network(self, pl_module: nn.Module) -> nn.Module:
        return getattr(pl_module, self.module) if self.module else pl_module

    def resolve(self, net: nn.Module) -> str:
        """Select layers and check the targets are reachable; returns the printable list.
        Called by ``setup`` and, before any data is made, by ``medprune.runs.training.train``."""
        self._groups = select_groups(
            net, self.include, self.exclude, self.targets, self.target_sparsity
        )
        for group, (target, params) in self._groups.items():
            try:
                check_density_floor(params, target, self.scope, self.min_density)
            except ValueError as err:
                raise ValueError(f"pruning.min_density, group {group!r}: {err}") from None
        self._params = {n: w for _, params in self._groups.values() for n, w in params.items()}
        return describe_selection(net, self._groups)

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        listing = self.resolve(self.network(pl_module))
        if stage == "fit":
            rank_zero_info(listing)

    @property
    def params(self) -> dict[str, nn.Parameter]:
        return self._params

    @property
    def groups(self) -> dict[str, tuple[float, dict[str, nn.Parameter]]]:
        return self._groups

    @property
    def target(self) -> float:
        """Final sparsity over all selected weights."""
        return self._weighted({g: t for g, (t, _) in self._groups.items()})

    def _weighted(self, group_values: Mapping[str, float]) -> float:
        """Mean over groups weighted by their weight counts (exact for a single group)."""
        if len(group_values) == 1:
            return float(next(iter(group_values.values())))
        sizes = {g: sum(w.numel() for w in p.values()) for g, (_, p) in self._groups.items()}
        return sum(group_values[g] * sizes[g] for g in sizes) / sum(sizes.values())

    # -- schedule ----------------------------------------------------------------------------
    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.masks:
            zeroing.check_restored(self.masks, self._params, self.min_density)
        total = trainer.estimated_stepping_batches
        if total == float("inf"):
            raise ValueError(
                "GradualMagnitudePruning needs a finite run to place its schedule: "
                "set trainer.max_epochs or trainer.max_steps"
            )
        total = int(total)
        # Placed on this run's length; a resumed run continues from its restored targets.
        self.begin_step = round(self.begin * total)
        self.end_step = max(self.begin_step + 1, round(self.end * total))
        if self.rewind is not None and self.rewind_step is None:
            self.rewind_step = round(self.rewind * total)
        self._steps = schedule_steps(
            self.schedule, self.begin_step, self.end_step, self.frequency, self.rounds
        )
        if self.schedule == "iterative" and len(self._steps) < self.rounds:
            raise ValueError(
                f"pruning.rounds={self.rounds}: the schedule window of this run spans only "
                f"{self.end_step - self.begin_step} optimizer steps (steps {self.begin_step} to "
                f"{self.end_step}), too few for {self.rounds} distinct rounds"
            )
        self._multipliers = zeroing.multipliers(self._params, self.masks)
        zeroing.apply_masks(self._params, self._multipliers)
        self._step_end(trainer, pl_module)

    def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
        zeroing.mask_gradients(self._params, self._multipliers)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        self._step_end(trainer, pl_module)

    def _step_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        step = trainer.global_step  # optimizer steps taken so far
        if self.rewind_step == step and self.rewind_state is None:
            net = self.network(pl_module)
            self.rewind_state = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
        due = bisect.bisect_right(self._steps, step)  # scheduled updates at or before step
        if due and self._steps[due - 1] > self.last_update_step:
            self.update_masks(self._steps[due - 1], trainer, pl_module)
        else:
            zeroing.apply_masks(self._params, self._multipliers)

    def targets_at(self, step: int) -> dict[str, float]:
        """Each group's target at ``step``; never below a target already reached."""
        return {
            group: max(
                self.current_targets.get(group, 0.0),
                sparsity_at(
                    self.schedule,
                    step,
                    initial=self.initial_sparsity,
                    final=target,
                    begin_step=self.begin_step,
                    end_step=self.end_step,
                    rounds=self.rounds,
                ),
            )
            for group, (target, _) in self._groups.items()
        }

    # -- masks -------------------------------------------------------------------------------
    def update_masks(self, step: int, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        targets = self.targets_at(step)
        masks = {}
        for group, (_, params) in self._groups.items():
            masks.update(
                magnitude_masks(params, targets[group], self.scope, self.masks, self.min_density)
            )
        # Ranks hold equal weights, but ties could still be broken differently: rank 0 decides.
        # On the CPU, so that unpickling does not put every rank's masks on rank 0's GPU.
        self.masks = trainer.strategy.broadcast({n: m.cpu() for n, m in masks.items()}, src=0)
        raised = any(t > self.current_targets.get(g, 0.0) for g, t in targets.items())
        self.current_targets, self.last_update_step = targets, step
        if self.rewind_state is not None and raised:  # a new mask, not a repeat of the last
            net = self.network(pl_module)
            net.load_state_dict(self.rewind_state)
            zeroing.reset_state(trainer.optimizers, net.parameters())
        self._multipliers = zeroing.multipliers(self._params, self.masks)
        zeroing.apply_masks(self._params, self._multipliers)
        zeroing.zero_pruned_state(trainer.optimizers, self._params, self._multipliers)
        self.log_to(trainer)

    def log_to(self, trainer: L.Trainer) -> None:
        """Straight to the loggers: every mask update is recorded, whatever
        ``log_every_n_steps`` says (``self.log`` would drop updates between logging steps).
        Lightning's loggers write on rank 0 only, so DDP runs log once."""
        values = self.log_values()
        for logger in trainer.loggers:
            logger.log_metrics(values, step=trainer.global_step)
        trainer.callback_metrics.update({k: torch.tensor(v) for k, v in values.items()})
        sparsity_log.log_layer_table(trainer.loggers, self._params, trainer.global_step)

    def log_values(self) -> dict[str, float]:
        groups = {g: self.current_targets.get(g, 0.0) for g in self._groups}
        return sparsity_log.log_scalars(self._params, self._weighted(groups), groups)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        sparsity_log.log_layer_table(trainer.loggers, self._params, trainer.global_step)
        # From each rank's own weights (after the broadcast the masks agree by construction).
        self.rank_mask_digests = sparsity_log.gather_zero_digests(self._params)
        if not self.reached:
            warnings.warn(self.shortfall(trainer.global_step), stacklevel=1)

    @property
    def reached(self) -> bool:
        """Whether every group's masks are at its final target (after a run, or a resume of
        a run that got there)."""
        return all(
            self.current_targets.get(group, 0.0) >= target - 1e-12
            for group, (target, _) in self._groups.items()
        )

    def shortfall(self, step: int) -> str:
        """What a run that stopped at optimizer step ``step`` short of its target reached."""
        last = f"its last update is at step {self._steps[-1]}" if self._steps else "never placed"
        reached = {g: round(self.current_targets.get(g, 0.0), 6) for g in self._groups}
        wanted = {g: t for g, (t, _) in self._groups.items()}
        return (
            f"pruning stopped short of its target: sparsity {reached} reached of {wanted} "
            f"after {step} optimizer steps (the schedule {last})"
        )

    # -- checkpoint state --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "scope": self.scope,  # what the masks were made for: checked on resume
            "targets": {g: t for g, (t, _) in self._groups.items()},
            "masks": {n: m.cpu() for n, m in self.masks.items()},
            "current_targets": dict(self.current_targets),
            "last_update_step": self.last_update_step,
            "rewind_step": self.rewind_step,
            "rewind_state": self.rewind_state,
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if "current_targets" not in state_dict:
            raise ValueError(
                "the checkpoint's pruning state was written by an older medprune (no "
                "'current_targets'); resume it with that version or start a new run"
            )
        self.check_resumable(state_dict)
        self.masks = dict(state_dict["masks"])
        self.current_targets = dict(state_dict["current_targets"])
        self.last_update_step = state_dict["last_update_step"]
        self.rewind_step = state_dict["rewind_step"]
        self.rewind_state = state_dict["rewind_state"]

    def check_resumable(
        self, state_dict: Mapping[str, Any], source: str = "the checkpoint"
    ) -> None:
        """Resuming must not undo pruning: same scope, every pruned group still selected and
        no group's target below the sparsity ``source`` already reached (pruned weights would
        regrow). The group checks need ``resolve`` first (Lightning calls ``setup`` before it
        restores callback state; ``runs.training.train`` checks before any data is made)."""
        scope = state_dict.get("scope")
        reached = dict(state_dict.get("current_targets", {}))
        holds = describe_state(state_dict)
        if scope is not None and scope != self.scope:
            raise ValueError(
                f"{source} holds {holds}; this run has pruning.scope={self.scope}: resume "
                f"with pruning={scope}, or start a new run (no ckpt_path) to prune differently"
            )
        for group, value in reached.items() if self._groups else ():
            if value > 0 and group not in self._groups:
                raise ValueError(
                    f"{source} holds {holds}, but this run prunes groups "
                    f"{sorted(self._groups)}: resume with the targets/include of that run"
                )
            target = self._groups[group][0] if group in self._groups else 0.0
            if target < value - 1e-12:
                raise ValueError(
                    f"{source} holds {holds}; this run's target for {group!r} is {target}, "
                    f"below what is pruned already (pruned weights would regrow): resume with "
                    f"a target >= {value:g}"
                )


def describe_state(state_dict: Mapping[str, Any]) -> str:
    """The pruning state of a checkpoint in words, e.g. ``global pruning at sparsity
    {'all': 0.5} (target {'all': 0.9375}), last mask update at step 6``."""
    scope = state_dict.get("scope", "unknown-scope")
    reached = {g: round(v, 6) for g, v in state_dict.get("current_targets", {}).items()}
    targets = state_dict.get("targets")
    target = f" (target {targets})" if targets else ""
    step = state_dict.get("last_update_step", -1)
    update = f"last mask update at step {step}" if step >= 0 else "no mask update yet"
    return f"{scope} pruning state at sparsity {reached}{target}, {update}"

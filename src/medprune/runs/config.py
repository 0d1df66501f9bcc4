"""Structured-config schemas (registered in Hydra's ConfigStore) and run-time validation.

The pruning group's YAML files extend ``base_pruning`` (``PruningConfig``): OmegaConf then
rejects unknown keys and wrong types with the key's full name, and ``validate_config`` checks
the values a type cannot express (ranges, allowed scopes, the schedule window) before any
data is made or any step is trained.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from medprune.pruning.schedule import REWIND_SCHEDULES, SCHEDULES
from medprune.runs.multirun import slurm_devices, slurm_gpus, sweep_group

PRUNING_SCOPES = ("none", "global", "layerwise")
EXPORT_DTYPES = ("float32", "float16")
#: The first conv and the output heads stay dense by default: they hold few weights and
#: carry the input and output of the network (both U-Nets name them this way).
DEFAULT_EXCLUDE = ["*encoder.0.0.weight", "*head.weight"]


@dataclass
class ExportConfig:
    """The compact model file every pruned run writes next to its checkpoints."""

    dtype: str = "float32"  # values of the non-zero weights: float32 | float16


@dataclass
class PruningConfig:
    """Gradual magnitude pruning during training; ``scope: none`` trains dense.

    ``begin``/``end`` are fractions of the run's optimizer steps; ``frequency`` is the number
    of optimizer steps between mask updates; ``include``/``exclude`` are globs over parameter
    names of the network (``seg.*`` and ``dist.*`` select a branch of the nuclei model);
    ``targets`` gives branches their own final sparsity (null = follow ``target_sparsity``
    when no branch has one, dense otherwise).
    """

    _target_: Optional[str] = None
    scope: str = "none"
    target_sparsity: float = 0.0
    targets: dict[str, Optional[float]] = field(default_factory=dict)
    schedule: str = "cubic"
    initial_sparsity: float = 0.0
    begin: float = 0.1
    end: float = 0.7
    frequency: int = 10
    rounds: int = 3
    rewind: Optional[float] = None
    min_density: float = 0.01
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    module: str = "net"
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass
class StructuredPruningConfig:
    """Channel pruning in ``prune.py`` (conf/pruning/structured.yaml says what each key does)."""

    scope: str = "structured"
    importance: str = "l2"
    ranking: str = "global"
    step_ratio: float = 0.2
    max_steps: int = 20
    patience: int = 0
    min_channels: int = 1


def register_configs() -> None:
    """Make the schemas known to Hydra; call before composing (train.py and prune.py do)."""
    store = ConfigStore.instance()
    store.store(group="pruning", name="base_pruning", node=PruningConfig)
    store.store(group="pruning", name="base_structured", node=StructuredPruningConfig)
    # ${sweep_group:${task_name}}: the W&B group, one per multirun (medprune.runs.multirun)
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("slurm_devices", slurm_devices, replace=True)  # launcher=slurm
    OmegaConf.register_new_resolver("slurm_gpus", slurm_gpus, replace=True)


def _fraction(value: object, key: str, low: float, high: float, closed_high: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{key}={value!r}: expected a value in [{low:g}, {high:g}{bracket}")


def validate_pruning(pruning: DictConfig) -> None:
    """Value checks on the ``pruning`` node, each message naming the offending key."""
    if pruning.scope == "structured":
        raise ValueError(
            "pruning=structured removes channels from a trained model: train first, then run "
            "`python prune.py ckpt=<run>/checkpoints/last.ckpt pruning=structured ...`"
        )
    if pruning.scope not in PRUNING_SCOPES:
        raise ValueError(
            f"pruning.scope={pruning.scope!r}: expected one of {', '.join(PRUNING_SCOPES)} "
            f"(choose with pruning=<name>)"
        )
    _fraction(pruning.target_sparsity, "pruning.target_sparsity (set by sparsity=)", 0, 1, False)
    _fraction(pruning.initial_sparsity, "pruning.initial_sparsity", 0, 1, False)
    targets = branch_targets(pruning)
    for branch, target in targets.items():
        _fraction(target, f"pruning.targets.{branch}", 0, 1, False)
    if targets and pruning.scope == "none":
        raise ValueError(
            f"pruning.targets.{next(iter(targets))} is set but pruning=none trains dense: "
            "choose pruning=global or pruning=layerwise"
        )
    lowest_key, lowest = min(
        [(f"pruning.targets.{b}", t) for b, t in targets.items()]
        or [("pruning.target_sparsity", pruning.target_sparsity)],
        key=lambda kv: kv[1],
    )
    if pruning.scope != "none" and pruning.initial_sparsity > lowest:
        raise ValueError(
            f"pruning.initial_sparsity={pruning.initial_sparsity}: expected <= "
            f"{lowest_key}={lowest}"
        )
    _fraction(pruning.begin, "pruning.begin", 0, 1, False)
    _fraction(pruning.end, "pruning.end", 0, 1, True)
    if pruning.end <= pruning.begin:
        raise ValueError(
            f"pruning.end={pruning.end}: the schedule must end after it begins "
            f"(pruning.begin={pruning.begin}); both are fractions of the run's steps"
        )
    if pruning.frequency < 1:
        raise ValueError(f"pruning.frequency={pruning.frequency}: expected >= 1 optimizer step")
    if pruning.schedule not in SCHEDULES:
        raise ValueError(
            f"pruning.schedule={pruning.schedule!r}: expected one of {', '.join(SCHEDULES)}"
        )
    if pruning.rounds < 1:
        raise ValueError(f"pruning.rounds={pruning.rounds}: expected >= 1 round")
    _fraction(pruning.min_density, "pruning.min_density", 0, 1, True)
    if pruning.rewind is not None:
        _fraction(pruning.rewind, "pruning.rewind", 0, pruning.begin, False)
        if pruning.schedule not in REWIND_SCHEDULES:
            raise ValueError(
                f"pruning.rewind={pruning.rewind} needs pruning.schedule="
                f"{' or '.join(REWIND_SCHEDULES)} (few large pruning steps), not "
                f"{pruning.schedule!r}"
            )
    if pruning.export.dtype not in EXPORT_DTYPES:
        raise ValueError(
            f"pruning.export.dtype={pruning.export.dtype!r}: expected one of "
            f"{', '.join(EXPORT_DTYPES)}"
        )
    if pruning.scope != "none" and not pruning._target_:
        raise ValueError(f"pruning._target_ is empty: scope {pruning.scope!r} needs a callback")


def branch_targets(pruning: DictConfig) -> dict[str, float]:
    """The per-branch targets actually set (null entries are placeholders from the task)."""
    return {k: v for k, v in (pruning.get("targets") or {}).items() if v is not None}


def validate_config(cfg: DictConfig) -> None:
    """Everything that can be checked before data is generated or a step is trained."""
    for key in ("seed", "sparsity", "task_name", "data", "model", "task", "pruning", "trainer"):
        if key not in cfg:
            raise ValueError(f"config key {key!r} is missing: compose from conf/train.yaml")
    validate_pruning(cfg.pruning)
    if cfg.get("threads") is not None:
        _positive_int(cfg.threads, "threads")


def _positive_int(value: object, key: str, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{key}={value!r}: expected an integer >= {low}")


def validate_prune_config(cfg: DictConfig) -> None:
    """What prune.py can check before it reads the checkpoint; ``target.*`` is checked by
    ``medprune.pruning.criteria.Targets.validate``."""
    if cfg.pruning.scope == "structured":
        from medprune.pruning.structured import IMPORTANCES, RANKINGS  # prune.py only

        for key, allowed in (("importance", IMPORTANCES), ("ranking", RANKINGS)):
            if cfg.pruning[key] not in allowed:
                raise ValueError(
                    f"pruning.{key}={cfg.pruning[key]!r}: expected one of {', '.join(allowed)}"
                )
        _fraction(cfg.pruning.step_ratio, "pruning.step_ratio", 0, 1, False)
        if cfg.pruning.step_ratio == 0:
            raise ValueError("pruning.step_ratio=0: expected a fraction of channels in (0, 1)")
        _positive_int(cfg.pruning.max_steps, "pruning.max_steps")
        _positive_int(cfg.pruning.patience, "pruning.patience", low=0)
        _positive_int(cfg.pruning.min_channels, "pruning.min_channels")
    else:
        validate_pruning(cfg.pruning)
        if cfg.pruning.scope == "none":
            raise ValueError(
                "pruning=none: prune.py needs pruning=structured, pruning=global or "
                "pruning=layerwise"
            )
        if cfg.finetune.epochs < 1:
            raise ValueError(
                f"finetune.epochs={cfg.finetune.epochs}: pruning={cfg.pruning.scope} prunes "
                "while it fine-tunes; expected >= 1 epoch"
            )
        if cfg.finetune.recover_epochs:
            raise ValueError(
                f"finetune.recover_epochs={cfg.finetune.recover_epochs} with pruning="
                f"{cfg.pruning.scope}: recovery epochs are for the steps of pruning=structured; "
                "raise finetune.epochs instead"
            )
        if cfg.target.max_latency_ms is not None:
            raise ValueError(
                f"target.max_latency_ms with pruning={cfg.pruning.scope}: unstructured "
                "sparsity leaves every dense CPU kernel the same size, so latency does not "
                "drop; use pruning=structured for a latency target"
            )
    devices = cfg.trainer.get("devices", 1)
    if devices not in (1, "1") or cfg.trainer.get("num_nodes", 1) != 1:
        raise ValueError(
            f"trainer.devices={devices}: prune.py fine-tunes and times one model on one "
            "device; use trainer=default (or trainer=gpu) with devices=1"
        )
    _positive_int(cfg.finetune.epochs, "finetune.epochs", low=0)
    _positive_int(cfg.finetune.recover_epochs, "finetune.recover_epochs", low=0)
    if cfg.finetune.lr is not None and not (
        isinstance(cfg.finetune.lr, (int, float)) and cfg.finetune.lr > 0
    ):
        raise ValueError(f"finetune.lr={cfg.finetune.lr!r}: expected null or a rate > 0")
    distill = cfg.finetune.distill
    if isinstance(distill, bool) or not (
        isinstance(distill, (int, float)) and 0 <= distill < math.inf
    ):
        raise ValueError(
            f"finetune.distill={distill!r}: expected a loss weight >= 0 (0 = no distillation)"
        )
    if not isinstance(cfg.export.onnx, bool):
        raise ValueError(f"export.onnx={cfg.export.onnx!r}: expected true or false")
    _positive_int(cfg.bench.threads, "bench.threads")
    _positive_int(cfg.bench.warmup, "bench.warmup", low=0)
    _positive_int(cfg.bench.repeats, "bench.repeats")
    size = cfg.bench.input_size
    if size is not None and (
        not OmegaConf.is_list(size)
        or len(size) != 2
        or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in size)
    ):
        raise ValueError(f"bench.input_size={size}: expected null or [H, W] in px")

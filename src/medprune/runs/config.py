"""Structured-config schemas (registered in Hydra's ConfigStore) and the checks made when a
run starts, before any data is made or any step is trained.

The schemas type every key of the ``pruning`` group and of prune.py's ``target``,
``finetune``, ``export``, ``bench`` and ``data`` blocks, so OmegaConf rejects unknown keys
and wrong types with the key's full name; their defaults are the code's (the callback's and
``prune_channels``' signatures, ``Targets``), and the YAML files set only what differs.
Value rules live with the code that takes the values: the callback's and
``check_structured_arguments``' checks run here with their messages renamed to the Hydra key;
this module adds only the rules no constructor can know (which script takes which scope,
cross-group rules).
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from medprune.common.checks import (
    check_bool,
    check_choice,
    check_int,
    check_ints,
    check_positive,
    check_range,
)
from medprune.inference.quantize import CALIBRATION_METHODS
from medprune.pruning.callback import GradualMagnitudePruning
from medprune.pruning.criteria import Targets
from medprune.pruning.selection import DEFAULT_EXCLUDE
from medprune.pruning.sparse_file import VALUE_DTYPES
from medprune.runs.job import pruning_callback
from medprune.runs.multirun import slurm_devices, slurm_gpus, sweep_group

_CALLBACK = inspect.signature(GradualMagnitudePruning).parameters
_TARGETS = Targets()


def _default(name: str) -> Any:
    return _CALLBACK[name].default


@dataclass
class ExportConfig:
    """The compact model file every pruned run writes next to its checkpoints."""

    dtype: str = "float32"  # values of the non-zero weights: float32 | float16


@dataclass
class PruningConfig:
    """Gradual magnitude pruning during training (``GradualMagnitudePruning``'s arguments,
    docs/pruning.md); ``scope: none`` trains dense."""

    _target_: Optional[str] = None
    scope: str = "none"
    target_sparsity: float = 0.0  # dense; pruning=global|layerwise set ${sparsity}
    targets: dict[str, Optional[float]] = field(default_factory=dict)
    schedule: str = _default("schedule")
    initial_sparsity: float = _default("initial_sparsity")
    begin: float = _default("begin")  # fractions of the run's optimizer steps
    end: float = _default("end")
    frequency: int = _default("frequency")  # optimizer steps between mask updates
    rounds: int = _default("rounds")
    rewind: Optional[float] = _default("rewind")
    min_density: float = _default("min_density")
    include: list[str] = field(default_factory=lambda: list(_default("include")))
    exclude: list[str] = field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    module: str = _default("module")
    export: ExportConfig = field(default_factory=ExportConfig)


@dataclass
class StructuredPruningConfig:
    """Channel pruning in ``prune.py`` (docs/prune.md says what each key does)."""

    scope: str = "structured"
    importance: str = "l2"
    ranking: str = "global"
    step_ratio: float = 0.2  # fraction of the remaining prunable channels removed per step
    max_steps: int = 20
    patience: int = 0  # steps in a row past target.max_quality_drop before stopping
    min_channels: int = 1


@dataclass
class TargetConfig:
    compression: Optional[float] = _TARGETS.compression
    max_params: Optional[float] = _TARGETS.max_params  # a count; Targets says so by name
    max_latency_ms: Optional[float] = _TARGETS.max_latency_ms
    max_quality_drop: float = _TARGETS.max_quality_drop


@dataclass
class FinetuneConfig:
    epochs: int = 2
    recover_epochs: int = 0
    lr: Optional[float] = None  # null = the trained task's task.lr
    distill: float = 0.0  # weight of distillation from the frozen dense model


@dataclass
class OnnxExportConfig:
    onnx: bool = True
    int8: bool = False  # also a static int8 (QDQ) model.int8.onnx, scored and deployed if good
    calibration_items: int = 64  # training patches / slices the int8 ranges are fitted on
    calibration_method: str = "minmax"  # minmax | entropy | percentile
    int8_min_speedup: float = 1.0  # deployed only if fp32 ms / int8 ms (onnxruntime) >= this


@dataclass
class BenchConfig:
    input_size: Optional[list[int]] = None  # [H, W] px; null = the training patch size
    threads: int = 2
    warmup: int = 5
    repeats: int = 30


@dataclass
class PruneDataConfig:
    """prune.py's changes to the checkpoint's data config (null = as trained)."""

    root: Optional[str] = None
    test_root: Optional[str] = None
    batch_size: Optional[int] = None
    num_workers: Optional[int] = None


#: prune.py's own blocks, each typed by its schema (conf/prune.yaml's defaults list).
PRUNE_BLOCKS = {
    "target": TargetConfig,
    "finetune": FinetuneConfig,
    "export": OnnxExportConfig,
    "bench": BenchConfig,
    "data": PruneDataConfig,
}


def register_configs() -> None:
    """Make the schemas known to Hydra; call before composing (train.py and prune.py do)."""
    store = ConfigStore.instance()
    # schema/pruning: train (the callback's keys) | structured (prune.py's channel pruning)
    store.store(group="schema/pruning", name="train", node=PruningConfig)
    store.store(group="schema/pruning", name="structured", node=StructuredPruningConfig)
    for name, node in PRUNE_BLOCKS.items():
        store.store(group=f"schema/{name}", name="prune", node=node, package=name)
    # ${sweep_group:${task_name}}: the W&B group, one per multirun (medprune.runs.multirun)
    OmegaConf.register_new_resolver("sweep_group", sweep_group, replace=True)
    OmegaConf.register_new_resolver("slurm_devices", slurm_devices, replace=True)  # launcher=slurm
    OmegaConf.register_new_resolver("slurm_gpus", slurm_gpus, replace=True)


def _renamed(err: Exception, prefix: str, renames: dict[str, str]) -> ValueError:
    """A constructor's ``<argument>=...`` message with the Hydra key the user wrote."""
    message = str(err)
    for argument, key in renames.items():
        if message.startswith(f"{argument}="):
            return ValueError(key + message[len(argument) :])
    return ValueError(prefix + message)


def validate_pruning(pruning: DictConfig) -> None:
    """train.py's ``pruning`` node: which scopes it takes, then the callback's own checks."""
    if pruning.scope == "structured":
        raise ValueError(
            "pruning=structured removes channels from a trained model: train first, then run "
            "`python prune.py ckpt=<run>/checkpoints/last.ckpt pruning=structured ...`"
        )
    check_choice(pruning.export.dtype, "pruning.export.dtype", VALUE_DTYPES)
    if pruning.scope == "none":
        targets = [k for k, v in (pruning.get("targets") or {}).items() if v is not None]
        if targets:
            raise ValueError(
                f"pruning.targets.{targets[0]} is set but pruning=none trains dense: "
                "choose pruning=global or pruning=layerwise"
            )
        return
    if not pruning._target_:
        raise ValueError(f"pruning._target_ is empty: scope {pruning.scope!r} needs a callback")
    try:
        pruning_callback(pruning)
    except (ValueError, TypeError) as err:
        rename = {"target_sparsity": "pruning.target_sparsity (set by sparsity=)"}
        raise _renamed(err, "pruning.", rename) from None


def validate_config(cfg: DictConfig) -> None:
    """Everything that can be checked before data is generated or a step is trained."""
    for key in ("seed", "sparsity", "task_name", "data", "model", "task", "pruning", "trainer"):
        if key not in cfg:
            raise ValueError(f"config key {key!r} is missing: compose from conf/train.yaml")
    validate_pruning(cfg.pruning)
    if cfg.get("threads") is not None:
        check_int(cfg.threads, "threads")


def validate_prune_config(cfg: DictConfig) -> None:
    """What prune.py can check before it reads the checkpoint; ``target.*`` is checked by
    ``medprune.pruning.criteria.Targets.validate``."""
    pruning = cfg.pruning
    if pruning.scope == "structured":
        from medprune.pruning.structured import check_structured_arguments  # prune.py only

        try:
            check_structured_arguments(
                pruning.step_ratio, pruning.importance, pruning.ranking, pruning.min_channels
            )
        except ValueError as err:
            raise _renamed(err, "pruning.", {"ratio": "pruning.step_ratio"}) from None
        check_int(pruning.max_steps, "pruning.max_steps")
        check_int(pruning.patience, "pruning.patience", low=0)
    elif pruning.scope != "none":  # none: the trained model as it is (e.g. a dense int8)
        _check_unstructured_prune(cfg)
    devices = cfg.trainer.get("devices", 1)
    if devices not in (1, "1") or cfg.trainer.get("num_nodes", 1) != 1:
        raise ValueError(
            f"trainer.devices={devices}: prune.py fine-tunes and times one model on one "
            "device; use trainer=default (or trainer=gpu) with devices=1"
        )
    check_int(cfg.finetune.epochs, "finetune.epochs", low=0)
    check_int(cfg.finetune.recover_epochs, "finetune.recover_epochs", low=0)
    if cfg.finetune.lr is not None:
        check_positive(cfg.finetune.lr, "finetune.lr", what="null or a rate")
    check_range(
        cfg.finetune.distill,
        "finetune.distill",
        0,
        float("inf"),
        what="a loss weight (0 = no distillation)",
    )
    check_bool(cfg.export.onnx, "export.onnx")
    check_bool(cfg.export.int8, "export.int8")
    if cfg.export.int8:
        if not cfg.export.onnx:
            raise ValueError(
                "export.int8=true with export.onnx=false: int8 quantizes the exported ONNX "
                "model; set export.onnx=true"
            )
        check_int(cfg.export.calibration_items, "export.calibration_items")
        check_range(cfg.export.int8_min_speedup, "export.int8_min_speedup", 0, float("inf"))
        check_choice(
            cfg.export.calibration_method, "export.calibration_method", CALIBRATION_METHODS
        )
    check_int(cfg.bench.threads, "bench.threads")
    check_int(cfg.bench.warmup, "bench.warmup", low=0)
    check_int(cfg.bench.repeats, "bench.repeats")
    if cfg.bench.input_size is not None:
        check_ints(cfg.bench.input_size, "bench.input_size", 2, what="null or [H, W] in px")


def _check_unstructured_prune(cfg: DictConfig) -> None:
    """prune.py with pruning=global|layerwise: one fine-tuning run with the callback."""
    validate_pruning(cfg.pruning)
    scope = cfg.pruning.scope
    if cfg.finetune.epochs < 1:
        raise ValueError(
            f"finetune.epochs={cfg.finetune.epochs}: pruning={scope} prunes while it "
            "fine-tunes; expected >= 1 epoch"
        )
    if cfg.finetune.recover_epochs:
        raise ValueError(
            f"finetune.recover_epochs={cfg.finetune.recover_epochs} with pruning={scope}: "
            "recovery epochs are for the steps of pruning=structured; raise finetune.epochs "
            "instead"
        )
    if cfg.target.max_latency_ms is not None:
        raise ValueError(
            f"target.max_latency_ms with pruning={scope}: unstructured sparsity leaves every "
            "dense CPU kernel the same size, so latency does not drop; use pruning=structured "
            "for a latency target"
        )

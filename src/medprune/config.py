"""Structured-config schemas (registered in Hydra's ConfigStore) and run-time validation.

The pruning group's YAML files extend ``base_pruning`` (``PruningConfig``): OmegaConf then
rejects unknown keys and wrong types with the key's full name, and ``validate_config`` checks
the values a type cannot express (ranges, allowed scopes, the schedule window) before any
data is made or any step is trained.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

PRUNING_SCOPES = ("none", "global", "layerwise")


@dataclass
class PruningConfig:
    """Gradual magnitude pruning during training; ``scope: none`` trains dense.

    ``begin``/``end`` are fractions of the run's optimizer steps; ``frequency`` is the number
    of optimizer steps between mask updates; ``include``/``exclude`` are globs over parameter
    names of the network (``seg.*`` and ``dist.*`` select a branch of the nuclei model).
    """

    _target_: Optional[str] = None
    scope: str = "none"
    target_sparsity: float = 0.0
    initial_sparsity: float = 0.0
    begin: float = 0.1
    end: float = 0.7
    frequency: int = 10
    include: list[str] = field(default_factory=lambda: ["*"])
    exclude: list[str] = field(default_factory=list)
    module: str = "net"


def register_configs() -> None:
    """Make the schemas known to Hydra; call before composing (train.py does at import)."""
    ConfigStore.instance().store(group="pruning", name="base_pruning", node=PruningConfig)


def _fraction(value: object, key: str, low: float, high: float, closed_high: bool) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and low <= value and (value <= high if closed_high else value < high)
    if not ok:
        bracket = "]" if closed_high else ")"
        raise ValueError(f"{key}={value!r}: expected a value in [{low:g}, {high:g}{bracket}")


def validate_pruning(pruning: DictConfig) -> None:
    """Value checks on the ``pruning`` node, each message naming the offending key."""
    if pruning.scope not in PRUNING_SCOPES:
        raise ValueError(
            f"pruning.scope={pruning.scope!r}: expected one of {', '.join(PRUNING_SCOPES)} "
            f"(choose with pruning=<name>)"
        )
    _fraction(pruning.target_sparsity, "pruning.target_sparsity (set by sparsity=)", 0, 1, False)
    _fraction(pruning.initial_sparsity, "pruning.initial_sparsity", 0, 1, False)
    if pruning.initial_sparsity > pruning.target_sparsity:
        raise ValueError(
            f"pruning.initial_sparsity={pruning.initial_sparsity}: expected <= "
            f"pruning.target_sparsity={pruning.target_sparsity}"
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
    if pruning.scope != "none" and not pruning._target_:
        raise ValueError(f"pruning._target_ is empty: scope {pruning.scope!r} needs a callback")


def validate_config(cfg: DictConfig) -> None:
    """Everything that can be checked before data is generated or a step is trained."""
    for key in ("seed", "sparsity", "task_name", "data", "model", "task", "pruning", "trainer"):
        if key not in cfg:
            raise ValueError(f"config key {key!r} is missing: compose from conf/train.yaml")
    validate_pruning(cfg.pruning)
    if cfg.get("ckpt_path") is not None and not Path(cfg.ckpt_path).is_file():
        raise FileNotFoundError(f"ckpt_path={cfg.ckpt_path}: no such checkpoint file")

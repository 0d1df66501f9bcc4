"""Checkpoints on the training side: every checkpoint carries its run's config
(``ConfigInCheckpoint``), ``ckpt_path=`` must name a Lightning training checkpoint, and
prune.py may point the trained data config at moved data (``with_data_overrides``).
Reading a trained checkpoint with its config is ``medprune.inference.checkpoint``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf

from medprune.inference.checkpoint import CONFIG_KEY, read_checkpoint


class ConfigInCheckpoint(L.Callback):
    """Adds the run's resolved config to every checkpoint Lightning saves."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config


#: Lightning keys a checkpoint needs to resume training (not only to load weights).
TRAINING_KEYS = ("state_dict", "optimizer_states", "loops", "global_step")


def read_resume_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint ``ckpt_path=`` names, as Lightning's resume reads it."""
    checkpoint = read_checkpoint(path, "ckpt_path", weights_only=True)
    missing = [k for k in TRAINING_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise ValueError(
            f"ckpt_path={path}: not a Lightning training checkpoint (no {', '.join(missing)}); "
            "resume needs one that train.py wrote, e.g. <run>/checkpoints/last.ckpt"
        )
    return checkpoint


#: Data settings prune.py may change on top of the checkpoint's (moved data, loader
#: settings); the rest (splits, patch sizes) stays as trained, so val means the same tiles.
DATA_OVERRIDES = ("root", "test_root", "batch_size", "num_workers")


def with_data_overrides(trained: DictConfig, data: DictConfig | None) -> DictConfig:
    """The checkpoint's config with the non-null ``data.*`` overrides of the prune run."""
    given = {k: v for k, v in (OmegaConf.to_container(data) if data else {}).items()}
    unknown = sorted(set(given) - set(DATA_OVERRIDES))
    if unknown:
        raise ValueError(
            f"data.{unknown[0]}: prune.py takes the checkpoint's data config and changes only "
            f"data.{', data.'.join(DATA_OVERRIDES)}"
        )
    merged = OmegaConf.create(OmegaConf.to_container(trained, resolve=True))
    for key, value in given.items():
        if value is None:
            continue
        if key not in merged.data:
            raise ValueError(
                f"data.{key}={value}: the checkpoint's data config "
                f"({merged.data.get('_target_')}) has no {key!r}"
            )
        merged.data[key] = value
    return merged

"""A trained checkpoint together with the config that built it, for ``prune.py``.

Every checkpoint ``train.py`` writes carries the run's resolved config under
``CONFIG_KEY``, so it can be moved on its own. Checkpoints from before that are read with the
run folder's ``config.yaml`` (``<run>/checkpoints/last.ckpt`` -> ``<run>/config.yaml``).
The file is only read, never written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

CONFIG_KEY = "medprune_config"


class ConfigInCheckpoint(L.Callback):
    """Adds the run's resolved config to every checkpoint Lightning saves."""

    def __init__(self, cfg: DictConfig) -> None:
        self.config = OmegaConf.to_container(cfg, resolve=True)

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        checkpoint[CONFIG_KEY] = self.config


def load_trained(path: str | Path, key: str = "ckpt") -> tuple[DictConfig, dict[str, Any]]:
    """The checkpoint at ``path`` (on the CPU) and the config of the run that trained it;
    error messages name the setting ``key`` that gave the path.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not a
    medprune training checkpoint, each naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path}: no such checkpoint file")
    try:
        # Lightning checkpoints hold more than tensors (hyper-parameters, loop state): a
        # full unpickle, as Lightning itself does; only open checkpoints you trust.
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # whatever the unpickler hit, one message naming the file
        raise ValueError(f"{key}={path}: not a readable PyTorch checkpoint ({err})") from err
    state = checkpoint.get("state_dict") if isinstance(checkpoint, dict) else None
    if not isinstance(state, dict) or not any(k.startswith("net.") for k in state):
        raise ValueError(
            f"{key}={path}: not a medprune training checkpoint (expected a Lightning "
            "checkpoint whose state_dict holds the network under 'net.')"
        )
    if CONFIG_KEY in checkpoint:
        cfg = OmegaConf.create(checkpoint[CONFIG_KEY])
    else:
        run_config = path.resolve().parent.parent / "config.yaml"
        if not run_config.is_file():
            raise ValueError(
                f"{key}={path}: the checkpoint carries no config and {run_config} does not "
                "exist; keep the checkpoint in its run folder (<run>/checkpoints/)"
            )
        cfg = OmegaConf.load(run_config)
    for name in ("task_name", "model", "task", "data"):
        if name not in cfg:
            raise ValueError(f"{key}={path}: its config has no {name!r}: not a medprune run")
    return cfg, checkpoint


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

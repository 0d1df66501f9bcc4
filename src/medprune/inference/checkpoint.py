"""A trained checkpoint file and the config of the run that wrote it.

Every checkpoint ``train.py`` writes carries the run's resolved config under
``CONFIG_KEY``, so it can be moved on its own. Checkpoints from before that are read with the
run folder's ``config.yaml`` (``<run>/checkpoints/last.ckpt`` -> ``<run>/config.yaml``).
Files are only read.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

CONFIG_KEY = "medprune_config"


def read_checkpoint(path: str | Path, key: str, weights_only: bool) -> Any:
    """``torch.load`` on the CPU, with one message naming ``key=path`` for a missing or
    unreadable file. ``weights_only=True`` reads as Lightning's resume does (tensors and
    plain Python only); ``False`` is a full unpickle, for checkpoints you trust."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{key}={path}: no such checkpoint file")
    try:
        return torch.load(path, map_location="cpu", weights_only=weights_only)
    except pickle.UnpicklingError as err:
        if not weights_only:
            raise ValueError(f"{key}={path}: not a readable PyTorch checkpoint ({err})") from None
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        why = next((line for line in lines if "Unsupported global" in line), lines[0])
        raise ValueError(
            f"{key}={path}: Lightning's checkpoint loader (weights_only) refuses it: it "
            f"holds objects other than tensors and plain Python ({why})"
        ) from None
    except Exception as err:  # truncated, not a torch file, ...: one message naming the file
        raise ValueError(
            f"{key}={path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from None


def load_trained(path: str | Path, key: str = "ckpt") -> tuple[DictConfig, dict[str, Any]]:
    """The checkpoint at ``path`` (on the CPU) and the config of the run that trained it;
    error messages name the setting ``key`` that gave the path.

    Raises FileNotFoundError for a missing file and ValueError for a file that is not a
    medprune training checkpoint, each naming the file.
    """
    path = Path(path)
    # Lightning checkpoints hold more than tensors (hyper-parameters, loop state): a full
    # unpickle, as Lightning itself does; only open checkpoints you trust.
    checkpoint = read_checkpoint(path, key, weights_only=False)
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

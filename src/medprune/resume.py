"""``ckpt_path=``: the checkpoint a train.py run resumes from must fit that run.

Checked before any data is made: the file is a Lightning training checkpoint that Lightning's
own loader accepts (``weights_only``: tensors and plain Python only), it was trained for the
same task and network, and its pruning state (masks, the sparsity reached) is neither dropped
(a dense run would regrow every pruned weight) nor contradicted (another scope, a lower
target). The file is only read.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from medprune.checkpoints import CONFIG_KEY
from medprune.pruning.callback import GradualMagnitudePruning, describe_state

#: Lightning keys a checkpoint needs to resume training (not only to load weights).
TRAINING_KEYS = ("state_dict", "optimizer_states", "loops", "global_step")


def read_resume_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path`` as Lightning's resume reads it (on the CPU)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        lines = [line.strip() for line in str(err).splitlines() if line.strip()]
        why = next((line for line in lines if "Unsupported global" in line), lines[0])
        raise ValueError(
            f"ckpt_path={path}: Lightning's checkpoint loader (weights_only) refuses it: it "
            f"holds objects other than tensors and plain Python ({why})"
        ) from None
    except Exception as err:  # truncated, not a torch file, ...: one message naming the file
        raise ValueError(
            f"ckpt_path={path}: not a readable PyTorch checkpoint ({type(err).__name__}: {err})"
        ) from None
    missing = [k for k in TRAINING_KEYS if not isinstance(checkpoint, dict) or k not in checkpoint]
    if missing:
        raise ValueError(
            f"ckpt_path={path}: not a Lightning training checkpoint (no {', '.join(missing)}); "
            "resume needs one that train.py wrote, e.g. <run>/checkpoints/last.ckpt"
        )
    return checkpoint


def pruning_state(checkpoint: dict[str, Any]) -> dict[str, Any] | None:
    """The pruning callback's saved state, if the checkpoint's run had one."""
    name = GradualMagnitudePruning.__qualname__  # Lightning's default callback state key
    for key, state in (checkpoint.get("callbacks") or {}).items():
        if key == name or key.startswith(name + "{"):
            return state
    return None


def check_resume(
    cfg: DictConfig, checkpoint: dict[str, Any], pruning: GradualMagnitudePruning | None
) -> None:
    """Refuse ``checkpoint`` when it does not fit the run ``cfg`` describes; ``pruning`` is
    the run's callback with its layers resolved (None for a dense run)."""
    source = f"ckpt_path={cfg.ckpt_path}"
    trained = checkpoint.get(CONFIG_KEY)
    if trained is not None:
        _check_same(source, trained, cfg)
    state = pruning_state(checkpoint)
    if state is None:
        return  # a dense checkpoint: a pruned run may start pruning from it
    if pruning is None:
        raise ValueError(
            f"{source} holds {describe_state(state)}; this run has pruning=none and would "
            f"train every pruned weight back: resume with {_pruning_overrides(trained, state)}, "
            "or start a new run (no ckpt_path) to train dense"
        )
    pruning.check_resumable(state, source)


def _check_same(source: str, trained: dict[str, Any], cfg: DictConfig) -> None:
    if trained.get("task_name") != cfg.task_name:
        raise ValueError(
            f"{source} was trained for task={trained.get('task_name')}, this run is "
            f"task={cfg.task_name}: resume with the task it was trained for"
        )
    ours = OmegaConf.to_container(cfg.model, resolve=True)
    theirs = trained.get("model", {})
    differ = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if differ:
        pairs = ", ".join(
            f"model.{k}: {theirs.get(k)!r} there, {ours.get(k)!r} here" for k in differ
        )
        raise ValueError(
            f"{source} holds another network ({pairs}): resume with its model settings"
        )


def _pruning_overrides(trained: dict[str, Any] | None, state: dict[str, Any]) -> str:
    """The overrides that give a run the checkpoint's pruning, e.g. ``pruning=global
    sparsity=0.9375`` (from the checkpoint's config when it carries one)."""
    pruning = (trained or {}).get("pruning") or {}
    scope = pruning.get("scope") or state.get("scope") or "<scope>"
    words = [f"pruning={scope}"]
    targets = {k: v for k, v in (pruning.get("targets") or {}).items() if v is not None}
    if targets:
        words += [f"pruning.targets.{k}={v}" for k, v in sorted(targets.items())]
    elif "target_sparsity" in pruning:
        words.append(f"sparsity={pruning['target_sparsity']}")
    return " ".join(words) + " (as in the run that wrote it)"

"""``ckpt_path=``: the checkpoint a train.py run resumes from must fit that run.

Checked before any data is made: the file is a Lightning training checkpoint that Lightning's
own loader accepts (``weights_only``: tensors and plain Python only), it was trained for the
same task and network, and its pruning state (masks, the sparsity reached) is neither dropped
(a dense run would regrow every pruned weight) nor contradicted (another scope, a lower
target). The file is only read.
"""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig, OmegaConf

from medprune.inference.checkpoint import CONFIG_KEY
from medprune.pruning.callback import GradualMagnitudePruning, describe_state


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

"""``sculpt(cfg)``: turn a trained model into a smaller, faster one for CPU inference.

The checkpoint's own config rebuilds the task, network and data. The dense model is scored
first (val, with post-processing tuned, then test). Then, for ``pruning=structured``, channels
are removed step by step (``medprune.pruning.structured``), each step fine-tuned with a new
optimizer and scored on val, until the deployment criteria hold or quality falls past the
tolerance (``medprune.pruning.criteria``); ``pruning=global|layerwise`` instead fine-tunes once
with the gradual magnitude callback, and ``pruning=none`` keeps the trained model. The most
compressed step within the tolerance is tested, exported (``model.pt2``, ``model.onnx``, with
``export.int8=true`` also ``model.int8.onnx``: ``medprune.runs.int8``) and benchmarked against
the dense model (``medprune.runs.delivery``). The input checkpoint is only read.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medprune.inference.checkpoint import load_trained
from medprune.pruning.criteria import Targets, select_step
from medprune.pruning.structured import count_parameters
from medprune.runs.checkpoints import with_data_overrides
from medprune.runs.config import validate_prune_config
from medprune.runs.delivery import deliver, wandb_values
from medprune.runs.job import (
    PRUNE_HINT,
    PRUNE_OUTPUTS,
    instantiate_dict,
    logged_job,
    seed_job,
    start_job,
    update_wandb_summary,
    write_run_config,
)
from medprune.runs.sculpt_steps import STEPS, record_step
from medprune.runs.sculptor import build_sculptor, check_reachable


def sculpt(cfg: DictConfig) -> dict[str, Any]:
    """Prune ``cfg.ckpt`` to ``cfg.target``; write summary.json, report.md and the exported
    model to ``cfg.paths.output_dir``; return the summary."""
    validate_prune_config(cfg)
    targets = Targets(**OmegaConf.to_container(cfg.target, resolve=True))
    targets.validate(size_required=cfg.pruning.scope != "none")
    out = Path(cfg.paths.output_dir)
    start_job(out, PRUNE_OUTPUTS, PRUNE_HINT)
    trained_cfg, checkpoint = load_trained(cfg.ckpt)
    trained_cfg = with_data_overrides(trained_cfg, cfg.get("data"))
    write_run_config(cfg, out)
    seed_job(cfg)
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    with logged_job(cfg, loggers, finalize=True):  # no Trainer owns these loggers
        sculptor = build_sculptor(cfg, trained_cfg, checkpoint, out)
        if cfg.finetune.lr is not None:
            sculptor.module.hparams.lr = float(cfg.finetune.lr)
        check_reachable(sculptor, targets)
        if cfg.finetune.distill:  # a frozen copy of the dense network, checked before scoring
            sculptor.module.set_teacher(copy.deepcopy(sculptor.module.net), cfg.finetune.distill)
        history, rows = [], []
        base, val = sculptor.score(0, count_parameters(sculptor.module.net))
        dense = sculptor.snapshot()  # with the thresholds just tuned for the dense network
        record_step(history, rows, base, val, sculptor, loggers)
        baseline_test = sculptor.test()
        steps = STEPS[cfg.pruning.scope]
        reason, chosen = steps(sculptor, targets, history, rows, loggers)
        sculptor.module.set_teacher(None)
        pick = select_step(history, targets, sculptor.higher_is_better)
        chosen = chosen if pick.step > 0 else dense
        sculptor.restore(chosen)
        summary = deliver(
            sculptor=sculptor,
            targets=targets,
            dense=dense,
            baseline=(history[0], baseline_test),
            pruned=(pick, sculptor.test(), chosen[1]),
            steps=rows,
            stopped=reason,
            trained_cfg=trained_cfg,
        )
        update_wandb_summary(loggers, wandb_values(summary))
        return summary

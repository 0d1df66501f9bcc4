"""``train(cfg)``: train.py's run as a plain function, testable without Hydra's main.

cfg -> DataModule, network, task LightningModule -> callbacks (checkpoint, pruning) and
loggers -> ``Trainer.fit`` -> ``Trainer.test`` on the final weights -> summary.json.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig

from medprune.runs.checkpoints import ConfigInCheckpoint, read_resume_checkpoint
from medprune.runs.config import validate_config
from medprune.runs.job import (
    TRAIN_HINT,
    TRAIN_OUTPUTS,
    build_data,
    build_task,
    check_steps,
    export_sparse_model,
    instantiate_dict,
    logged_job,
    pruning_callback,
    seed_job,
    start_job,
    update_wandb_summary,
    write_run_config,
)
from medprune.runs.multirun import check_launcher, ddp_ranks_run_this_job
from medprune.runs.resume import check_resume
from medprune.runs.summary import print_summary, pruning_summary, summary_line, write_summary

log = logging.getLogger(__name__)


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, test the final weights and write ``summary.json`` in ``cfg.paths.output_dir``.

    Under DDP every rank runs this function; only rank 0 writes files (Lightning's
    subprocess launcher gives the other ranks the same output folder).
    """
    validate_config(cfg)
    trainer_cfg = cfg.trainer
    check_launcher(
        trainer_cfg.get("strategy", "auto"),
        trainer_cfg.get("devices", 1),
        trainer_cfg.get("num_nodes", 1),
    )
    out = Path(cfg.paths.output_dir)
    rank_zero = rank_zero_only.rank == 0
    if rank_zero:
        start_job(out, TRAIN_OUTPUTS, TRAIN_HINT)
    seed_job(cfg)
    # Callbacks and loggers first: their config errors surface before any data is generated.
    callbacks = instantiate_dict(cfg.get("callbacks"), "callbacks")
    callbacks.append(ConfigInCheckpoint(cfg))  # prune.py rebuilds the model from it
    if cfg.trainer.get("enable_progress_bar") is False:  # honour it rather than crash on the bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    pruning = pruning_callback(cfg.pruning)
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    net, module = build_task(cfg)
    if pruning is not None:  # globs, branches and targets checked before any data is made
        pruning.resolve(pruning.network(module))
        check_steps(cfg.trainer)
        callbacks.append(pruning)
    if cfg.get("ckpt_path") is not None:
        check_resume(cfg, read_resume_checkpoint(cfg.ckpt_path), pruning)
    if rank_zero:
        write_run_config(cfg, out)
    datamodule = build_data(cfg.data)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    # DDP ranks of a multirun job run this job alone; the Trainer finalizes its loggers
    with ddp_ranks_run_this_job(str(out)), logged_job(cfg, loggers, finalize=False):
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        if pruning is not None and not pruning.reached:  # a failed run, not a summary
            raise RuntimeError(
                f"{pruning.shortfall(trainer.global_step)}; no summary.json written. "
                f"{out / 'checkpoints'} keeps the weights: resume with ckpt_path="
                f"{out / 'checkpoints' / 'last.ckpt'} and a longer run (trainer.max_epochs)"
            )
        module.finish_fit(trainer, datamodule)
        # The final weights, not best.ckpt: only they carry the full target sparsity.
        (test_metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
        summary = {
            "task": cfg.task_name,
            "pruning": pruning_summary(net, cfg.pruning.scope, pruning),
            "metrics": {k: float(v) for k, v in sorted(test_metrics.items())},
            "steps": int(trainer.global_step),
            "wall_time_s": round(time.perf_counter() - start, 2),
            "threads": torch.get_num_threads(),  # torch intra-op threads the job trained with
            "output_dir": str(out),
            **module.run_summary(),
        }
        if hasattr(datamodule, "run_summary"):  # which tiles/patients each split used
            summary["data"] = datamodule.run_summary()
        if rank_zero:
            _deliver(cfg, net, loggers, summary, pruned=pruning is not None)
        return summary


def _deliver(cfg: DictConfig, net, loggers: list[Any], summary: dict[str, Any], pruned: bool):
    """Rank 0's outputs: the sparse model file of a pruned run, summary.json, the printed
    table and the run log's closing line; final metrics and achieved sparsity in the W&B run
    summary (scalars only, for its table and scatter views; per-layer detail stays in
    summary.json)."""
    out = Path(cfg.paths.output_dir)
    if pruned:
        summary["export"] = export_sparse_model(net, out, cfg.pruning.export.dtype)
    write_summary(summary, out / "summary.json")
    scalars = (int, float, str)
    flat = {f"pruning/{k}": v for k, v in summary["pruning"].items() if isinstance(v, scalars)}
    update_wandb_summary(loggers, {**flat, **summary["metrics"]})
    print_summary(summary)
    log.info("%s", summary_line(summary, cfg.monitor.metric))

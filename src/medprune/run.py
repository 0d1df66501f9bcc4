"""``train(cfg)`` and ``sculpt(cfg)``: whole runs as plain functions, testable without
Hydra's main (train.py and prune.py are thin wrappers).

train: cfg -> DataModule, network, task LightningModule -> callbacks (checkpoint, pruning)
and loggers -> ``Trainer.fit`` -> ``Trainer.test`` on the final weights -> summary.json.
sculpt (``medprune.sculpt``): a trained checkpoint -> pruned, fine-tuned, exported and
benchmarked model -> summary.json + report.md.
"""

from __future__ import annotations

import logging
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from medprune.checkpoints import ConfigInCheckpoint
from medprune.config import validate_config
from medprune.job import (
    build_data,
    build_task,
    check_fresh_output_dir,
    check_steps,
    export_sparse_model,
    finish_wandb,
    instantiate_dict,
    log_lightning_to_run_file,
    pruning_callback,
    update_wandb_summary,
)
from medprune.resume import check_resume, read_resume_checkpoint
from medprune.summary import print_summary, pruning_summary, summary_line, write_summary
from medprune.sweep import check_launcher, ddp_ranks_run_this_job

__all__ = ["train", "sculpt"]

log = logging.getLogger(__name__)


def sculpt(cfg: DictConfig) -> dict[str, Any]:
    """prune.py's run (``medprune.sculpt.sculpt``), imported on use: train.py never loads
    Torch-Pruning or the export stack."""
    from medprune.sculpt import sculpt as run_sculpt

    return run_sculpt(cfg)


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
        check_fresh_output_dir(out)
        log_lightning_to_run_file()

    if cfg.get("threads") is not None:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True)
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
    if rank_zero:  # every check passed: the run's folder is written from here on
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    datamodule = build_data(cfg.data)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    with ddp_ranks_run_this_job(str(out)):  # DDP ranks of a multirun job: this job alone
        try:
            for logger in loggers:
                logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
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
            if not rank_zero:
                return summary
            if pruning is not None:
                try:
                    summary["export"] = export_sparse_model(net, out, cfg.pruning.export.dtype)
                except ValueError as err:  # e.g. a weight beyond float16's range: keep the summary
                    warnings.warn(f"sparse export skipped: {err}", stacklevel=1)
                    summary["export"] = {"error": str(err)}
            write_summary(summary, out / "summary.json")
            _log_run_summary(loggers, summary)
            print_summary(summary)
            log.info("%s", summary_line(summary, cfg.monitor.metric))
            return summary
        finally:
            finish_wandb()


def _log_run_summary(loggers: list[Any], summary: dict[str, Any]) -> None:
    """Final metrics and achieved sparsity in the W&B run summary (for its table, scatter and
    parallel-coordinates views): scalars only; per-layer detail stays in summary.json."""
    scalars = (int, float, str)
    flat = {f"pruning/{k}": v for k, v in summary["pruning"].items() if isinstance(v, scalars)}
    flat.update(summary["metrics"])
    update_wandb_summary(loggers, flat)

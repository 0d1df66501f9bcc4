"""``train(cfg)``: the whole training run as a plain function, testable without Hydra's main.

cfg -> DataModule, network, task LightningModule -> callbacks (checkpoint, pruning) and
loggers -> ``Trainer.fit`` -> ``Trainer.test`` on the final weights -> summary.json + table.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf

from medprune.config import validate_config
from medprune.summary import print_summary, pruning_summary, write_summary


def _instantiate_dict(node: DictConfig | None, group: str) -> list[Any]:
    """Callbacks and loggers are dicts keyed by name so one can be overridden or removed
    (``callbacks.rich_progress_bar=null``)."""
    objects = []
    for name, value in (node or {}).items():
        if value is None:
            continue
        if "_target_" not in value:
            raise ValueError(f"{group}.{name} has no _target_: expected a class to instantiate")
        objects.append(instantiate(value))
    return objects


def _check_fresh_output_dir(out: Path) -> None:
    """An output folder belongs to one run: never overwrite another run's results."""
    for taken in (out / "summary.json", out / "checkpoints"):
        if taken.is_file() or (taken.is_dir() and any(taken.iterdir())):
            raise FileExistsError(
                f"{taken} exists: {out} holds an earlier run; choose a new hydra.run.dir "
                f"(or paths.output_dir). To resume, pass ckpt_path=<old run>/checkpoints/last.ckpt"
            )


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, test the final weights and write ``summary.json`` in ``cfg.paths.output_dir``."""
    validate_config(cfg)
    out = Path(cfg.paths.output_dir)
    _check_fresh_output_dir(out)
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)

    L.seed_everything(cfg.seed, workers=True)
    # Callbacks and loggers first: their config errors surface before any data is generated.
    callbacks = _instantiate_dict(cfg.get("callbacks"), "callbacks")
    if cfg.trainer.get("enable_progress_bar") is False:  # honour it rather than crash on the bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    if cfg.pruning.scope != "none":
        callbacks.append(instantiate(cfg.pruning, _convert_="all"))
    loggers = _instantiate_dict(cfg.get("logger"), "logger")
    datamodule = instantiate(cfg.data)
    net = instantiate(cfg.model)
    module = instantiate(cfg.task, net=net, _convert_="all")
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        # The final weights, not best.ckpt: only they carry the full target sparsity.
        (test_metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
        summary = {
            "task": cfg.task_name,
            "pruning": pruning_summary(
                net,
                cfg.pruning.scope,
                cfg.pruning.target_sparsity,
                cfg.pruning.include,
                cfg.pruning.exclude,
            ),
            "metrics": {k: float(v) for k, v in sorted(test_metrics.items())},
            "steps": int(trainer.global_step),
            "wall_time_s": round(time.perf_counter() - start, 2),
            "output_dir": str(out),
        }
        write_summary(summary, out / "summary.json")
        _log_run_summary(loggers, summary)
        print_summary(summary)
        return summary
    finally:
        _finish_wandb()


def _log_run_summary(loggers: list[Any], summary: dict[str, Any]) -> None:
    """Final metrics and achieved sparsity in the W&B run summary (for its table views)."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            flat = {f"pruning/{k}": v for k, v in summary["pruning"].items()}
            flat.update(summary["metrics"])
            logger.experiment.summary.update(flat)


def _finish_wandb() -> None:
    """One W&B run per job: close it even when training fails (sweeps start the next job)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()

"""``train(cfg)``: the whole training run as a plain function, testable without Hydra's main.

cfg -> DataModule, network, task LightningModule -> callbacks (checkpoint, pruning) and
loggers -> ``Trainer.fit`` -> ``Trainer.test`` on the final weights -> summary.json + table.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L
from hydra.utils import instantiate
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ProgressBar
from omegaconf import DictConfig, OmegaConf
from torch import nn

from medprune.config import branch_targets, validate_config
from medprune.pruning.export import dense_state_dict_bytes, save_sparse
from medprune.summary import print_summary, pruning_summary, write_summary

#: The compact pruned model (bitmask + non-zero values) written next to the checkpoints.
SPARSE_MODEL_FILE = "model.sparse"  # not a torch.save file: read it with load_sparse


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


def _pruning_callback(pruning: DictConfig) -> L.Callback | None:
    """The callback takes the pruning keys except ``export`` (used after training here) and
    with the task's null branch placeholders dropped from ``targets``."""
    if pruning.scope == "none":
        return None
    node = OmegaConf.to_container(pruning, resolve=True)
    node.pop("export")
    node["targets"] = branch_targets(pruning)
    return instantiate(node)


def export_sparse_model(net: nn.Module, out: Path, dtype: str) -> dict[str, Any]:
    """Write the compact model file; sizes are in bytes, dense = ``torch.save(state_dict)``."""
    state = net.state_dict()
    path = out / SPARSE_MODEL_FILE
    return {
        "path": str(path),
        "dtype": dtype,
        "dense_bytes": dense_state_dict_bytes(state),
        "sparse_bytes": save_sparse(state, path, dtype),
    }


def train(cfg: DictConfig) -> dict[str, Any]:
    """Train, test the final weights and write ``summary.json`` in ``cfg.paths.output_dir``.

    Under DDP every rank runs this function; only rank 0 writes files (Lightning's
    subprocess launcher gives the other ranks the same output folder).
    """
    validate_config(cfg)
    out = Path(cfg.paths.output_dir)
    rank_zero = rank_zero_only.rank == 0
    if rank_zero:
        _check_fresh_output_dir(out)
        out.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(cfg, out / "config.yaml", resolve=True)

    L.seed_everything(cfg.seed, workers=True)
    # Callbacks and loggers first: their config errors surface before any data is generated.
    callbacks = _instantiate_dict(cfg.get("callbacks"), "callbacks")
    if cfg.trainer.get("enable_progress_bar") is False:  # honour it rather than crash on the bar
        callbacks = [c for c in callbacks if not isinstance(c, ProgressBar)]
    pruning = _pruning_callback(cfg.pruning)
    loggers = _instantiate_dict(cfg.get("logger"), "logger")
    net = instantiate(cfg.model)
    module = instantiate(cfg.task, net=net, _convert_="all")
    if pruning is not None:  # globs, branches and targets checked before any data is made
        pruning.resolve(pruning.network(module))
        callbacks.append(pruning)
    datamodule = instantiate(cfg.data)
    trainer: L.Trainer = instantiate(cfg.trainer, callbacks=callbacks, logger=loggers or False)
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        start = time.perf_counter()
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
        module.finish_fit(trainer, datamodule)
        # The final weights, not best.ckpt: only they carry the full target sparsity.
        (test_metrics,) = trainer.test(module, datamodule=datamodule, verbose=False)
        summary = {
            "task": cfg.task_name,
            "pruning": pruning_summary(net, cfg.pruning.scope, pruning),
            "metrics": {k: float(v) for k, v in sorted(test_metrics.items())},
            "steps": int(trainer.global_step),
            "wall_time_s": round(time.perf_counter() - start, 2),
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

"""The job skeleton train.py and prune.py share: a fresh output folder per run with its
config.yaml, Lightning's messages in the run log, seeds, callbacks and loggers from config
dicts, the task and data built from config, the pruning callback, the sparse model file, and
closing the loggers and the W&B run however the job ends."""

from __future__ import annotations

import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from torch import nn

from medprune.pruning.sparse_file import dense_state_dict_bytes, save_sparse

#: The compact pruned model (bitmask + non-zero values) written next to the checkpoints.
SPARSE_MODEL_FILE = "model.sparse"  # not a torch.save file: read it with load_sparse


def instantiate_dict(node: DictConfig | None, group: str) -> list[Any]:
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


def build_task(cfg: DictConfig) -> tuple[nn.Module, L.LightningModule]:
    """The network and the task module around it. Everything is converted to plain Python
    (``_convert_="all"``): hyper-parameters reach checkpoints, and Lightning's resume loader
    (``weights_only``) refuses OmegaConf containers."""
    net = instantiate(cfg.model, _convert_="all")
    return net, instantiate(cfg.task, net=net, _convert_="all")


def build_data(data: DictConfig) -> L.LightningDataModule:
    """The datamodule, with plain-Python hyper-parameters (see ``build_task``). A datamodule's
    own error (a missing folder, a bad value) is raised as it is, not inside Hydra's wrapper."""
    try:
        return instantiate(data, _convert_="all")
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, OSError)):
            raise err.__cause__ from None
        raise


def check_steps(trainer: DictConfig) -> None:
    """A pruned run must take optimizer steps to reach its target; zero is refused here
    rather than reported as a finished run at sparsity 0."""
    for key in ("max_steps", "max_epochs", "limit_train_batches"):
        if trainer.get(key) == 0:
            raise ValueError(
                f"trainer.{key}=0: a pruned run takes no optimizer step and cannot reach its "
                "target sparsity; give it steps, or use pruning=none"
            )


#: What train.py writes that a later run must not overwrite.
TRAIN_OUTPUTS = ("summary.json", "checkpoints")
TRAIN_HINT = "to resume, pass ckpt_path=<old run>/checkpoints/last.ckpt"
#: Files a prune.py run writes in its output folder; none may exist before it starts.
PRUNE_OUTPUTS = ("summary.json", "report.md", "config.yaml", "model.pt2", "model.onnx")
PRUNE_OUTPUTS += ("baseline.onnx", "model.int8.onnx", "model.sparse", "inference.json")
PRUNE_HINT = "the input checkpoint is never written"


def check_fresh_output_dir(
    out: Path, names: tuple[str, ...] = TRAIN_OUTPUTS, hint: str = TRAIN_HINT
) -> None:
    """An output folder belongs to one run: never overwrite another run's results. ``names``
    are the files and folders (non-empty) the job writes; ``hint`` ends the message."""
    for taken in (out / name for name in names):
        if taken.is_file() or (taken.is_dir() and any(taken.iterdir())):
            raise FileExistsError(
                f"{taken} exists: {out} holds an earlier run; choose a new hydra.run.dir "
                f"(or paths.output_dir); {hint}"
            )


def pruning_callback(pruning: DictConfig) -> L.Callback | None:
    """The callback takes the pruning keys except ``export`` (used after training here).
    The callback's own argument error is raised as it is, not inside Hydra's wrapper."""
    if pruning.scope == "none":
        return None
    node = OmegaConf.to_container(pruning, resolve=True)
    node.pop("export")
    try:
        return instantiate(node)
    except InstantiationException as err:
        if isinstance(err.__cause__, (ValueError, TypeError)):
            raise err.__cause__ from None
        raise


def export_sparse_model(net: nn.Module, out: Path, dtype: str) -> dict[str, Any]:
    """Write the compact model file; sizes are in bytes, dense = ``torch.save(state_dict)``.
    A model the file cannot hold (e.g. a weight beyond float16's range) gives ``{"error":
    ...}`` and a warning instead: the run's summary is kept."""
    state = net.state_dict()
    path = out / SPARSE_MODEL_FILE
    try:
        sparse_bytes = save_sparse(state, path, dtype)
    except ValueError as err:
        warnings.warn(f"sparse export skipped: {err}", stacklevel=2)
        return {"error": str(err)}
    return {
        "path": str(path),
        "dtype": dtype,
        "dense_bytes": dense_state_dict_bytes(state),
        "sparse_bytes": sparse_bytes,
    }


def start_job(out: Path, names: tuple[str, ...], hint: str) -> None:
    """Before anything is built: ``out`` must not hold an earlier run (see
    ``check_fresh_output_dir``), and Hydra's run log gets Lightning's messages."""
    check_fresh_output_dir(out, names, hint)
    log_lightning_to_run_file()


def seed_job(cfg: DictConfig) -> None:
    """``threads`` (torch intra-op threads, when set) and every seed from ``cfg.seed``."""
    if cfg.get("threads") is not None:
        torch.set_num_threads(cfg.threads)
    L.seed_everything(cfg.seed, workers=True)


def write_run_config(cfg: DictConfig, out: Path) -> None:
    """Every check passed: the run's folder and its resolved ``config.yaml`` are written."""
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)


@contextmanager
def logged_job(cfg: DictConfig, loggers: list[Any], *, finalize: bool) -> Iterator[None]:
    """The job's body: the config goes to every logger first; at the end, however the job
    ends, loggers used outside a Trainer are finalized (``finalize``: CSV writes then) and the
    W&B run is closed, so the next job of a sweep gets its own."""
    status = "failed"
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        yield
        status = "success"
    finally:
        if finalize:
            for logger in loggers:
                logger.finalize(status)
        finish_wandb()


def log_lightning_to_run_file() -> None:
    """Hydra's job log (``<run>/train.log``, ``prune.log``) gets Lightning's messages too.
    Lightning, imported before Hydra configures logging, keeps a console handler of its own
    and does not propagate to the root logger, which holds Hydra's file handler. File
    handlers of earlier jobs in this process (a multirun) are dropped, not reopened."""
    files = [h for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler)]
    lightning = logging.getLogger("lightning.pytorch")
    for handler in list(lightning.handlers):
        if isinstance(handler, logging.FileHandler) and handler not in files:
            lightning.removeHandler(handler)
    for handler in files:
        if handler not in lightning.handlers:
            lightning.addHandler(handler)


def update_wandb_summary(loggers: list[Any], values: dict[str, Any]) -> None:
    """Final numbers in the W&B run summary (its table, scatter and parallel-coordinates
    views read them); loggers other than W&B are left alone."""
    from lightning.pytorch.loggers import WandbLogger

    for logger in loggers:
        if isinstance(logger, WandbLogger):
            logger.experiment.summary.update(values)


def finish_wandb() -> None:
    """One W&B run per job: close it even when training fails (sweeps start the next job)."""
    wandb = sys.modules.get("wandb")
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish()

"""``Sculptor``: what every prune.py step needs (the prune config, the trained task module and
its data, how to fine-tune, score, time and test), built from a trained checkpoint, and the
check that the targets are reachable at all."""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from medprune.bench import torch_latency
from medprune.inference.checkpoint import CONFIG_KEY
from medprune.pruning.criteria import StepResult, Targets, describe_floor, quality_drop
from medprune.pruning.structured import count_parameters, prune_channels
from medprune.runs.job import build_data, build_task, pruning_callback


@dataclass
class Sculptor:
    """What every step needs: the prune config, the task module and its data, how to score."""

    cfg: DictConfig
    module: L.LightningModule
    datamodule: L.LightningDataModule
    example: torch.Tensor  # (1, C, H, W): tracing, export and latency input
    metric: str  # the trained run's monitor.metric, e.g. val/dice_mean
    higher_is_better: bool
    out: Path

    def trainer(self, **overrides: Any) -> L.Trainer:
        """A new Trainer from ``cfg.trainer``; no checkpoints or loggers of its own."""
        kwargs = {"logger": False, "enable_checkpointing": False, "callbacks": []}
        kwargs.update(overrides)
        return instantiate(self.cfg.trainer, default_root_dir=str(self.out), **kwargs)

    def fine_tune(
        self, callbacks: list[L.Callback] | None = None, epochs: int | None = None
    ) -> None:
        """``epochs`` (default ``finetune.epochs``) epochs; a new Trainer builds a new
        optimizer for the (possibly reshaped) parameters. Validation is left to ``score``."""
        epochs = self.cfg.finetune.epochs if epochs is None else epochs
        if epochs == 0:
            return
        trainer = self.trainer(
            max_epochs=epochs,
            limit_val_batches=0,
            num_sanity_val_steps=0,
            callbacks=callbacks or [],
        )
        trainer.fit(self.module, datamodule=self.datamodule)

    def score(self, step: int, params: int) -> tuple[StepResult, dict[str, float]]:
        """Val metrics (post-processing tuned on this pass) and batch-1 CPU latency."""
        val = self.module.tuned_validation(self.trainer(), self.datamodule)
        if self.metric not in val:
            raise ValueError(
                f"monitor.metric={self.metric!r} of the trained run was not logged by its "
                f"validation (logged: {', '.join(sorted(val))})"
            )
        return StepResult(step, params, val[self.metric], self.latency(self.module.net)), val

    def latency(self, net: torch.nn.Module) -> float:
        """Median ms of ``net`` on the example input (``bench.*`` threads and repeats)."""
        bench = self.cfg.bench
        shape = list(self.example.shape)
        return torch_latency(net, shape, bench.threads, bench.warmup, bench.repeats)["median_ms"]

    def test_quality_drop(self, dense: dict[str, float], other: dict[str, float]) -> float:
        """Relative drop of the main metric's test value from ``dense`` to ``other`` (test
        metrics); NaN where either lacks it."""
        key = self.metric.replace("val/", "test/", 1)
        nan = float("nan")
        return quality_drop(dense.get(key, nan), other.get(key, nan), self.higher_is_better)

    def test(self) -> dict[str, float]:
        (metrics,) = self.trainer().test(self.module, datamodule=self.datamodule, verbose=False)
        return {k: float(v) for k, v in sorted(metrics.items())}

    def snapshot(self) -> tuple[torch.nn.Module, dict[str, Any]]:
        """The network and the task's checkpoint extras (e.g. tuned watershed thresholds)."""
        extras: dict[str, Any] = {}
        self.module.on_save_checkpoint(extras)
        return copy.deepcopy(self.module.net), extras

    def restore(self, snapshot: tuple[torch.nn.Module, dict[str, Any]]) -> None:
        net, extras = snapshot
        self.module.attach(net)
        self.module.on_load_checkpoint(extras)


def build_sculptor(
    cfg: DictConfig, trained_cfg: DictConfig, checkpoint: dict, out: Path
) -> Sculptor:
    """The trained task with the checkpoint's weights and extras, its data, an example batch."""
    source = "the checkpoint" if CONFIG_KEY in checkpoint else "<run>/config.yaml"
    try:
        net, module = build_task(trained_cfg)
        module.load_state_dict(checkpoint["state_dict"])  # strict
    except Exception as err:  # a config that no longer fits the weights, or foreign weights
        raise ValueError(
            f"ckpt={cfg.ckpt}: its weights do not load into the model its config (from "
            f"{source}) builds: {err}"
        ) from err
    module.on_load_checkpoint(checkpoint)
    try:
        datamodule = build_data(trained_cfg.data)
    except FileNotFoundError as err:
        raise FileNotFoundError(
            f"{err} (from the data config of ckpt={cfg.ckpt}): if the data has moved since "
            "training, pass its new place, e.g. data.root=<folder> (data.test_root=<folder>)"
        ) from None
    datamodule.setup("fit")
    image = next(iter(datamodule.train_dataloader()))["image"]
    size = list(cfg.bench.input_size or image.shape[-2:])
    multiple = module.multiple
    if any(side % multiple or side < 2 * multiple for side in size):
        raise ValueError(
            f"bench.input_size={size}: the U-Net (model.depth={trained_cfg.model.depth}) "
            f"needs sides that are multiples of {multiple} px and at least {2 * multiple}"
        )
    noise = torch.Generator().manual_seed(0)
    example = torch.randn(1, image.shape[1], *size, generator=noise)
    monitor = trained_cfg.get("monitor") or {}
    if not monitor.get("metric"):
        raise ValueError(f"ckpt={cfg.ckpt}: its config has no monitor.metric to score steps by")
    return Sculptor(
        cfg=cfg,
        module=module,
        datamodule=datamodule,
        example=example,
        metric=monitor["metric"],
        higher_is_better=monitor.get("mode", "max") == "max",
        out=out,
    )


def check_reachable(sculptor: Sculptor, targets: Targets) -> None:
    """Targets no model of this architecture (channels) or sparsity (weights) can meet fail
    before anything is scored or trained."""
    cfg, net = sculptor.cfg, sculptor.module.net
    total = count_parameters(net)
    if cfg.pruning.scope == "none":  # no size criterion to reach
        return
    if cfg.pruning.scope == "structured":
        smallest = prune_channels(
            copy.deepcopy(net),
            sculptor.example,
            0.999,
            ranking="uniform",
            max_layer_ratio=1.0,
            min_channels=cfg.pruning.min_channels,
        )
        floor = cfg.pruning.min_channels
        targets.check_reachable(total, count_parameters(smallest), floor)
        if targets.max_latency_ms is not None:
            fastest = sculptor.latency(smallest)
            if fastest > targets.max_latency_ms:
                raise ValueError(
                    f"target.max_latency_ms={targets.max_latency_ms}: even the smallest model "
                    f"this architecture allows ({describe_floor(floor)}) takes {fastest:.2f} ms "
                    f"at batch 1 on {list(sculptor.example.shape)} with "
                    f"{cfg.bench.threads} threads"
                )
        return
    callback = pruning_callback(cfg.pruning)
    callback.resolve(callback.network(sculptor.module))
    zeroed = sum(
        int(target * sum(p.numel() for p in params.values()))
        for target, params in callback.groups.values()
    )
    if targets.param_limit(total) < total - zeroed:
        raise ValueError(
            f"target.compression / target.max_params ask for <= "
            f"{targets.param_limit(total):,.0f} non-zero parameters, but sparsity="
            f"{cfg.pruning.target_sparsity} leaves {total - zeroed:,} of {total:,}: raise "
            "sparsity (or pruning.targets.*)"
        )

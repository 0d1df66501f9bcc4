"""``sculpt(cfg)``: turn a trained model into a smaller, faster one for CPU inference.

The checkpoint's own config rebuilds the task, network and data. The dense model is scored
first (val, with post-processing tuned, then test). Then, for ``pruning=structured``, channels
are removed step by step (``medprune.pruning.structured``), each step fine-tuned with a new
optimizer and scored on val, until the deployment criteria hold or quality falls past the
tolerance (``medprune.pruning.criteria``); ``pruning=global|layerwise`` instead fine-tunes once
with the gradual magnitude callback. The most compressed step within the tolerance is tested,
exported (``model.pt2``, ``model.onnx``) and benchmarked against the dense model
(``medprune.sculpt_report``). The input checkpoint is only read.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from medprune.bench import torch_latency
from medprune.checkpoints import CONFIG_KEY, load_trained, with_data_overrides
from medprune.config import validate_prune_config
from medprune.job import (
    PRUNE_HINT,
    PRUNE_OUTPUTS,
    build_data,
    build_task,
    check_fresh_output_dir,
    finish_wandb,
    instantiate_dict,
    log_lightning_to_run_file,
    pruning_callback,
    update_wandb_summary,
)
from medprune.pruning.criteria import (
    StepResult,
    Targets,
    criteria_met,
    describe_floor,
    select_step,
    stop_reason,
)
from medprune.pruning.structured import channel_widths, count_parameters, prune_channels
from medprune.sculpt_report import deliver, wandb_values

log = logging.getLogger(__name__)


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


def sculpt(cfg: DictConfig) -> dict[str, Any]:
    """Prune ``cfg.ckpt`` to ``cfg.target``; write summary.json, report.md and the exported
    model to ``cfg.paths.output_dir``; return the summary."""
    validate_prune_config(cfg)
    targets = Targets(**OmegaConf.to_container(cfg.target, resolve=True))
    targets.validate()
    out = Path(cfg.paths.output_dir)
    check_fresh_output_dir(out, PRUNE_OUTPUTS, PRUNE_HINT)
    trained_cfg, checkpoint = load_trained(cfg.ckpt)
    trained_cfg = with_data_overrides(trained_cfg, cfg.get("data"))
    out.mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    log_lightning_to_run_file()
    L.seed_everything(cfg.seed, workers=True)
    loggers = instantiate_dict(cfg.get("logger"), "logger")
    status = "failed"
    try:
        for logger in loggers:
            logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
        sculptor = _build(cfg, trained_cfg, checkpoint, out)
        if cfg.finetune.lr is not None:
            sculptor.module.hparams.lr = float(cfg.finetune.lr)
        _check_reachable(sculptor, targets)
        if cfg.finetune.distill:  # a frozen copy of the dense network, checked before scoring
            sculptor.module.set_teacher(copy.deepcopy(sculptor.module.net), cfg.finetune.distill)
        history, rows = [], []
        base, val = sculptor.score(0, count_parameters(sculptor.module.net))
        dense = sculptor.snapshot()  # with the thresholds just tuned for the dense network
        _record(history, rows, base, val, sculptor, loggers)
        baseline_test = sculptor.test()
        if cfg.pruning.scope == "structured":
            reason, chosen = _structured_steps(sculptor, targets, history, rows, loggers)
        else:
            reason, chosen = _unstructured_step(sculptor, targets, history, rows, loggers)
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
        status = "success"
        return summary
    finally:
        for logger in loggers:  # loggers outside a Trainer: flush them here (CSV writes now)
            logger.finalize(status)
        finish_wandb()


def _build(cfg: DictConfig, trained_cfg: DictConfig, checkpoint: dict, out: Path) -> Sculptor:
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


def _check_reachable(sculptor: Sculptor, targets: Targets) -> None:
    """Targets no model of this architecture (channels) or sparsity (weights) can meet fail
    before anything is scored or trained."""
    cfg, net = sculptor.cfg, sculptor.module.net
    total = count_parameters(net)
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


def _record(history, rows, result: StepResult, val, sculptor, loggers, epochs: int = 0) -> None:
    history.append(result)
    base = history[0]
    row = {
        **asdict(result),
        "epochs": epochs,  # fine-tuning epochs of this step
        "compression": base.params / result.params,
        "val": val,
        "widths": channel_widths(sculptor.module.net),
    }
    rows.append(row)
    scalars = {f"sculpt/{k}": row[k] for k in ("params", "compression", "quality", "latency_ms")}
    for logger in loggers:
        logger.log_metrics(scalars, step=result.step)
        logger.save()  # a long run's steps are on disk (metrics.csv) as they finish
    log.info(
        "step %d: %s params (%.1fx), %s %.4f (%+.2f %% vs dense), %.2f ms",
        result.step,
        f"{result.params:,}",
        row["compression"],
        sculptor.metric,
        result.quality,
        100 * (result.quality / base.quality - 1) if base.quality else 0.0,
        result.latency_ms,
    )


def _structured_steps(sculptor: Sculptor, targets: Targets, history, rows, loggers):
    """Prune ``pruning.step_ratio`` of the channels, fine-tune, score; until ``stop_reason``
    (checked on the dense model first: it may already meet the criteria)."""
    cfg, module = sculptor.cfg, sculptor.module
    higher = sculptor.higher_is_better
    patience = cfg.pruning.patience
    chosen, reason = None, stop_reason(history, targets, cfg.pruning.max_steps, higher, patience)
    while reason is None:
        before = count_parameters(module.net)
        prune_channels(
            module.net,
            sculptor.example,
            cfg.pruning.step_ratio,
            importance=cfg.pruning.importance,
            ranking=cfg.pruning.ranking,
            min_channels=cfg.pruning.min_channels,
        )
        if count_parameters(module.net) == before:
            floor = describe_floor(cfg.pruning.min_channels)
            return f"no channel left to remove ({floor})", chosen
        module.attach(module.net)  # new parameters: back to channels-last
        sculptor.fine_tune()
        result, val = sculptor.score(len(history), count_parameters(module.net))
        epochs, extra = cfg.finetune.epochs, cfg.finetune.recover_epochs
        if extra and not criteria_met(result, history[0], targets, higher)["max_quality_drop"]:
            log.info("step %d: past the quality tolerance; %d recovery epochs", result.step, extra)
            sculptor.fine_tune(epochs=extra)  # a new optimizer: the cosine decay restarts
            result, val = sculptor.score(result.step, result.params)
            epochs += extra
        _record(history, rows, result, val, sculptor, loggers, epochs)
        if select_step(history, targets, higher) is result:
            chosen = sculptor.snapshot()
        reason = stop_reason(history, targets, cfg.pruning.max_steps, higher, patience)
    return reason, chosen


def _unstructured_step(sculptor: Sculptor, targets: Targets, history, rows, loggers):
    """Gradual magnitude pruning to ``sparsity`` during one fine-tuning run; the parameter
    count of the result is its non-zero parameters."""
    cfg, net = sculptor.cfg, sculptor.module.net
    sculptor.fine_tune([pruning_callback(cfg.pruning)])  # its setup selects the layers
    nonzero = sum(int(torch.count_nonzero(p)) for p in net.parameters())
    result, val = sculptor.score(1, nonzero)
    _record(history, rows, result, val, sculptor, loggers, cfg.finetune.epochs)
    reason = stop_reason(history, targets, 1, sculptor.higher_is_better)
    if reason.startswith("pruning.max_steps"):  # one step here: name what set its size
        reason = f"sparsity={cfg.pruning.target_sparsity} reached without every criterion met"
    return reason, sculptor.snapshot()

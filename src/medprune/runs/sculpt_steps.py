"""The steps of a prune.py run: structured (remove channels, fine-tune, score, until the
criteria hold or quality falls past the tolerance) or unstructured (one fine-tuning run with
the gradual magnitude callback); every step recorded and logged as it finishes."""

from __future__ import annotations

import logging
from dataclasses import asdict

import torch

from medprune.pruning.criteria import (
    StepResult,
    Targets,
    criteria_met,
    describe_floor,
    select_step,
    stop_reason,
)
from medprune.pruning.structured import channel_widths, count_parameters, prune_channels
from medprune.runs.job import pruning_callback
from medprune.runs.sculptor import Sculptor

log = logging.getLogger(__name__)


def record_step(history, rows, result: StepResult, val, sculptor, loggers, epochs: int = 0) -> None:
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


def structured_steps(sculptor: Sculptor, targets: Targets, history, rows, loggers):
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
        record_step(history, rows, result, val, sculptor, loggers, epochs)
        if select_step(history, targets, higher) is result:
            chosen = sculptor.snapshot()
        reason = stop_reason(history, targets, cfg.pruning.max_steps, higher, patience)
    return reason, chosen


def unstructured_step(sculptor: Sculptor, targets: Targets, history, rows, loggers):
    """Gradual magnitude pruning to ``sparsity`` during one fine-tuning run; the parameter
    count of the result is its non-zero parameters."""
    cfg, net = sculptor.cfg, sculptor.module.net
    sculptor.fine_tune([pruning_callback(cfg.pruning)])  # its setup selects the layers
    nonzero = sum(int(torch.count_nonzero(p)) for p in net.parameters())
    result, val = sculptor.score(1, nonzero)
    record_step(history, rows, result, val, sculptor, loggers, cfg.finetune.epochs)
    reason = stop_reason(history, targets, 1, sculptor.higher_is_better)
    if reason.startswith("pruning.max_steps"):  # one step here: name what set its size
        reason = f"sparsity={cfg.pruning.target_sparsity} reached without every criterion met"
    return reason, sculptor.snapshot()


def no_steps(sculptor: Sculptor, targets: Targets, history, rows, loggers):
    """``pruning=none``: the trained model as it is, scored, exported and benchmarked (and
    quantized with ``export.int8=true``: the dense int8 baseline)."""
    return "pruning=none: the trained model as it is", None


#: The step loop of each ``pruning`` scope prune.py takes.
STEPS = {
    "structured": structured_steps,
    "global": unstructured_step,
    "layerwise": unstructured_step,
    "none": no_steps,
}

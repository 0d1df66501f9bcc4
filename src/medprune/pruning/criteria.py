"""Deployment criteria for ``prune.py``: when to stop pruning and which step to hand back.

Pruning proceeds in steps, each followed by fine-tuning and an evaluation. A step is a
``StepResult``; step 0 is the dense baseline. The loop stops as soon as the size and latency
criteria all hold, or when the quality drop passes ``max_quality_drop`` (further pruning only
removes more), or when the steps run out. The model handed back is the most compressed step
that stays within the quality tolerance, with each criterion reported met or not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from medprune.common.checks import check_positive, check_range

#: The criteria on size or speed; at least one must be given.
SIZE_CRITERIA = ("compression", "max_params", "max_latency_ms")


@dataclass(frozen=True)
class StepResult:
    """One pruning step after its fine-tuning: ``params`` counts all parameters (for the
    unstructured path, the non-zero ones), ``latency_ms`` is the CPU median at batch 1
    (None if not measured), ``quality`` is the task's main val metric."""

    step: int
    params: int
    quality: float
    latency_ms: float | None = None


@dataclass(frozen=True)
class Targets:
    """``compression``: baseline params / pruned params (>= 1); ``max_params``: parameter
    count; ``max_latency_ms``: CPU latency at batch 1 in ms; ``max_quality_drop``: relative
    drop of the main metric allowed against the dense baseline (0.04 = 4 %)."""

    compression: float | None = None
    max_params: int | None = None
    max_latency_ms: float | None = None
    max_quality_drop: float = 0.04

    def validate(self, size_required: bool = True) -> None:
        """Values no model could meet, each message naming its ``target.*`` key;
        ``size_required``: at least one size or speed criterion must be given."""
        given = [k for k in SIZE_CRITERIA if getattr(self, k) is not None]
        if not given and size_required:
            raise ValueError(
                "no deployment criterion: set at least one of target.compression, "
                "target.max_params, target.max_latency_ms"
            )
        if self.compression is not None:
            check_range(
                self.compression,
                "target.compression",
                1,
                math.inf,
                what="a parameter ratio (baseline params / pruned params)",
            )
        if self.max_params is not None:
            count = check_range(
                self.max_params, "target.max_params", 1, math.inf, what="a parameter count"
            )
            if count != int(count):
                raise ValueError(f"target.max_params={self.max_params!r}: expected a whole number")
        if self.max_latency_ms is not None:
            check_positive(self.max_latency_ms, "target.max_latency_ms", what="a latency in ms")
        check_range(
            self.max_quality_drop, "target.max_quality_drop", what="a relative drop (0.04 = 4 %)"
        )

    def param_limit(self, baseline_params: int) -> float:
        """The largest parameter count the size criteria allow (inf if none is set)."""
        limits = [float("inf")]
        if self.compression is not None:
            limits.append(baseline_params / self.compression)
        if self.max_params is not None:
            limits.append(self.max_params)
        return min(limits)

    def check_reachable(self, baseline_params: int, min_params: int, min_channels: int = 1) -> None:
        """A size target below the smallest model the architecture allows (every prunable
        layer down to ``min_channels``) cannot be met: say so before any step is trained."""
        limit = self.param_limit(baseline_params)
        if limit < min_params:
            keys = [k for k in ("compression", "max_params") if getattr(self, k) is not None]
            raise ValueError(
                f"target.{' and target.'.join(keys)} ask for <= {limit:,.0f} parameters, but "
                f"the smallest model this architecture allows ({describe_floor(min_channels)}) "
                f"has {min_params:,} (compression {baseline_params / min_params:,.1f}x at most)"
            )


def describe_floor(min_channels: int) -> str:
    """The per-layer floor of the smallest model, for error messages."""
    if min_channels == 1:
        return "one channel per prunable layer"
    return f"pruning.min_channels={min_channels} per prunable layer"


def quality_drop(baseline: float, value: float, higher_is_better: bool = True) -> float:
    """Relative loss of quality against the baseline (negative when the value is better)."""
    if baseline == 0:  # no relative scale: any loss is total, any gain unbounded
        if value == 0:
            return 0.0
        better = value > 0 if higher_is_better else value < 0
        return -math.inf if better else math.inf
    change = (baseline - value) / abs(baseline)
    return change if higher_is_better else -change


def criteria_met(
    result: StepResult,
    baseline: StepResult,
    targets: Targets,
    higher_is_better: bool = True,
) -> dict[str, bool]:
    """Each given criterion of ``targets`` (by its key) met or not by ``result``."""
    met = {}
    if targets.compression is not None:
        met["compression"] = baseline.params / result.params >= targets.compression
    if targets.max_params is not None:
        met["max_params"] = result.params <= targets.max_params
    if targets.max_latency_ms is not None:
        latency = result.latency_ms
        met["max_latency_ms"] = latency is not None and latency <= targets.max_latency_ms
    drop = quality_drop(baseline.quality, result.quality, higher_is_better)
    met["max_quality_drop"] = drop <= targets.max_quality_drop
    return met


def stop_reason(
    history: list[StepResult],
    targets: Targets,
    max_steps: int,
    higher_is_better: bool = True,
    patience: int = 0,
) -> str | None:
    """Why the loop should stop after the last step of ``history`` (step 0 = baseline), or
    None to prune on. ``patience``: steps in a row past the quality tolerance that are
    allowed before stopping (val quality is noisy from one step to the next; a later step
    may come back within it)."""
    baseline, last = history[0], history[-1]
    within = [
        criteria_met(r, baseline, targets, higher_is_better)["max_quality_drop"] for r in history
    ]
    breaches = len(within) - 1 - max(i for i, ok in enumerate(within) if ok)
    if breaches > patience:
        return "quality drop beyond target.max_quality_drop" + (
            f" for {breaches} steps in a row" if patience else ""
        )
    met = criteria_met(last, baseline, targets, higher_is_better)
    if met.pop("max_quality_drop") and all(met.values()):
        return "criteria met"
    if last.step >= max_steps:
        return f"pruning.max_steps={max_steps} reached"
    return None


def select_step(
    history: list[StepResult], targets: Targets, higher_is_better: bool = True
) -> StepResult:
    """The most compressed step within the quality tolerance (the baseline if none is)."""
    baseline = history[0]
    within = [
        r
        for r in history
        if criteria_met(r, baseline, targets, higher_is_better)["max_quality_drop"]
    ]
    return min(within, key=lambda r: (r.params, -r.step))

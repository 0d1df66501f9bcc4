"""Deployment criteria: stop at the right step and hand back the right one (constructed runs)."""

import re

import pytest

from medprune.pruning.criteria import (
    StepResult,
    Targets,
    criteria_met,
    quality_drop,
    select_step,
    stop_reason,
)

BASE = StepResult(step=0, params=10_000, quality=0.80, latency_ms=40.0)


def run(*steps: tuple[int, float, float]) -> list[StepResult]:
    """Steps 1.. from (params, quality, latency_ms)."""
    return [BASE] + [StepResult(i, p, q, t) for i, (p, q, t) in enumerate(steps, start=1)]


def test_quality_drop_is_relative_and_signed() -> None:
    assert quality_drop(0.8, 0.76) == pytest.approx(0.05)
    assert quality_drop(0.8, 0.84) == pytest.approx(-0.05)
    assert quality_drop(10.0, 11.0, higher_is_better=False) == pytest.approx(0.1)


def test_stops_at_the_first_step_meeting_every_size_criterion() -> None:
    targets = Targets(compression=10, max_latency_ms=20, max_quality_drop=0.04)
    history = run((5_000, 0.80, 30), (2_000, 0.79, 21), (900, 0.785, 19), (400, 0.70, 10))
    reasons = [stop_reason(history[: i + 1], targets, max_steps=10) for i in range(1, 5)]
    # 10,000 / 900 = 11.1x >= 10 and 19 ms <= 20 ms at step 3; drop 1.9 % <= 4 %
    assert reasons[:3] == [None, None, "criteria met"]
    assert select_step(history[:4], targets) == history[3]
    assert criteria_met(history[3], BASE, targets) == {
        "compression": True,
        "max_latency_ms": True,
        "max_quality_drop": True,
    }


def test_quality_breach_stops_and_hands_back_the_last_step_within_tolerance() -> None:
    targets = Targets(max_params=500, max_quality_drop=0.04)
    history = run((5_000, 0.79, None), (2_000, 0.78, None), (900, 0.70, None))
    assert stop_reason(history[:3], targets, max_steps=10) is None
    assert stop_reason(history, targets, max_steps=10) == (
        "quality drop beyond target.max_quality_drop"
    )
    chosen = select_step(history, targets)
    assert chosen.step == 2  # 0.78 is 2.5 % below 0.80; 0.70 is 12.5 % below
    assert criteria_met(chosen, BASE, targets)["max_params"] is False


def test_patience_prunes_on_past_a_noisy_step() -> None:
    targets = Targets(compression=100, max_quality_drop=0.04)
    # 0.76 is 5 % below 0.80 (past 4 %), 0.78 is back within it, then two steps past
    history = run((5_000, 0.79, None), (2_500, 0.76, None), (1_200, 0.78, None))
    history += run((600, 0.70, None), (300, 0.60, None))[1:]
    history = [StepResult(i, r.params, r.quality) for i, r in enumerate(history)]
    assert stop_reason(history[:3], targets, max_steps=10) == (
        "quality drop beyond target.max_quality_drop"
    )
    assert stop_reason(history[:3], targets, max_steps=10, patience=1) is None
    assert stop_reason(history[:4], targets, max_steps=10, patience=1) is None
    assert stop_reason(history[:5], targets, max_steps=10, patience=1) is None
    assert stop_reason(history, targets, max_steps=10, patience=1) == (
        "quality drop beyond target.max_quality_drop for 2 steps in a row"
    )
    assert select_step(history, targets).step == 3  # 1,200 params at 0.78


def test_max_steps_and_baseline_fallback() -> None:
    targets = Targets(compression=100, max_quality_drop=0.01)
    history = run((5_000, 0.75, None), (2_000, 0.74, None))
    assert stop_reason(history[:2], targets, max_steps=1) == (
        "quality drop beyond target.max_quality_drop"
    )
    assert select_step(history, targets) == BASE  # no pruned step within 1 %
    ok = run((5_000, 0.80, None))
    assert stop_reason(ok, targets, max_steps=1) == "pruning.max_steps=1 reached"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "at least one of target.compression"),
        (
            {"compression": 0.5},
            "target.compression=0.5: expected a parameter ratio (baseline params / pruned "
            "params) in [1, inf)",
        ),
        ({"compression": True}, "target.compression=True: expected a parameter ratio"),
        ({"max_params": 0}, "target.max_params=0: expected a parameter count in [1, inf)"),
        ({"max_params": 2.5}, "target.max_params=2.5: expected a whole number"),
        ({"max_latency_ms": -1.0}, "target.max_latency_ms=-1.0: expected a latency in ms > 0"),
        (
            {"compression": 10, "max_quality_drop": 1.5},
            "target.max_quality_drop=1.5: expected a relative drop (0.04 = 4 %) in [0, 1)",
        ),
    ],
)
def test_bad_targets_name_their_key(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        Targets(**kwargs).validate()


def test_target_beyond_the_architecture() -> None:
    targets = Targets(compression=1000, max_params=50)
    assert targets.param_limit(10_000) == 10
    with pytest.raises(ValueError, match=r"target\.compression and target\.max_params.*<= 10 "):
        targets.check_reachable(10_000, min_params=120)
    Targets(compression=50).check_reachable(10_000, min_params=120)  # 200 >= 120: reachable

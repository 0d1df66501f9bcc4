"""Sparsity schedules over optimizer steps.

Zhu & Gupta 2017 ("To prune, or not to prune"), gradual magnitude pruning:

    s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3

for t in {t0, t0 + dt, ..., t0 + n * dt}: pruning is fast while many redundant weights remain
and slows down as the network approaches its final sparsity. Every value is an absolute
fraction of the original prunable weights, never a fraction of what remains.
"""

from __future__ import annotations


def cubic_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int
) -> float:
    """Target sparsity (fraction in [0, 1)) at optimizer step ``step``.

    ``initial`` before and at ``begin_step``, ``final`` at and after ``end_step``.
    """
    if end_step <= begin_step:
        raise ValueError(f"cubic_sparsity: end_step={end_step} must be > begin_step={begin_step}")
    if step <= begin_step:
        return float(initial)
    if step >= end_step:
        return float(final)
    remaining = 1.0 - (step - begin_step) / (end_step - begin_step)
    return float(final + (initial - final) * remaining**3)


def update_steps(begin_step: int, end_step: int, frequency: int) -> list[int]:
    """Optimizer steps at which masks are recomputed: every ``frequency`` steps from
    ``begin_step``, and always ``end_step`` so the run ends exactly at the final target."""
    if frequency < 1:
        raise ValueError(f"update_steps: frequency={frequency} must be >= 1")
    steps = list(range(begin_step, end_step, frequency))
    return [*steps, end_step]

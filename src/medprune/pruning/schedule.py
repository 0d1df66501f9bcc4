"""Sparsity schedules over optimizer steps: when masks are recomputed and to what target.

Every value is an absolute fraction of the original prunable weights, never a fraction of
what remains (``torch.nn.utils.prune``'s ``amount`` is the latter).

- ``cubic`` (Zhu & Gupta 2017, "To prune, or not to prune"):
  s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n * dt)) ** 3 for t in {t0, t0 + dt, ..., t0 + n dt}:
  fast while many redundant weights remain, slow as the network nears its final sparsity.
- ``linear``: the same window and updates, a straight ramp from s_i to s_f.
- ``constant``: s_f from the very first optimizer step (sparse training from initialisation);
  ``begin``/``end`` are not used.
- ``one_shot``: dense until ``begin_step``, then s_f at once; the rest of the run fine-tunes.
- ``iterative``: ``rounds`` prune-then-fine-tune rounds evenly spaced from ``begin_step`` to
  ``end_step``, each removing the same fraction of the remaining weights (Han et al. 2015;
  Frankle & Carbin 2019): s_r = 1 - (1 - s_i) * ((1 - s_f) / (1 - s_i)) ** (r / R).
"""

from __future__ import annotations

from medprune.common.checks import check_int

SCHEDULES = ("cubic", "linear", "constant", "one_shot", "iterative")
#: Weight rewinding (lottery ticket) belongs to schedules that prune in few large steps with
#: training in between; with a mask update every few steps it would undo all training.
REWIND_SCHEDULES = ("iterative", "one_shot")


def _check_window(begin_step: int, end_step: int) -> None:
    if end_step <= begin_step:
        raise ValueError(f"schedule: end_step={end_step} must be > begin_step={begin_step}")


def cubic_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int
) -> float:
    """Target sparsity (fraction in [0, 1)) at optimizer step ``step``.

    ``initial`` before and at ``begin_step``, ``final`` at and after ``end_step``.
    """
    _check_window(begin_step, end_step)
    if step <= begin_step:
        return float(initial)
    if step >= end_step:
        return float(final)
    remaining = 1.0 - (step - begin_step) / (end_step - begin_step)
    return float(final + (initial - final) * remaining**3)


def linear_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int
) -> float:
    _check_window(begin_step, end_step)
    if step <= begin_step:
        return float(initial)
    if step >= end_step:
        return float(final)
    done = (step - begin_step) / (end_step - begin_step)
    return float(initial + (final - initial) * done)


def iterative_round_steps(begin_step: int, end_step: int, rounds: int) -> list[int]:
    """Steps of the pruning rounds: the first at ``begin_step``, the last at ``end_step``."""
    _check_window(begin_step, end_step)
    check_int(rounds, "rounds")
    if rounds == 1:
        return [end_step]
    span = end_step - begin_step
    return [begin_step + round(r * span / (rounds - 1)) for r in range(rounds)]


def iterative_sparsity(
    step: int, *, initial: float, final: float, begin_step: int, end_step: int, rounds: int
) -> float:
    """Sparsity after the last round at or before ``step`` (``initial`` before round one)."""
    done = sum(1 for s in iterative_round_steps(begin_step, end_step, rounds) if s <= step)
    if done == 0:
        return float(initial)
    if done == rounds:
        return float(final)  # exactly, not 1 - (1 - final) ** 1.0 with rounding error
    kept = (1.0 - initial) * ((1.0 - final) / (1.0 - initial)) ** (done / rounds)
    return float(1.0 - kept)


def sparsity_at(
    schedule: str,
    step: int,
    *,
    initial: float,
    final: float,
    begin_step: int,
    end_step: int,
    rounds: int = 1,
) -> float:
    """The schedule's target sparsity at optimizer step ``step``."""
    window = dict(initial=initial, final=final, begin_step=begin_step, end_step=end_step)
    if schedule == "cubic":
        return cubic_sparsity(step, **window)
    if schedule == "linear":
        return linear_sparsity(step, **window)
    if schedule == "constant":
        return float(final)
    if schedule == "one_shot":
        return float(final) if step >= begin_step else 0.0
    if schedule == "iterative":
        return iterative_sparsity(step, rounds=rounds, **window)
    raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")


def update_steps(begin_step: int, end_step: int, frequency: int) -> list[int]:
    """Mask updates of the gradual schedules: every ``frequency`` steps from ``begin_step``,
    and always ``end_step`` so the run ends exactly at the final target."""
    check_int(frequency, "frequency")
    steps = list(range(begin_step, end_step, frequency))
    return [*steps, end_step]


def schedule_steps(
    schedule: str, begin_step: int, end_step: int, frequency: int, rounds: int = 1
) -> list[int]:
    """Optimizer steps at which ``schedule`` recomputes masks, in increasing order."""
    if schedule in ("cubic", "linear"):
        return update_steps(begin_step, end_step, frequency)
    if schedule == "constant":
        return [0]
    if schedule == "one_shot":
        return [begin_step]
    if schedule == "iterative":
        return sorted(set(iterative_round_steps(begin_step, end_step, rounds)))
    raise ValueError(f"schedule={schedule!r}: expected one of {', '.join(SCHEDULES)}")

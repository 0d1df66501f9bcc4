import pytest

from medprune.pruning import cubic_sparsity, update_steps
from medprune.pruning.schedule import (
    iterative_round_steps,
    linear_sparsity,
    schedule_steps,
    sparsity_at,
)


def test_cubic_values_at_begin_middle_end():
    kw = dict(initial=0.0, final=0.9375, begin_step=100, end_step=300)
    assert cubic_sparsity(0, **kw) == 0.0
    assert cubic_sparsity(100, **kw) == 0.0
    # halfway: s_f + (s_i - s_f) * 0.5**3 = 0.9375 * (1 - 0.125)
    assert cubic_sparsity(200, **kw) == pytest.approx(0.8203125)
    # a quarter of the way: 0.9375 * (1 - 0.75**3)
    assert cubic_sparsity(150, **kw) == pytest.approx(0.9375 * (1 - 0.421875))
    assert cubic_sparsity(300, **kw) == 0.9375
    assert cubic_sparsity(10_000, **kw) == 0.9375


def test_cubic_from_nonzero_initial():
    assert cubic_sparsity(5, initial=0.5, final=0.9, begin_step=0, end_step=10) == pytest.approx(
        0.9 - 0.4 * 0.125
    )


def test_cubic_rejects_empty_window():
    with pytest.raises(ValueError, match="end_step=5 must be > begin_step=5"):
        cubic_sparsity(5, initial=0, final=0.5, begin_step=5, end_step=5)


def test_update_steps_include_end():
    assert update_steps(10, 35, 10) == [10, 20, 30, 35]
    assert update_steps(0, 30, 10) == [0, 10, 20, 30]
    with pytest.raises(ValueError, match="frequency=0: expected an integer >= 1"):
        update_steps(0, 10, 0)


WINDOW = dict(initial=0.0, final=0.9375, begin_step=100, end_step=300)


def test_linear_values():
    assert linear_sparsity(100, **WINDOW) == 0.0
    assert linear_sparsity(150, **WINDOW) == pytest.approx(0.9375 / 4)
    assert linear_sparsity(200, **WINDOW) == pytest.approx(0.9375 / 2)
    assert linear_sparsity(300, **WINDOW) == 0.9375
    assert linear_sparsity(150, initial=0.5, final=0.9, begin_step=100, end_step=300) == (
        pytest.approx(0.6)
    )


def test_constant_and_one_shot_values_and_steps():
    assert [sparsity_at("constant", s, **WINDOW) for s in (0, 100, 500)] == [0.9375] * 3
    assert schedule_steps("constant", 100, 300, 10) == [0]
    assert [sparsity_at("one_shot", s, **WINDOW) for s in (0, 99, 100, 500)] == [
        0.0,
        0.0,
        0.9375,
        0.9375,
    ]
    assert schedule_steps("one_shot", 100, 300, 10) == [100]


def test_iterative_rounds_remove_the_same_fraction_of_what_remains():
    assert iterative_round_steps(100, 300, 3) == [100, 200, 300]
    assert iterative_round_steps(0, 10, 4) == [0, 3, 7, 10]
    assert iterative_round_steps(100, 300, 1) == [300]
    values = [sparsity_at("iterative", s, rounds=3, **WINDOW) for s in (99, 100, 250, 300)]
    # kept fraction after r of 3 rounds: 0.0625 ** (r / 3) -> 0.3969, 0.1575, 0.0625
    assert values[0] == 0.0
    assert values[1] == pytest.approx(1 - 0.0625 ** (1 / 3))
    assert values[2] == pytest.approx(1 - 0.0625 ** (2 / 3))
    assert values[3] == 0.9375  # exactly the target after the last round
    # each round keeps the same fraction of the weights the previous round kept
    kept = [1 - v for v in values[1:]]
    assert kept[1] / kept[0] == pytest.approx(kept[2] / kept[1])
    assert schedule_steps("iterative", 100, 300, 10, rounds=3) == [100, 200, 300]


def test_cubic_and_linear_update_steps_and_unknown_schedule():
    assert schedule_steps("cubic", 10, 35, 10) == [10, 20, 30, 35]
    assert schedule_steps("linear", 10, 35, 10) == [10, 20, 30, 35]
    with pytest.raises(ValueError, match="schedule='exp': expected one of cubic, linear"):
        sparsity_at("exp", 1, **WINDOW)
    with pytest.raises(ValueError, match="rounds=0: expected an integer >= 1"):
        iterative_round_steps(0, 10, 0)

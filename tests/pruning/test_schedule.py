import pytest

from medprune.pruning import cubic_sparsity, update_steps


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
    with pytest.raises(ValueError, match="frequency=0"):
        update_steps(0, 10, 0)

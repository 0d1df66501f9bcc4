import pytest
import torch
from tiny_lightning import TinyModule, fit

from medprune.pruning import GradualMagnitudePruning, prunable_parameters


def test_global_reaches_exact_target_and_pruned_stay_zero(tmp_path):
    cb = GradualMagnitudePruning("global", 0.9, begin=0.1, end=0.6, frequency=3)
    module, trainer, watcher = fit(cb, tmp_path)
    params = prunable_parameters(module.net)
    total = sum(w.numel() for w in params.values())
    zeros = sum(int((w == 0).sum()) for w in params.values())
    assert zeros == round(0.9 * total)
    # schedule over 20 steps: begin 2, end 12, updates every 3 steps and at the end
    assert (cb.begin_step, cb.end_step) == (2, 12) and cb.last_update_step == 12
    # biases and BatchNorm are never pruned
    assert all(
        torch.count_nonzero(m.bias) == m.bias.numel()
        for m in module.net
        if hasattr(m, "bias") and m.bias is not None
    )
    # once zero, zero for good: each step's zero set contains the previous one
    for before, after in zip(watcher.history, watcher.history[1:]):
        assert all(torch.all(after[n] | ~before[n]) for n in before)
    assert trainer.callback_metrics["pruning/sparsity"] == pytest.approx(0.9, abs=1e-3)
    assert trainer.callback_metrics["pruning/target_sparsity"] == pytest.approx(0.9)
    # every mask update reaches the logger, although log_every_n_steps=50 > the run's 20 steps
    logged = [(step, m) for step, m in trainer.logger.records if "pruning/sparsity" in m]
    assert [step for step, _ in logged] == [2, 5, 8, 11, 12]
    assert logged[-1][1]["pruning/target_sparsity"] == pytest.approx(0.9)
    assert logged[-1][1]["pruning/sparsity"] == pytest.approx(0.9, abs=1e-3)
    # sparsity per top-level child of the network (the seg/dist branches of the nuclei model)
    assert set(logged[0][1]) == {
        "pruning/target_sparsity",
        "pruning/sparsity",
        "pruning/nonzero_params",
        "pruning/sparsity_0",
        "pruning/sparsity_4",
        "pruning/sparsity_6",
    }


def test_layerwise_prunes_each_layer_to_target(tmp_path):
    cb = GradualMagnitudePruning("layerwise", 0.75, begin=0.0, end=0.5, frequency=2)
    module, _, _ = fit(cb, tmp_path)
    for name, w in prunable_parameters(module.net).items():
        assert int((w == 0).sum()) == round(0.75 * w.numel()), name


def test_sparsity_rises_along_the_cubic_schedule(tmp_path):
    cb = GradualMagnitudePruning("global", 0.8, begin=0.0, end=1.0, frequency=5)
    _, _, watcher = fit(cb, tmp_path)
    n = sum(z.numel() for z in watcher.history[0].values())
    sparsity = [sum(int(z.sum()) for z in h.values()) / n for h in watcher.history]
    # masks change at steps 5, 10, 15, 20: s_t = 0.8 * (1 - (1 - t/20)^3)
    for step, expected in [
        (5, 0.8 * (1 - 0.75**3)),
        (10, 0.7),
        (15, 0.8 * (1 - 0.25**3)),
        (20, 0.8),
    ]:
        assert sparsity[step - 1] == pytest.approx(expected, abs=1.0 / n)


def test_state_round_trip_and_strict_load_into_unpruned_model(tmp_path):
    cb = GradualMagnitudePruning("global", 0.5, frequency=1)
    module, _, _ = fit(cb, tmp_path)
    restored = GradualMagnitudePruning("global", 0.5, frequency=1)
    restored.load_state_dict(cb.state_dict())
    assert restored.last_update_step == cb.last_update_step
    assert all(torch.equal(restored.masks[n], cb.masks[n].cpu()) for n in cb.masks)
    assert restored.current_targets == cb.current_targets == {"all": 0.5}
    fresh = TinyModule()
    fresh.net.load_state_dict(module.net.state_dict(), strict=True)


def test_include_exclude_selects_layers_and_bad_globs_fail(tmp_path):
    cb = GradualMagnitudePruning("global", 0.5, include=["4.*"], frequency=1)
    module, _, _ = fit(cb, tmp_path)
    assert torch.count_nonzero(module.net[0].weight) == module.net[0].weight.numel()
    assert int((module.net[4].weight == 0).sum()) == round(0.5 * module.net[4].weight.numel())
    with pytest.raises(ValueError, match=r"pruning.include pattern 'nothing\*' matches no"):
        fit(GradualMagnitudePruning("global", 0.5, include=["nothing*"]), tmp_path)
    with pytest.raises(ValueError, match="pruning selects no weights"):
        fit(GradualMagnitudePruning("global", 0.5, exclude=["*"]), tmp_path)


def test_adam_moments_of_pruned_weights_are_zero_and_stay_zero(tmp_path):
    cb = GradualMagnitudePruning("global", 0.8, begin=0.1, end=0.5, frequency=2)
    module, trainer, _ = fit(cb, tmp_path)
    (optimizer,) = trainer.optimizers
    kept_moving = 0
    for name, weight in cb.params.items():
        pruned = ~cb.masks[name]
        state = optimizer.state[weight]
        # 10 more Adam steps after the last update: masked gradients kept them at zero
        assert state["exp_avg"][pruned].eq(0).all() and state["exp_avg_sq"][pruned].eq(0).all()
        kept_moving += int(state["exp_avg_sq"][~pruned].ne(0).sum())
    assert kept_moving == sum(int(m.sum()) for m in cb.masks.values())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"target_sparsity": 1.0}, r"target_sparsity=1.0: expected a number in \[0, 1\)"),
        ({"scope": "random"}, "scope='random': expected one of global, layerwise"),
        (
            {"begin": 0.5, "end": 0.4},
            r"end=0.4: the schedule must end after it begins \(begin=0.5\)",
        ),
        ({"frequency": 0}, "frequency=0"),
        (
            {"initial_sparsity": 0.6, "target_sparsity": 0.5},
            "initial_sparsity=0.6: expected <= target_sparsity=0.5",
        ),
        ({"rewind": 0.0}, "rewind=0.0 needs schedule=iterative or one_shot"),
        ({"schedule": "one_shot", "rewind": 0.2}, r"rewind=0.2: expected .* \[0, begin=0.1\)"),
        ({"targets": {"seg": 1.0}}, r"targets.seg=1.0: expected a number in \[0, 1\)"),
    ],
)
def test_constructor_validates(kwargs, match):
    with pytest.raises(ValueError, match=match):
        GradualMagnitudePruning(**kwargs)


def test_resume_refuses_other_layers_a_higher_density_floor_and_old_state(tmp_path):
    cb = GradualMagnitudePruning("global", 0.9, frequency=1, min_density=0.01)
    fit(cb, tmp_path)
    state = cb.state_dict()
    other = GradualMagnitudePruning("global", 0.9, include=["4.*"], frequency=1)
    other.load_state_dict(state)
    with pytest.raises(ValueError, match="masks cover other layers than this config selects"):
        fit(other, tmp_path)
    # every layer at density 0.4 in the checkpoint; a floor of 0.45 would revive weights
    layerwise = GradualMagnitudePruning("layerwise", 0.6, frequency=1)
    fit(layerwise, tmp_path)
    stricter = GradualMagnitudePruning("layerwise", 0.5, frequency=1, min_density=0.45)
    stricter.load_state_dict(layerwise.state_dict())
    with pytest.raises(ValueError, match=r"pruning.min_density=0.45 is above the density 0.4"):
        fit(stricter, tmp_path)
    with pytest.raises(ValueError, match="written by an older medprune"):
        GradualMagnitudePruning().load_state_dict({"masks": {}, "current_target": 0.5})


def test_iterative_rounds_need_enough_steps(tmp_path):
    cb = GradualMagnitudePruning("global", 0.9, schedule="iterative", rounds=8, begin=0.0, end=0.2)
    with pytest.raises(ValueError, match="pruning.rounds=8: the schedule window .* only 4"):
        fit(cb, tmp_path)

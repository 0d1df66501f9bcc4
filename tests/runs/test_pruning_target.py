"""A pruned run that cannot reach its target fails; it never reports success at a lower
sparsity."""

from __future__ import annotations

import pytest

from conftest import TINY, compose_train
from medprune.runs.training import train

PRUNED = ["pruning=global", "sparsity=0.5"]


@pytest.mark.parametrize(
    "overrides, key",
    [
        (["+trainer.max_steps=0", "trainer.max_epochs=0"], "trainer.max_steps=0"),
        (["trainer.max_epochs=0"], "trainer.max_epochs=0"),
        (["+trainer.limit_train_batches=0"], "trainer.limit_train_batches=0"),
    ],
)
def test_a_pruned_run_without_optimizer_steps_is_refused_before_data(
    tmp_path, monkeypatch, overrides, key
):
    monkeypatch.setattr(
        "medprune.runs.training.build_data", lambda data: pytest.fail("data was built")
    )
    cfg = compose_train([*TINY, *PRUNED, *overrides], tmp_path / "run")
    with pytest.raises(ValueError, match=f"{key}: a pruned run takes no optimizer step"):
        train(cfg)
    assert not (tmp_path / "run").exists()


def test_a_dense_run_may_take_no_step(tmp_path):
    summary = train(compose_train([*TINY, "trainer.max_epochs=0"], tmp_path / "run"))
    assert summary["steps"] == 0


def test_a_pruned_run_stopped_early_fails_and_keeps_its_checkpoints(tmp_path):
    # 4 epochs of 2 steps: the schedule's last update is at step 6; stopped after step 3
    stop = [
        "+callbacks.stop._target_=interrupt_callbacks.StopAfterSteps",
        "+callbacks.stop.steps=3",
    ]
    cfg = compose_train([*TINY, *PRUNED, "trainer.max_epochs=4", *stop], tmp_path / "run")
    with pytest.raises(RuntimeError) as err:
        train(cfg)
    message = str(err.value)
    assert "pruning stopped short of its target" in message
    assert "of {'all': 0.5} after 3 optimizer steps" in message
    assert "its last update is at step 6" in message
    assert f"ckpt_path={tmp_path / 'run' / 'checkpoints' / 'last.ckpt'}" in message
    assert not (tmp_path / "run" / "summary.json").exists()
    assert (tmp_path / "run" / "checkpoints" / "last.ckpt").is_file()

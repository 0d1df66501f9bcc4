"""``kill -9`` a pruned train.py run after a checkpoint, resume it from that checkpoint: no
pruned weight regrows and the run ends exactly at its target, for each task."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import CARDIAC_TINY, ROOT, TINY, compose_train
from medprune.runs.resume import pruning_state
from medprune.runs.training import train

HERE = Path(__file__).parent
# 4 epochs of 2 optimizer steps; the schedule updates the masks at steps 1..6
PRUNED = ["pruning=global", "sparsity=0.875", "trainer.max_epochs=4"]


def start_and_kill(args: list[str], run_dir: Path, marker: Path) -> None:
    """Start train.py, wait until it pauses at the start of epoch 2 (epoch 1's checkpoint is
    on disk), then SIGKILL it: no clean-up of any kind runs."""
    env = {**os.environ, "WANDB_MODE": "disabled", "PYTHONPATH": str(HERE)}
    pause = ["+callbacks.pause._target_=interrupt_callbacks.PauseAtEpoch",
             "+callbacks.pause.epoch=2", f"+callbacks.pause.marker={marker}"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "train.py", *args, *pause, f"hydra.run.dir={run_dir}"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None:
                pytest.fail(f"train.py ended before the pause: {proc.stderr.read().decode()}")
            if time.monotonic() > deadline:
                pytest.fail("train.py did not reach the pause in 120 s")
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()


def selected_weights(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The conv weights pruning selects by default (the first conv and the heads stay dense)."""
    return {
        k: w
        for k, w in state.items()
        if k.endswith("weight") and w.ndim == 4 and "encoder.0.0" not in k and "head" not in k
    }


@pytest.mark.parametrize("tiny", [TINY, CARDIAC_TINY], ids=["nuclei", "cardiac"])
def test_killed_after_a_checkpoint_and_resumed_ends_at_the_target(tmp_path, tiny):
    killed = tmp_path / "killed"
    start_and_kill([*tiny, *PRUNED], killed, tmp_path / "paused")
    assert (tmp_path / "paused").read_text() == "4"  # paused after 4 of 8 steps
    assert not (killed / "summary.json").exists()
    last = killed / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)  # complete and resumable
    assert checkpoint["global_step"] == 4
    assert 0 < pruning_state(checkpoint)["current_targets"]["all"] < 0.875  # mid-schedule

    summary = train(compose_train([*tiny, *PRUNED, f"ckpt_path={last}"], tmp_path / "resumed"))
    assert summary["steps"] == 8
    before = selected_weights(checkpoint["state_dict"])
    after = selected_weights(
        torch.load(tmp_path / "resumed" / "checkpoints" / "last.ckpt", weights_only=True)[
            "state_dict"
        ]
    )
    assert sum(int(((w == 0) & (after[k] != 0)).sum()) for k, w in before.items()) == 0
    total = sum(w.numel() for w in after.values())
    zeros = sum(int((w == 0).sum()) for w in after.values())
    assert zeros == round(0.875 * total)  # exactly the target, one threshold network-wide
    assert summary["pruning"]["achieved_sparsity"] == pytest.approx(0.875, abs=1e-12)

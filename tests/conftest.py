"""Shared fixtures: tiny Hydra configs composed from conf/ exactly as train.py composes them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from medprune.runs.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# Tiny but real, for any task: a 3-level U-Net of width 4, two epochs, every step logged.
TINY_RUN = [
    "model.base_channels=4",
    "model.depth=3",
    "trainer.max_epochs=2",
    "trainer.log_every_n_steps=1",
    "trainer.enable_progress_bar=false",
    "pruning.frequency=1",
    "logger=csv",
]
# The nuclei task on 64 px tiles: 2 steps per epoch.
TINY = [
    "data.tile_size=64",
    "data.train_tiles=8",
    "data.val_tiles=2",
    "data.test_tiles=2",
    "data.batch_size=4",
    "data.train_crop=32",
    *TINY_RUN,
]

# The cardiac task on 32 px synthetic slices: 2 steps per epoch.
CARDIAC_TINY = [
    "task=cardiac",
    "data.size=32",
    "data.train_slices=8",
    "data.val_slices=2",
    "data.test_slices=3",
    "data.batch_size=4",
    *TINY_RUN,
]

os.environ.setdefault("WANDB_MODE", "disabled")


def compose_train(overrides: list[str], output_dir: Path | None = None) -> DictConfig:
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        extra = [f"paths.output_dir={output_dir}"] if output_dir is not None else []
        return compose("train", overrides=[*overrides, *extra])


def compose_prune(overrides: list[str]) -> DictConfig:
    """prune.py's config, composed as its @hydra.main composes it."""
    register_configs()
    with initialize_config_dir(version_base="1.3", config_dir=str(CONF)):
        return compose("prune", overrides=overrides)


@pytest.fixture
def tiny_cfg(tmp_path):
    def make(*overrides: str) -> DictConfig:
        return compose_train([*TINY, *overrides], tmp_path / "run")

    return make


PREDICT_CONF = ROOT / "src" / "medprune" / "conf"


def compose_predict(overrides: list[str]) -> DictConfig:
    """``python -m medprune.predict``'s config, composed as its @hydra.main composes it."""
    with initialize_config_dir(version_base="1.3", config_dir=str(PREDICT_CONF)):
        return compose("predict", overrides=["progress=false", *overrides])


# Runs `python -m medprune.predict ARGS` with torch, Lightning and torchmetrics made
# unimportable, and fails if any of them was loaded: the deployment path must not need them.
BLOCK_TORCH = """
import importlib.abc, runpy, sys
BLOCKED = {"torch", "lightning", "torchmetrics", "pytorch_lightning"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{name} is blocked: the deployment path must not import it")
sys.meta_path.insert(0, Block())
sys.argv = ["medprune.predict", *sys.argv[1:]]
try:
    runpy.run_module("medprune.predict", run_name="__main__")
finally:
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
"""


def predict_without_torch(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, "-c", BLOCK_TORCH, *args, "progress=false"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip

"""A run refused because its folder holds an earlier run writes nothing there: every file of
the earlier folder is byte-identical afterwards and none is added (Hydra's ``.hydra/`` and
``multirun.yaml`` included). Through the CLIs, since Hydra writes those files itself."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT, TINY


def snapshot(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def earlier_run(folder: Path, files: tuple[str, ...]) -> Path:
    """A finished run's folder as Hydra and the script left it."""
    for name in (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", *files):
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"{name} of the earlier run\n")
    return folder


def run(script: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "disabled"}
    return subprocess.run(
        [sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    "script, files, args",
    [
        ("train.py", ("summary.json", "train.log"), [*TINY, "seed=5"]),
        ("train.py", ("checkpoints/last.ckpt",), [*TINY, "pruning=global"]),  # killed mid-run
        ("prune.py", ("summary.json", "model.onnx", "prune.log"), ["ckpt=x.ckpt"]),
    ],
)
def test_a_refused_run_leaves_the_earlier_folder_byte_identical(tmp_path, script, files, args):
    folder = earlier_run(tmp_path / "run", files)
    before = snapshot(folder)
    result = run(script, *args, f"hydra.run.dir={folder}")
    assert result.returncode == 1
    assert f"Error: {folder / files[0].split('/')[0]} exists: {folder} holds an earlier run" in (
        result.stderr
    )
    assert snapshot(folder) == before


def test_a_second_sweep_into_the_same_folder_is_refused_before_any_write(tmp_path):
    sweep = tmp_path / "sweep"
    earlier_run(sweep / "0", ("summary.json",))
    (sweep / "multirun.yaml").write_text("the earlier sweep\n")
    before = snapshot(sweep)
    result = run("train.py", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1
    assert f"{sweep / 'multirun.yaml'} exists: hydra.sweep.dir={sweep} holds an earlier sweep" in (
        result.stderr
    )
    assert snapshot(sweep) == before
    # without multirun.yaml, a finished job folder still stops the sweep before it starts
    (sweep / "multirun.yaml").unlink()
    before = snapshot(sweep)
    result = run("train.py", "-m", *TINY, "seed=1,2", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1
    assert f"{sweep / '0' / 'summary.json'} exists" in result.stderr
    assert snapshot(sweep) == before

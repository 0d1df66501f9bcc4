"""What the quality benchmarks share: one ``python train.py`` job in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_train(overrides: list[str], out: Path, script: str = "train.py") -> dict:
    """Run ``python <script> <overrides> logger=none hydra.run.dir=<out>`` (train.py or
    prune.py) from the project root with W&B disabled; return its summary.json plus
    ``process_time_s``, the wall time of the whole process (start-up, data, training, test)."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, script, *overrides, "logger=none", f"hydra.run.dir={out}"],
        cwd=ROOT,
        check=True,
        env={**os.environ, "WANDB_MODE": "disabled"},
        stdout=subprocess.DEVNULL,
    )
    summary = json.loads((out / "summary.json").read_text())
    summary["process_time_s"] = time.perf_counter() - start
    return summary

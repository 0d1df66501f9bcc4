"""Fake train.py job folders (summary.json, config.yaml, .hydra/overrides.yaml) for the report
tests: the layout a Hydra multirun leaves, with numbers chosen by the test."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

MONITORS = {"nuclei": ("val/aji", "max"), "cardiac": ("val/dice_mean", "max")}


def write_job(
    folder: Path,
    scope: str,
    sparsity: float,
    seed: int | None,
    metrics: Mapping[str, float],
    *,
    task: str = "nuclei",
    compression: float | None = None,
    overrides: Sequence[str] | None = None,
    finished: bool = True,
    config: bool = True,
    logger: Mapping[str, Any] | None = None,
) -> Path:
    """One job folder. Compression defaults to 1 / (1 - sparsity), as magnitude pruning of
    the prunable weights gives; target and achieved sparsity are ``sparsity``."""
    folder.mkdir(parents=True, exist_ok=True)
    if overrides is None:
        overrides = [f"pruning={scope}", f"sparsity={sparsity}"]
        overrides += [] if seed is None else [f"seed={seed}"]
    (folder / ".hydra").mkdir(exist_ok=True)
    (folder / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    if config:
        metric, mode = MONITORS.get(task, ("val/loss", "min"))
        cfg: dict[str, Any] = {"task_name": task, "sparsity": sparsity}
        cfg |= {"seed": seed} if seed is not None else {}
        cfg["monitor"] = {"metric": metric, "mode": mode}
        if logger is not None:
            cfg["logger"] = dict(logger)
        (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    if finished:
        if compression is None:
            compression = 1.0 / (1.0 - sparsity) if sparsity < 1 else math.inf
        summary = {
            "task": task,
            "pruning": {
                "scope": scope,
                "target_sparsity": sparsity,
                "achieved_sparsity": sparsity,
                "prunable_params": 1000,
                "compression_ratio": compression,
                "layers": [],
            },
            "metrics": dict(metrics),
            "steps": 10,
            "wall_time_s": 1.5,
        }
        (folder / "summary.json").write_text(json.dumps(summary))
    return folder


def write_sweep(
    root: Path, specs: Sequence[tuple[str, float, int | None, Mapping[str, float]]], **kwargs
) -> list[Path]:
    """Jobs 0, 1, 2, ... under ``root`` plus multirun.yaml, one per (scope, sparsity, seed,
    metrics); ``kwargs`` go to every ``write_job``."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "multirun.yaml").write_text("hydra: {}\n")
    return [
        write_job(root / str(i), scope, sparsity, seed, metrics, **kwargs)
        for i, (scope, sparsity, seed, metrics) in enumerate(specs)
    ]


def nuclei(aji: float, dice: float = 0.9, loss: float = 0.1) -> dict[str, float]:
    return {"test/aji": aji, "test/dice": dice, "test/loss": loss}


# A clean crossover on the test/aji means: layer-wise ahead at 0.5 and 0.75, global ahead at
# 0.875 and 0.9375 (16x); dense aji 0.7, 0.8, 0.9 over seeds 0-2 (mean 0.8, std 0.1).
CROSSOVER_SWEEP = [
    *[("none", 0.0, seed, nuclei(aji)) for seed, aji in enumerate((0.7, 0.8, 0.9))],
    *[("global", 0.5, seed, nuclei(aji)) for seed, aji in enumerate((0.76, 0.78))],
    *[("layerwise", 0.5, seed, nuclei(aji)) for seed, aji in enumerate((0.79, 0.81))],
    ("global", 0.75, 0, nuclei(0.74)),
    ("layerwise", 0.75, 0, nuclei(0.75)),
    ("global", 0.875, 0, nuclei(0.72)),
    ("layerwise", 0.875, 0, nuclei(0.70)),
    *[("global", 0.9375, seed, nuclei(aji)) for seed, aji in enumerate((0.70, 0.72))],
    *[("layerwise", 0.9375, seed, nuclei(aji)) for seed, aji in enumerate((0.60, 0.64))],
]

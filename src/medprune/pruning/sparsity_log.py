"""What a pruning run reports: scalars for the loggers, a per-layer table, the summary entry.

Everything is measured from the weights (zeros counted), never taken from masks or config.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

import torch

from medprune.pruning.masks import sparsity_stats
from medprune.pruning.selection import ALL, branch_of, shape_str

LAYER_COLUMNS = ["layer", "shape", "params", "sparsity"]


def layer_rows(params: Mapping[str, torch.Tensor]) -> list[list[Any]]:
    """One row per layer: name, shape as ``"32x16x3x3"``, weight count, measured sparsity."""
    rows = []
    for name, weight in params.items():
        stats = sparsity_stats({name: weight})
        rows.append([name, shape_str(weight), stats["params"], round(stats["sparsity"], 6)])
    return rows


def layer_summary(params: Mapping[str, torch.Tensor]) -> dict[str, dict[str, Any]]:
    """``summary.json``'s ``pruning.layers``: ``{name: {shape, params, sparsity}}``."""
    return {
        name: {"shape": [int(d) for d in params[name].shape], "params": n, "sparsity": s}
        for name, _, n, s in layer_rows(params)
    }


def branch_sparsity(params: Mapping[str, torch.Tensor]) -> dict[str, float]:
    """Measured sparsity per top-level child (``seg``, ``dist``), when there is more than one."""
    branches = list(dict.fromkeys(branch_of(n) for n in params))
    if len(branches) < 2:
        return {}
    return {
        b: sparsity_stats({n: w for n, w in params.items() if branch_of(n) == b})["sparsity"]
        for b in branches
    }


def log_scalars(
    params: Mapping[str, torch.Tensor], target: float, group_targets: Mapping[str, float]
) -> dict[str, float]:
    stats = sparsity_stats(params)
    values = {
        "pruning/target_sparsity": float(target),
        "pruning/sparsity": float(stats["sparsity"]),
        "pruning/nonzero_params": float(stats["nonzero"]),
    }
    for branch, sparsity in branch_sparsity(params).items():
        values[f"pruning/sparsity_{branch}"] = float(sparsity)
    if len(group_targets) > 1 or ALL not in group_targets:
        for group, value in group_targets.items():
            values[f"pruning/target_{group}"] = float(value)
    return values


def log_layer_table(loggers, params: Mapping[str, torch.Tensor], step: int) -> None:
    """To every logger that keeps tables (W&B's ``log_table``); loggers without one are
    skipped, so the CSV logs stay scalar."""
    rows = layer_rows(params)
    for logger in loggers:
        log_table = getattr(logger, "log_table", None)
        if callable(log_table):
            log_table(key="pruning/layers", columns=LAYER_COLUMNS, data=rows, step=step)


def zero_digest(params: Mapping[str, torch.Tensor]) -> str:
    """A short hash of which weights are zero, layer by layer."""
    digest = hashlib.sha256()
    for name in sorted(params):
        digest.update(name.encode())
        digest.update((params[name] == 0).cpu().numpy().tobytes())
    return digest.hexdigest()[:16]


def gather_zero_digests(params: Mapping[str, torch.Tensor]) -> list[str]:
    """One digest per rank (a single one outside DDP), so a run shows its masks were equal."""
    mine = zero_digest(params)
    dist = torch.distributed
    if not (dist.is_available() and dist.is_initialized()):
        return [mine]
    gathered: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, mine)
    return list(gathered)

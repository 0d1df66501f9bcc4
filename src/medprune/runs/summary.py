"""The run summary: what was trained, how sparse it really is, and how good it is.

Sparsity is measured from the weights (zeros counted), not taken from a mask or a config,
so the numbers hold for whatever the checkpoint contains.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from torch import nn

from medprune.pruning import prunable_parameters, sparsity_stats
from medprune.pruning.sparsity_log import branch_sparsity, layer_summary


def pruning_summary(net: nn.Module, scope: str, callback: Any = None) -> dict[str, Any]:
    """Sparsity of the selected weights (all conv/linear weights for a dense run), of the
    whole network, per branch and per layer."""
    params = callback.params if callback is not None else prunable_parameters(net)
    prunable = sparsity_stats(params)
    everything = sparsity_stats(dict(net.named_parameters()))
    nonzero = prunable["nonzero"]
    summary = {
        "scope": scope,
        "target_sparsity": float(callback.target) if callback is not None else 0.0,
        "achieved_sparsity": prunable["sparsity"],
        "prunable_params": prunable["params"],
        "nonzero_prunable_params": nonzero,
        "total_params": everything["params"],
        "nonzero_params": everything["nonzero"],
        # prunable / non-zero prunable; infinite only if every prunable weight is zero
        "compression_ratio": prunable["params"] / nonzero if nonzero else math.inf,
    }
    if callback is not None:
        summary["schedule"] = callback.schedule
        summary["targets"] = {g: float(t) for g, (t, _) in callback.groups.items()}
        summary["mask_digests_per_rank"] = list(callback.rank_mask_digests)
    summary["branches"] = branch_sparsity(params)
    summary["layers"] = layer_summary(params)
    return summary


def write_summary(summary: Mapping[str, Any], path: Path) -> None:
    """Refuses to overwrite: a summary belongs to exactly one run."""
    if path.exists():
        raise FileExistsError(f"{path} exists: refusing to overwrite another run's summary")
    path.write_text(json.dumps(summary, indent=2, sort_keys=False) + "\n")


def print_summary(summary: Mapping[str, Any], console: Console | None = None) -> None:
    table = Table(title=f"medprune summary: {summary['task']}", show_header=True)
    table.add_column("key")
    table.add_column("value", justify="right")
    for key, value in summary["pruning"].items():
        if key in ("layers", "mask_digests_per_rank"):
            continue  # per-layer detail lives in summary.json and the W&B table
        if isinstance(value, dict):
            value = ", ".join(f"{k} {_fmt(v)}" for k, v in value.items())
        table.add_row(f"pruning.{key}", _fmt(value))
    export = summary.get("export")
    if export and "error" in export:
        table.add_row("export", f"failed: {export['error']}")
    elif export:
        ratio = export["dense_bytes"] / export["sparse_bytes"]
        table.add_row("export", f"{export['path']} ({ratio:.1f}x smaller than dense)")
    for key, value in summary["metrics"].items():
        table.add_row(key, _fmt(value))
    for key in ("steps", "wall_time_s", "output_dir"):
        if key in summary:
            table.add_row(key, _fmt(summary[key]))
    (console or Console()).print(table)


def summary_line(summary: Mapping[str, Any], metric: str) -> str:
    """One line for the run's log file: where the summary is, sparsity, the test metric."""
    pruning = summary["pruning"]
    test = metric.replace("val/", "test/", 1)
    value = summary["metrics"].get(test)
    score = f", {test} {value:.4f}" if value is not None else ""
    return (
        f"summary.json written in {summary['output_dir']}: sparsity "
        f"{pruning['achieved_sparsity']:.4f} of target {pruning['target_sparsity']:.4f}, "
        f"{summary['steps']} optimizer steps{score}"
    )


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

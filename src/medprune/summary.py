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


def pruning_summary(
    net: nn.Module, scope: str, target_sparsity: float, include=("*",), exclude=()
) -> dict[str, Any]:
    prunable = sparsity_stats(prunable_parameters(net, include, exclude))
    everything = sparsity_stats(dict(net.named_parameters()))
    nonzero = prunable["nonzero"]
    return {
        "scope": scope,
        "target_sparsity": float(target_sparsity) if scope != "none" else 0.0,
        "achieved_sparsity": prunable["sparsity"],
        "prunable_params": prunable["params"],
        "nonzero_prunable_params": nonzero,
        "total_params": everything["params"],
        "nonzero_params": everything["nonzero"],
        # prunable / non-zero prunable; infinite only if every prunable weight is zero
        "compression_ratio": prunable["params"] / nonzero if nonzero else math.inf,
    }


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
        table.add_row(f"pruning.{key}", _fmt(value))
    for key, value in summary["metrics"].items():
        table.add_row(key, _fmt(value))
    for key in ("steps", "wall_time_s", "output_dir"):
        if key in summary:
            table.add_row(key, _fmt(summary[key]))
    (console or Console()).print(table)


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)

"""Evaluation outputs: per-item scores as ``metrics.csv``, their means as ``metrics.json``,
and a table on the console. Means are over the scored items, each weighing the same (per
tile, per volume), as the test stage of training averages; a NaN (foreground Dice of a tile
with no nucleus in either map) is left out of its mean, as torchmetrics does there."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path
from typing import Any

ITEM_KEYS = ("input", "label")


def nan_mean_scores(scores: list[dict[str, Any]]) -> dict[str, float | None]:
    """Mean of every score over the items, NaNs left out (None when all are NaN). Unlike
    ``medprune.metrics.surface.mean_scores`` (cardiac only, every value finite), nuclei Dice
    is NaN on tiles without nuclei, and the item's paths are not scores."""
    keys = [k for k in scores[0] if k not in ITEM_KEYS] if scores else []
    means: dict[str, float | None] = {}
    for key in keys:
        values = [float(s[key]) for s in scores if not math.isnan(float(s[key]))]
        means[key] = sum(values) / len(values) if values else None
    return means


def write_metrics(
    out: Path, scores: list[dict[str, Any]], inputs: int, source: dict[str, Any]
) -> dict[str, Any]:
    """Write both files (new ones only); returns what metrics.json holds."""
    summary = {
        "model": source["model"],
        "scored": len(scores),
        "inputs": inputs,
        "mean": nan_mean_scores(scores),
    }
    with open(out / "metrics.csv", "x", newline="") as f:
        columns = list(scores[0]) if scores else list(ITEM_KEYS)
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in scores:
            writer.writerow(
                {k: "" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            )
    with open(out / "metrics.json", "x") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    return summary


def print_table(summary: dict[str, Any], scores: list[dict[str, Any]]) -> None:
    """One row per metric: mean (as in metrics.json), min and max over the scored items.
    Per-item values are in metrics.csv."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"{summary['scored']} of {summary['inputs']} inputs scored")
    for column in ("metric", "mean", "min", "max"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for key, mean in summary["mean"].items():
        values = [float(s[key]) for s in scores if not math.isnan(float(s[key]))]
        cells = [mean, min(values, default=None), max(values, default=None)]
        table.add_row(key, *("" if v is None else f"{v:.4f}" for v in cells))
    Console().print(table)

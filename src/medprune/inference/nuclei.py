"""Nuclei prediction on one H&E image: instances, a per-nucleus table, an overlay; scores.

Torch-free. ``network`` is a ``TorchNetwork`` or an ``OnnxNetwork``: it gives the foreground
probability and the distance map; the marker-controlled watershed with the thresholds
stored with the model turns them into instances (``medprune.postprocess``).
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from skimage.segmentation import find_boundaries

from medprune.data.monuseg import (
    LABEL_SUFFIXES,
    parse_aperio_xml,
    rasterize_polygons,
    read_label_map,
)
from medprune.inference.files import new_files
from medprune.metrics.instance import instance_scores
from medprune.postprocess.watershed import instances_from_maps

LABEL_FILES = (".xml", *LABEL_SUFFIXES)  # an Aperio XML (MoNuSeg) first, then instance maps
TABLE_COLUMNS = ("id", "centroid_x_px", "centroid_y_px", "area_px", "area_um2", "mean_fg_prob")
CONTOUR_RGB = (0, 255, 0)


def predict_tile(network: Any, image: np.ndarray, settings: dict) -> dict[str, np.ndarray]:
    """``instances`` (H, W) int32 (0 background, 1..N) and ``prob`` (H, W) float32."""
    prob, distance = network.nuclei_maps(image, settings["preprocess"])
    pp = settings["postprocess"]
    instances = instances_from_maps(
        prob, distance, pp["fg_threshold"], pp["marker_threshold"], int(pp["min_size"])
    )
    return {"instances": instances, "prob": prob}


def nucleus_table(
    instances: np.ndarray, prob: np.ndarray, pixel_size: tuple[float, float] | None
) -> list[dict[str, Any]]:
    """One row per nucleus id 1..N: centroid (x = column, y = row, px), area in px and, with
    a pixel size (x, y) in µm, in µm², and the mean foreground probability over its pixels."""
    n = int(instances.max(initial=0))
    if n == 0:
        return []
    flat = instances.ravel()
    area = np.bincount(flat, minlength=n + 1)
    rows, cols = np.indices(instances.shape)
    sum_y = np.bincount(flat, weights=rows.ravel(), minlength=n + 1)
    sum_x = np.bincount(flat, weights=cols.ravel(), minlength=n + 1)
    sum_p = np.bincount(flat, weights=prob.ravel().astype(np.float64), minlength=n + 1)
    table = []
    for i in range(1, n + 1):
        if area[i] == 0:  # ids are consecutive after the watershed; keep gaps out anyway
            continue
        um2 = None if pixel_size is None else area[i] * pixel_size[0] * pixel_size[1]
        table.append(
            {
                "id": i,
                "centroid_x_px": round(sum_x[i] / area[i], 2),
                "centroid_y_px": round(sum_y[i] / area[i], 2),
                "area_px": int(area[i]),
                "area_um2": None if um2 is None else round(float(um2), 3),
                "mean_fg_prob": round(sum_p[i] / area[i], 4),
            }
        )
    return table


def overlay(image: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """The image with every instance's inner contour drawn in ``CONTOUR_RGB``."""
    out = image.copy()
    out[find_boundaries(instances, mode="inner")] = CONTOUR_RGB
    return out


def write_tile_outputs(
    out: Path, stem: str, image: np.ndarray, result: dict, pixel_size: tuple[float, float] | None
) -> list[Path]:
    """``<stem>_instances.tif`` (uint16, or uint32 past 65,535 nuclei), ``<stem>_overlay.png``
    and ``<stem>_nuclei.csv``; never over an existing file, none left half-written."""
    import tifffile

    instances = result["instances"]
    dtype = np.uint16 if instances.max(initial=0) <= np.iinfo(np.uint16).max else np.uint32
    paths = [out / f"{stem}_instances.tif", out / f"{stem}_overlay.png", out / f"{stem}_nuclei.csv"]
    with new_files(paths):
        tifffile.imwrite(paths[0], instances.astype(dtype), compression="zlib")
        Image.fromarray(overlay(image, instances)).save(paths[1], format="PNG")
        with open(paths[2], "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=TABLE_COLUMNS)
            writer.writeheader()
            for row in nucleus_table(instances, result["prob"], pixel_size):
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return paths


def read_nuclei_label(path: Path, shape: tuple[int, int]) -> np.ndarray:
    """An instance map (H, W) int32 from an Aperio XML (MoNuSeg) or an instance-map file."""
    if path.suffix.lower() == ".xml":
        polygons, _ = parse_aperio_xml(path)
        return rasterize_polygons(polygons, shape, source=str(path))
    label = read_label_map(path)
    if label.shape != tuple(shape):
        raise ValueError(f"{path}: label shape {label.shape}, expected the image's {shape}")
    return label


def foreground_dice(pred: np.ndarray, true: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty (left out of the mean, as
    torchmetrics' ``DiceScore`` does in training)."""
    total = int(pred.sum()) + int(true.sum())
    return float("nan") if total == 0 else 2.0 * float((pred & true).sum()) / total


def score_tile(result: dict, label_path: Path) -> dict[str, float]:
    """The test metrics of training, for one tile against its label file: foreground Dice at
    probability 0.5, AJI, PQ, DQ and SQ of the instances, and both nucleus counts."""
    true = read_nuclei_label(label_path, result["instances"].shape)
    scores = {"dice": foreground_dice(result["prob"] > 0.5, true > 0)}
    scores.update(instance_scores(true, result["instances"]))
    scores["true_nuclei"] = float(len(np.unique(true[true > 0])))
    scores["pred_nuclei"] = float(result["instances"].max(initial=0))
    return scores

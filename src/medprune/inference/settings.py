"""``inference.json``: everything prediction needs besides the network, stored with the model.

A deployment folder (what ``prune.py`` writes, or ``python -m medprune.predict model=<ckpt>
export=<folder>``) holds ``model.onnx`` and this small human-readable file. It says how an
input becomes the network's input (scaling, target spacing, window, overlap, size multiple)
and how the network's outputs become the result (watershed thresholds, minimum size,
largest-component filter, class names). The same dict is built from a training
checkpoint's config for the torch path, so both paths read one schema. numpy-free, torch-free.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SETTINGS_FILE = "inference.json"
ONNX_FILE = "model.onnx"
FORMAT, VERSION = "medprune-inference", 1
TASKS = ("nuclei", "cardiac")
CARDIAC_CLASSES = {"0": "background", "1": "RV", "2": "MYO", "3": "LV"}
NUCLEI_CLASSES = {"0": "background", "1": "nucleus"}
CLIP_PERCENTILES = (0.5, 99.5)  # per-volume intensity clip before the z-score (data.acdc)
BLENDS = ("gaussian", "constant")  # medprune.inference.windows
CHANNELS = {"nuclei": 3, "cardiac": 1}  # what the readers give: RGB tiles, MRI volumes


def settings_from_run(trained: Mapping[str, Any], postprocess: Mapping[str, Any] | None) -> dict:
    """The settings of a model ``train.py`` trained, from that run's resolved config (plain
    dict: ``task_name``, ``model``, ``task``, ``data``) and, for nuclei, the watershed
    thresholds stored with the weights (``postprocess`` of the checkpoint)."""
    task, model, data = trained["task_name"], trained["model"], trained["data"]
    if task not in TASKS:
        raise ValueError(f"task_name={task!r}: prediction knows the tasks {TASKS}")
    if "depth" not in model:
        raise ValueError("model.depth is missing from the run's config: the U-Net's size rule")
    multiple = 2 ** (int(model["depth"]) - 1)
    if task == "nuclei":
        hp = trained["task"]
        pp = dict(postprocess or hp.get("postprocess") or {})
        return {
            "format": FORMAT,
            "version": VERSION,
            "task": "nuclei",
            "channels": int(model.get("in_channels", 3)),
            "outputs": ["seg_logits", "distance"],
            "preprocess": {
                "input": "RGB uint8 image divided by 255, channels first",
                "scale": 255.0,
                "size_multiple": multiple,
                "window": hp.get("window"),
                "overlap": float(hp.get("overlap", 0.25)),
                "blend": "gaussian",
                "batch_size": 4,
            },
            "postprocess": {
                "fg_threshold": float(pp.get("fg_threshold", 0.5)),
                "marker_threshold": float(pp.get("marker_threshold", 0.5)),
                "min_size": int(pp.get("min_size", 10)),
                "tuned": bool(pp.get("tuned", False)),
            },
            "classes": dict(NUCLEI_CLASSES),
        }
    spacing = data.get("target_spacing")
    if spacing is None and "spacing_mm" in data:  # built-in slices: the pixel size trained on
        spacing = [data["spacing_mm"], data["spacing_mm"]]
    return {
        "format": FORMAT,
        "version": VERSION,
        "task": "cardiac",
        "channels": int(model.get("in_channels", 1)),
        "outputs": ["logits"],
        "preprocess": {
            "input": "NIfTI volume, slices along the third voxel axis",
            "target_spacing_mm": None if spacing is None else [float(s) for s in spacing],
            "clip_percentiles": list(CLIP_PERCENTILES),
            "normalize": "per-volume z-score of the voxels inside the clip percentiles",
            "size_multiple": max(multiple, int(data.get("pad_multiple", multiple))),
        },
        "postprocess": {"largest_component": bool(trained["task"].get("largest_component"))},
        "classes": dict(CARDIAC_CLASSES),
    }


def write_settings(settings: Mapping[str, Any], folder: str | Path, **source: Any) -> Path:
    """Write ``folder/inference.json`` (never over an existing file); ``source`` notes where
    the model came from (checkpoint path, command)."""
    path = Path(folder) / SETTINGS_FILE
    check_settings(dict(settings), path)
    with open(path, "x") as f:
        json.dump({**settings, "source": source}, f, indent=2)
        f.write("\n")
    return path


def read_settings(folder: str | Path) -> dict[str, Any]:
    """The checked settings of a deployment folder; errors name the file and the key."""
    path = Path(folder) / SETTINGS_FILE
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; a deployment folder holds {ONNX_FILE} and {SETTINGS_FILE} "
            "(written by prune.py or python -m medprune.predict model=<ckpt> export=<folder>)"
        )
    try:
        settings = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: not a readable JSON file ({err})") from None
    check_settings(settings, path)
    return settings


def _fail(path: Path, key: str, expected: str, got: Any) -> None:
    raise ValueError(f"{path}: {key}={got!r}, expected {expected}")


def _number(path: Path, node: Mapping, key: str, low: float, high: float, where: str) -> None:
    value = node.get(key)
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or not low <= value <= high
    ):
        _fail(path, f"{where}.{key}", f"a number in [{low}, {high}]", value)


def check_settings(settings: Any, path: Path) -> None:
    """Refuse settings that would silently predict wrong: unknown format or task, missing
    or out-of-range pre-/post-processing keys."""
    if not isinstance(settings, dict) or settings.get("format") != FORMAT:
        got = settings.get("format") if isinstance(settings, dict) else type(settings).__name__
        _fail(path, "format", repr(FORMAT), got)
    if settings.get("version") != VERSION:
        _fail(path, "version", str(VERSION), settings.get("version"))
    task = settings.get("task")
    if task not in TASKS:
        _fail(path, "task", f"one of {TASKS}", task)
    for key in ("preprocess", "postprocess", "classes"):
        if not isinstance(settings.get(key), dict):
            _fail(path, key, "a JSON object", settings.get(key))
    onnx = settings.get("onnx", ONNX_FILE)  # optional: the ONNX file the folder deploys
    if not isinstance(onnx, str) or not onnx.endswith(".onnx") or Path(onnx).name != onnx:
        _fail(path, "onnx", "a file name in the folder ending in .onnx", onnx)
    pre, post = settings["preprocess"], settings["postprocess"]
    multiple = pre.get("size_multiple")
    if isinstance(multiple, bool) or not isinstance(multiple, int) or multiple < 1:
        _fail(path, "preprocess.size_multiple", "an integer >= 1 (2 ** (depth - 1))", multiple)
    if settings.get("channels") != CHANNELS[task]:
        _fail(path, "channels", f"{CHANNELS[task]} for a {task} model", settings.get("channels"))
    if task == "nuclei":
        _number(path, pre, "scale", 1e-6, 1e9, "preprocess")
        window = pre.get("window")
        if window is not None and (
            isinstance(window, bool)
            or not isinstance(window, int)
            or window % multiple
            or window < 2 * multiple
        ):
            expected = f"null or a multiple of {multiple} px of at least {2 * multiple}"
            _fail(path, "preprocess.window", expected, window)
        _number(path, pre, "overlap", 0.0, 0.999, "preprocess")
        if pre.get("blend") not in BLENDS:
            _fail(path, "preprocess.blend", f"one of {BLENDS}", pre.get("blend"))
        batch = pre.get("batch_size")
        if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
            _fail(path, "preprocess.batch_size", "an integer >= 1 (windows per pass)", batch)
        for key in ("fg_threshold", "marker_threshold"):
            _number(path, post, key, 0.0, 1.0, "postprocess")
        _number(path, post, "min_size", 0, 1e12, "postprocess")
        return
    spacing = pre.get("target_spacing_mm")
    if spacing is not None and (
        not isinstance(spacing, list)
        or len(spacing) != 2
        or not all(isinstance(s, (int, float)) and s > 0 for s in spacing)
    ):
        _fail(path, "preprocess.target_spacing_mm", "null or [y, x] mm > 0", spacing)
    clip = pre.get("clip_percentiles")
    if not isinstance(clip, list) or len(clip) != 2 or not 0 <= clip[0] < clip[1] <= 100:
        _fail(path, "preprocess.clip_percentiles", "[low, high] with 0 <= low < high <= 100", clip)
    if not isinstance(post.get("largest_component"), bool):
        _fail(path, "postprocess.largest_component", "true or false", post.get("largest_component"))

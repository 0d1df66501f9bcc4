"""``predict(cfg)``: a trained, pruned or sculpted model on a user's images or volumes.

``model`` is a ``train.py`` checkpoint (or its run folder) for the torch path, or a
deployment folder (``inference.json`` + ``model.onnx``, from ``prune.py`` or ``export=``)
for ONNX Runtime. With a deployment folder and the ONNX runtime nothing here imports torch.
Every input gets its own outputs; one that fails is reported with its path and the rest
still run. With ``labels`` every prediction is also scored (``metrics.csv``,
``metrics.json``). Nothing existing is written over: the output folder must be new.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from medprune.common.checks import check_choice, check_int, check_positive
from medprune.inference import cardiac, nuclei
from medprune.inference.inputs import find_inputs, find_label, stem_of
from medprune.inference.models import export_deployment, load_model
from medprune.inference.scores import print_table, write_metrics

log = logging.getLogger(__name__)
RUNTIMES = ("auto", "torch", "onnxruntime")


def _check(cfg: DictConfig) -> None:
    """Bad keys fail before the model loads, each message naming the key."""
    check_choice(cfg.runtime, "runtime", RUNTIMES)
    for key in ("threads", "batch_size"):
        if cfg.get(key) is not None:
            check_int(cfg[key], key, what="null or an integer >= 1")
    if cfg.get("pixel_size") is not None:
        check_positive(cfg.pixel_size, "pixel_size", what="null or a pixel size in µm")
    if cfg.get("input") is None and cfg.get("export") is None:
        raise ValueError("input=<file or folder> is required (or export=<folder> to export only)")
    if cfg.get("input") is not None and not Path(cfg.input).exists():
        raise FileNotFoundError(f"input={cfg.input}: no such file or folder")
    if cfg.get("labels") is not None and not Path(cfg.labels).is_dir():
        raise FileNotFoundError(f"labels={cfg.labels}: no such folder")
    if cfg.get("export") is not None and cfg.get("input") is not None:
        if Path(cfg.export).resolve() == Path(cfg.output).resolve():
            raise ValueError(f"export={cfg.export} and output={cfg.output}: use two folders")
    for key in ("output", "export"):
        if cfg.get(key) is not None and Path(cfg[key]).exists():
            raise FileExistsError(
                f"{key}={cfg[key]} exists: choose a new folder (nothing is written over)"
            )


def predict(cfg: DictConfig) -> int:
    """Run the command; returns the exit status: 0, or 1 when any input failed."""
    _check(cfg)
    model = cfg.model
    if cfg.get("export") is not None:
        export_deployment(cfg.model, Path(cfg.export))
        log.info("deployment folder written: %s", cfg.export)
        if cfg.get("input") is None:
            return 0
        if cfg.runtime != "torch":  # run what was just exported, as it will be deployed
            model = cfg.export
    network, settings, source = load_model(model, cfg.runtime, cfg.get("threads"))
    task = settings["task"]
    inputs, problems = find_inputs(cfg.input, task)
    if cfg.get("batch_size") is not None and task == "nuclei":
        settings["preprocess"]["batch_size"] = int(cfg.batch_size)
    out = Path(cfg.output)
    out.mkdir(parents=True)
    OmegaConf.save(cfg, out / "config.yaml", resolve=True)
    (out / "settings.json").write_text(json.dumps({**settings, "source": source}, indent=2))
    log.info(
        "%s model from %s on %d input(s), %s; outputs in %s",
        task, source["model"], len(inputs), network.runtime, out,
    )  # fmt: skip
    rows, scores = _run_all(cfg, network, settings, inputs, out)
    for path, error in problems:  # found broken while listing: failed inputs too
        rows.append({"input": str(path), "status": "failed", "error": error})
    _write_csv(out / "predictions.csv", rows)
    failed = [r for r in rows if r["status"] != "ok"]
    if cfg.get("labels") is not None:
        summary = write_metrics(out, scores, len(rows), source)
        print_table(summary, scores)
    for row in failed:
        log.error("failed: %s: %s", row["input"], row["error"])
    log.info(
        "%d of %d input(s) predicted; predictions.csv in %s",
        len(rows) - len(failed),
        len(rows),
        out,
    )
    return 1 if failed else 0


def _run_all(cfg, network, settings, inputs: list[Path], out: Path):
    from rich.progress import Progress

    task, rows, scores = settings["task"], [], []
    with Progress(disable=not cfg.get("progress", True), transient=True) as progress:
        bar = progress.add_task("predict", total=len(inputs))
        for path in inputs:
            start = time.perf_counter()
            row: dict[str, Any] = {"input": str(path), "status": "ok", "outputs": "", "error": ""}
            try:
                result, written, info = _one(task, network, settings, path, out, cfg)
                row["outputs"] = ";".join(p.name for p in written)
                row.update(info, seconds=round(time.perf_counter() - start, 3))
                if cfg.get("labels") is not None:
                    label = find_label(path, Path(cfg.labels), task)
                    score = cardiac.score_volume if task == "cardiac" else nuclei.score_tile
                    scores.append({"input": str(path), "label": str(label), **score(result, label)})
            except Exception as err:  # one bad input must not stop the others
                row["status"], row["error"] = "failed", f"{type(err).__name__}: {err}"
                row.setdefault("seconds", round(time.perf_counter() - start, 3))
            rows.append(row)
            progress.advance(bar)
    return rows, scores


def _one(task, network, settings, path: Path, out: Path, cfg):
    """Predict one input and write its outputs; returns the result, the files and the
    columns predictions.csv gets for it."""
    stem = stem_of(path, task)
    if task == "cardiac":
        result = cardiac.predict_volume(network, path, settings)
        written = cardiac.write_volume_outputs(out, stem, result)
        shape = "x".join(str(n) for n in result["labels"].shape[::-1])
        return (
            result,
            written,
            {"shape": shape, "spacing_mm": "x".join(f"{s:g}" for s in result["spacing"][::-1])},
        )
    from medprune.data.monuseg import read_rgb_image

    image, pixel_size = read_rgb_image(path)
    if cfg.get("pixel_size") is not None:
        pixel_size = (float(cfg.pixel_size), float(cfg.pixel_size))
    result = nuclei.predict_tile(network, image, settings)
    written = nuclei.write_tile_outputs(out, stem, image, result, pixel_size)
    info = {
        "shape": f"{image.shape[1]}x{image.shape[0]}",
        "nuclei": int(result["instances"].max(initial=0)),
    }
    info["pixel_size_um"] = "" if pixel_size is None else "x".join(f"{v:g}" for v in pixel_size)
    return result, written, info


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = ["input", "status", "outputs", "seconds", "error"]
    columns += sorted({k for r in rows for k in r} - set(columns))
    with open(path, "x", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)

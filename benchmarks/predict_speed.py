"""Prediction speed (issue 16): MoNuSeg-size 1000x1000 H&E tiles and ACDC volumes per second
on the CPU, dense and sculpted models, eager torch against ONNX Runtime.

    python benchmarks/predict_speed.py --work DIR [--threads 2] [--repeats 3]
        [--nuclei CKPT] [--nuclei-sculpted PRUNE_DIR]
        [--cardiac CKPT] [--cardiac-sculpted PRUNE_DIR]

Models not given are made in ``--work`` (``--prepare`` costs ~15 min on 2 cores): the default
nuclei and cardiac tasks trained briefly on the built-in data (the same architectures as
``experiment=monuseg_cpu`` and ``experiment=acdc_cpu``: 16-32-64-128-256 U-Nets, window 256),
then sculpted by ``prune.py`` with a floor of 4 channels and one fine-tuning epoch per step,
with the quality tolerance opened (speed depends on the widths, not on what the weights
learnt; the sizes are printed). A checkpoint's ONNX side is the deployment folder that
``python -m medprune.predict export=`` writes; a prune.py folder's are its ``model.onnx``
and ``model.pt2``.

Timed, per input, as ``python -m medprune.predict`` runs it without writing files: nuclei
``predict_tile`` (sliding windows of 256 px in batches of 4, sigmoid, watershed) on the 13
MoNuSeg training tiles (decoded once beforehand); cardiac ``predict_volume`` (NIfTI read,
resampling, z-score, network on every slice, resize back, largest components) on the ED
and ES volumes of the first 10 ACDC patients. The median over ``--repeats`` passes is
reported, for the whole prediction and for the network alone (nuclei ``nuclei_maps``:
windows, blending, sigmoid; cardiac ``cardiac_labels`` on the prepared volume: network,
resize, argmax); torch runs before ONNX Runtime for each model. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from functools import partial
from pathlib import Path

from runner import ROOT, run_train

from medprune.data.monuseg import read_rgb_tiff
from medprune.inference import cardiac, nuclei
from medprune.inference.inputs import find_inputs
from medprune.inference.models import export_deployment, load_model

SHARED = ROOT.parent / "shared" / "data"
SCULPT = ["pruning.min_channels=4", "pruning.step_ratio=0.2", "pruning.patience=50"]
SCULPT += ["finetune.epochs=1", "target.max_quality_drop=0.99", "bench.repeats=5"]


def prepare(work: Path) -> dict[str, Path]:
    """Brief dense runs on the built-in data and their sculpted versions."""
    paths = {}
    for task, extra, compression in (("nuclei", [], 20), ("cardiac", ["task=cardiac"], 100)):
        run = work / f"{task}_dense"
        if not (run / "summary.json").is_file():
            run_train([*extra, "trainer.max_epochs=5", "trainer.enable_progress_bar=false"], run)
        ckpt = run / "checkpoints" / "last.ckpt"
        sculpted = work / f"{task}_sculpted"
        if not (sculpted / "summary.json").is_file():
            args = [f"ckpt={ckpt}", f"target.compression={compression}", *SCULPT]
            run_train(args, sculpted, script="prune.py")
        paths[task], paths[f"{task}-sculpted"] = ckpt, sculpted
    return paths


def timed(fn, items, repeats: int) -> float:
    """Median seconds for one pass of ``fn`` over ``items`` (after one untimed item)."""
    fn(items[0])
    passes = []
    for _ in range(repeats):
        start = time.perf_counter()
        for item in items:
            fn(item)
        passes.append(time.perf_counter() - start)
    return statistics.median(passes)


def sources(model: Path, work: Path) -> list[tuple[str, Path, str]]:
    """(label, model path, runtime) for both runtimes of one model."""
    if model.is_dir():  # a prune.py output folder
        return [("torch (model.pt2)", model, "torch"), ("onnxruntime", model, "onnxruntime")]
    deploy = work / f"{model.parent.parent.name}_deploy"
    if not deploy.is_dir():
        export_deployment(model, deploy)
    return [("torch (checkpoint)", model, "torch"), ("onnxruntime", deploy, "onnxruntime")]


def params_of(model: Path) -> int:
    if model.is_dir():
        return json.loads((model / "summary.json").read_text())["pruned"]["params"]
    import torch

    state = torch.load(model, map_location="cpu", weights_only=False)["state_dict"]
    return sum(v.numel() for k, v in state.items() if k.startswith("net.") and v.is_floating_point()
               and "running" not in k)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--work", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    for name in ("nuclei", "nuclei-sculpted", "cardiac", "cardiac-sculpted"):
        parser.add_argument(f"--{name}", type=Path)
    parser.add_argument("--tiles", type=Path, default=SHARED / "monuseg" / "train")
    parser.add_argument("--volumes", type=Path, default=SHARED / "acdc" / "training")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    given = {k: getattr(args, k.replace("-", "_")) for k in
             ("nuclei", "nuclei-sculpted", "cardiac", "cardiac-sculpted")}  # fmt: skip
    if not all(given.values()):
        given = {**prepare(args.work), **{k: v for k, v in given.items() if v}}
    tiles = [read_rgb_tiff(p) for p in find_inputs(args.tiles, "nuclei")[0]]
    patients = sorted(p for p in args.volumes.iterdir() if p.is_dir())[:10]
    volumes = [v for p in patients for v in find_inputs(p, "cardiac")[0]]
    rows = []
    for key in ("nuclei", "nuclei-sculpted", "cardiac", "cardiac-sculpted"):
        task = key.split("-")[0]
        for label, model, runtime in sources(given[key], args.work):
            network, settings, _ = load_model(model, runtime, args.threads)
            if task == "nuclei":
                items, unit = tiles, "tiles"
                whole = partial(nuclei.predict_tile, network, settings=settings)
                alone = partial(network.nuclei_maps, pre=settings["preprocess"])
                net_items = tiles
            else:
                items, unit = volumes, "volumes"
                whole = partial(cardiac.predict_volume, network, settings=settings)
                net_items = [cardiac.prepare_volume(v, settings) for v in volumes]

                def alone(v, network=network):
                    return network.cardiac_labels(v["padded"], v["size"], v["image"].shape[1:])

            rate = len(items) / timed(whole, items, args.repeats)
            net_rate = len(items) / timed(alone, net_items, args.repeats)
            rows.append((key, params_of(given[key]), label, rate, net_rate, unit))
            print(
                f"{key:<17} {label:<19} {rate:7.3f} {unit}/s, network {net_rate:7.3f}", flush=True
            )
            del network
    print(f"\n{args.threads} threads, median of {args.repeats} passes\n")
    print("| model | params | runtime | inputs per second | network alone |")
    print("| --- | ---: | --- | ---: | ---: |")
    for key, params, label, rate, net_rate, unit in rows:
        print(f"| {key} | {params:,} | {label} | {rate:.3f} {unit} | {net_rate:.3f} |")


if __name__ == "__main__":
    main()

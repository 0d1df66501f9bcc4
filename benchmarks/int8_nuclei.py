"""int8 on the CPU, nuclei (issue 19): dense fp32 vs dense int8 vs 93.75 % pruned int8 on the
MoNuSeg test set's whole 1000x1000 tiles: tiles per second and test AJI/PQ.

    python benchmarks/int8_nuclei.py --work DIR [--data ../shared/data/monuseg]
        [--stage all|runs|table] [--threads 2] [extra prune.py overrides ...]

Stages, each skipped when its folder holds a summary.json (a cut stage's folder is renamed
``<name>.cut<k>`` and the stage runs again):

1. ``dense`` and ``pruned``: ``train.py experiment=monuseg_cpu`` (dense, and
   ``pruning=global sparsity=0.9375``), trained on the 13 training tiles (3 validate and tune
   the thresholds) and tested on the 14 official test tiles (~20 min each on 2 cores).
2. ``dense_int8`` and ``pruned_int8``: ``prune.py pruning=none export.int8=true`` on each:
   int8 calibrated on training patches, scored on val (the decision) and on the test tiles.
3. ``table``: the network's throughput on the 14 test tiles (sliding windows as deployed,
   no watershed), tiles per second with ``--threads`` threads: dense fp32 in torch (bf16
   autocast as trained) and in onnxruntime, dense int8 and pruned int8 in onnxruntime; next
   to each model's test AJI and PQ from its summary.json. Written to DIR/int8_table.json and
   printed. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from int8_cardiac import stage
from runner import ROOT

INT8 = ["pruning=none", "export.int8=true", "export.calibration_items=64"]


def throughput(network, images, pre) -> float:
    """Tiles per second of ``network.nuclei_maps`` over ``images`` after one untimed tile."""
    network.nuclei_maps(images[0], pre)
    start = time.perf_counter()
    for image in images:
        network.nuclei_maps(image, pre)
    return len(images) / (time.perf_counter() - start)


def table(work: Path, test: Path, threads: int) -> dict:
    import torch

    from medprune.data.monuseg import read_rgb_image
    from medprune.inference.onnx_network import OnnxNetwork
    from medprune.inference.settings import read_settings
    from medprune.inference.torch_network import load_checkpoint_network

    torch.set_num_threads(threads)
    images = [read_rgb_image(p)[0] for p in sorted(test.glob("*.tif"))]
    pre = read_settings(work / "dense_int8")["preprocess"]
    summaries = {n: json.loads((work / n / "summary.json").read_text()) for n in
                 ("dense_int8", "pruned_int8")}  # fmt: skip
    dense, pruned = summaries["dense_int8"], summaries["pruned_int8"]
    rows = {
        "dense fp32 torch": (
            load_checkpoint_network(work / "dense" / "checkpoints" / "last.ckpt")[0],
            dense["baseline"]["metrics"],
        )
    }
    for label, folder, summary in (
        ("dense", "dense_int8", dense),
        ("pruned 93.75 %", "pruned_int8", pruned),
    ):
        for precision, file, metrics in (
            ("fp32", "model.onnx", summary["baseline"]["metrics"]),
            ("int8", "model.int8.onnx", summary["int8"]["metrics"]),
        ):
            network = OnnxNetwork(work / folder / file, threads)
            rows[f"{label} {precision} onnxruntime"] = (network, metrics)
    result = {}
    for name, (network, metrics) in rows.items():
        result[name] = {
            "tiles_per_s": throughput(network, images, pre),
            "test_aji": metrics["test/aji"],
            "test_pq": metrics["test/pq"],
        }
    result["deployed"] = {n: s["int8"]["deployed"] for n, s in summaries.items()}
    result["threads"], result["tiles"] = threads, len(images)
    return result


def show(result: dict) -> None:
    print(f"{result['tiles']} test tiles, {result['threads']} threads")
    print("| model | tiles/s | test AJI | test PQ |")
    print("| --- | ---: | ---: | ---: |")
    for name, row in result.items():
        if isinstance(row, dict) and "tiles_per_s" in row:
            print(f"| {name} | {row['tiles_per_s']:.3f} | {row['test_aji']:.4f} | "
                  f"{row['test_pq']:.4f} |")  # fmt: skip
    fp32, int8 = result["dense fp32 onnxruntime"], result["dense int8 onnxruntime"]
    print(f"dense int8 AJI {int8['test_aji'] / fp32['test_aji'] - 1:+.2%} against fp32 "
          "(target within 2 %); int8 deployed: " + str(result["deployed"]))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the runs (kept, resumable)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "monuseg"))
    parser.add_argument("--stage", choices=("all", "runs", "table"), default="all")
    parser.add_argument("--threads", type=int, default=2)
    args, extra = parser.parse_known_args()
    work, data = Path(args.work).resolve(), Path(args.data).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "runs"):
        recipe = ["experiment=monuseg_cpu", f"data.root={data / 'train'}"]
        recipe.append(f"data.test_root={data / 'test'}")
        stage(work, "dense", recipe, "train.py")
        stage(work, "pruned", [*recipe, "pruning=global", "sparsity=0.9375"], "train.py")
        for name in ("dense", "pruned"):
            ckpt = f"ckpt={work / name / 'checkpoints' / 'last.ckpt'}"
            stage(work, f"{name}_int8", [ckpt, *INT8, *extra], "prune.py")
    if args.stage in ("all", "table"):
        result = table(work, data / "test", args.threads)
        (work / "int8_table.json").write_text(json.dumps(result, indent=2) + "\n")
        show(result)


if __name__ == "__main__":
    main()

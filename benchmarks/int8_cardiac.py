"""int8 on the CPU, cardiac (issue 19): dense fp32, dense int8, sculpted fp32, sculpted int8 on
ACDC; latency at batch 1 on 2 threads and on 1, ONNX file size, test mean Dice.

    python benchmarks/int8_cardiac.py --work DIR [--root ../shared/data/acdc/training]
        [--stage all|runs|table] [extra prune.py overrides ...]

Stages, each skipped when its folder holds a summary.json (a cut run resumes; a folder a cut
stage left is renamed ``<name>.cut<k>`` and the stage runs again):

1. ``dense``: ``train.py experiment=acdc_cpu`` with the 10 held-out patients split 5 for val
   (``data.val_fraction=0.1``) and 5 for test (``data.test_fraction=0.1``), so steps and the
   int8 decision are made on val patients and reported on others; the 40 train patients are
   the recipe's (~25 min on 2 cores).
2. ``dense_int8``: ``prune.py pruning=none export.int8=true`` on it: the dense int8 baseline.
3. ``sculpted``: ``prune.py`` with the sculpting recipe of ``sculpt_cardiac.py`` to
   ``target.compression=100`` and ``export.int8=true`` (~50 min).
4. ``table``: the four models timed alone, dense fp32 in eager torch first, then all four in
   onnxruntime (median of
   ``--repeats`` runs after ``--warmup``, on a 160x160 slice), written to DIR/int8_table.json
   and printed as markdown. Run it with nothing else on the machine.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from runner import ROOT, run_train
from sculpt_cardiac import RECIPE

INT8 = ["export.int8=true", "export.calibration_items=64"]
SPLIT = ["data.val_fraction=0.1", "data.test_fraction=0.1"]
SIZE = [1, 1, 160, 160]  # batch 1, one MRI slice of the training crop size


def stage(work: Path, name: str, overrides: list[str], script: str) -> dict:
    """The stage's summary.json, running it first unless a finished one is there."""
    out = work / name
    if (out / "summary.json").is_file():
        return json.loads((out / "summary.json").read_text())
    if out.exists():  # cut mid-run: keep what it left, start again in a fresh folder
        k = 1
        while out.with_name(f"{name}.cut{k}").exists():
            k += 1
        out.rename(out.with_name(f"{name}.cut{k}"))
    print(f"python {script} " + " ".join(overrides), flush=True)
    summary = run_train(overrides, out, script=script)
    print(f"{name}: {summary['process_time_s'] / 60:.1f} min", flush=True)
    return summary


def latency_table(work: Path, warmup: int, repeats: int) -> dict:
    from medprune.bench import onnx_latency, torch_latency
    from medprune.inference.torch_network import load_checkpoint_network

    dense_net = load_checkpoint_network(work / "dense" / "checkpoints" / "last.ckpt")[0].net
    onnx = {
        "dense fp32": work / "dense_int8" / "model.onnx",
        "dense int8": work / "dense_int8" / "model.int8.onnx",
        "sculpted fp32": work / "sculpted" / "model.onnx",
        "sculpted int8": work / "sculpted" / "model.int8.onnx",
    }
    table: dict = {name: {"onnx_bytes": path.stat().st_size} for name, path in onnx.items()}
    for threads in (2, 1):
        # eager torch for the dense baseline only: a loaded .pt2 program cannot switch to
        # eval mode, and the sculpted model deploys through onnxruntime
        ms = torch_latency(dense_net, SIZE, threads, warmup, repeats)["median_ms"]
        table["dense fp32"][f"torch_ms_{threads}t"] = ms
        for name, path in onnx.items():
            table[name][f"onnx_ms_{threads}t"] = onnx_latency(path, SIZE, threads, warmup, repeats)[
                "median_ms"
            ]
    dense, sculpted = (
        json.loads((work / n / "summary.json").read_text()) for n in ("dense_int8", "sculpted")
    )
    for name, metrics in (
        ("dense fp32", dense["baseline"]["metrics"]),
        ("dense int8", dense["int8"]["metrics"]),
        ("sculpted fp32", sculpted["pruned"]["metrics"]),
        ("sculpted int8", sculpted["int8"]["metrics"]),
    ):
        table[name]["test_dice_mean"] = metrics["test/dice_mean"]
        table[name]["test_hd95_mean"] = metrics["test/hd95_mean"]
    table["dense int8"]["deployed"] = dense["int8"]["deployed"]
    table["sculpted int8"]["deployed"] = sculpted["int8"]["deployed"]
    table["sculpted fp32"]["params"] = sculpted["pruned"]["params"]
    table["dense fp32"]["params"] = sculpted["baseline"]["params"]
    return table


def show(table: dict) -> None:
    print("| model | test mean Dice | HD95 mm | ONNX MB | torch ms 2t | ort ms 2t | torch ms 1t "
          "| ort ms 1t |")  # fmt: skip
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, row in table.items():
        torch2, torch1 = row.get("torch_ms_2t"), row.get("torch_ms_1t")
        cells = [f"{row['test_dice_mean']:.4f}", f"{row['test_hd95_mean']:.2f}",
                 f"{row['onnx_bytes'] / 1e6:.3f}",
                 "" if torch2 is None else f"{torch2:.2f}", f"{row['onnx_ms_2t']:.2f}",
                 "" if torch1 is None else f"{torch1:.2f}", f"{row['onnx_ms_1t']:.2f}"]  # fmt: skip
        print(f"| {name} | " + " | ".join(cells) + " |")
    s8, s32, d32 = table["sculpted int8"], table["sculpted fp32"], table["dense fp32"]
    for t in (2, 1):
        print(f"{t} thread(s): sculpted int8 vs sculpted fp32 onnxruntime "
              f"{s32[f'onnx_ms_{t}t'] / s8[f'onnx_ms_{t}t']:.2f}x (target 1.5x); vs dense fp32 "
              f"torch {d32[f'torch_ms_{t}t'] / s8[f'onnx_ms_{t}t']:.1f}x (target 10x)")  # fmt: skip
    drop = 1 - s8["test_dice_mean"] / d32["test_dice_mean"]
    print(f"sculpted int8 test mean Dice {drop:+.2%} below dense (target at most 4 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", required=True, help="folder for the runs (kept, resumable)")
    default_root = ROOT.parent / "shared" / "data" / "acdc" / "training"
    parser.add_argument("--root", default=str(default_root))
    parser.add_argument("--stage", choices=("all", "runs", "table"), default="all")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    args, extra = parser.parse_known_args()
    work = Path(args.work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "runs"):
        stage(work, "dense", ["experiment=acdc_cpu", f"data.root={args.root}", *SPLIT], "train.py")
        ckpt = f"ckpt={work / 'dense' / 'checkpoints' / 'last.ckpt'}"
        stage(work, "dense_int8", [ckpt, "pruning=none", *INT8, *extra], "prune.py")
        compression = ["target.compression=100", *INT8, *extra]
        stage(work, "sculpted", [ckpt, *RECIPE, *compression], "prune.py")
    if args.stage in ("all", "table"):
        table = latency_table(work, args.warmup, args.repeats)
        (work / "int8_table.json").write_text(json.dumps(table, indent=2) + "\n")
        show(table)


if __name__ == "__main__":
    main()

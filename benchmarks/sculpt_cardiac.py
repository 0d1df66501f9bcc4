"""Sculpting the cardiac U-Net (issue 6): from a trained dense `model=unet` ACDC checkpoint,
channel pruning to >= 100x fewer parameters within 4 % mean-Dice loss, then on toward the
paper's 1148x to see where quality breaks.

    python benchmarks/sculpt_cardiac.py [--ckpt <run>/checkpoints/last.ckpt] [--work DIR]
        [--root ../shared/data/acdc/training] [--compression 100] [--push 1148]
        [extra prune.py overrides ...]

Without ``--ckpt`` it first trains the dense model with ``experiment=acdc_cpu`` (~25 min on 2
cores). Both prune runs use ``RECIPE`` (global ranking, 0.2 of the channels per step, a floor
of 4 channels per layer, 4 epochs per step distilled from the dense model, 20 recovery epochs
for a step past the tolerance); extra overrides come after it and win. First
``target.compression=<compression> target.max_quality_drop=0.04``; then, unless ``--push 0``,
``target.compression=<push>`` with a floor of 2 channels (4 allows at most 556x), steps of
0.35 (to get there in about 40 min) and ``pruning.patience=20``, so pruning goes on past the
tolerance, each step still given its recovery epochs: the step table shows where mean Dice
breaks. Dice is the held-out patients'
per-volume mean (val for the criteria, test for the result); latency is the median at batch 1
on a 160 px slice with 2 threads. Run it alone on the machine: other jobs distort latencies.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from runner import ROOT, run_train

RECIPE = ["pruning.ranking=global", "pruning.step_ratio=0.2", "pruning.min_channels=4"]
RECIPE += ["pruning.patience=2", "finetune.epochs=4", "finetune.recover_epochs=20"]
RECIPE += ["finetune.distill=1", "target.max_quality_drop=0.04"]
PUSH = ["pruning.min_channels=2", "pruning.patience=20", "pruning.step_ratio=0.35"]


def show(name: str, s: dict) -> None:
    b, p = s["baseline"], s["pruned"]
    print(f"\n== {name}: stopped: {s['stopped']}; chosen step {p['step']}")
    print(
        f"{'model':<8}{'params':>12}{'val Dice':>10}{'test Dice':>10}{'torch ms':>10}{'ort ms':>9}"
    )
    for label, side in (("dense", b), ("pruned", p)):
        print(
            f"{label:<8}{side['params']:>12,}{side['val_quality']:>10.4f}"
            f"{side['metrics']['test/dice_mean']:>10.4f}{side['latency_ms']:>10.2f}"
            f"{side['onnx_latency_ms']:>9.2f}"
        )
    print(
        f"compression {s['compression_ratio']:.1f}x, speedup {s['speedup']:.2f}x torch, "
        f"{s['onnx_speedup']:.2f}x onnxruntime, quality drop {s['quality_drop']:+.2%} val, "
        f"{s['test_quality_drop']:+.2%} test; criteria met: {s['all_criteria_met']}"
    )
    print(
        f"{'step':>4}{'params':>12}{'compression':>13}{'val Dice':>10}{'torch ms':>10}{'epochs':>8}"
    )
    for row in s["steps"]:
        print(
            f"{row['step']:>4}{row['params']:>12,}{row['compression']:>12.1f}x"
            f"{row['quality']:>10.4f}{row['latency_ms']:>10.2f}{row['epochs']:>8}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", help="a trained dense cardiac checkpoint (default: train one)")
    parser.add_argument("--work", help="folder for the runs (default: a temporary one)")
    default_root = ROOT.parent / "shared" / "data" / "acdc" / "training"
    parser.add_argument("--root", default=str(default_root))
    parser.add_argument("--compression", type=float, default=100)
    parser.add_argument("--push", type=float, default=1148, help="0: skip the push run")
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.work or tmp)
        ckpt = args.ckpt
        if ckpt is None:
            dense = ["experiment=acdc_cpu", f"data.root={args.root}"]
            print("python train.py " + " ".join(dense), flush=True)
            s = run_train(dense, work / "dense")
            print(
                f"dense: test mean Dice {s['metrics']['test/dice_mean']:.4f}, "
                f"{s['process_time_s'] / 60:.1f} min",
                flush=True,
            )
            ckpt = str(work / "dense" / "checkpoints" / "last.ckpt")
        runs = {"target": [*RECIPE, f"target.compression={args.compression}"]}
        if args.push:
            runs["push"] = [*RECIPE, f"target.compression={args.push}", *PUSH]
        for name, overrides in runs.items():
            command = [f"ckpt={ckpt}", *overrides, *extra]
            print("python prune.py " + " ".join(command), flush=True)
            s = run_train(command, work / name, script="prune.py")
            show(f"{name} ({s['process_time_s'] / 60:.1f} min)", s)


if __name__ == "__main__":
    main()

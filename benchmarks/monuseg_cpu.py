"""The `experiment=monuseg_cpu` recipe on real MoNuSeg tiles: dense vs 93.75 % global pruning.

Runs ``python train.py experiment=monuseg_cpu data.root=<root>`` twice (``pruning=none`` and
``pruning=global sparsity=S``; no logger), reads both summary.json files and prints AJI, PQ,
the tuned watershed thresholds and each run's wall time, with the pruned run's relative AJI
and PQ change against dense. Both are scored on the recipe's 3 validation tiles (whole
1000x1000 tiles, sliding window), on which the thresholds were also tuned.

    python benchmarks/monuseg_cpu.py [--root ../shared/data/monuseg/train] [--sparsity 0.9375]
        [--only dense|global] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from runner import ROOT, run_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = ROOT.parent / "shared" / "data" / "monuseg" / "train"
    parser.add_argument("--root", default=str(default_root))
    parser.add_argument("--sparsity", type=float, default=0.9375)
    parser.add_argument("--only", choices=("dense", "global"))
    args, extra = parser.parse_known_args()
    base = ["experiment=monuseg_cpu", f"data.root={args.root}", *extra]
    runs = {
        "dense": ["pruning=none"],
        f"global {args.sparsity}": ["pruning=global", f"sparsity={args.sparsity}"],
    }
    if args.only:
        runs = {k: v for k, v in runs.items() if k.startswith(args.only)}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for i, (name, overrides) in enumerate(runs.items()):
            print("python train.py " + " ".join(base + overrides), flush=True)
            results[name] = run_train(base + overrides, Path(tmp) / str(i))
    print(f"{'run':<16}{'AJI':>8}{'PQ':>8}{'fg':>6}{'marker':>8}{'sparsity':>10}{'min':>7}")
    for name, s in results.items():
        m, post = s["metrics"], s["postprocess"]
        print(
            f"{name:<16}{m['test/aji']:>8.4f}{m['test/pq']:>8.4f}{post['fg_threshold']:>6.2f}"
            f"{post['marker_threshold']:>8.2f}{s['pruning']['achieved_sparsity']:>10.4f}"
            f"{s['process_time_s'] / 60:>7.1f}"
        )
    if len(results) == 2:
        dense, pruned = results.values()
        for key in ("aji", "pq"):
            change = pruned["metrics"][f"test/{key}"] / dense["metrics"][f"test/{key}"] - 1
            print(f"relative {key.upper()} change, pruned vs dense: {change:+.2%}")


if __name__ == "__main__":
    main()

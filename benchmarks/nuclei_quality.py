"""Quality and time of the default nuclei job, dense vs 93.75 % global pruning.

Runs ``python train.py`` twice (the README's defaults, nothing else changed), reads each
run's summary.json and prints AJI/PQ/Dice, wall time and the pruned run's relative AJI
change against the dense run of the same invocation.

    python benchmarks/nuclei_quality.py [--sparsity 0.9375] [--seed 42] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from runner import run_train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sparsity", type=float, default=0.9375)
    parser.add_argument("--seed", type=int, default=42)
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        common = [f"seed={args.seed}", *extra]
        dense = run_train(["pruning=none", *common], Path(tmp) / "dense")
        pruned = run_train(
            ["pruning=global", f"sparsity={args.sparsity}", *common], Path(tmp) / "global"
        )
    print(f"{'run':<22}{'AJI':>8}{'PQ':>8}{'Dice':>8}{'sparsity':>10}{'steps':>7}{'time_s':>8}")
    for name, s in (("dense", dense), (f"global {args.sparsity}", pruned)):
        m = s["metrics"]
        print(
            f"{name:<22}{m['test/aji']:>8.4f}{m['test/pq']:>8.4f}{m['test/dice']:>8.4f}"
            f"{s['pruning']['achieved_sparsity']:>10.4f}{s['steps']:>7}{s['process_time_s']:>8.1f}"
        )
    change = pruned["metrics"]["test/aji"] / dense["metrics"]["test/aji"] - 1
    print(f"relative AJI change, pruned vs dense: {change:+.2%}")


if __name__ == "__main__":
    main()

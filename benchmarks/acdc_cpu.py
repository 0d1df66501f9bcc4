"""The `experiment=acdc_cpu` recipe on real ACDC: held-out quality and wall time.

Runs ``python train.py experiment=acdc_cpu data.root=<root>`` once (no logger), reads its
summary.json and prints per-structure Dice and HD95 (mm) on the held-out patients, scored per
3D volume on each volume's own grid, with the whole command's wall time against the recipe's
targets (mean Dice >= 0.88, <= 30 min on 2 CPU cores).

    python benchmarks/acdc_cpu.py [--root ../shared/data/acdc/training] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from runner import ROOT, run_train

TARGET_DICE, BUDGET_MIN = 0.88, 30.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--root", default=str(ROOT.parent / "shared" / "data" / "acdc" / "training")
    )
    args, extra = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as tmp:
        overrides = ["experiment=acdc_cpu", f"data.root={args.root}", *extra]
        summary = run_train(overrides, Path(tmp) / "run")
    minutes = summary["process_time_s"] / 60
    m = summary["metrics"]
    print("python train.py " + " ".join(overrides))
    print(f"{'':<6}{'RV':>8}{'MYO':>8}{'LV':>8}{'mean':>8}")
    for metric, fmt in (("dice", ".4f"), ("hd95", ".2f")):
        row = [m[f"test/{metric}_{k}"] for k in ("rv", "myo", "lv", "mean")]
        print(f"{metric:<6}" + "".join(f"{v:>8{fmt}}" for v in row))
    dice = m["test/dice_mean"]
    print(f"steps {summary['steps']}, wall time {minutes:.1f} min")
    print(
        f"mean Dice {dice:.4f} {'>=' if dice >= TARGET_DICE else '<'} {TARGET_DICE}; "
        f"{minutes:.1f} min {'<=' if minutes <= BUDGET_MIN else '>'} {BUDGET_MIN:.0f} min"
    )


if __name__ == "__main__":
    main()

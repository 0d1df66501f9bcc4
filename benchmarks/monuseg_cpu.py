"""The `experiment=monuseg_cpu` recipe on real MoNuSeg tiles: dense vs 93.75 % global pruning.

Runs ``python train.py experiment=monuseg_cpu data.root=<root>`` twice per seed
(``pruning=none`` and ``pruning=global sparsity=S``; no logger), reads the summary.json files
and prints AJI, PQ, the tuned watershed thresholds and each run's wall time, with the pruned
run's relative AJI and PQ change against dense at that seed. With several ``--seeds`` it also
prints mean ± std (sample std) over the seeds and the relative change of the means. All runs
are scored on the recipe's 3 validation tiles (whole 1000x1000 tiles, sliding window), on
which the thresholds were also tuned. Each run takes ~24 min on 2 cores.

    python benchmarks/monuseg_cpu.py [--root ../shared/data/monuseg/train] [--sparsity 0.9375]
        [--only dense|global] [--seeds 42 1 2] [extra overrides ...]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

from runner import ROOT, run_train


def relative(pruned: float, dense: float) -> str:
    return f"{pruned / dense - 1:+.2%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = ROOT.parent / "shared" / "data" / "monuseg" / "train"
    parser.add_argument("--root", default=str(default_root))
    parser.add_argument("--sparsity", type=float, default=0.9375)
    parser.add_argument("--only", choices=("dense", "global"))
    parser.add_argument(
        "--seeds", type=int, nargs="+", default=[None], help="default: the config's seed (42)"
    )
    args, extra = parser.parse_known_args()
    base = ["experiment=monuseg_cpu", f"data.root={args.root}", *extra]
    kinds = {"dense": ["pruning=none"], "global": ["pruning=global", f"sparsity={args.sparsity}"]}
    if args.only:
        kinds = {args.only: kinds[args.only]}
    results: dict[tuple[str, int | None], dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            for kind, overrides in kinds.items():
                seeded = overrides + ([] if seed is None else [f"seed={seed}"])
                print("python train.py " + " ".join(base + seeded), flush=True)
                out = Path(tmp) / f"{kind}-{seed}"
                results[kind, seed] = run_train(base + seeded, out)
    print(
        f"{'run':<10}{'seed':>6}{'AJI':>8}{'PQ':>8}{'fg':>6}{'marker':>8}{'sparsity':>10}{'min':>7}"
    )
    for (kind, seed), s in results.items():
        m, post = s["metrics"], s["postprocess"]
        print(
            f"{kind:<10}{seed or '-':>6}{m['test/aji']:>8.4f}{m['test/pq']:>8.4f}"
            f"{post['fg_threshold']:>6.2f}{post['marker_threshold']:>8.2f}"
            f"{s['pruning']['achieved_sparsity']:>10.4f}{s['process_time_s'] / 60:>7.1f}"
        )
    if len(kinds) < 2:
        return
    for seed in args.seeds:
        dense, pruned = results["dense", seed]["metrics"], results["global", seed]["metrics"]
        print(
            f"seed {seed or '-'}: pruned vs dense, relative AJI "
            f"{relative(pruned['test/aji'], dense['test/aji'])}, "
            f"PQ {relative(pruned['test/pq'], dense['test/pq'])}"
        )
    if len(args.seeds) < 2:
        return
    for key in ("aji", "pq"):
        means = {}
        for kind in kinds:
            values = [results[kind, seed]["metrics"][f"test/{key}"] for seed in args.seeds]
            means[kind] = statistics.mean(values)
            std = statistics.stdev(values)
            print(f"{kind:<10}{key.upper()} mean {means[kind]:.4f} ± {std:.4f}")
        change = relative(means["global"], means["dense"])
        print(f"relative {key.upper()} change of the means: {change}")


if __name__ == "__main__":
    main()

"""Time of the pruning callback's per-step and per-update work on the default model, on CPU.

Per optimizer step the callback multiplies gradients and weights by their masks; per mask
update it ranks all selected weights (``magnitude_masks``). This prints the median time of:

  - one pass of ``weight.mul_(mask)`` over every prunable weight with bool masks in NCHW
    layout (how masks are stored) and with 0/1 multipliers in the weights' own layout
    (channels-last, as the nuclei task trains; what the callback applies);
  - ``magnitude_masks`` at 93.75 %, global and layer-wise, with previous masks and the
    default ``min_density`` 0.01.

    python benchmarks/mask_ops_time.py [--threads 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medprune.models import TwoBranchUNet
from medprune.pruning import magnitude_masks, prunable_parameters
from medprune.pruning.zeroing import apply_masks, multipliers


def median_ms(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    net = TwoBranchUNet(in_channels=3, base_channels=16, depth=5)
    net = net.to(memory_format=torch.channels_last)
    params = prunable_parameters(net)
    n = sum(w.numel() for w in params.values())
    half = magnitude_masks(params, 0.5, "global")
    factors = multipliers(params, half)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {n:,} weights")
    rows = [
        ("mul_ by bool masks (NCHW)", median_ms(lambda: apply_masks(params, half), args.repeats)),
        (
            "mul_ by 0/1 multipliers (weights' layout)",
            median_ms(lambda: apply_masks(params, factors), args.repeats),
        ),
    ]
    for scope in ("global", "layerwise"):
        ms = median_ms(
            lambda s=scope: magnitude_masks(params, 0.9375, s, previous=half, min_density=0.01),
            max(3, args.repeats // 4),
        )
        rows.append((f"magnitude_masks 93.75 % {scope}", ms))
    print("| operation | median ms |\n| --- | --- |")
    for name, ms in rows:
        print(f"| {name} | {ms:.2f} |")


if __name__ == "__main__":
    main()

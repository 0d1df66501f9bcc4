"""Training-step time of the two-branch U-Net on the CPU: NCHW, channels-last (NHWC), and
channels-last under bf16 autocast (what ``trainer.precision=bf16-mixed`` runs).

One step = forward, backward and an Adam update on a random batch; the median over
``--steps`` steps after ``--warmup`` steps is printed, with the ratio against NCHW. bf16
is only fast on CPUs with native bf16 (AVX512-BF16 or AMX); elsewhere it is slower.

    python benchmarks/train_step_time.py [--batch 8] [--size 96] [--base-channels 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from medprune.models import TwoBranchUNet


def step_time(channels_last: bool, args: argparse.Namespace, bf16: bool = False) -> float:
    torch.manual_seed(0)
    net = TwoBranchUNet(base_channels=args.base_channels)
    x = torch.randn(args.batch, 3, args.size, args.size)
    if channels_last:
        net = net.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(net.parameters())
    times = []
    for i in range(args.warmup + args.steps):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            seg, dist = net(x)
        (seg.float().mean() + dist.float().mean()).backward()
        optimizer.step()
        optimizer.zero_grad()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--size", type=int, default=96, help="px; the default training crop")
    parser.add_argument("--base-channels", type=int, default=16)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    nchw = step_time(False, args)
    nhwc = step_time(True, args)
    print(f"NCHW          {nchw * 1000:8.1f} ms/step")
    print(f"channels_last {nhwc * 1000:8.1f} ms/step   ({nchw / nhwc:.2f}x)")
    bf16 = step_time(True, args, bf16=True)
    print(f"  + bf16      {bf16 * 1000:8.1f} ms/step   ({nchw / bf16:.2f}x)")


if __name__ == "__main__":
    main()

"""Wall-clock latency of one forward pass on the CPU, in milliseconds, and the matching throughput.

Pruning only pays off on a CPU if the smaller network runs faster there, so every runtime
(eager PyTorch, ONNX Runtime) is timed the same way: untimed warm-up calls first (allocator,
oneDNN kernel selection, ONNX Runtime graph optimisation happen there), then ``repeats`` calls
timed one by one with ``time.perf_counter``. The median is the headline number because it
ignores the occasional scheduler hiccup; min and 90th percentile show the spread. Thread
counts are pinned per measurement because intra-op parallelism changes latency more than
most pruning ratios do.
"""

from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from medprune.common.checks import check_int, check_ints
from medprune.inference.modes import eval_mode


def measure(fn: Callable[[], object], warmup: int, repeats: int) -> dict:
    """Call ``fn()`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns ``median_ms``, ``min_ms`` and ``p90_ms`` (milliseconds per call; p90 linearly
    interpolated) plus the ``repeats`` and ``warmup`` counts used.
    """
    check_int(warmup, "warmup", 0)
    check_int(repeats, "repeats")
    for _ in range(warmup):
        fn()
    times_ms = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times_ms.append((time.perf_counter() - start) * 1000.0)
    return {
        "median_ms": float(statistics.median(times_ms)),
        "min_ms": float(min(times_ms)),
        "p90_ms": float(np.percentile(times_ms, 90)),
        "repeats": repeats,
        "warmup": warmup,
    }


def torch_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    threads: int,
    warmup: int = 5,
    repeats: int = 20,
) -> dict:
    """Eager PyTorch latency of ``model`` on a fixed random float32 batch of ``input_shape``.

    ``input_shape`` is (N, C, H, W); the model runs in eval mode under ``inference_mode``
    with ``threads`` intra-op threads. The caller's thread count and every submodule's
    train/eval flag are restored afterwards, also when the model raises.
    """
    shape = _check_shape(input_shape)
    check_int(threads, "threads")
    batch = _fixed_batch(shape)
    previous_threads = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        with eval_mode(model), torch.inference_mode():
            result = measure(lambda: model(batch), warmup, repeats)
    finally:
        torch.set_num_threads(previous_threads)
    return _with_context(result, shape, threads, "torch")


def onnx_latency(
    path: str | Path,
    input_shape: Sequence[int],
    threads: int,
    warmup: int = 5,
    repeats: int = 20,
) -> dict:
    """ONNX Runtime (CPUExecutionProvider) latency of the model in ``path``.

    Same batch and result keys as ``torch_latency``. ``threads`` sets the intra-op pool;
    inter-op parallelism is fixed at 1 because a U-Net is one chain of operators.
    """
    import onnxruntime as ort  # imported on use: train.py never needs it

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such ONNX model file")
    shape = _check_shape(input_shape)
    check_int(threads, "threads")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: _fixed_batch(shape).numpy()}
    try:
        result = measure(functools.partial(session.run, None, feed), warmup, repeats)
    finally:
        del session  # its spinning thread pool would slow whatever is measured next
    return _with_context(result, shape, threads, "onnxruntime")


def _fixed_batch(shape: list[int]) -> torch.Tensor:
    """Seeded float32 noise: both runtimes, and every run, see identical inputs."""
    return torch.randn(shape, generator=torch.Generator().manual_seed(0))


def _with_context(result: dict, shape: list[int], threads: int, runtime: str) -> dict:
    median_s = result["median_ms"] / 1000.0
    throughput = shape[0] / median_s if median_s > 0 else float("inf")
    return {
        **result,
        "threads": threads,
        "input_shape": shape,
        "throughput_per_s": throughput,  # images per second at the median latency
        "runtime": runtime,
    }


def _check_shape(input_shape: Sequence[int]) -> list[int]:
    return check_ints(input_shape, "input_shape", 4, what="4 positive integers (N, C, H, W)")

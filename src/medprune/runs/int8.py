"""prune.py's int8 step (``export.int8=true``): calibrate on training items, quantize the
exported ONNX model, score it as deployed, and decide which model the folder deploys.

The int8 model is scored the way every sculpting step is, through the task's own val and
test loops, but with the fp32 model's post-processing as it is (nothing re-tuned on the
int8 outputs), since that is what the deployment folder ships. It is deployed only if its
val quality stays within ``target.max_quality_drop`` of the dense model's and it runs at
least ``export.int8_min_speedup`` times as fast as the fp32 model in onnxruntime.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from medprune.bench import onnx_latency
from medprune.inference.quantize import qdq_counts, quantize_onnx
from medprune.pruning.criteria import StepResult, quality_drop
from medprune.runs.sculptor import Sculptor

log = logging.getLogger(__name__)

INT8_FILE = "model.int8.onnx"


def calibration_batches(datamodule: L.LightningDataModule, items: int) -> list[np.ndarray]:
    """The first ``items`` training items (patches or slices) as the training loader draws
    them (same sampling and augmentation), in its batches; only ``train_dataloader`` is
    read, never val or test."""
    batches, drawn = [], 0
    while drawn < items:
        before = drawn
        for batch in datamodule.train_dataloader():
            image = batch["image"][: items - drawn]
            batches.append(image.detach().cpu().float().numpy())
            drawn += len(image)
            if drawn >= items:
                break
        if drawn == before:
            raise ValueError(f"export.calibration_items={items}: the training loader gave no items")
    return batches


class OnnxModule(nn.Module):
    """An ONNX Runtime session behind the network's interface, so the task's val and test
    loops (sliding windows included) run the exported model: (N, C, H, W) in, the same
    outputs as the torch network out. Keeps ``depth`` for the U-Net's size rule."""

    def __init__(self, path: Path, depth: int | None) -> None:
        import onnxruntime as ort

        super().__init__()
        self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        if depth is not None:
            self.depth = depth

    def forward(self, image: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, ...]:
        feed = {self.input_name: np.ascontiguousarray(image.detach().cpu().numpy(), np.float32)}
        outputs = tuple(torch.from_numpy(o) for o in self.session.run(None, feed))
        return outputs[0] if len(outputs) == 1 else outputs


def score_onnx(sculptor: Sculptor, path: Path) -> tuple[dict[str, float], dict[str, float]]:
    """Val (post-processing as it is) and test metrics of the ONNX model at ``path``."""
    module, net = sculptor.module, sculptor.module.net
    module.attach(OnnxModule(path, getattr(net, "depth", None)))
    try:
        val = module.fixed_validation(sculptor.trainer(), sculptor.datamodule)
        return val, sculptor.test()
    finally:
        module.attach(net)


def quantize_step(
    sculptor: Sculptor,
    fp32_onnx: Path,
    fp32_ms: float,
    base: StepResult,
    baseline_test: dict[str, float],
    max_quality_drop: float,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Quantize ``fp32_onnx``, score and time the int8 model: the summary's ``int8`` entry
    and the onnxruntime timing (``bench`` entry).
    ``fp32_ms`` is the fp32 model's onnxruntime median, ``base`` and ``baseline_test`` the
    dense model's val result and test metrics."""
    cfg, higher = sculptor.cfg, sculptor.higher_is_better
    items = cfg.export.calibration_items
    batches = calibration_batches(sculptor.datamodule, items)
    path = quantize_onnx(
        fp32_onnx, sculptor.out / INT8_FILE, batches, cfg.export.calibration_method
    )
    val, test = score_onnx(sculptor, path)
    quality = val[sculptor.metric]
    drop = quality_drop(base.quality, quality, higher)
    bench = cfg.bench
    latency = onnx_latency(
        path, list(sculptor.example.shape), bench.threads, bench.warmup, bench.repeats
    )
    speedup, min_speedup = fp32_ms / latency["median_ms"], cfg.export.int8_min_speedup
    # int8 must keep the quality and also pay off: on very narrow layers the quantize /
    # dequantize work can cost more than the int8 kernels save
    deployed = drop <= max_quality_drop and speedup >= min_speedup
    reason = (
        f"int8 {sculptor.metric} {quality:.4f} is {drop:+.2%} from dense "
        f"({base.quality:.4f}; target.max_quality_drop={max_quality_drop:g}), "
        f"{speedup:.2f}x the fp32 onnxruntime speed (export.int8_min_speedup={min_speedup:g})"
    )
    if not deployed:
        log.warning("%s: the deployment folder keeps the fp32 model.onnx", reason)
    entry = {
        "path": str(path),
        "deployed": deployed,
        "reason": reason,
        "calibration": {
            "items": items,
            "split": "train",
            "method": cfg.export.calibration_method,
        },
        "val_quality": quality,
        "val_metrics": val,
        "metrics": test,
        "quality_drop": drop,
        "test_quality_drop": sculptor.test_quality_drop(baseline_test, test),
        "file_bytes": path.stat().st_size,
        "fp32_file_bytes": fp32_onnx.stat().st_size,
        "onnx_latency_ms": latency["median_ms"],
        "speedup_vs_fp32": speedup,
        "qdq_nodes": qdq_counts(path),
    }
    return entry, latency

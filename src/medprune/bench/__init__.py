"""CPU latency and throughput measurement for dense, pruned and exported models."""

from medprune.bench.latency import measure, onnx_latency, torch_latency

__all__ = ["measure", "onnx_latency", "torch_latency"]

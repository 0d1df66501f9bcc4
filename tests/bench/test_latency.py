import time

import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from medprune.bench import latency, measure, onnx_latency, torch_latency
from medprune.models import UNet

KEYS = {"median_ms", "min_ms", "p90_ms", "repeats", "warmup"}
CONTEXT = {"threads", "input_shape", "throughput_per_s", "runtime"}


class Probe(nn.Module):
    """Records what the runtime set up around each call; optionally fails."""

    def __init__(self, fail: bool = False) -> None:
        super().__init__()
        self.fail, self.seen = fail, []

    def forward(self, x):
        self.seen.append(
            (torch.get_num_threads(), torch.is_inference_mode_enabled(), self.training)
        )
        if self.fail:
            raise RuntimeError("model broke")
        return x


def test_measure_counts_calls_and_times_a_known_sleep():
    calls = []

    def sleep_2ms():
        calls.append(1)
        time.sleep(0.002)

    result = measure(sleep_2ms, warmup=2, repeats=3)
    assert len(calls) == 2 + 3
    assert set(result) == KEYS
    assert (result["warmup"], result["repeats"]) == (2, 3)
    assert result["median_ms"] >= 2.0  # sleep never returns early; no upper bound asserted
    assert result["min_ms"] <= result["median_ms"] <= result["p90_ms"]


def test_measure_statistics_on_a_fake_clock(monkeypatch):
    clock = [0.0]
    durations_ms = iter([50.0, 1.0, 4.0, 2.0, 10.0, 3.0])  # the first is the warm-up call
    monkeypatch.setattr(latency.time, "perf_counter", lambda: clock[0])

    def tick():
        clock[0] += next(durations_ms) / 1000.0

    result = measure(tick, warmup=1, repeats=5)
    assert result["median_ms"] == pytest.approx(3.0)
    assert result["min_ms"] == pytest.approx(1.0)
    # linear interpolation over sorted 1, 2, 3, 4, 10: position 0.9 * 4 = 3.6 -> 4 + 0.6 * 6
    assert result["p90_ms"] == pytest.approx(7.6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"warmup": -1, "repeats": 1}, "warmup"),
        ({"warmup": 0, "repeats": 0}, "repeats"),
        ({"warmup": 0, "repeats": 2.0}, "repeats"),
        ({"warmup": True, "repeats": 1}, "warmup"),
    ],
)
def test_measure_rejects_bad_counts(kwargs, name):
    with pytest.raises(ValueError, match=name):
        measure(lambda: None, **kwargs)


def test_torch_latency_result_and_throughput():
    torch.manual_seed(0)
    net = UNet(3, 4, base_channels=2, depth=2)
    net.encoder[0][1].eval()  # a frozen BatchNorm inside a training net
    result = torch_latency(net, (2, 3, 16, 16), threads=1, warmup=1, repeats=3)
    assert set(result) == KEYS | CONTEXT
    assert result["runtime"] == "torch"
    assert result["input_shape"] == [2, 3, 16, 16]
    assert result["threads"] == 1
    assert result["throughput_per_s"] == pytest.approx(2 * 1000.0 / result["median_ms"])
    assert net.training and not net.encoder[0][1].training  # each module's flag given back


def test_torch_latency_pins_threads_and_restores_them():
    before = torch.get_num_threads()
    target = 1 if before != 1 else 2
    probe = Probe()
    torch_latency(probe, [1, 1, 4, 4], threads=target, warmup=1, repeats=2)
    assert probe.seen == [(target, True, False)] * 3  # threads, inference mode, eval
    assert torch.get_num_threads() == before


def test_torch_latency_restores_threads_when_the_model_raises():
    before = torch.get_num_threads()
    probe = Probe(fail=True)
    with pytest.raises(RuntimeError, match="model broke"):
        torch_latency(probe, [1, 1, 4, 4], threads=1 if before != 1 else 2)
    assert torch.get_num_threads() == before
    assert probe.training


@pytest.mark.parametrize(
    "shape, threads, name",
    [
        ((3, 16, 16), 1, "input_shape"),
        ((1, 3, 0, 16), 1, "input_shape"),
        ((1, 3, 16.0, 16), 1, "input_shape"),
        ((1, 3, 16, 16), 0, "threads"),
    ],
)
def test_bad_arguments_name_themselves(shape, threads, name, tmp_path):
    with pytest.raises(ValueError, match=name):
        torch_latency(Probe(), shape, threads)
    path = tmp_path / "relu.onnx"
    onnx.save(relu_model(), path)
    with pytest.raises(ValueError, match=name):
        onnx_latency(path, shape, threads)


def relu_model() -> onnx.ModelProto:
    """A one-node model with a dynamic batch axis: enough to exercise the session setup."""
    x = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 3, 8, 8])
    y = helper.make_tensor_value_info("out", TensorProto.FLOAT, ["batch", 3, 8, 8])
    graph = helper.make_graph([helper.make_node("Relu", ["image"], ["out"])], "relu", [x], [y])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_onnx_latency_result(tmp_path):
    path = tmp_path / "relu.onnx"
    onnx.save(relu_model(), path)
    before = torch.get_num_threads()
    result = onnx_latency(path, (4, 3, 8, 8), threads=1, warmup=1, repeats=3)
    assert set(result) == KEYS | CONTEXT
    assert result["runtime"] == "onnxruntime"
    assert result["input_shape"] == [4, 3, 8, 8]
    assert result["throughput_per_s"] == pytest.approx(4 * 1000.0 / result["median_ms"])
    assert torch.get_num_threads() == before


def test_onnx_latency_missing_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.onnx"):
        onnx_latency(tmp_path / "missing.onnx", (1, 3, 8, 8), threads=1)

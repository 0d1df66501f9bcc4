"""Train/eval flags kept per module: code that needs eval mode for a while (tracing, export,
timing) gives every submodule its own flag back, so a BatchNorm frozen in eval mode inside a
training network stays frozen."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from torch import nn


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """``model.eval()`` inside the block; each submodule's previous flag afterwards, also
    when the block raises."""
    flags = {module: module.training for module in model.modules()}
    try:
        yield model.eval()
    finally:
        for module, training in flags.items():
            module.training = training

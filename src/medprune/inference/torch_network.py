"""The network in torch: a ``train.py`` checkpoint (dense or pruned) or a ``prune.py``
``model.pt2`` program, behind the interface the prediction loop uses.

The steps are the ones the tasks' val/test run (``whole_image_outputs`` and a sigmoid for
nuclei, ``labels_on_grid`` for cardiac), in the same memory format and, for a run trained
with ``trainer.precision=bf16-mixed``, under the same bf16 autocast, so a checkpoint scores
here exactly what ``train.py``'s test reported on the same images.
"""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from medprune.inference.sliding_window import whole_image_outputs

AUTOCAST_PRECISIONS = ("bf16-mixed",)  # Lightning's CPU autocast; anything else runs fp32


def labels_on_grid(
    logits: torch.Tensor, size: tuple[int, int], grid: tuple[int, int]
) -> torch.Tensor:
    """Class map (Z, *grid) from logits (Z, C, H, W) of a centre-padded input: cut the padding
    back to ``size`` (h, w) (the offsets of ``center_crop_or_pad``), then, if ``grid`` differs,
    resize the softmax probabilities bilinearly on pixel centres (``align_corners=False``, the
    grid ``resample_inplane`` used) before the argmax, so the prediction lands on the voxels of
    the label as read."""
    h, w = size
    top, left = (logits.shape[-2] - h) // 2, (logits.shape[-1] - w) // 2
    logits = logits[..., top : top + h, left : left + w]
    if (h, w) == tuple(grid):
        return logits.argmax(dim=1)
    prob = F.interpolate(logits.softmax(dim=1), size=grid, mode="bilinear", align_corners=False)
    return prob.argmax(dim=1)


class TorchNetwork:
    """``net`` in eval mode on the CPU; ``channels_last`` and ``precision`` as it trained."""

    runtime = "torch"

    def __init__(
        self, net: nn.Module, channels_last: bool = False, precision: Any = "32-true"
    ) -> None:
        self.channels_last = bool(channels_last)
        self.net = net.to(memory_format=torch.channels_last) if self.channels_last else net
        if isinstance(net, nn.Module) and not hasattr(net, "graph"):  # programs export in eval
            self.net.eval()
        self.autocast = str(precision) in AUTOCAST_PRECISIONS

    def __call__(self, x: torch.Tensor) -> Any:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def _context(self):
        return torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast else nullcontext()

    def nuclei_maps(self, image: np.ndarray, pre: dict[str, Any]) -> tuple[np.ndarray, ...]:
        """(H, W, 3) uint8 -> foreground probability and distance map, (H, W) float32."""
        x = torch.from_numpy(np.ascontiguousarray(image.transpose(2, 0, 1))).float()
        x = (x / pre["scale"])[None]
        with torch.inference_mode(), self._context():
            seg, distance = whole_image_outputs(
                self, x, pre["window"], pre["overlap"], pre["size_multiple"],
                pre.get("batch_size", 4), pre.get("blend", "gaussian"),
            )  # fmt: skip
            prob = torch.sigmoid(seg)[:, 0]
        return prob[0].float().numpy(), distance[0, 0].float().numpy()

    def cardiac_labels(
        self, padded: np.ndarray, size: tuple[int, int], grid: tuple[int, int]
    ) -> np.ndarray:
        """(Z, H', W') padded volume -> (Z, *grid) class map of the volume as read."""
        with torch.inference_mode(), self._context():
            logits = self(torch.from_numpy(padded)[:, None])
            return labels_on_grid(logits, size, tuple(grid)).numpy()


def load_checkpoint_network(path: str | Path) -> tuple[TorchNetwork, dict, dict[str, Any]]:
    """A ``train.py`` checkpoint as a ``TorchNetwork``, the resolved config of its run (plain
    dict) and the checkpoint's extras (``postprocess``: the tuned watershed thresholds)."""
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    from medprune.inference.checkpoint import load_trained

    cfg, checkpoint = load_trained(path, key="model")
    state = {
        k[len("net.") :]: v for k, v in checkpoint["state_dict"].items() if k.startswith("net.")
    }
    try:
        net = instantiate(cfg.model)
        net.load_state_dict(state)  # strict: a pruned checkpoint holds plain parameter names
    except Exception as err:
        raise ValueError(
            f"model={path}: its weights do not load into the network its config builds: {err}"
        ) from err
    trained = OmegaConf.to_container(cfg, resolve=True)
    precision = (trained.get("trainer") or {}).get("precision", "32-true")
    network = TorchNetwork(net, trained["task"].get("channels_last", False), precision)
    return network, trained, {"postprocess": checkpoint.get("postprocess")}


def load_program_network(path: str | Path) -> TorchNetwork:
    """A ``prune.py`` ``model.pt2`` (channel-pruned widths baked in) as a ``TorchNetwork``."""
    from medprune.inference.export import load_program

    return TorchNetwork(load_program(path))

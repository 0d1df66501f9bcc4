"""Per-tile scores of a trained nuclei checkpoint on its MoNuSeg validation (and a few
training) tiles: foreground Dice at probability 0.5, AJI and instance counts with the
checkpoint's watershed thresholds. It shows which tiles pull a mean AJI down.

The tiles are those of the checkpoint's own data config (root, layout, val_tiles,
split_seed); the network is the default ``model=two_branch_unet`` (16-256 filters).

    python benchmarks/monuseg_tiles.py <last.ckpt> [--train 3]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from medprune.data.monuseg_datamodule import NucleiFolderDataModule
from medprune.metrics import aggregated_jaccard_index
from medprune.models import TwoBranchUNet
from medprune.tasks import NucleiSegmentationTask


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ckpt")
    parser.add_argument("--train", type=int, default=3, help="training tiles to score too")
    args = parser.parse_args()
    ckpt = torch.load(args.ckpt, map_location="cpu", weights_only=False)
    task = NucleiSegmentationTask(TwoBranchUNet(), **ckpt["hyper_parameters"])
    task.load_state_dict(ckpt["state_dict"])
    task.on_load_checkpoint(ckpt)  # the checkpoint's (tuned) thresholds
    task.eval()
    data = NucleiFolderDataModule(**ckpt["datamodule_hyper_parameters"])
    data.setup("validate")
    pp = task.postprocess
    print(
        f"epoch {ckpt['epoch']}, step {ckpt['global_step']}, thresholds fg "
        f"{pp.fg_threshold} / marker {pp.marker_threshold}"
    )
    train = data.splits["train"]  # whole training tiles (patch padding aside)
    tiles = [("val", n, item) for n, item in zip(data.tile_names["val"], data.splits["val"])]
    for name, image, inst in list(zip(data.tile_names["train"], train.images, train.instances))[
        : args.train
    ]:
        tiles.append(
            (
                "train",
                name,
                {
                    "image": torch.from_numpy(image).permute(2, 0, 1).float() / 255,
                    "instances": torch.from_numpy(inst),
                },
            )
        )
    print(f"{'split':<6}{'tile':<26}{'fg Dice':>8}{'AJI':>7}{'nuclei':>8}{'found':>7}")
    for split, name, item in tiles:
        with torch.no_grad():
            seg, dist = task._predict(item["image"][None])
        prob, distance = torch.sigmoid(seg)[0, 0].numpy(), dist[0, 0].float().numpy()
        true = item["instances"].numpy()
        pred = pp.batch(prob[None], distance[None])[0]
        fg, truth = prob > 0.5, true > 0
        dice = 2 * (fg & truth).sum() / (fg.sum() + truth.sum())
        count = len(np.unique(true)) - 1
        print(
            f"{split:<6}{name:<26}{dice:>8.3f}{aggregated_jaccard_index(true, pred):>7.3f}"
            f"{count:>8}{len(np.unique(pred)) - 1:>7}"
        )


if __name__ == "__main__":
    main()

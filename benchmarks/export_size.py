"""Size of the sparse model file against the dense state_dict, for a trained run.

Reads the final weights of a run (``<run>/checkpoints/last.ckpt``), writes the sparse export in
float32 and float16 to a temporary folder, checks the float32 file loads back bit-identically,
and prints the sizes and ratios to ``torch.save(state_dict)``. The issue's targets at 93.75 %
sparsity: float32 >= 12x smaller, float16 >= 20x.

    python benchmarks/export_size.py logs/nuclei/runs/<time>
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import torch

from medprune.pruning import sparsity_stats
from medprune.pruning.sparse_file import dense_state_dict_bytes, load_sparse, save_sparse


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder holding checkpoints/last.ckpt")
    args = parser.parse_args()
    ckpt = args.run / "checkpoints" / "last.ckpt"
    if not ckpt.is_file():
        raise SystemExit(f"{ckpt}: no such checkpoint; expected a medprune run folder")
    state = torch.load(ckpt, map_location="cpu", weights_only=False)["state_dict"]
    net = {k.removeprefix("net."): v for k, v in state.items() if k.startswith("net.")}
    convs = {k: v for k, v in net.items() if k.endswith("weight") and v.dim() == 4}
    dense = dense_state_dict_bytes(net)
    print(f"{ckpt}: conv-weight sparsity {sparsity_stats(convs)['sparsity']:.4f}")
    print("| file | bytes | dense / file |\n| --- | --- | --- |")
    print(f"| torch.save(state_dict) | {dense:,} | 1.00 |")
    with tempfile.TemporaryDirectory() as tmp:
        for dtype in ("float32", "float16"):
            path = Path(tmp) / f"model_{dtype}.sparse"
            size = save_sparse(net, path, dtype)
            if dtype == "float32":
                loaded = load_sparse(path)
                assert all(torch.equal(loaded[k], v) for k, v in net.items()), "not identical"
            print(f"| sparse export, {dtype} values | {size:,} | {dense / size:.2f} |")


if __name__ == "__main__":
    main()

"""Where a model comes from: a checkpoint, a run folder or a deployment folder; and writing
a deployment folder from a checkpoint.

Only the torch branches import torch (inside the functions), so loading a deployment folder
with ONNX Runtime stays torch-free.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from medprune.inference.settings import (
    ONNX_FILE,
    SETTINGS_FILE,
    read_settings,
    settings_from_run,
    write_settings,
)

PROGRAM_FILE = "model.pt2"  # prune.py's torch.export program
RUN_CHECKPOINT = Path("checkpoints") / "last.ckpt"


def resolve_checkpoint(model: str | Path) -> Path | None:
    """The checkpoint ``model`` names (a file, or a train.py run folder's last.ckpt), or None
    for a deployment folder; errors say what a model path may be."""
    path = Path(model)
    if path.is_file() and path.name in (ONNX_FILE, SETTINGS_FILE, PROGRAM_FILE):
        raise ValueError(
            f"model={model}: give the deployment folder that holds it ({path.parent}), "
            f"not one of its files"
        )
    if path.is_file():
        return path
    if path.is_dir() and (path / SETTINGS_FILE).is_file():
        return None
    if path.is_dir() and (path / RUN_CHECKPOINT).is_file():
        return path / RUN_CHECKPOINT
    raise FileNotFoundError(
        f"model={model}: expected a train.py checkpoint (.ckpt), a train.py run folder (with "
        f"{RUN_CHECKPOINT}) or a deployment folder (with {SETTINGS_FILE} and {ONNX_FILE})"
    )


def load_model(model: str | Path, runtime: str, threads: int | None) -> tuple[Any, dict, dict]:
    """The network (``TorchNetwork`` or ``OnnxNetwork``), its inference settings and where it
    came from. ``runtime``: ``auto`` (ONNX Runtime for a deployment folder with model.onnx,
    torch otherwise), ``torch`` or ``onnxruntime``."""
    checkpoint = resolve_checkpoint(model)
    if checkpoint is not None:
        if runtime == "onnxruntime":
            raise ValueError(
                f"runtime=onnxruntime: model={model} is a checkpoint; export it first "
                "(export=<folder>) and predict from that folder"
            )
        from medprune.inference.torch_network import load_checkpoint_network

        _torch_threads(threads)
        network, trained, extras = load_checkpoint_network(checkpoint)
        settings = settings_from_run(trained, extras["postprocess"])
        return network, settings, {"model": str(checkpoint), "kind": "checkpoint"}
    folder = Path(model)
    settings = read_settings(folder)
    # the ONNX file the folder deploys: model.onnx, or what inference.json names (prune.py's
    # model.int8.onnx when the int8 model kept its quality)
    onnx, program = folder / settings.get("onnx", ONNX_FILE), folder / PROGRAM_FILE
    if runtime == "torch" or (runtime == "auto" and not onnx.is_file()):
        if not program.is_file():
            raise FileNotFoundError(f"model={model}: runtime={runtime} needs {program}")
        from medprune.inference.torch_network import load_program_network

        _torch_threads(threads)
        return load_program_network(program), settings, {"model": str(program), "kind": "program"}
    if not onnx.is_file():
        raise FileNotFoundError(f"model={model}: runtime={runtime} needs {onnx}")
    from medprune.inference.onnx_network import OnnxNetwork

    return OnnxNetwork(onnx, threads), settings, {"model": str(onnx), "kind": "onnx"}


def _torch_threads(threads: int | None) -> None:
    if threads is not None:
        import torch

        torch.set_num_threads(int(threads))


def export_deployment(model: str | Path, folder: Path) -> Path:
    """A deployment folder from a ``train.py`` checkpoint: ``model.onnx`` (checked against
    torch on an example input) and ``inference.json``. ``folder`` must not exist."""
    import torch

    from medprune.inference.export import check_onnx, save_onnx
    from medprune.inference.torch_network import load_checkpoint_network

    checkpoint = resolve_checkpoint(model)
    if checkpoint is None:
        raise ValueError(f"export: model={model} is already a deployment folder")
    network, trained, extras = load_checkpoint_network(checkpoint)
    settings = settings_from_run(trained, extras["postprocess"])
    multiple = settings["preprocess"]["size_multiple"]
    example = torch.randn(1, settings["channels"], 4 * multiple, 4 * multiple,
                          generator=torch.Generator().manual_seed(0))  # fmt: skip
    folder.mkdir(parents=True)
    net = network.net
    onnx = save_onnx(net, example, folder / ONNX_FILE, settings["outputs"])
    max_diff = check_onnx(net, onnx, example)
    write_settings(
        settings, folder, checkpoint=str(checkpoint), made_by="python -m medprune.predict export",
        onnx_max_abs_diff=max_diff,
    )  # fmt: skip
    return folder

"""Deployable files for a (structurally pruned) network: a ``torch.export`` program and ONNX.

Structured pruning leaves layers with channel counts no constructor argument describes, so a
state_dict alone no longer loads: the code that built the original network would build the
wrong shapes. Both formats here store the graph together with the weights, so
``load_program`` or an ONNX Runtime session needs neither the model class nor its widths.

Shapes (both formats): the batch axis is dynamic. For networks with an integer ``depth``
attribute (``UNet``, ``TwoBranchUNet``) height and width are dynamic too, as multiples of
``2 ** (depth - 1)`` of at least ``2 ** depth`` pixels: the U-Net's divisibility check becomes
a guard of the exported program, and the exporter cannot keep a size-1 bottleneck symbolic.
Other networks keep the example's height and width. ``dynamic=False`` fixes every axis to
the example's shape.

ONNX goes through the ``torch.export``-based exporter (``dynamo=True``, needs onnxscript): it
traces the same graph with the same shape rules as ``save_program`` (the input's dimensions
read ``batch``, ``4*height_blocks``, ...), folds BatchNorm into the convolutions, and is the
path torch maintains; the TorchScript exporter is deprecated, scheduled for removal, and
would bake the U-Net's divisibility check into the trace as a constant. Files are never
overwritten: an existing path raises ``FileExistsError``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.export import Dim, ExportedProgram

from medprune.inference.modes import eval_mode


def export_program(
    model: nn.Module, example_input: torch.Tensor, *, dynamic: bool = True
) -> ExportedProgram:
    """``torch.export`` the model in eval mode (its train/eval mode is given back afterwards)."""
    trace_input, shapes = _dynamic_shapes(model, example_input, dynamic)
    with eval_mode(model):
        return torch.export.export(model, (trace_input,), dynamic_shapes=shapes)


def save_program(
    model: nn.Module, example_input: torch.Tensor, path: str | Path, *, dynamic: bool = True
) -> Path:
    """Export the model and write the program to a new ``.pt2`` file; returns its path."""
    path = _new_file(path, ".pt2")
    program = export_program(model, example_input, dynamic=dynamic)
    _write_new(path, lambda f: torch.export.save(program, f))
    return path


def load_program(path: str | Path) -> nn.Module:
    """A callable module from a ``.pt2`` file; no model code or channel counts needed.

    Inputs outside the exported shape rules fail with the program's guard error.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such exported program (.pt2) file")
    try:
        return torch.export.load(path).module()
    except Exception as err:  # truncated, foreign or from another torch: name the file
        raise ValueError(
            f"{path}: cannot load the exported program ({type(err).__name__}: {err})"
        ) from None


def save_onnx(
    model: nn.Module,
    example_input: torch.Tensor,
    path: str | Path,
    output_names: list[str] | None = None,
    *,
    dynamic: bool = True,
) -> Path:
    """Write the model to a new, self-contained ``.onnx`` file (weights inside); returns its path.

    The input is named ``image``; outputs are named by ``output_names``, else ``output`` for
    a single tensor and ``output_0``, ``output_1``, ... for a tuple (``TwoBranchUNet``:
    seg logits, then distance). The file must stay under protobuf's 2 GiB limit.
    """
    path = _new_file(path, ".onnx")
    trace_input, shapes = _dynamic_shapes(model, example_input, dynamic)
    names = _output_names(model, example_input, output_names)
    with eval_mode(model):  # the module, not a program: keeps the Dim names in the file
        onnx_program = torch.onnx.export(
            model,
            (trace_input,),
            dynamo=True,
            dynamic_shapes=shapes,
            input_names=["image"],
            output_names=names,
            verbose=False,
        )
    # Serialising the proto ourselves keeps the weights in the one file: torch.onnx.export(f=...)
    # defaults to external_data=True and writes a ``.onnx.data`` sidecar even for tiny models.
    data = onnx_program.model_proto.SerializeToString()
    _write_new(path, lambda f: f.write(data))
    return path


def check_onnx(
    model: nn.Module,
    onnx_path: str | Path,
    example_input: torch.Tensor,
    rtol: float = 1e-3,
    atol: float = 1e-4,
) -> float:
    """Max absolute difference between ONNX Runtime and eager torch over every output.

    Raises ``ValueError`` naming the file when any element differs by more than
    ``atol + rtol * |torch value|`` or the number or shapes of the outputs differ.
    """
    import onnxruntime as ort  # imported on use: train.py never needs it

    onnx_path = Path(onnx_path)
    if not onnx_path.is_file():
        raise FileNotFoundError(f"{onnx_path}: no such ONNX model file")
    expected = [t.numpy() for t in _eager_outputs(model, example_input)]
    # One thread and no spin-waiting: a check must not leave busy threads behind that would
    # slow a latency measurement taken right after it.
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    feed = {session.get_inputs()[0].name: example_input.detach().cpu().numpy()}
    actual = session.run(None, feed)
    if len(actual) != len(expected):
        raise ValueError(f"{onnx_path}: {len(actual)} outputs, torch model gives {len(expected)}")
    max_diff, within = 0.0, True
    for index, (got, want) in enumerate(zip(actual, expected)):
        if got.shape != want.shape:
            raise ValueError(
                f"{onnx_path}: output {index} has shape {got.shape}, torch gives {want.shape}"
            )
        diff = np.abs(got.astype(np.float64) - want.astype(np.float64))
        max_diff = max(max_diff, float(diff.max(initial=0.0)))
        within &= bool(np.all(diff <= atol + rtol * np.abs(want)))
    if not within:
        raise ValueError(
            f"{onnx_path}: ONNX Runtime differs from torch by up to {max_diff:.3g} "
            f"(allowed atol={atol}, rtol={rtol})"
        )
    return max_diff


def _dynamic_shapes(
    model: nn.Module, example_input: torch.Tensor, dynamic: bool
) -> tuple[torch.Tensor, tuple | None]:
    """The tracing input and the ``dynamic_shapes`` spec for a single (N, C, H, W) input.

    torch.export specialises any axis whose example size is 0 or 1, so a batch of one is
    repeated to two for tracing; height and width must already be at least two multiples.
    """
    if not isinstance(example_input, torch.Tensor) or example_input.dim() != 4:
        got = (
            tuple(example_input.shape) if isinstance(example_input, torch.Tensor) else example_input
        )
        raise ValueError(f"example_input: expected a (N, C, H, W) tensor, got {got!r}")
    if not dynamic:
        return example_input, None
    trace_input = example_input.repeat(2, 1, 1, 1) if len(example_input) == 1 else example_input
    axes = {0: Dim("batch", min=1)}
    depth = getattr(model, "depth", None)
    if isinstance(depth, int) and not isinstance(depth, bool):
        multiple = 2 ** (depth - 1)
        height, width = example_input.shape[-2:]
        if height % multiple or width % multiple or min(height, width) < 2 * multiple:
            raise ValueError(
                f"example_input of size {height}x{width}: dynamic export of a depth-{depth} "
                f"network needs height and width that are multiples of {multiple} and at "
                f"least {2 * multiple} (or dynamic=False)"
            )
        axes[2] = multiple * Dim("height_blocks", min=2)
        axes[3] = multiple * Dim("width_blocks", min=2)
    return trace_input, (axes,)


def _output_names(
    model: nn.Module, example_input: torch.Tensor, output_names: list[str] | None
) -> list[str]:
    count = len(_eager_outputs(model, example_input))
    if output_names is None:
        return ["output"] if count == 1 else [f"output_{i}" for i in range(count)]
    names = list(output_names)
    if (
        len(names) != count
        or len(set(names)) != count
        or not all(isinstance(n, str) and n for n in names)
    ):
        raise ValueError(
            f"output_names={output_names!r}: expected {count} distinct non-empty names, "
            "one per model output"
        )
    return names


def _eager_outputs(model: nn.Module, example_input: torch.Tensor) -> list[torch.Tensor]:
    """The model's eval-mode outputs as a flat list (a tensor or a tuple/list of tensors)."""
    with eval_mode(model), torch.inference_mode():
        outputs = model(example_input)
    outputs = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    if not all(isinstance(t, torch.Tensor) for t in outputs):
        raise ValueError("model: expected a tensor or a tuple of tensors as output")
    return [t.detach().cpu() for t in outputs]


def _new_file(path: str | Path, suffix: str) -> Path:
    """Fail before the (slow) export when the target exists or has the wrong suffix."""
    path = Path(path)
    if path.suffix != suffix:
        raise ValueError(f"path={str(path)!r}: expected a file name ending in {suffix}")
    if path.exists():
        raise FileExistsError(f"{path}: already exists; choose a new path (nothing overwritten)")
    return path


def _write_new(path: Path, write) -> None:
    """Create ``path`` exclusively (mode "x") and remove it again if writing fails."""
    try:
        with open(path, "xb") as f:
            write(f)
    except FileExistsError as e:
        raise FileExistsError(
            f"{path}: already exists; choose a new path (nothing overwritten)"
        ) from e
    except BaseException:
        path.unlink(missing_ok=True)
        raise

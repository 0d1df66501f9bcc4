"""Sparse export: a compact file for a pruned state_dict, and its exact inverse.

Unstructured magnitude pruning leaves most conv weights at exactly zero, yet ``torch.save``
still spends 4 bytes (float32) on each of them. Here every floating-point tensor whose zeros
pay for it is stored as an entropy-compressed bitmask of non-zero positions (np.packbits, then
zlib or raw LZMA, whichever is smaller) plus the non-zero values in float32 or float16.
Everything else (BatchNorm parameters and buffers, biases, integer buffers, dense layers) is
stored as raw bytes in its own dtype. All sizes are in bytes.

File layout, version 1::

    MAGIC (8 bytes) | version (uint16 LE) | header length (uint64 LE) | header | blobs

The header is zlib-compressed UTF-8 JSON listing, per tensor in state_dict order, its name,
shape, dtype and encoding, plus the writer's byte order (tensor bytes are native; a reader
of the other order refuses the file). The blobs follow in the same order. There is no pickle
anywhere, so loading an untrusted file cannot execute code.
"""

from __future__ import annotations

import io
import json
import lzma
import struct
import sys
import zlib
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import torch

from medprune.common.checks import check_choice

MAGIC = b"MPSPARSE"
VERSION = 1
VALUE_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_PREFIX = struct.Struct("<HQ")  # version, header length
_MAX_HEADER = 256 * 2**20  # refuse to inflate a (hostile) header beyond 256 MiB


def dense_state_dict_bytes(state_dict: Mapping[str, torch.Tensor]) -> int:
    """Size of ``torch.save(state_dict)``: the baseline the sparse file is compared with."""
    buffer = io.BytesIO()
    torch.save(state_dict, buffer)
    return buffer.getbuffer().nbytes


def save_sparse(
    state_dict: Mapping[str, torch.Tensor], path: str | Path, dtype: str = "float32"
) -> int:
    """Write ``state_dict`` to a new file at ``path``; returns the file size in bytes.

    ``dtype`` is the precision of the stored non-zero values: "float32" is lossless for
    float32 models, "float16" halves the values. Tensors are never widened (float16 or
    bfloat16 values stay as they are). Negative zeros count as zeros and come back as +0.0.
    """
    check_choice(dtype, "dtype", VALUE_DTYPES)
    entries, blobs = [], []
    for name, tensor in state_dict.items():
        entry, blob = _encode(name, tensor, VALUE_DTYPES[dtype])
        entries.append(entry)
        blobs.append(blob)
    header = zlib.compress(json.dumps({"byteorder": sys.byteorder, "tensors": entries}).encode(), 9)
    data = b"".join([MAGIC, _PREFIX.pack(VERSION, len(header)), header, *blobs])
    # Everything is encoded before the file exists, so a bad tensor leaves no partial file;
    # mode "x" raises FileExistsError (naming the path) instead of overwriting.
    with open(path, "xb") as f:
        f.write(data)
    return len(data)


def load_sparse(path: str | Path) -> dict[str, torch.Tensor]:
    """Read a file written by ``save_sparse`` back into a plain dense state_dict."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such sparse export file")
    data = path.read_bytes()
    start = len(MAGIC) + _PREFIX.size
    if len(data) < start or data[: len(MAGIC)] != MAGIC:
        raise ValueError(f"{path}: not a medprune sparse export (expected magic {MAGIC!r})")
    version, header_len = _PREFIX.unpack_from(data, len(MAGIC))
    if version != VERSION:
        raise ValueError(f"{path}: sparse export version {version}, expected {VERSION}")
    try:
        header = json.loads(_inflate("zlib", data[start : start + header_len], _MAX_HEADER))
        if header["byteorder"] != sys.byteorder:
            raise ValueError(f"written on a {header['byteorder']}-endian machine")
        return _decode_all(header["tensors"], memoryview(data)[start + header_len :])
    except (KeyError, TypeError, ValueError, zlib.error, lzma.LZMAError, RuntimeError) as e:
        raise ValueError(f"{path}: corrupt medprune sparse export v{VERSION}: {e}") from e


def _encode(name: str, tensor: torch.Tensor, value_dtype: torch.dtype) -> tuple[dict, bytes]:
    if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided:
        raise TypeError(f"{name}: expected a dense torch.Tensor, got {type(tensor).__name__}")
    flat = tensor.detach().cpu().contiguous().reshape(-1)
    entry = {"name": name, "shape": list(tensor.shape), "dtype": _dtype_name(tensor.dtype)}
    dense = _raw(flat)
    nonzero = flat != 0 if flat.is_floating_point() else None
    if nonzero is None or bool(nonzero.all()):
        return {**entry, "encoding": "dense"}, dense
    codec, mask = _compress_mask(nonzero.numpy())
    nnz = int(nonzero.sum())
    # Judge by the original itemsize so the choice is the same for every value dtype: only
    # tensors whose zeros pay for their mask go sparse, the rest stay bit-for-bit unchanged.
    if len(mask) + nnz * flat.element_size() >= len(dense):
        return {**entry, "encoding": "dense"}, dense
    values = _narrow(name, flat[nonzero], value_dtype)
    entry |= {
        "encoding": "sparse",
        "codec": codec,
        "mask_bytes": len(mask),
        "values_dtype": _dtype_name(values.dtype),
    }
    return entry, mask + _raw(values)


def _narrow(name: str, values: torch.Tensor, value_dtype: torch.dtype) -> torch.Tensor:
    """Cast to ``value_dtype`` unless that would widen; overflow to inf is an error."""
    if values.element_size() <= value_dtype.itemsize:
        return values
    narrowed = values.to(value_dtype)
    if bool((torch.isinf(narrowed) & torch.isfinite(values)).any()):
        raise ValueError(f"{name}: values overflow {value_dtype}; save with dtype='float32'")
    return narrowed


def _compress_mask(nonzero: np.ndarray) -> tuple[str, bytes]:
    # On a globally pruned two-branch U-Net the two totals are within 1 %, but the winner
    # changes from layer to layer (about half each), so keep whichever is smaller.
    packed = np.packbits(nonzero).tobytes()
    candidates = {
        "zlib": zlib.compress(packed, 9),
        "lzma": lzma.compress(packed, format=lzma.FORMAT_RAW, filters=_lzma_filters(len(packed))),
    }
    return min(candidates.items(), key=lambda item: len(item[1]))


def _lzma_filters(packed_bytes: int) -> list[dict]:
    """Raw LZMA2 settings; both sides derive them from the packed mask length.

    Preset 9 would allocate a 64 MiB dictionary (~700 MiB of match finder) per tensor; a
    dictionary the size of the input compresses identically at a fraction of the time.
    Packed mask bytes carry no byte-level context, so the literal-context bits only cost.
    """
    dict_size = min(max(packed_bytes, 4096), 64 * 2**20)
    return [
        {
            "id": lzma.FILTER_LZMA2,
            "preset": 9 | lzma.PRESET_EXTREME,
            "dict_size": dict_size,
            "lc": 0,
            "lp": 0,
            "pb": 0,
        }
    ]


def _inflate(codec: str, blob: bytes | memoryview, max_length: int) -> bytes:
    """Decompress at most ``max_length`` bytes, so a crafted file cannot exhaust memory."""
    if codec == "zlib":
        decompressor = zlib.decompressobj()
        out = decompressor.decompress(blob, max_length)
    elif codec == "lzma":
        decompressor = lzma.LZMADecompressor(
            format=lzma.FORMAT_RAW, filters=_lzma_filters(max_length)
        )
        out = decompressor.decompress(blob, max_length)
    else:
        raise ValueError(f"unknown mask codec {codec!r}")
    # Both streams carry an end marker: no eof means truncated or longer than allowed.
    if not decompressor.eof:
        raise ValueError(f"{codec} stream truncated or longer than {max_length} bytes")
    return out


def _decode_all(entries: list[dict], blobs: memoryview) -> dict[str, torch.Tensor]:
    state_dict, offset = {}, 0
    for entry in entries:
        tensor, used = _decode(entry, blobs[offset:])
        state_dict[entry["name"]] = tensor
        offset += used
    if offset != len(blobs):
        raise ValueError(f"{len(blobs) - offset} trailing bytes after the last tensor")
    return state_dict


def _decode(entry: dict, blobs: memoryview) -> tuple[torch.Tensor, int]:
    """One tensor from the start of ``blobs``; returns it and the number of bytes consumed."""
    dtype, shape = _dtype(entry["dtype"]), [int(n) for n in entry["shape"]]
    numel = int(np.prod(shape, dtype=np.int64))
    if entry["encoding"] == "dense":
        nbytes = numel * dtype.itemsize
        return _from_raw(blobs[:nbytes], dtype, numel).reshape(shape), nbytes
    if entry["encoding"] != "sparse":
        raise ValueError(f"{entry['name']}: unknown encoding {entry['encoding']!r}")
    mask_bytes = int(entry["mask_bytes"])
    packed = _inflate(entry["codec"], blobs[:mask_bytes], (numel + 7) // 8)
    if len(packed) != (numel + 7) // 8:
        raise ValueError(f"{entry['name']}: mask of {len(packed)} bytes for {numel} elements")
    nonzero = torch.from_numpy(np.unpackbits(np.frombuffer(packed, np.uint8), count=numel))
    nonzero = nonzero.bool()
    values_dtype = _dtype(entry["values_dtype"])
    nnz = int(nonzero.sum())
    values_bytes = nnz * values_dtype.itemsize
    values = _from_raw(blobs[mask_bytes : mask_bytes + values_bytes], values_dtype, nnz)
    dense = torch.zeros(numel, dtype=dtype)
    dense[nonzero] = values.to(dtype)
    return dense.reshape(shape), mask_bytes + values_bytes


def _raw(flat: torch.Tensor) -> bytes:
    return flat.view(torch.uint8).numpy().tobytes()


def _from_raw(blob: memoryview, dtype: torch.dtype, numel: int) -> torch.Tensor:
    nbytes = numel * dtype.itemsize
    if len(blob) != nbytes:
        raise ValueError(f"expected {nbytes} bytes of {dtype}, file has {len(blob)}")
    if numel == 0:  # an empty numpy array has stride 0, which .view(dtype) rejects
        return torch.empty(0, dtype=dtype)
    # copy: an owned, aligned buffer, independent of the file's bytes
    return torch.from_numpy(np.frombuffer(blob, np.uint8).copy()).view(dtype)


def _dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def _dtype(name: str) -> torch.dtype:
    dtype = getattr(torch, str(name), None)
    if not isinstance(dtype, torch.dtype):
        raise ValueError(f"unknown dtype {name!r}")
    return dtype

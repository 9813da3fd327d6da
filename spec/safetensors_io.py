"""A NumPy-only reader and writer of the safetensors container (the board has no Rust wheels).

Format (https://huggingface.co/docs/safetensors): an unsigned little-endian 64-bit header
length ``L``; ``L`` bytes of UTF-8 JSON mapping each tensor name to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the end of the
header) plus an optional ``"__metadata__"`` of string to string; then the raw little-endian,
C-order tensor bytes. Interoperability with the ``safetensors`` library is tested both ways.
"""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import numpy as np

__all__ = ["SafetensorsError", "load_safetensors", "save_safetensors"]

_DTYPES = {
    "F64": np.float64, "F32": np.float32, "F16": np.float16,
    "I64": np.int64, "I32": np.int32, "I16": np.int16, "I8": np.int8,
    "U64": np.uint64, "U32": np.uint32, "U16": np.uint16, "U8": np.uint8, "BOOL": np.bool_,
}  # fmt: skip
_CODES = {np.dtype(v): k for k, v in _DTYPES.items()}
_MAX_HEADER = 100 * 2**20


class SafetensorsError(ValueError):
    """A file is not a well-formed safetensors container; the message names the problem."""


def save_safetensors(
    path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str] | None = None
) -> None:
    """Write ``tensors`` (name -> array of a supported dtype) and string ``metadata``.

    Tensors are stored in sorted name order, 8-byte aligned header as the reference writer does.
    """
    header: dict[str, object] = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name in sorted(tensors):
        array = np.asarray(tensors[name])  # (ascontiguousarray would turn a scalar into 1-D)
        if array.dtype not in _CODES:
            raise TypeError(f"tensor {name!r}: dtype {array.dtype} is not storable in safetensors")
        data = array.astype(array.dtype.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = {
            "dtype": _CODES[array.dtype], "shape": list(array.shape),
            "data_offsets": [offset, offset + len(data)],
        }  # fmt: skip
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for blob in blobs:
            f.write(blob)


def load_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Read a safetensors file into NumPy arrays (copies) and its metadata.

    Raises SafetensorsError for a truncated file, a malformed header, an unknown dtype, or a
    tensor whose byte range disagrees with its shape or lies outside the file.
    """
    raw = Path(path).read_bytes()
    if len(raw) < 8:
        raise SafetensorsError(f"{path}: truncated: {len(raw)} bytes, no header length")
    (length,) = struct.unpack("<Q", raw[:8])
    if length > _MAX_HEADER or 8 + length > len(raw):
        raise SafetensorsError(
            f"{path}: truncated or corrupt: header of {length} bytes in a file of {len(raw)} bytes"
        )
    try:
        header = json.loads(raw[8 : 8 + length])
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SafetensorsError(f"{path}: header is not valid JSON: {error}") from None
    if not isinstance(header, dict):
        raise SafetensorsError(f"{path}: header must be a JSON object")
    metadata = header.pop("__metadata__", None) or {}
    body = memoryview(raw)[8 + length :]
    tensors = {}
    for name, info in header.items():
        try:
            dtype = np.dtype(_DTYPES[info["dtype"]])
            shape = tuple(int(s) for s in info["shape"])
            begin, end = (int(o) for o in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise SafetensorsError(
                f"{path}: tensor {name!r} has a malformed entry {info!r}"
            ) from None
        if end - begin != math.prod(shape) * dtype.itemsize or begin < 0:
            raise SafetensorsError(
                f"{path}: tensor {name!r}: byte range {begin}..{end} does not hold shape {shape} "
                f"of {info['dtype']}"
            )
        if end > len(body):
            raise SafetensorsError(
                f"{path}: truncated: tensor {name!r} ends at byte {end} of a {len(body)}-byte body"
            )
        array = np.frombuffer(body[begin:end], dtype=dtype.newbyteorder("<")).reshape(shape)
        tensors[name] = array.astype(dtype, copy=True)
    return tensors, dict(metadata)

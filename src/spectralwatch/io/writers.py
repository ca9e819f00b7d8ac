"""Writing tensors: a streaming ``.safetensors`` writer and exact conversions back to stored dtypes.

The safetensors format (https://huggingface.co/docs/safetensors) is an 8-byte little-endian header
length, a JSON header ``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__":
{...}}`` padded with spaces to a multiple of 8 bytes, then the tensors' bytes back to back. This
writer computes the header from the shapes alone and then streams one tensor at a time, so an
edited copy of a large checkpoint never needs the whole model in memory; unchanged tensors of a
safetensors input are copied byte for byte. The file appears atomically (written beside the
target, then renamed). ``safetensors.safe_open`` reads the result (tested).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass
from typing import Callable

import numpy as np

__all__ = ["TensorBlob", "write_safetensors", "encode_float", "blob_from_array", "blob_from_torch",
           "blob_from_file", "FLOAT_CODES", "torch_code"]

#: safetensors dtype codes of the floating formats an edited tensor can be written back to
FLOAT_CODES = ("F64", "F32", "F16", "BF16")
_NUMPY_CODES = {"float64": "F64", "float32": "F32", "float16": "F16", "int64": "I64", "int32": "I32",
                "int16": "I16", "int8": "I8", "uint8": "U8", "uint16": "U16", "uint32": "U32", "uint64": "U64",
                "bool": "BOOL", "complex64": "C64"}
_TORCH_CODES = dict(_NUMPY_CODES, bfloat16="BF16", float8_e4m3fn="F8_E4M3", float8_e5m2="F8_E5M2")
_COPY_CHUNK = 1 << 24  # bytes per read when copying a tensor from the input file


@dataclass(frozen=True)
class TensorBlob:
    """One tensor to write: its dtype code, shape, size and a function writing its bytes."""

    code: str
    shape: tuple
    nbytes: int
    write: Callable


def encode_float(values: np.ndarray, code: str) -> np.ndarray:
    """Round float values to a stored float format; returns the little-endian storage array.

    ``'BF16'`` rounds float32 to the nearest bfloat16 (ties to even), stored as uint16.
    """
    if code == "F64":
        return np.ascontiguousarray(values, dtype="<f8")
    if code == "F32":
        return np.ascontiguousarray(values, dtype="<f4")
    if code == "F16":
        return np.ascontiguousarray(values, dtype="<f2")
    if code == "BF16":
        bits = np.ascontiguousarray(values, dtype="<f4").view("<u4")
        rounded = (bits + (np.uint32(0x7FFF) + ((bits >> 16) & np.uint32(1)))) >> 16
        return rounded.astype("<u2")
    raise ValueError(f"cannot write floating-point values as safetensors dtype {code}")


def blob_from_array(arr: np.ndarray, code: str | None = None) -> TensorBlob:
    """A numpy array (its own dtype, or the storage of ``code`` from :func:`encode_float`)."""
    arr = np.asarray(arr)
    if code is None:
        code = _NUMPY_CODES.get(arr.dtype.name)
        if code is None:
            raise ValueError(f"numpy dtype {arr.dtype} has no safetensors equivalent")
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
    shape = tuple(int(s) for s in arr.shape)
    return TensorBlob(code, shape, int(arr.nbytes), lambda fh: fh.write(memoryview(arr.reshape(-1)).cast("B")))


def torch_code(t) -> str:
    name = str(t.dtype).replace("torch.", "")
    code = _TORCH_CODES.get(name)
    if code is None:
        raise ValueError(f"torch dtype {name} has no safetensors equivalent")
    return code


def blob_from_torch(t) -> TensorBlob:
    """A torch tensor, written as stored (any dtype safetensors knows), from the CPU."""
    import torch

    flat = t.detach().to("cpu").contiguous().reshape(-1)
    raw = flat.view(torch.uint8).numpy() if flat.numel() else np.empty(0, np.uint8)
    shape = tuple(int(s) for s in t.shape)
    return TensorBlob(torch_code(t), shape, int(raw.nbytes), lambda fh: fh.write(memoryview(raw).cast("B")))


def blob_from_file(path: str, code: str, shape: tuple, start: int, nbytes: int) -> TensorBlob:
    """A tensor copied byte for byte from ``path`` (a byte range of a safetensors file)."""
    def write(fh):
        with open(path, "rb") as src:
            src.seek(start)
            left = nbytes
            while left:
                chunk = src.read(min(left, _COPY_CHUNK))
                if not chunk:
                    raise OSError(f"'{path}' ended while copying a tensor (the file changed?)")
                fh.write(chunk)
                left -= len(chunk)

    return TensorBlob(code, tuple(shape), int(nbytes), write)


def _header(blobs: dict, metadata: dict | None) -> bytes:
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): str(v) for k, v in metadata.items()}
    offset = 0
    for key, blob in blobs.items():
        header[key] = {"dtype": blob.code, "shape": list(blob.shape), "data_offsets": [offset, offset + blob.nbytes]}
        offset += blob.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return raw + b" " * (-len(raw) % 8)


def write_safetensors(path, blobs: dict, metadata: dict | None = None) -> str:
    """Write ``{name: TensorBlob}`` (in the dict's order) to ``path``; returns the path.

    The file is written beside ``path`` and renamed onto it only when complete.
    """
    path = os.fspath(path)
    folder = os.path.dirname(os.path.abspath(path))
    head = _header(blobs, metadata)
    fd, tmp = tempfile.mkstemp(prefix=".spectralwatch-", suffix=".safetensors.tmp", dir=folder)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(len(head).to_bytes(8, "little"))
            fh.write(head)
            for blob in blobs.values():
                before = fh.tell()
                blob.write(fh)
                if fh.tell() - before != blob.nbytes:
                    raise OSError(f"wrote {fh.tell() - before} bytes for a tensor of {blob.nbytes} bytes")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path

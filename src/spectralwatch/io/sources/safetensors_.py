"""``.safetensors`` files, read with numpy only.

The header (8-byte little-endian length + JSON) is parsed and fully validated before anything is
allocated; each loader then reads only its own byte range. bfloat16 and the 8-bit float formats
are widened to float32 here (numpy has no such dtypes), so torch is not needed.

Tensors are stored in sorted key order (that of ``safetensors.safe_open(...).keys()``); a single
file is numbered and listed in network order (``layers.2`` before ``layers.10``, see
:mod:`.order`); a folder keeps the reference's numbering (see :mod:`.folder`).
"""

from __future__ import annotations

import dataclasses
import functools

import json
import math
import os
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ...errors import CorruptFileError, NotYetSupportedError
from .budget import DEFAULT_MAX_WORK_RATIO, Budget
from .containment import open_regular
from .guarded import check_unchanged, file_identity
from ._common import (MAX_DIM, STATE_DICT_START_ID, StateDictLikeSource, TensorEntry, check_start_id, foreign_reason,
                      path_text)

__all__ = ["SafetensorsFileSource", "SafetensorsTensor", "read_safetensors_header"]

#: the reference implementation refuses headers larger than this
MAX_HEADER_BYTES = 100_000_000


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
    return (raw.astype(np.uint32) << 16).view(np.float32)


def _e5m2_table() -> np.ndarray:
    # float8 e5m2 is the upper byte of an IEEE float16
    codes = np.arange(256, dtype=np.uint16) << 8
    return codes.view(np.float16).astype(np.float32)


def _e4m3fn_table() -> np.ndarray:
    # float8 e4m3fn: 1 sign, 4 exponent (bias 7), 3 mantissa bits; no infinities, S.1111.111 is NaN
    table = np.empty(256, dtype=np.float32)
    for code in range(256):
        sign = -1.0 if code & 0x80 else 1.0
        exp = (code >> 3) & 0xF
        man = code & 0x7
        if exp == 0xF and man == 0x7:
            table[code] = np.nan
        elif exp == 0:
            table[code] = sign * (man / 8.0) * 2.0 ** -6
        else:
            table[code] = sign * (1.0 + man / 8.0) * 2.0 ** (exp - 7)
    return table


def _e8m0_table() -> np.ndarray:
    # float8 e8m0 (scale format): 2**(code - 127), 0xFF is NaN
    table = np.full(256, np.nan, dtype=np.float32)
    table[:255] = np.ldexp(1.0, np.arange(255) - 127)
    return table


_LUTS: dict[str, np.ndarray] = {}


def _lut(name: str, make: Callable[[], np.ndarray]) -> Callable[[np.ndarray], np.ndarray]:
    def convert(raw: np.ndarray) -> np.ndarray:
        if name not in _LUTS:
            _LUTS[name] = make()
        return _LUTS[name][raw]

    return convert


@dataclass(frozen=True)
class _DType:
    name: str            # numpy-style name reported in LayerRef.dtype
    bits: int            # storage bits per element
    storage: str | None  # numpy dtype of the raw elements (None: cannot decode)
    convert: Callable[[np.ndarray], np.ndarray] | None = None  # raw -> float32 decoder


_DTYPES: dict[str, _DType] = {
    "F64": _DType("float64", 64, "<f8"),
    "F32": _DType("float32", 32, "<f4"),
    "F16": _DType("float16", 16, "<f2"),
    "BF16": _DType("bfloat16", 16, "<u2", _bf16_to_f32),
    "F8_E5M2": _DType("float8_e5m2", 8, "u1", _lut("e5m2", _e5m2_table)),
    "F8_E4M3": _DType("float8_e4m3fn", 8, "u1", _lut("e4m3fn", _e4m3fn_table)),
    "F8_E8M0": _DType("float8_e8m0fnu", 8, "u1", _lut("e8m0", _e8m0_table)),
    "I64": _DType("int64", 64, "<i8"),
    "I32": _DType("int32", 32, "<i4"),
    "I16": _DType("int16", 16, "<i2"),
    "I8": _DType("int8", 8, "i1"),
    "U64": _DType("uint64", 64, "<u8"),
    "U32": _DType("uint32", 32, "<u4"),
    "U16": _DType("uint16", 16, "<u2"),
    "U8": _DType("uint8", 8, "u1"),
    "BOOL": _DType("bool", 8, "?"),
    "C64": _DType("complex64", 64, "<c8"),
    "F4": _DType("float4_e2m1fn_x2", 4, None),
    "F6_E2M3": _DType("float6_e2m3fn", 6, None),
    "F6_E3M2": _DType("float6_e3m2fn", 6, None),
}


@dataclass(frozen=True)
class SafetensorsTensor:
    """One tensor described by a validated header."""

    key: str
    dtype: str          # safetensors dtype code, e.g. 'BF16'
    shape: tuple
    start: int          # absolute file offset of the first byte
    nbytes: int
    identity: tuple = ()  # the file's identity when it was opened (guarded.file_identity): checked on read


def _corrupt(path: str, problem: str) -> CorruptFileError:
    return CorruptFileError(f"The safetensors file '{path}' is corrupted or truncated: {problem}.")


def read_safetensors_header(path, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> tuple[dict, list[SafetensorsTensor]]:
    """Parse and validate the header of a safetensors file.

    Returns ``(metadata, tensors)`` with tensors in sorted key order. Raises
    :class:`CorruptFileError` (naming the file and the problem) on any inconsistency, before
    anything the size of a tensor is allocated, and :class:`BudgetExceededError` for a header far
    larger than the data it describes (checked before the header is parsed, see :mod:`.budget`).
    """
    path = path_text(path)
    with open_regular(path, "safetensors file") as fh:
        file_size = os.fstat(fh.fileno()).st_size
        head = fh.read(8)
        if len(head) < 8:
            raise _corrupt(path, f"the file has {file_size} bytes, fewer than the 8-byte header length")
        header_len = int.from_bytes(head, "little")
        # (the length itself is never printed: in a file that is not a safetensors file it is 8 of its bytes)
        if header_len > file_size - 8:
            raise _corrupt(path, f"its first 8 bytes, the header length, give more than the {file_size - 8} bytes "
                                 "that follow them (not a safetensors file, or truncated)")
        if header_len > MAX_HEADER_BYTES:
            raise _corrupt(path, f"the header length exceeds the {MAX_HEADER_BYTES}-byte limit")
        raw = fh.read(header_len)
    if len(raw) != header_len:
        raise _corrupt(path, "the header could not be read completely")
    budget = Budget(path, "safetensors file", max_work_ratio)
    budget.store("data", file_size - 8 - header_len)
    budget.header(header_len, "a JSON header")  # before parsing it: a 95 MB header is 2.5 GB of objects
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _corrupt(path, f"the header is not valid JSON ({foreign_reason(exc)})") from None
    except RecursionError:
        raise _corrupt(path, "the header is JSON nested too deeply to be a safetensors header") from None
    if not isinstance(header, dict):
        raise _corrupt(path, f"the header is a JSON {type(header).__name__}, not an object")

    data_start = 8 + header_len
    data_size = file_size - data_start
    metadata = header.pop("__metadata__", None) or {}
    if not isinstance(metadata, dict):
        raise _corrupt(path, "'__metadata__' is not a JSON object")

    tensors = []
    for key in sorted(header):
        info = header[key]
        if not isinstance(info, dict):
            raise _corrupt(path, f"the entry of tensor '{key}' is not a JSON object")
        dtype, shape, offsets = info.get("dtype"), info.get("shape"), info.get("data_offsets")
        if not isinstance(dtype, str):
            raise _corrupt(path, f"tensor '{key}' has no dtype")
        if not isinstance(shape, list) or not all(type(s) is int and 0 <= s <= MAX_DIM for s in shape):
            raise _corrupt(path, f"tensor '{key}' has an invalid shape {shape!r}")
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(type(o) is int for o in offsets)):
            raise _corrupt(path, f"tensor '{key}' has invalid data_offsets {offsets!r}")
        begin, end = offsets
        if not 0 <= begin <= end:
            raise _corrupt(path, f"tensor '{key}' has data_offsets {offsets} that are out of order")
        if end > data_size:
            raise _corrupt(path, f"tensor '{key}' ends at byte {end} of the data section, which "
                                 f"has only {data_size} bytes")
        spec = _DTYPES.get(dtype)
        if spec is None:
            raise _corrupt(path, f"tensor '{key}' has the unknown dtype {dtype[:40]!r} (known: {', '.join(_DTYPES)})")
        expected_bits = math.prod(shape) * spec.bits
        if expected_bits != 8 * (end - begin):
            raise _corrupt(path, f"tensor '{key}' of shape {shape} and dtype {dtype} needs "
                                 f"{expected_bits / 8:g} bytes but its data_offsets span {end - begin}")
        tensors.append(SafetensorsTensor(key, dtype, tuple(shape), data_start + begin, end - begin))
        budget.add(key, math.prod(shape), note=f"{dtype} {tuple(shape)}")
    budget.check()

    spans = sorted((t.start, t.start + t.nbytes, t.key) for t in tensors if t.nbytes)
    for (s0, e0, k0), (s1, _e1, k1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise _corrupt(path, f"the data of tensors '{k0}' and '{k1}' overlap")
    covered = sum(t.nbytes for t in tensors)
    if covered != data_size:  # the format stores tensors back to back, with no hole or tail
        raise _corrupt(path, f"the tensors cover {covered} bytes but the data section has {data_size} bytes")
    return metadata, tensors


#: 2-D float matrices larger than this are read straight into float64, a block of rows at a time
LARGE_MATRIX_BYTES = 1 << 26
_CHUNK_BYTES = 1 << 24


def _read_large_matrix(path: str, t: SafetensorsTensor, spec: _DType, identity: tuple = ()) -> np.ndarray:
    """A big 2-D float tensor as float64, laid out so that its tall orientation is C-contiguous.

    The analysis turns every matrix into a tall float64 one (``N >= M``); reading into that layout
    directly, block by block, means the float32 tensor and its float64 copy never coexist (peak:
    the float64 matrix plus one block instead of both whole tensors).
    """
    rows, cols = t.shape
    storage = np.dtype(spec.storage)
    out = np.empty((rows, cols)) if rows >= cols else np.empty((cols, rows)).T
    step = max(1, _CHUNK_BYTES // max(1, cols * storage.itemsize))
    with open_regular(path, "safetensors file") as fh:
        fh.seek(t.start)
        for r0 in range(0, rows, step):
            r1 = min(rows, r0 + step)
            buf = np.empty((r1 - r0) * cols, dtype=storage)
            if fh.readinto(memoryview(buf).cast("B")) != buf.nbytes:
                raise _corrupt(path, f"tensor '{t.key}' could not be read completely (the file changed or is "
                                     "truncated)")
            block = spec.convert(buf) if spec.convert is not None else buf
            out[r0:r1] = block.reshape(r1 - r0, cols)
    check_unchanged(path, identity, f"tensor '{t.key}'")
    return out


def read_safetensors_tensor(path: str, t: SafetensorsTensor) -> np.ndarray:
    """Read one tensor (and only it) as float32/float64 numpy.

    ``t.identity`` (:func:`.guarded.file_identity` at open): a file rewritten since is an error, never
    another file's values shown as this one's.
    """
    identity = t.identity
    check_unchanged(path, identity, f"tensor '{t.key}'")
    spec = _DTYPES.get(t.dtype)
    if spec is None or spec.storage is None:
        raise NotYetSupportedError(
            f"Tensor '{t.key}' of '{path}' is stored as {t.dtype}, which spectralwatch cannot decode yet."
        )
    if (len(t.shape) == 2 and t.nbytes > LARGE_MATRIX_BYTES and min(t.shape) > 0
            and (np.dtype(spec.storage).kind == "f" or spec.convert is not None)):
        return _read_large_matrix(path, t, spec, identity)
    storage = np.dtype(spec.storage)
    count = t.nbytes // storage.itemsize
    buf = np.empty(count, dtype=storage)
    with open_regular(path, "safetensors file") as fh:
        fh.seek(t.start)
        got = fh.readinto(memoryview(buf).cast("B")) if t.nbytes else 0
    if got != t.nbytes:
        check_unchanged(path, identity, f"tensor '{t.key}'")
        raise _corrupt(path, f"tensor '{t.key}' could not be read completely (the file changed or is truncated)")
    check_unchanged(path, identity, f"tensor '{t.key}'")
    if spec.convert is not None:
        arr = spec.convert(buf)
    elif storage.kind == "f":
        arr = buf.astype(np.float32 if storage.itemsize <= 4 else np.float64, copy=False)
    elif storage.kind == "c":
        arr = buf.astype(storage.newbyteorder("="), copy=False)
    else:
        arr = buf.astype(np.float64)
    if not arr.dtype.isnative:
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr.reshape(t.shape)


class SafetensorsFileSource(StateDictLikeSource):
    """One ``.safetensors`` file: header at open, one tensor per load."""

    name = "safetensors"
    reads = ".safetensors files (any dtype incl. bfloat16/float8), read one tensor at a time without torch"
    module = "numpy"
    format = "safetensors"
    extensions = (".safetensors",)
    #: the reference does not read a single file: numbered in network order (keys are stored sorted)
    network_ids = True

    def __init__(self, path, *, start_id=None, order: list[str] | None = None,
                 max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        self.path = path_text(path)
        self.description = self.path
        self._start_id = check_start_id(start_id, STATE_DICT_START_ID)
        self._identity = file_identity(self.path)
        self.metadata, tensors = read_safetensors_header(self.path, max_work_ratio)
        check_unchanged(self.path, self._identity, "its header")
        self._tensors = {t.key: t for t in tensors}
        self._order = [t.key for t in tensors]
        if order is not None:
            self.reorder(order)

    def reorder(self, keys: list[str]) -> None:
        """Put ``keys`` first, in that order (the rest keep the sorted order)."""
        missing = [k for k in keys if k not in self._tensors]
        if missing:
            shown = ", ".join(repr(k) for k in missing[:5]) + (", ..." if len(missing) > 5 else "")
            raise CorruptFileError(
                f"The safetensors file '{self.path}' lacks {len(missing)} tensor(s) that the index lists "
                f"for it: {shown}."
            )
        listed = list(dict.fromkeys(keys))
        seen = set(listed)
        self._order = listed + [k for k in self._order if k not in seen]

    def _loader(self, t: SafetensorsTensor):
        # a partial of a module-level function: picklable, so a worker process or a Dask worker can
        # read the tensor itself from the file (no weight crosses from the driver)
        return functools.partial(read_safetensors_tensor, self.path, dataclasses.replace(t, identity=self._identity))

    def entries(self) -> list[TensorEntry]:
        out = []
        for key in self._order:
            t = self._tensors[key]
            out.append(TensorEntry(key, t.shape, _DTYPES[t.dtype].name if t.dtype in _DTYPES else t.dtype.lower(),
                                   self._loader(t)))
        names = [e.key for e in out]
        if names and all(n.startswith("module.") for n in names):
            out = [TensorEntry(e.key[len("module."):], e.shape, e.dtype, e.loader) for e in out]
        return out

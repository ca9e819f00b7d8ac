"""GGUF files (llama.cpp), read with the ``gguf`` package's dequantisers: one tensor at a time.

At open, the header is parsed here with ``pread`` (bounds-checked, no tensor data read, no memory
map: see :mod:`.guarded`). Each layer's loader reads only that tensor's bytes and dequantises them with
``gguf.quants.dequantize`` (Q4_0, Q4_1, Q5_x, Q8_0, the K-quants and whatever else the
installed ``gguf`` supports), so the analysis holds one dequantised matrix at a time.

Names and types follow llama.cpp's tensor names: ``token_embd`` is the embedding, ``output``
the LM head, ``blk.N.attn_q / attn_k / attn_v / attn_output / attn_qkv`` and
``blk.N.ffn_up / ffn_gate / ffn_down`` dense matrices, ``*_norm`` norms. Mixture-of-experts
tensors ``ffn_*_exps`` (one 3-D tensor for all experts) give one matrix per expert, numbered
after the other layers. Ids follow the state-dict rule of single files: every ``*.weight``
tensor takes one, from 1, in network order (many files store ``blk.10`` right after ``blk.1``:
the blocks are put back in numeric order, see :mod:`.order`; the reference does not read GGUF).
``dtype`` is the type of the values analysed, ``quant`` the storage quantisation (``'Q4_1'``...;
``''`` for float tensors).

A model split by llama.cpp's ``gguf-split`` (``NAME-00001-of-00003.gguf``...) is one model: given
any of its files, every part is read (:func:`split_parts`); a missing part is an error that names it.
"""

from __future__ import annotations

import functools
import math
import os
import re
import struct
from typing import Iterator

import numpy as np

from ...deps import require
from ...errors import CorruptFileError, UnknownFormatError
from ._common import MAX_DIM, STATE_DICT_START_ID, BaseSource, check_start_id, path_text, type_from_ndim
from .base import LayerRef
from .budget import DEFAULT_MAX_WORK_RATIO, Budget, refused_tensor
from .containment import check_regular, open_regular
from .fused import append_parts
from .guarded import check_unchanged, file_identity, read_at

__all__ = ["GGUFFileSource", "gguf_layer_type", "split_parts", "SPLIT_NAME"]

#: the file names of llama.cpp's gguf-split: ``NAME-00001-of-00003.gguf``
SPLIT_NAME = re.compile(r"^(?P<stem>.+)-(?P<k>\d{5})-of-(?P<n>\d{5})\.gguf$", re.IGNORECASE)

_FLOATS = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
_INTS = {"I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64"}
_DENSE_PARTS = ("attn_q", "attn_k", "attn_v", "attn_output", "attn_qkv", "attn_q_a", "attn_q_b", "attn_kv_a_mqa",
                "attn_kv_b", "ffn_up", "ffn_gate", "ffn_down", "ffn_gate_inp", "ffn_up_shexp", "ffn_gate_shexp",
                "ffn_down_shexp", "output")


def gguf_layer_type(name: str, ndim: int) -> str:
    """Layer type of a llama.cpp tensor name (without ``.weight``) and rank."""
    last = name.split(".")[-1]
    if ndim == 1:
        return "norm" if "norm" in last else "unknown"
    if ndim == 2:
        if last in ("token_embd", "pos_embd", "token_types") or "embd" in last:
            return "embedding"
        return "dense"
    return type_from_ndim(name, ndim)  # conv1d / conv2d / conv3d / unknown: the state-dict rule


def _corrupt(path: str, problem: str) -> CorruptFileError:
    return CorruptFileError(f"The GGUF file '{path}' is corrupted or truncated: {problem}.")


_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_MAX_COUNT = 1 << 24  # tensors, key-value pairs, array items: far above any real model
_MAX_DIMS = 8


#: arrays of arrays nest at most this deep in the metadata (real files: arrays of strings, depth 1)
_MAX_NESTING = 16
_WINDOW = 1 << 20


class _Header:
    """A bounds-checked reader of the little-endian GGUF header (no tensor data is touched).

    The file is read with ``pread``, one window of 1 MiB at a time (no memory map: a file truncated while
    it is read is an error here, not a ``SIGBUS``).
    """

    def __init__(self, path: str, fh, size: int):
        self.path, self.fh, self.size, self.pos = path, fh, size, 0
        self._start, self._data = 0, b""

    def read(self, pos: int, n: int) -> bytes:
        if pos + n > self.size:
            raise _corrupt(self.path, f"the header ends at byte {self.size} in the middle of a field (offset {pos})")
        if self._start <= pos and pos + n <= self._start + len(self._data):
            return self._data[pos - self._start:pos - self._start + n]
        data = _pread(self.fh, max(n, _WINDOW), pos)
        if len(data) < min(n, self.size - pos):
            raise _corrupt(self.path, "the file ended early while its header was read (truncated, or it changed "
                                      "while it was being read)")
        if n <= _WINDOW:
            self._start, self._data = pos, data
        return data[:n]

    def take(self, fmt: str):
        size = struct.calcsize(fmt)
        value = struct.unpack(fmt, self.read(self.pos, size))[0]
        self.pos += size
        return value

    def count(self, what: str) -> int:
        n = self.take("<Q")
        if n > _MAX_COUNT:
            raise _corrupt(self.path, f"{what} {n} is implausible (limit {_MAX_COUNT})")
        return n

    def skip(self, n: int, what: str) -> None:
        if self.pos + n > self.size:
            raise _corrupt(self.path, f"{what} at offset {self.pos} runs past the end of the file")
        self.pos += n

    def string(self, keep: bool = True):
        n = self.take("<Q")
        if not keep:
            self.skip(n, f"a string of {n} bytes")
            return None
        if self.pos + n > self.size:
            raise _corrupt(self.path, f"a string of {n} bytes at offset {self.pos} runs past the end of the file")
        raw = self.read(self.pos, n)
        self.pos += n
        return raw.decode("utf-8", errors="replace")

    def value(self, vtype: int, keep: bool, depth: int = 0):
        if vtype in _SCALARS:
            return self.take(_SCALARS[vtype])
        if vtype == _STRING:
            return self.string(keep)
        if vtype == _ARRAY:
            if depth >= _MAX_NESTING:
                raise _corrupt(self.path, f"its metadata nests arrays more than {_MAX_NESTING} deep (at offset "
                                          f"{self.pos})")
            itype, n = self.take("<I"), self.count("an array length of")
            if itype in _SCALARS:  # skip fixed-size items without reading them
                self.skip(struct.calcsize(_SCALARS[itype]) * n, f"an array of {n} items")
                return None
            for _ in range(n):
                self.value(itype, False, depth + 1)
            return None
        raise _corrupt(self.path, f"unknown metadata value type {vtype} at offset {self.pos - 4}")


def _pread(fh, n: int, pos: int) -> bytes:
    if hasattr(os, "pread"):
        return os.pread(fh.fileno(), n, pos)
    fh.seek(pos)  # pragma: no cover - Windows
    return fh.read(n)


def read_gguf_header(path: str, gguf, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> tuple[dict, list]:
    """Parse and validate a GGUF header: ``(metadata of scalar/string values, tensors)``.

    Each tensor is ``(name, qtype, shape in numpy order, absolute offset, nbytes)``. Raises
    :class:`CorruptFileError` on any inconsistency, :class:`UnknownFormatError` for a tensor type
    the ``gguf`` package does not know, :class:`BudgetExceededError` for a header of far more tensors
    than the file's data pays for (:mod:`.budget`), before any tensor data is read.
    """
    with open_regular(path, "GGUF file") as fh:
        size = os.fstat(fh.fileno()).st_size
        if size < 24:
            raise _corrupt(path, f"the file has {size} bytes, fewer than a GGUF header")
        return _parse(path, gguf, _Header(path, fh, size), size, Budget(path, "GGUF file", max_work_ratio))


def _parse(path, gguf, h: _Header, size: int, budget: Budget):
    magic = h.read(0, 4)
    if magic != b"GGUF":  # (what it starts with is not shown: a file that is not GGUF may be anything)
        raise _corrupt(path, "it does not start with the GGUF magic bytes 'GGUF'")
    h.pos = 4
    version = h.take("<I")
    if version not in (2, 3):
        raise _corrupt(path, f"GGUF version {version} is not supported (2 and 3 are; a big-endian file "
                             "reads as a huge version)")
    n_tensors, n_kv = h.count("the tensor count"), h.count("the metadata count")
    meta = {}
    for _ in range(n_kv):
        key = h.string()
        vtype = h.take("<I")
        value = h.value(vtype, True)
        if value is not None:
            meta[key] = value
    # a tensor's entry takes at least 24 bytes of the header: what is left for data after them
    budget.entries_upfront(n_tensors, size - h.pos - 24 * n_tensors)
    infos = []
    for _ in range(n_tensors):
        name = h.string()
        n_dims = h.take("<I")
        if n_dims > _MAX_DIMS:
            raise _corrupt(path, f"tensor '{name}' has {n_dims} dimensions")
        dims = [h.take("<Q") for _ in range(n_dims)]
        code, offset = h.take("<I"), h.take("<Q")
        try:
            qtype = gguf.GGMLQuantizationType(code)
        except ValueError:
            raise UnknownFormatError(
                f"The GGUF file '{path}' stores tensor '{name}' with quantisation type code {code}, which the "
                f"installed gguf package ({_version()}) does not know: an unknown quantisation type. A newer gguf "
                "release may support it (pip install -U gguf)."
            ) from None
        infos.append((name, qtype, dims, offset))
    align = meta.get("general.alignment", 32)
    if not isinstance(align, int) or align <= 0 or align & (align - 1):
        raise _corrupt(path, f"general.alignment {align!r} is not a power of two")
    data_start = -(-h.pos // align) * align
    tensors = []
    for name, qtype, dims, offset in infos:
        block, type_size = gguf.GGML_QUANT_SIZES[qtype]
        n_elems = math.prod(dims)
        if dims and dims[0] % block:
            raise _corrupt(path, f"tensor '{name}' has rows of {dims[0]} values, not a multiple of the "
                                 f"{qtype.name} block size {block}")
        if any(d > MAX_DIM for d in dims):
            raise _corrupt(path, f"tensor '{name}' has dimensions {dims}, larger than any file can hold")
        if offset % align:
            raise _corrupt(path, f"tensor '{name}' starts at data offset {offset}, not a multiple of the "
                                 f"alignment {align}")
        nbytes = n_elems * type_size // block
        start = data_start + offset
        if start + nbytes > size:
            raise _corrupt(path, f"tensor '{name}' ends at byte {start + nbytes} but the file has {size} bytes "
                                 f"(dimensions {dims}, {qtype.name}: {nbytes} bytes from byte {start})")
        budget.store(start, nbytes)
        why = budget.add(name, n_elems, note=f"{qtype.name} {tuple(int(d) for d in reversed(dims))}",
                         own_stored=nbytes)
        tensors.append((name, qtype, tuple(int(d) for d in reversed(dims)), start, nbytes, why))
    spans = sorted((t[3], t[3] + t[4], t[0]) for t in tensors if t[4])
    for (_s0, e0, k0), (s1, _e1, k1) in zip(spans, spans[1:]):
        if s1 < e0:
            raise _corrupt(path, f"the data of tensors '{k0}' and '{k1}' overlap")
    budget.check()  # (each tensor is ``(name, qtype, shape, offset, nbytes, why the budget refuses it or '')``)
    return meta, tensors


def _version() -> str:
    try:
        from importlib.metadata import version

        return f"version {version('gguf')}"
    except Exception:  # pragma: no cover - metadata missing
        return "unknown version"


def _dequantisable(gguf, qtype) -> bool:
    name = qtype.name
    if name in _FLOATS or name in _INTS:
        return True
    traits = getattr(gguf.quants, "_type_traits", None)
    return traits is None or qtype in traits


def load_gguf_tensor(path: str, offset: int, nbytes: int, qtype_value: int, shape: tuple,
                     identity: tuple = ()) -> np.ndarray:
    """Read ``nbytes`` at ``offset`` of ``path`` and dequantise them to ``shape`` (numpy order).

    Module-level (picklable with ``functools.partial``): a worker process reads its own tensor. The bytes
    are read with ``pread`` (:func:`.guarded.read_at`), the file checked against its ``identity`` at open:
    a file rewritten meanwhile is an error for this tensor, never a ``SIGBUS``.
    """
    gguf = require("gguf", purpose=f"read the GGUF file '{path}'")
    qtype = gguf.GGMLQuantizationType(qtype_value)
    if os.path.getsize(path) < offset + nbytes:
        check_unchanged(path, identity)
        raise _corrupt(path, f"a tensor ends at byte {offset + nbytes} but the file has {os.path.getsize(path)}")
    if nbytes == 0 or 0 in shape:
        return np.zeros(shape, dtype=np.float32)
    raw = read_at(path, offset, nbytes, identity)
    name = qtype.name
    if name in _FLOATS or name in _INTS:
        np_type = {"BF16": np.uint16}.get(name, np.dtype(_FLOATS.get(name) or _INTS[name]))
        values = raw.view(np_type).reshape(shape)
        if name == "BF16":
            out = (values.astype(np.uint32) << 16).view(np.float32)
        elif name in _INTS:
            out = values.astype(np.float64)
        else:
            out = values.astype(np.float32 if name != "F64" else np.float64)
        return out
    rows = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
    blocks = raw.reshape(rows, nbytes // rows)
    try:
        out = gguf.quants.dequantize(blocks, qtype)
    except NotImplementedError:
        raise UnknownFormatError(
            f"The GGUF file '{path}' stores a tensor quantised as {name}, which the installed gguf package "
            "cannot dequantise."
        ) from None
    return np.asarray(out, dtype=np.float32).reshape(shape)


def split_parts(path: str) -> list[str]:
    """The files of the split GGUF model ``path`` belongs to (``[path]`` when it is not split).

    ``NAME-0000k-of-0000n.gguf`` (llama.cpp's ``gguf-split``) names part ``k`` of ``n``: the parts
    are ``NAME-00001-of-0000n.gguf`` ... in the same folder, in this order. Raises
    :class:`CorruptFileError` naming the missing parts when some are not there.
    """
    folder, base = os.path.split(path)
    match = SPLIT_NAME.match(base)
    if not match or int(match.group("n")) <= 1:
        return [path]
    n = int(match.group("n"))
    if not 1 <= int(match.group("k")) <= n:
        raise CorruptFileError(f"The GGUF file name '{base}' says part {int(match.group('k'))} of {n}, which "
                               "cannot be: is it a renamed file?")
    suffix = base[match.end("n"):]
    names = [f"{match.group('stem')}-{k:05d}-of-{match.group('n')}{suffix}" for k in range(1, n + 1)]
    missing = [name for name in names if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        shown = ", ".join(missing[:5]) + (f", ... ({len(missing)} missing)" if len(missing) > 5 else "")
        raise CorruptFileError(f"The GGUF model '{path}' is split into {n} files (llama.cpp's gguf-split) and "
                               f"{len(missing)} of them are missing from '{folder or '.'}': {shown}. Download every "
                               "part (or merge them with llama-gguf-split --merge) and pass any one of them.")
    return [os.path.join(folder, name) for name in names]


def _check_split_meta(path: str, meta: dict, k: int, n: int) -> None:
    """A part's own ``split.no`` / ``split.count`` must agree with its file name."""
    count, number = meta.get("split.count"), meta.get("split.no")
    if isinstance(count, int) and count != n:
        raise CorruptFileError(f"The GGUF file '{path}' is named as one of {n} parts but its metadata says "
                               f"split.count = {count}.")
    if isinstance(number, int) and number != k:
        raise CorruptFileError(f"The GGUF file '{path}' is named as part {k + 1} of {n} but its metadata says "
                               f"split.no = {number} (part {number + 1}).")


class GGUFFileSource(BaseSource):
    """A ``.gguf`` file (or the parts of a split one): header at open, one dequantised tensor per load."""

    name = "gguf"
    reads = (".gguf files (llama.cpp; split files -00001-of-0000n read as one model), memory-mapped, one "
             "tensor dequantised at a time (F32/F16/BF16, Q4_0/Q4_1/Q5/Q8, K-quants...)")
    module = "gguf"
    extra = "gguf"
    format = "gguf"
    extensions = (".gguf",)

    def __init__(self, path, *, start_id=None, max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        from .order import network_order

        self.path = path_text(path)
        self._start_id = check_start_id(start_id, STATE_DICT_START_ID)
        gguf = require("gguf", purpose=f"read the GGUF file '{self.path}'")
        self.files = split_parts(self.path)
        tensors, first_meta = [], None
        self._identity: dict = {}
        self._refused: dict = {}
        for k, part in enumerate(self.files):
            if part != self.path:
                check_regular(part, "part of the split GGUF file")  # (a sibling: never a FIFO or a device)
            self._identity[part] = file_identity(part)
            meta, found = read_gguf_header(part, gguf, max_work_ratio)
            check_unchanged(part, self._identity[part], "its header")
            if len(self.files) > 1:
                _check_split_meta(part, meta, k, len(self.files))
            first_meta = meta if first_meta is None else first_meta
            tensors += [(n, q, shape, off, nb, _dequantisable(gguf, q), part) for n, q, shape, off, nb, _ in found]
            self._refused.update({(part, off, nb): why for _, _, _, off, nb, why in found if why})
        self._tensors = [tensors[i] for i in network_order([t[0] for t in tensors])]
        arch = first_meta.get("general.architecture")
        self.architecture = arch if isinstance(arch, str) else ""
        split = f", split into {len(self.files)} files" if len(self.files) > 1 else ""
        self.description = f"{self.path} (GGUF{', ' + self.architecture if self.architecture else ''}{split})"

    def _ref(self, layer_id, key, qtype, shape, offset, nbytes, ok, path) -> LayerRef:
        name = key[: -len(".weight")] if key.endswith(".weight") else key
        qname = qtype.name
        dtype = _FLOATS.get(qname) or _INTS.get(qname) or "float32"
        quant = "" if qname in _FLOATS else qname
        skip = "" if ok else f"quantisation {qname} cannot be dequantised by the installed gguf package"
        loader = functools.partial(load_gguf_tensor, path, offset, nbytes, int(qtype), shape, self._identity[path])
        if (path, offset, nbytes) in self._refused:
            loader = functools.partial(refused_tensor, self._refused[(path, offset, nbytes)])
        return LayerRef(layer_id=layer_id, name=name, longname=name, layer_type=gguf_layer_type(name, len(shape)),
                        shape=shape, dtype=dtype, loader=loader, quant=quant, skip=skip)

    def layers(self) -> Iterator[LayerRef]:
        parts: list[LayerRef] = []
        return append_parts(self._walk(parts), parts, self._start_id)

    def _walk(self, parts: list) -> Iterator[LayerRef]:
        has_weight = any(t[0].endswith(".weight") for t in self._tensors)
        layer_id = self._start_id
        for key, qtype, shape, offset, nbytes, ok, path in self._tensors:
            if has_weight and not key.endswith(".weight"):
                continue
            ref = self._ref(layer_id, key, qtype, shape, offset, nbytes, ok, path)
            if len(shape) == 3 and "_exps" in key and shape[0] > 0 and nbytes % shape[0] == 0:
                # experts are the slowest axis: expert k's rows are one contiguous byte range
                step = nbytes // shape[0]
                for k in range(shape[0]):
                    part = self._ref(-1, key, qtype, shape[1:], offset + k * step, step, ok, path)
                    parts.append(_renamed(part, f"{ref.name}.{k}", "dense"))
                ref = _skipped(ref, f"a mixture-of-experts tensor: analysed as its {shape[0]} experts "
                                    f"'{ref.name}.0' ... (numbered after the other layers)")
            yield ref
            layer_id += 1


def _renamed(ref: LayerRef, name: str, layer_type: str) -> LayerRef:
    import dataclasses

    return dataclasses.replace(ref, name=name, longname=name, layer_type=layer_type)


def _skipped(ref: LayerRef, reason: str) -> LayerRef:
    import dataclasses

    return dataclasses.replace(ref, skip=reason)

"""ONNX models (``.onnx`` files and in-memory ``onnx.ModelProto``), read with the ``onnx`` package.

Weights are the graph's initializers and the tensors of ``Constant`` nodes. A weight's layer type
and name come from the node that consumes it:

* ``MatMul`` (the constant operand), ``Gemm`` (``B``, transposed back when ``transB=0``) and
  ``QLinearMatMul`` / ``MatMulInteger``: dense;
* ``Conv`` / ``QLinearConv`` / ``ConvInteger``: conv1d / conv2d / conv3d by rank, with ``group``;
  ``ConvTranspose``: conv_transpose;
* ``Gather`` of a 2-D table: embedding;
* ``LSTM`` / ``GRU`` / ``RNN`` ``W`` and ``R``: one matrix per direction and gate (ONNX gate order:
  LSTM i, o, f, c; GRU z, r, h), numbered after the other layers.

Quantised weights (an integer initializer behind ``DequantizeLinear``, or the weight operand of
``QLinearConv`` / ``QLinearMatMul``, per-tensor or per-axis scales and zero points) are
dequantised, ``(q - zero_point) * scale``; the ``quant`` column says so, e.g.
``'int8 (QLinearConv)'``. Ids follow WeightWatcher 0.7.7: the index of the initializer in the graph
(from 0); ``Constant`` tensors come after. ``name`` is the consuming node's name, ``longname`` the
tensor's name (without a trailing ``.weight``).
"""

from __future__ import annotations

import math
import os
import sys
from collections import defaultdict
from typing import Iterator

import numpy as np

from ...deps import require
from ...errors import CorruptFileError, SpectralWatchError, UnsafeFileError
from ._common import BaseSource, check_shape, check_start_id, foreign_reason, path_text, widen_numpy
from .base import LayerRef
from .budget import DEFAULT_MAX_WORK_RATIO, Budget, refused_tensor
from .containment import check_regular, resolve_inside
from .fused import append_parts, gate_parts

__all__ = ["ONNXFileSource", "ONNXModelSource"]

_ONNX_GATES = {"LSTM": ("lstm", ("i", "o", "f", "c")), "GRU": ("gru", ("z", "r", "h")), "RNN": ("rnn", ("",))}
_CONV_BY_RANK = {3: "conv1d", 4: "conv2d", 5: "conv3d"}
# op -> (weight input index, scale index, zero-point index) of the quantised weight operand
_QLINEAR = {"QLinearConv": (3, 4, 5), "QLinearMatMul": (3, 4, 5), "MatMulInteger": (1, None, 3),
            "ConvInteger": (1, None, 3)}


def is_onnx_model(obj) -> bool:
    onnx = sys.modules.get("onnx")
    return onnx is not None and isinstance(obj, getattr(onnx, "ModelProto", ()))


def _text(name) -> str:
    """A protobuf string field as str (a damaged file can hold bytes that are not UTF-8)."""
    return name.decode("utf-8", errors="replace") if isinstance(name, bytes) else str(name)


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            onnx = sys.modules["onnx"]
            return onnx.helper.get_attribute_value(a)
    return default


class _Graph:
    """The weights of a graph and who consumes them."""

    def __init__(self, model, base_dir: str | None, where: str, max_work_ratio=None):
        onnx = require("onnx", purpose="read an ONNX model")
        self.onnx, self.base_dir, self.where = onnx, base_dir, where
        self.budget = Budget(where.strip("'"), "ONNX model", max_work_ratio)
        self.refused: dict = {}  # tensor -> why the budget refuses it alone (its layer's failed row)
        graph = model.graph
        self.external_files: set = set()  # the external data files the tensors name
        self.tensors = {t.name: t for t in graph.initializer}
        self.order = list(self.tensors)  # a repeated name is read once
        for node in graph.node:
            if node.op_type == "Constant" and node.output:
                value = _attr(node, "value")
                if value is not None and hasattr(value, "dims") and node.output[0] not in self.tensors:
                    self.tensors[node.output[0]] = value
                    self.order.append(node.output[0])
        for name in self.order:
            self._check(self.tensors[name])
        self.budget.check()  # initializers sharing one external block, typed fields of zeros...
        self.consumers = defaultdict(list)
        self.dequant = {}  # DequantizeLinear output -> (quantised tensor, scale, zero point, axis)
        for node in graph.node:
            for k, name in enumerate(node.input):
                self.consumers[name].append((node, k))
            if node.op_type == "DequantizeLinear" and node.input and node.output and node.input[0] in self.tensors:
                ins = list(node.input) + [""] * 3
                self.dequant[node.output[0]] = (node.input[0], ins[1], ins[2], _attr(node, "axis", 1))

    def _check(self, t) -> None:
        """Dims that the stored data can fill, checked before anything is allocated from them."""
        shape = check_shape(self.where, f"tensor '{t.name}'", list(t.dims), fmt="ONNX model")
        if t.data_location == self.onnx.TensorProto.EXTERNAL:  # where its data is, checked before all else
            location = external_location(t, self.base_dir, self.where)
            self.external_files.add(location)
            info = {e.key: e.value for e in t.external_data}
            block = (location, info.get("offset"), info.get("length"))
            own = _external_bytes(t, self.base_dir, self.where)
        elif t.HasField("raw_data"):
            block, own = ("raw", id(t)), len(t.raw_data)
        else:
            block, own = ("typed", id(t)), 4 * max((len(getattr(t, f)) for f in _TYPED_FIELDS), default=0)
        self.budget.store(block, own)
        why = self.budget.add(_text(t.name), math.prod(shape), note=f"shape {tuple(shape)}", block=block,
                              own_stored=own)
        if why:
            self.refused[t.name] = why
        try:
            bits = 8 * np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
        except Exception:  # an element type this onnx does not know: reading it fails on its own
            return
        packed = t.data_type in _PACKED_4BIT
        bits = 4 if packed else bits
        if t.data_location == self.onnx.TensorProto.EXTERNAL:
            available = _external_bytes(t, self.base_dir, self.where) * 8 // bits
        elif t.HasField("raw_data"):
            available = len(t.raw_data) * 8 // bits
        else:  # typed fields: one element per value (two for packed 4-bit types)
            available = max((len(getattr(t, f)) for f in _TYPED_FIELDS), default=0) * (2 if packed else 1)
        n = math.prod(shape)
        if n > available:
            raise CorruptFileError(f"The ONNX model {self.where} is corrupted or truncated: tensor '{t.name}' of "
                                   f"shape {shape} has {n} elements but its data holds at most {available}.")

    def array(self, name: str) -> np.ndarray:
        return self.onnx.numpy_helper.to_array(self.tensors[name], base_dir=self.base_dir or "")

    def dtype(self, name: str) -> str:
        t = self.tensors[name]
        try:
            return np.dtype(self.onnx.helper.tensor_dtype_to_np_dtype(t.data_type)).name
        except Exception:  # pragma: no cover - exotic element types
            return str(t.data_type)


#: element types stored two per byte
_PACKED_4BIT = (21, 22, 23)  # UINT4, INT4, FLOAT4E2M1
_TYPED_FIELDS = ("float_data", "int32_data", "int64_data", "double_data", "uint64_data", "string_data")


def external_location(t, base_dir: str | None, where: str) -> str:
    """The resolved file of an external tensor's data; for a model read from a file it must be a regular
    file inside the model's folder (:mod:`.containment`): an absolute ``location``, ``..`` or a symlink
    leading elsewhere, a FIFO or a device is refused before anything is opened."""
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    path = os.path.join(base_dir or "", location)
    if base_dir is None:  # an in-memory model: the caller's own files, as onnx reads them
        return path
    if not location or os.path.isabs(location) or ".." in location.replace("\\", "/").split("/"):
        raise UnsafeFileError(f"The ONNX model {where} stores tensor '{_text(t.name)[:200]}' in the file "
                              f"{location[:200]!r}, outside the model's folder: refused, a model must not make "
                              "spectralwatch read other files.")
    if not os.path.lexists(path):  # missing: the size checks say so, naming the model and the tensor
        return path
    real = resolve_inside(path, (os.path.realpath(base_dir),), "external data file",
                          named_by=f"the ONNX model {where}")
    try:
        check_regular(path, "external data file")
    except SpectralWatchError as exc:
        raise type(exc)(f"The ONNX model {where} stores tensor '{_text(t.name)[:200]}' in a file that cannot be "
                        f"read: {exc}") from None
    return real


def _external_bytes(t, base_dir: str | None, where: str = "") -> int:
    """Bytes an external tensor may read: its ``length``, else what its file holds after ``offset``."""
    info = {e.key: e.value for e in t.external_data}
    path = external_location(t, base_dir, where)
    try:
        offset = int(info.get("offset") or 0)
        length = int(info["length"]) if info.get("length") else None
    except ValueError:
        return 0
    if length is not None:
        return max(0, length)
    try:
        return max(0, os.path.getsize(path) - offset)
    except OSError:
        return 0


def _dequantise(q: np.ndarray, scale: np.ndarray, zero, axis: int) -> np.ndarray:
    q = q.astype(np.float32)
    scale = np.asarray(scale, dtype=np.float32)
    zero = np.zeros((), np.float32) if zero is None else np.asarray(zero).astype(np.float32)
    if scale.ndim == 1 and scale.size > 1:  # per-axis
        shape = [1] * q.ndim
        shape[axis % q.ndim] = scale.size
        scale, zero = scale.reshape(shape), (zero.reshape(shape) if zero.ndim == 1 else zero)
    return (q - zero) * scale


class _Weight:
    """How to read one weight tensor and what it is."""

    def __init__(self, graph: _Graph, name: str):
        self.graph, self.name = graph, name
        self.quant_from = None  # (scale name, zero name, axis, op label)
        self.transpose = False
        self.layer_type, self.node, self.groups, self.gates = "unknown", None, 1, None
        self.skip = ""
        self._classify()

    def _consumer(self):
        uses = self.graph.consumers.get(self.name, [])
        for node, k in uses:
            if node.op_type == "DequantizeLinear" and k == 0 and node.output and node.output[0] in self.graph.dequant:
                _q, scale, zero, axis = self.graph.dequant[node.output[0]]
                self.quant_from = (scale, zero, axis, "DequantizeLinear")
                later = self.graph.consumers.get(node.output[0], [])
                return later[0] if later else (node, k)
        return uses[0] if uses else (None, -1)

    def _classify(self):
        node, k = self._consumer()
        self.node = node
        shape = tuple(self.graph.tensors[self.name].dims)
        if node is None:
            self.skip = "not used by any node of the graph"
            return
        op = node.op_type
        if op in _QLINEAR and k == _QLINEAR[op][0]:
            _, s, z = _QLINEAR[op]
            ins = list(node.input) + [""] * 9
            self.quant_from = (ins[s] if s is not None else "", ins[z], 0 if "Conv" in op else 1, op)
            op, k = ("Conv" if "Conv" in op else "MatMul"), 1
        if op in ("MatMul", "Gemm") and len(shape) == 2 and k in (0, 1):
            self.layer_type = "dense"
            self.transpose = op == "Gemm" and k == 1 and not _attr(node, "transB", 0)
        elif op in ("Conv", "ConvTranspose") and k == 1 and len(shape) in _CONV_BY_RANK:
            group = _attr(node, "group", 1)
            if not (isinstance(group, int) and 1 <= group <= max(1, shape[0])):  # groups divide the channels
                self.skip = f"its '{op}' node ('{node.name}') has an invalid group attribute {group!r}"
                return
            self.layer_type = "conv_transpose" if op == "ConvTranspose" else _CONV_BY_RANK[len(shape)]
            self.groups = group
        elif op == "Gather" and k == 0 and len(shape) == 2:
            self.layer_type = "embedding"
        elif op in _ONNX_GATES and k in (1, 2) and len(shape) == 3:
            self.layer_type, gates = _ONNX_GATES[op]
            self.gates = (self.layer_type, gates)
        elif len(shape) >= 2:
            self.skip = f"used by a '{op}' node ('{node.name}'), not as a layer's weight"
        else:
            self.layer_type = "norm" if op in ("BatchNormalization", "LayerNormalization") else "unknown"

    @property
    def quant(self) -> str:
        if self.quant_from is None:
            return ""
        return f"{self.graph.dtype(self.name)} ({self.quant_from[3]})"

    def load(self) -> np.ndarray:
        g = self.graph
        if self.name in g.refused:  # far more values than it stores: its own failed row
            refused_tensor(g.refused[self.name])
        try:
            W = g.array(self.name)
            if self.quant_from is not None:
                scale, zero, axis, _ = self.quant_from
                W = _dequantise(W, g.array(scale) if scale else np.ones((), np.float32),
                                g.array(zero) if zero in g.tensors else None, axis)
        except Exception as exc:  # onnx reading untrusted data (external files included): any failure is corruption
            raise CorruptFileError(f"Cannot read the tensor '{self.name}' of the ONNX model {g.where}: "
                                   f"{foreign_reason(exc)}") from None
        if self.transpose:
            W = W.T
        return widen_numpy(np.ascontiguousarray(W), copy=False)


def select_layers(loader, index):
    def load():
        return np.ascontiguousarray(loader()[index])

    return load


class ONNXModelSource(BaseSource):
    """An in-memory ``onnx.ModelProto``: initializers and constants, typed by their consumers."""

    name = "onnx.ModelProto"
    reads = "an ONNX model object (onnx.ModelProto): initializers, Constant nodes, quantised weights"
    module = "onnx"
    extra = "onnx"
    format = "onnx"
    short = "an onnx.ModelProto"
    _base_dir: str | None = None

    @classmethod
    def can_open(cls, obj) -> bool:
        return is_onnx_model(obj)

    def __init__(self, model, *, start_id=None, max_work_ratio=None):
        self._start_id = check_start_id(start_id, 0)
        if not self.description:
            self.description = f"ONNX model ({model.graph.name or 'graph'}, {len(model.graph.initializer)} initializers)"
        where = f"'{self.path}'" if getattr(self, "path", None) else self.description
        try:
            self._graph = _Graph(model, self._base_dir, where, max_work_ratio)
        except SpectralWatchError:
            raise
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:  # odd attributes, types...
            raise CorruptFileError(f"The ONNX model {where} cannot be read: {foreign_reason(exc)}") from None

    def layers(self) -> Iterator[LayerRef]:
        parts: list[LayerRef] = []
        return append_parts(self._walk(parts), parts, self._start_id)

    def _walk(self, parts: list) -> Iterator[LayerRef]:
        g = self._graph
        for k, tname in enumerate(g.order):
            try:
                w = _Weight(g, tname)
            except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:
                raise CorruptFileError(f"The ONNX model {g.where} has a node using tensor '{tname}' that cannot be "
                                       f"read: {foreign_reason(exc)}") from None
            shape = tuple(int(d) for d in g.tensors[tname].dims)
            if w.transpose:
                shape = shape[::-1]
            text = _text(tname)
            longname = text[: -len(".weight")] if text.endswith(".weight") else text
            name = (_text(w.node.name) if w.node is not None and w.node.name else "") or longname
            dtype = "float32" if w.quant_from is not None else g.dtype(tname)
            ref = LayerRef(layer_id=self._start_id + k, name=name, longname=longname, layer_type=w.layer_type,
                           shape=shape, dtype=dtype, loader=w.load, quant=w.quant, groups=w.groups, skip=w.skip)
            if w.gates is not None:
                kind, gates = w.gates
                for d in range(shape[0]):
                    direction = ("", ".reverse")[d] if shape[0] == 2 else (f".d{d}" if shape[0] > 1 else "")
                    one = LayerRef(-1, f"{name}{direction}", f"{longname}{direction}", kind, shape[1:], dtype,
                                   select_layers(w.load, d), quant=ref.quant)
                    parts.extend(gate_parts(one, gates, kind))
                ref = LayerRef(ref.layer_id, name, longname, "unknown", shape, dtype, w.load, quant=ref.quant,
                               skip=f"a stacked recurrent tensor: analysed per direction and gate "
                                    f"('{name}{'.' + gates[0] if gates[0] else ''}' ...)")
            yield ref


class ONNXFileSource(ONNXModelSource):
    """An ``.onnx`` file (external data files are read from its folder, one tensor at a time)."""

    name = "onnx"
    reads = ".onnx files: initializers and Constant nodes typed by their consumers, quantised weights dequantised"
    extensions = (".onnx",)
    short = ""
    can_open = classmethod(BaseSource.can_open.__func__)  # a path, not the in-memory model of the parent

    def __init__(self, path, *, start_id=None, max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        self.path = path_text(path)
        self.description = self.path
        self._base_dir = os.path.dirname(os.path.abspath(self.path))
        super().__init__(_load_onnx(self.path), start_id=start_id, max_work_ratio=max_work_ratio)
        self.external_files = sorted(self._graph.external_files)


def _load_onnx(path: str):
    onnx = require("onnx", purpose=f"read the ONNX file '{path}'")
    size = os.path.getsize(path)
    try:
        model = onnx.load(path, load_external_data=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # protobuf's DecodeError and friends: the file is not a valid ONNX model
        raise CorruptFileError(
            f"The ONNX file '{path}' is corrupted or truncated ({size} bytes): {foreign_reason(exc)}"
        ) from None
    if not model.HasField("graph") or (not model.graph.node and not model.graph.initializer):
        raise CorruptFileError(f"The ONNX file '{path}' holds no graph (truncated, or not an ONNX model).")
    return model

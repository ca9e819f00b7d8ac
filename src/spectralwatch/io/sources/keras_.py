"""Keras 3 models: in-memory ``keras.Model`` objects, ``.keras`` archives and ``.h5`` files.

Files (:mod:`.keras_files`) are read with ``zipfile``, ``json`` and ``h5py`` only: neither Keras nor TensorFlow is
imported, and nothing in the file is deserialised into Python objects (a ``.keras`` archive's
``config.json`` is read as plain JSON, so no custom code can run). Layers are typed by their Keras
class (from the model object, or from ``config.json`` / the ``.h5`` file's ``model_config``; for
a weights-only file, from the names Keras gives the weight groups).

Kernels are brought to the canonical layouts of :mod:`.base`:

* ``Dense`` ``(in, out)``: dense, as stored; ``EinsumDense`` (and the Q/K/V/output projections of
  ``MultiHeadAttention``): the kernel's contracted axes flattened into rows, the others into
  columns (``(d, heads, head_dim)`` -> ``(d, heads * head_dim)``);
* ``Conv1D/2D/3D`` ``(*k, in / groups, out)`` -> ``(out, in / groups, *k)`` with ``groups``;
  ``Conv*Transpose`` -> conv_transpose; ``DepthwiseConv*`` ``(*k, in, mult)`` ->
  ``(in * mult, 1, *k)`` with ``groups = in`` (the layout PyTorch gives a depthwise kernel);
  ``SeparableConv*``: its depthwise and pointwise kernels;
* ``Embedding``: the table; ``LSTM`` / ``GRU`` / ``SimpleRNN`` cells: ``kernel`` and
  ``recurrent_kernel`` split per gate (columns; LSTM i, f, c, o; GRU z, r, h).

Ids: the root model is 0 and every (sub)layer of a depth-first walk takes the next id, like a
torch module walk; a layer's kernel is its row. Tensors that are parts (gates, separable
kernels) are numbered after the walk. ``longname`` is the '/'-joined path of layer names.
"""

from __future__ import annotations

import functools
import math
import re
import sys
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from ._common import BaseSource, check_start_id, widen_numpy
from .base import LayerRef
from .fused import KERAS_GATES, append_parts, gate_parts

__all__ = ["KerasModelSource", "is_keras_model", "keras_refs"]

# Keras class -> names of its variables in the order Keras 3 saves them (``vars/0``, ``vars/1``...)
VAR_NAMES = {
    "Dense": ("kernel", "bias"), "EinsumDense": ("kernel", "bias"), "Embedding": ("embeddings",),
    "SeparableConv1D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "SeparableConv2D": ("depthwise_kernel", "pointwise_kernel", "bias"),
    "LSTMCell": ("kernel", "recurrent_kernel", "bias"), "GRUCell": ("kernel", "recurrent_kernel", "bias"),
    "SimpleRNNCell": ("kernel", "recurrent_kernel", "bias"),
    "BatchNormalization": ("gamma", "beta", "moving_mean", "moving_variance"),
    "LayerNormalization": ("gamma", "beta"),
}
_CELLS = {"LSTMCell": "lstm", "GRUCell": "gru", "SimpleRNNCell": "rnn"}
RNN_PARENTS = {"LSTM": "LSTMCell", "GRU": "GRUCell", "SimpleRNN": "SimpleRNNCell"}
# snake-case group names Keras 3 gives layers in weight files -> class
GROUP_CLASS = {"dense": "Dense", "einsum_dense": "EinsumDense", "embedding": "Embedding", "conv1d": "Conv1D",
                "conv2d": "Conv2D", "conv3d": "Conv3D", "conv1d_transpose": "Conv1DTranspose",
                "conv2d_transpose": "Conv2DTranspose", "conv3d_transpose": "Conv3DTranspose",
                "depthwise_conv1d": "DepthwiseConv1D", "depthwise_conv2d": "DepthwiseConv2D",
                "separable_conv1d": "SeparableConv1D", "separable_conv2d": "SeparableConv2D",
                "lstm": "LSTM", "gru": "GRU", "simple_rnn": "SimpleRNN", "multi_head_attention": "MultiHeadAttention",
                "query_dense": "EinsumDense", "key_dense": "EinsumDense", "value_dense": "EinsumDense",
                "output_dense": "EinsumDense", "batch_normalization": "BatchNormalization",
                "layer_normalization": "LayerNormalization"}


def is_keras_model(obj) -> bool:
    """A Keras 3 layer or model (recognised without importing Keras)."""
    if "keras" not in sys.modules:
        return False
    return any(c.__module__.startswith("keras") and c.__name__ == "Layer" for c in type(obj).__mro__)


# --------------------------------------------------------------------------------------------
# kernel layout transforms (module level: picklable loaders)
# --------------------------------------------------------------------------------------------

def _t_conv(W: np.ndarray) -> np.ndarray:
    """``(*k, a, b)`` -> ``(b, a, *k)``."""
    nd = W.ndim
    return np.ascontiguousarray(np.transpose(W, (nd - 1, nd - 2, *range(nd - 2))))


def _t_depthwise(W: np.ndarray) -> np.ndarray:
    """``(*k, in, mult)`` -> ``(in * mult, 1, *k)``: output channel ``c * mult + m``."""
    k = W.shape[:-2]
    flat = W.reshape(*k, W.shape[-2] * W.shape[-1])
    return np.ascontiguousarray(np.moveaxis(flat, -1, 0)[:, None])


def _t_einsum(perm: tuple, n_rows: int, W: np.ndarray) -> np.ndarray:
    W = np.transpose(W, perm)
    return np.ascontiguousarray(W.reshape(math.prod(W.shape[:n_rows]), -1))


def _apply(transform, loader) -> np.ndarray:
    return transform(loader())


def _as_numpy(loader) -> np.ndarray:
    return widen_numpy(np.asarray(loader()), copy=True)


def _einsum_layout(equation: str | None, shape: tuple, hint: str) -> tuple[tuple, int]:
    """Permutation bringing the contracted kernel axes first, and their count."""
    match = re.fullmatch(r"\s*([\w.]+)\s*,\s*(\w+)\s*->\s*([\w.]+)\s*", equation or "")
    if match and len(match.group(2)) == len(shape):
        inp, ker = match.group(1), match.group(2)
        rows = [i for i, ch in enumerate(ker) if ch in inp]
        cols = [i for i, ch in enumerate(ker) if ch not in inp]
        if rows and cols:
            return tuple(rows + cols), len(rows)
    n = len(shape) - 1 if "output" in hint else 1  # MultiHeadAttention's projections
    return tuple(range(len(shape))), n


# --------------------------------------------------------------------------------------------
# a layer, however it was read, and its LayerRefs
# --------------------------------------------------------------------------------------------

@dataclass
class KerasLayer:
    path: tuple               # layer names from the root
    cls: str                  # Keras class name ('' when unknown)
    config: dict = field(default_factory=dict)
    weights: list = field(default_factory=list)  # (var name, shape, dtype, raw loader)
    parent_cls: str = ""


def _classify(layer: KerasLayer, var: str, shape: tuple):
    """``(layer_type, transform, canonical shape, groups)`` of one variable, or None to skip it."""
    cls, nd = layer.cls, len(shape)
    if cls in _CELLS or layer.parent_cls in RNN_PARENTS:
        return None
    if var == "embeddings" and nd == 2:
        return "embedding", None, shape, 1
    if var in ("depthwise_kernel",) or (var == "kernel" and cls.startswith("DepthwiseConv")):
        if nd < 3:
            return None
        out = shape[-2] * shape[-1]
        return f"conv{nd - 2}d", _t_depthwise, (out, 1, *shape[:-2]), int(shape[-2])
    if var == "pointwise_kernel" and nd >= 3:
        return f"conv{nd - 2}d", _t_conv, (shape[-1], shape[-2], *shape[:-2]), 1
    if var != "kernel" or nd < 2:
        return None
    if cls == "EinsumDense" or (nd >= 3 and layer.parent_cls == "MultiHeadAttention"):
        equation = layer.config.get("equation")
        perm, n = _einsum_layout(equation if isinstance(equation, str) else None, shape,
                                 layer.path[-1] if layer.path else "")
        rows = math.prod(shape[i] for i in perm[:n])
        if rows == 0:
            return None
        return "dense", functools.partial(_t_einsum, perm, n), (rows, math.prod(shape) // rows), 1
    if nd == 2:
        return "dense", None, shape, 1
    if nd > 5:
        return None
    conv_shape = (shape[-1], shape[-2], *shape[:-2])
    if "Transpose" in cls:
        return "conv_transpose", _t_conv, conv_shape, _groups(layer)
    return f"conv{nd - 2}d", _t_conv, conv_shape, _groups(layer)


def _groups(layer: KerasLayer) -> int:
    value = layer.config.get("groups", 1) or 1
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"layer '{'/'.join(layer.path)}' has groups = {value!r} in its config, not a positive int")
    return value


def _cell_parts(layer: KerasLayer, name: str, longname: str) -> list[LayerRef]:
    kind = _CELLS.get(layer.cls) or _CELLS.get(RNN_PARENTS.get(layer.parent_cls, ""), "")
    if not kind:
        return []
    out = []
    for var, shape, dtype, raw in layer.weights:
        if var in ("kernel", "recurrent_kernel") and len(shape) == 2 and shape[1] % len(KERAS_GATES[kind]) == 0:
            ref = LayerRef(-1, f"{name}.{var}", f"{longname}/{var}", kind, tuple(shape), dtype,
                           functools.partial(_as_numpy, raw))
            out.extend(gate_parts(ref, KERAS_GATES[kind], kind, axis=1))
    return out


def keras_refs(layers: list[KerasLayer], start_id: int) -> Iterator[LayerRef]:
    """LayerRefs of walked layers: root = ``start_id``, then one id per layer."""
    parts: list[LayerRef] = []

    def walk():
        for k, layer in enumerate(layers, start=start_id + 1):
            name = layer.path[-1] if layer.path else ""
            longname = "/".join(layer.path)
            parts.extend(_cell_parts(layer, name, longname))
            kinds = []
            for var, shape, dtype, raw in layer.weights:
                got = _classify(layer, var, tuple(shape))
                if got is not None:
                    kinds.append((var, dtype, raw, got))
            if not kinds:
                continue
            main, rest = kinds[0], kinds[1:]
            if layer.cls.startswith("SeparableConv"):
                main, rest = None, kinds
            for var, dtype, raw, (ltype, transform, shape, groups) in rest:
                loader = functools.partial(_apply, transform, raw) if transform else functools.partial(_as_numpy, raw)
                parts.append(LayerRef(-1, f"{name}.{var}", f"{longname}/{var}", ltype, tuple(shape), dtype,
                                      loader, groups=groups))
            if main is not None:
                var, dtype, raw, (ltype, transform, shape, groups) = main
                loader = functools.partial(_apply, transform, raw) if transform else functools.partial(_as_numpy, raw)
                yield LayerRef(k, name, longname, ltype, tuple(int(s) for s in shape), dtype, loader, groups=groups)

    return append_parts(walk(), parts, start_id + 1)


# --------------------------------------------------------------------------------------------
# in-memory models
# --------------------------------------------------------------------------------------------

def _children(layer) -> list:
    try:
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except (AttributeError, TypeError):  # pragma: no cover - older Keras 3
        return list(getattr(layer, "layers", []) or [])


def _own_variables(layer) -> list:
    own = list(getattr(layer, "_trainable_variables", [])) + list(getattr(layer, "_non_trainable_variables", []))
    if own or not hasattr(layer, "weights"):
        return own
    inner = {id(v) for c in _children(layer) for v in c.weights}  # pragma: no cover - fallback
    return [v for v in layer.weights if id(v) not in inner]  # pragma: no cover


def _variable_loader(variable):
    def load():
        keras = sys.modules["keras"]
        return keras.ops.convert_to_numpy(variable)

    return load


def _walk_model(layer, path=(), parent_cls="") -> Iterator[KerasLayer]:
    for child in _children(layer):
        cpath = path + (child.name,)
        weights = []
        for v in _own_variables(child):
            var = str(getattr(v, "name", "")).split("/")[-1].split(":")[0]
            weights.append((var, tuple(int(s) for s in v.shape), str(getattr(v, "dtype", "float32")),
                            _variable_loader(v)))
        config = {"groups": getattr(child, "groups", 1) or 1, "equation": getattr(child, "equation", None)}
        yield KerasLayer(cpath, type(child).__name__, config, weights, parent_cls)
        yield from _walk_model(child, cpath, type(child).__name__)


class KerasModelSource(BaseSource):
    """An in-memory Keras 3 model or layer (Sequential, Functional, subclassed, nested)."""

    name = "keras.Model"
    reads = "a Keras 3 model or layer object (Sequential, Functional, subclassed, nested models)"
    module = "keras"
    extra = "keras"
    format = "keras.Model"
    short = "a keras.Model"

    @classmethod
    def can_open(cls, obj) -> bool:
        return is_keras_model(obj)

    def __init__(self, model, *, start_id=None):
        self._model = model
        self._start_id = check_start_id(start_id, 0)
        self.description = f"{type(model).__name__} '{getattr(model, 'name', '')}' (Keras)"

    def layers(self) -> Iterator[LayerRef]:
        return keras_refs(list(_walk_model(self._model)), self._start_id)

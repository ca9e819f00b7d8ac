"""JAX / Flax: Flax NNX modules, Linen / Optax-style parameter pytrees, single JAX arrays.

A *parameter tree* is a nested mapping (``dict``, Flax ``FrozenDict``) whose leaves are arrays
(JAX or numpy), e.g. ``variables['params']`` of a Linen model or ``nnx.state(model, nnx.Param)``.
When the top level has a ``'params'`` mapping (``{'params': ..., 'batch_stats': ...}``, a training
state with optimiser moments beside it), only ``'params'`` is read. An NNX module is read through
its parameter state, with the class of every submodule (``nnx.Linear``, ``nnx.Conv``,
``nnx.LinearGeneral``, ``nnx.LSTMCell``...) to type it.

A tree node holding a ``kernel`` (Haiku: ``w``) or ``embedding`` (Haiku: ``embeddings``) leaf is
one layer; its name is the '.'-joined path. Flax stores kernels as ``(in, out)``:

* 2-D kernel: dense (its orientation does not change the spectrum);
* ``DenseGeneral`` / ``LinearGeneral`` kernels (``MultiHeadDotProductAttention`` Q/K/V
  ``(d, heads, head_dim)``, its ``out`` ``(heads, head_dim, d)``): the input axes flattened into
  rows, the output axes into columns. Recognised by the module class (NNX), else by the names
  ``query/key/value/out`` or a bias of two or more dimensions;
* other 3-D to 5-D kernels: convolutions ``(*k, in / groups, out)`` -> ``(out, in / groups, *k)``;
* submodules of an LSTM / GRU cell (``ii``, ``hf``...): typed lstm / gru.

Ids: 0 for the first layer, then one per layer in tree order (NNX state and ``FrozenDict`` are
sorted by name). JAX is imported only by the loaders of JAX arrays.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Mapping
from typing import Iterator

import numpy as np

from ...errors import UnknownFormatError
from ._common import BaseSource, check_start_id, inferred_groups, widen_numpy
from .base import LayerRef

__all__ = ["JaxTreeSource", "FlaxNNXSource", "JaxArraySource", "is_jax_array"]

_KERNELS = ("kernel", "w")
_EMBEDDINGS = ("embedding", "embeddings")
_GENERAL_NAMES = ("query", "key", "value", "out")
_CELL_GATES = {"lstm": ("ii", "if", "if_", "ig", "io", "hi", "hf", "hg", "ho"),
               "gru": ("ir", "iz", "in", "hr", "hz", "hn")}


def is_jax_array(obj) -> bool:
    if "jax" not in sys.modules:
        return False
    mod = type(obj).__module__
    return mod.startswith(("jax", "jaxlib")) and hasattr(obj, "shape") and hasattr(obj, "dtype")


def is_nnx_module(obj) -> bool:
    if "flax" not in sys.modules:
        return False
    return any(c.__name__ == "Module" and c.__module__.startswith("flax.nnx") for c in type(obj).__mro__)


def _is_leaf_array(obj) -> bool:
    return (isinstance(obj, np.ndarray) and not obj.dtype.hasobject) or is_jax_array(obj)


def _leaf_to_numpy(leaf) -> np.ndarray:
    return widen_numpy(np.asarray(leaf), copy=True)


def _dtype(leaf) -> str:
    return np.dtype(leaf.dtype).name if not str(leaf.dtype) == "bfloat16" else "bfloat16"


def _general(perm_rows: int, W: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(W.reshape(math.prod(W.shape[:perm_rows]), -1))


def _conv(W: np.ndarray) -> np.ndarray:
    nd = W.ndim
    return np.ascontiguousarray(np.transpose(W, (nd - 1, nd - 2, *range(nd - 2))))


def _load(leaf, transform=None) -> np.ndarray:
    W = _leaf_to_numpy(leaf)
    return transform(W) if transform is not None else W


def _has_arrays(tree, depth=0) -> bool:
    if depth > 64:
        return False
    for value in tree.values():
        if _is_leaf_array(value) or (isinstance(value, Mapping) and _has_arrays(value, depth + 1)):
            return True
    return False


def _params_subtree(tree: Mapping) -> Mapping:
    inner = tree.get("params") if "params" in tree else None
    if isinstance(inner, Mapping) and _has_arrays(inner):
        return inner
    return tree


def _nodes(tree: Mapping, path=()) -> Iterator[tuple[tuple, Mapping]]:
    """Every mapping of the tree (pre-order, mapping order), with its path."""
    yield path, tree
    for key, value in tree.items():
        if isinstance(value, Mapping):
            yield from _nodes(value, path + (str(key),))


def _kind(path: tuple, classes: dict) -> tuple[str, str]:
    """``(class name, recurrent kind)`` of the module at ``path``."""
    cls = classes.get(path, ("", {}))[0]
    parent = classes.get(path[:-1], ("", {}))[0] if path else ""
    low = "/".join(path[:-1]).lower() + "/" + parent.lower()
    last = path[-1] if path else ""
    for kind, names in _CELL_GATES.items():
        if last in names and (kind in low or "cell" in parent.lower()):
            return cls, kind
    return cls, ""


def _layer(path: tuple, node: Mapping, classes: dict):
    """``(layer_type, leaf, transform, canonical shape, groups)`` of a tree node, or None."""
    cls, cell = _kind(path, classes)
    attrs = classes.get(path, ("", {}))[1]
    for key in _EMBEDDINGS:
        leaf = node.get(key)
        if _is_leaf_array(leaf) and len(leaf.shape) == 2:
            return "embedding", leaf, None, tuple(leaf.shape), 1
    leaf = next((node[k] for k in _KERNELS if _is_leaf_array(node.get(k))), None)
    if leaf is None:
        return None
    shape = tuple(int(s) for s in leaf.shape)
    nd = len(shape)
    if nd == 2:
        return cell or "dense", leaf, None, shape, 1
    bias = node.get("bias")
    in_feats = attrs.get("in_features")
    if cls in ("LinearGeneral", "DenseGeneral") or (path and path[-1] in _GENERAL_NAMES) or (
            _is_leaf_array(bias) and len(bias.shape) >= 2):
        if isinstance(in_feats, tuple):
            rows = len(in_feats)
        elif _is_leaf_array(bias) and len(bias.shape) < nd:
            rows = nd - len(bias.shape)
        else:
            rows = nd - 1 if path and path[-1] == "out" else 1
        n_rows = math.prod(shape[:rows])
        return "dense", leaf, functools.partial(_general, rows), (n_rows, math.prod(shape) // n_rows), 1
    if nd > 5:
        return None
    groups = attrs.get("feature_group_count")
    canon = (shape[-1], shape[-2], *shape[:-2])
    if not isinstance(groups, int) or groups < 1:
        groups = inferred_groups(canon)
    kind = "conv_transpose" if "Transpose" in cls else f"conv{nd - 2}d"
    return kind, leaf, _conv, canon, groups


def tree_refs(tree: Mapping, start_id: int, classes: dict | None = None) -> Iterator[LayerRef]:
    classes = classes or {}
    layer_id = start_id
    for path, node in _nodes(tree):
        got = _layer(path, node, classes)
        if got is None:
            continue
        ltype, leaf, transform, shape, groups = got
        name = ".".join(path) or "W"
        yield LayerRef(layer_id=layer_id, name=name, longname=name, layer_type=ltype, shape=tuple(shape),
                       dtype=_dtype(leaf), loader=functools.partial(_load, leaf, transform), groups=groups)
        layer_id += 1


class JaxTreeSource(BaseSource):
    """A nested mapping of arrays (Flax Linen / Optax / Haiku parameters, ``nnx.State`` as a dict)."""

    name = "parameter tree"
    reads = ("a nested dict of JAX or numpy arrays (Flax Linen/NNX params, Optax-style trees, Haiku); "
             "Flax (in, out) kernels handled")
    module = "numpy"
    extra = "jax"
    format = "pytree"
    short = "a parameter tree (nested dict of arrays)"

    @classmethod
    def can_open(cls, obj) -> bool:
        if not isinstance(obj, Mapping):
            return False
        values = list(obj.values())
        nested = any(isinstance(v, Mapping) for v in values)
        jaxy = any(is_jax_array(v) for v in values)
        flat_tensors = any(isinstance(v, np.ndarray) or type(v).__module__.startswith("torch") for v in values)
        return (jaxy or nested) and not (flat_tensors and not jaxy) and _has_arrays(obj)

    def __init__(self, tree: Mapping, *, start_id=None, classes: dict | None = None, description: str = ""):
        self._tree = _params_subtree(tree)
        self._classes = classes or {}
        self._start_id = check_start_id(start_id, 0)
        self.description = description or f"parameter tree ({type(tree).__name__})"
        if not _has_arrays(self._tree):
            raise UnknownFormatError("The parameter tree holds no arrays.")

    def layers(self) -> Iterator[LayerRef]:
        return tree_refs(self._tree, self._start_id, self._classes)


class FlaxNNXSource(BaseSource):
    """A Flax NNX module: its ``nnx.Param`` state, typed by the submodules' classes."""

    name = "flax.nnx.Module"
    reads = "a Flax NNX module (nnx.Linear, nnx.Conv, nnx.LinearGeneral, nnx.Embed, nnx.LSTMCell...)"
    module = "flax"
    extra = "jax"
    format = "flax.nnx.Module"
    short = "a flax.nnx.Module"

    @classmethod
    def can_open(cls, obj) -> bool:
        return is_nnx_module(obj)

    def __init__(self, model, *, start_id=None):
        from flax import nnx

        self._start_id = check_start_id(start_id, 0)
        state = nnx.state(model, nnx.Param)
        self._tree = state.to_pure_dict()
        self._classes = {}
        for path, node in nnx.iter_graph(model):
            if isinstance(node, nnx.Module):
                attrs = {k: getattr(node, k) for k in ("in_features", "feature_group_count")
                         if isinstance(getattr(node, k, None), (int, tuple))}
                self._classes[tuple(str(p) for p in path)] = (type(node).__name__, attrs)
        self.description = f"{type(model).__name__} (flax.nnx.Module)"

    def layers(self) -> Iterator[LayerRef]:
        return tree_refs(self._tree, self._start_id, self._classes)


class JaxArraySource(BaseSource):
    """A single JAX array: one layer named ``W``."""

    name = "jax.Array"
    reads = "a single weight matrix or kernel as a JAX array (one layer, named 'W')"
    module = "jax"
    extra = "jax"
    format = "jax.Array"
    short = "a jax.Array"

    @classmethod
    def can_open(cls, obj) -> bool:
        return is_jax_array(obj)

    def __init__(self, array, *, start_id=None):
        from ._common import type_from_ndim

        self._array = array
        self._start_id = check_start_id(start_id, 0)
        self._type = type_from_ndim("W", len(array.shape))
        self.description = f"JAX array of shape {tuple(array.shape)} ({array.dtype})"

    def layers(self) -> Iterator[LayerRef]:
        shape = tuple(int(s) for s in self._array.shape)
        yield LayerRef(self._start_id, "W", "W", self._type, shape, _dtype(self._array),
                       functools.partial(_load, self._array, None))

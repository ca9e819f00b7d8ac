"""Packed and fused weight tensors, split into the matrices they are made of.

Several layers store more than one weight matrix in one tensor:

* PyTorch ``nn.MultiheadAttention.in_proj_weight``: ``(3 d, d)``, the Q, K and V projections
  stacked along the rows;
* recurrent layers, one tensor per direction and layer for the input and the hidden state:
  PyTorch ``weight_ih_l0`` / ``weight_hh_l0`` stack the gates along the rows (LSTM: i, f, g, o;
  GRU: r, z, n; plain RNN: one matrix), Keras ``kernel`` / ``recurrent_kernel`` along the
  columns (LSTM: i, f, c, o; GRU: z, r, h);
* fused projections of some Hugging Face architectures, split only with ``split_fused=True``
  and when the model's ``config.json`` says how (see :data:`FUSED_RULES`).

WeightWatcher 0.7.7 never sees the first two (their keys do not end in ``.weight``), so these
parts never take an id the reference gives: every source numbers them after all its other layers
(:func:`append_parts`). Each part is a lazy :class:`~.base.LayerRef` whose loader slices the
tensor when called (a picklable ``functools.partial`` when the tensor's loader is).
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Callable, Iterable, Iterator

import numpy as np

from .base import LayerRef

__all__ = ["TORCH_GATES", "KERAS_GATES", "split_loader", "gate_parts", "packed_parts", "append_parts",
           "fused_parts", "FUSED_RULES", "FusedSplitSource", "model_config"]

#: gate names of PyTorch recurrent layers, in the order they are stacked
TORCH_GATES = {"lstm": ("i", "f", "g", "o"), "gru": ("r", "z", "n"), "rnn": ("",)}
#: gate names of Keras recurrent cells, in the order they are concatenated (columns)
KERAS_GATES = {"lstm": ("i", "f", "c", "o"), "gru": ("z", "r", "h"), "rnn": ("",)}

_RNN_KEY = re.compile(r"(?:^|\.)(weight_(?:ih|hh)(?:_l\d+)?(?:_reverse)?)$")
_PROJ_KEY = re.compile(r"(?:^|\.)(weight_hr_l\d+(?:_reverse)?)$")
_QKV_KEY = re.compile(r"(?:^|\.)((?:in|q|k|v)_proj_weight)$")


def _slice(loader: Callable[[], np.ndarray], axis: int, start: int, stop: int) -> np.ndarray:
    W = loader()
    index = [slice(None)] * W.ndim
    index[axis] = slice(start, stop)
    return np.ascontiguousarray(W[tuple(index)])


def _take(loader: Callable[[], np.ndarray], axis: int, index: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.take(loader(), index, axis=axis))


def split_loader(loader, axis: int, start: int, stop: int):
    """A loader returning ``loader()[..., start:stop, ...]`` along ``axis``."""
    return functools.partial(_slice, loader, axis, start, stop)


def gate_parts(ref: LayerRef, gates: tuple, layer_type: str, axis: int = 0) -> list[LayerRef]:
    """Split a stacked tensor into ``len(gates)`` equal parts along ``axis`` (ids left at -1)."""
    n = len(gates)
    size = ref.shape[axis] // n
    out = []
    for k, gate in enumerate(gates):
        shape = list(ref.shape)
        shape[axis] = size
        suffix = f".{gate}" if gate else ""
        loader = ref.loader if n == 1 else split_loader(ref.loader, axis, k * size, (k + 1) * size)
        out.append(dataclasses.replace(ref, layer_id=-1, name=ref.name + suffix, longname=ref.longname + suffix,
                                       layer_type=layer_type, shape=tuple(shape), loader=loader))
    return out


def _rnn_kind(hh_shape: tuple, hidden: int) -> str:
    """lstm / gru / rnn from a ``weight_hh`` shape ``(G * hidden, hidden or proj)``."""
    ratio, rest = divmod(int(hh_shape[0]), int(hidden)) if hidden else (0, 1)
    if rest == 0:
        return {4: "lstm", 3: "gru", 1: "rnn"}.get(ratio, "")
    return ""


def packed_parts(key: str, name: str, shape: tuple, dtype: str, loader, siblings: dict,
                 longname: str | None = None) -> list[LayerRef]:
    """Parts of a state-dict key the reference skips: packed Q/K/V, recurrent gates, LSTM projections.

    ``siblings`` maps every key of the state dict to its shape (to recognise the recurrent kind
    from the matching ``weight_hh`` tensor). Returns [] for any other key.
    """
    if len(shape) != 2:
        return []
    base = LayerRef(-1, name, longname or name, "dense", tuple(shape), dtype, loader)
    match = _QKV_KEY.search(key)
    if match:
        if match.group(1) == "in_proj_weight":
            if shape[0] % 3:
                return []
            return gate_parts(base, ("q", "k", "v"), "dense")
        return [base]
    if _PROJ_KEY.search(key):
        return [base]
    match = _RNN_KEY.search(key)
    if not match:
        return []
    stem = key[: match.start(1)]
    suffix = match.group(1)
    hh_key = stem + suffix.replace("weight_ih", "weight_hh")
    hh = siblings.get(hh_key)
    if hh is None:
        return []
    proj = siblings.get(stem + re.sub(r"weight_(?:ih|hh)", "weight_hr", suffix))
    hidden = int(proj[1]) if proj is not None else int(hh[1])
    kind = _rnn_kind(tuple(hh), hidden)
    if not kind:
        return []
    return gate_parts(base, TORCH_GATES[kind], kind)


def append_parts(refs: Iterable[LayerRef], parts: list[LayerRef], next_id: int) -> Iterator[LayerRef]:
    """Yield ``refs``, then ``parts`` numbered from ``next_id`` (or after the last id seen)."""
    last = next_id - 1
    for ref in refs:
        last = max(last, ref.layer_id)
        yield ref
    for k, part in enumerate(parts):
        yield dataclasses.replace(part, layer_id=last + 1 + k)


# --------------------------------------------------------------------------------------------
# fused projections described by a Hugging Face config (split_fused=True)
# --------------------------------------------------------------------------------------------

def _cfg(config: dict, *names, default=None):
    """The first of ``names`` that ``config`` sets to a positive int (a config.json is untrusted input:
    any other value, a string, a float, zero, is ignored as if absent)."""
    for n in names:
        value = config.get(n)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 1 << 40:
            return value
    return default


def _qkv_sizes(config: dict) -> tuple | None:
    d = _cfg(config, "hidden_size", "n_embd", "d_model")
    heads = _cfg(config, "num_attention_heads", "n_head")
    if not d or not heads:
        return None
    kv = _cfg(config, "num_key_value_heads", default=heads)
    hd = _cfg(config, "head_dim", default=d // heads)
    if not hd:
        return None
    return heads * hd, kv * hd, kv * hd


def _gpt2(config, suffix, shape):
    # Conv1D stores (in, out): c_attn is (d, 3d), the parts are column blocks
    if suffix == "attn.c_attn" and shape[1] % 3 == 0:
        s = shape[1] // 3
        return 1, (("q", 0, s), ("k", s, 2 * s), ("v", 2 * s, 3 * s))
    return None


def _phi3(config, suffix, shape):
    if suffix == "self_attn.qkv_proj":
        sizes = _qkv_sizes(config)
        if sizes and sum(sizes) == shape[0]:
            q, k, _ = sizes
            return 0, (("q", 0, q), ("k", q, q + k), ("v", q + k, shape[0]))
    if suffix == "mlp.gate_up_proj" and shape[0] % 2 == 0:
        h = shape[0] // 2
        return 0, (("gate", 0, h), ("up", h, 2 * h))
    return None


def _neox(config, suffix, shape):
    # GPT-NeoX / Bloom: rows are (heads, 3, head_dim) interleaved per head
    if suffix.endswith("query_key_value"):
        heads = _cfg(config, "num_attention_heads", "n_head")
        if heads and shape[0] % (3 * heads) == 0:
            hd = shape[0] // (3 * heads)
            rows = np.arange(shape[0]).reshape(heads, 3, hd)
            return 0, tuple((name, rows[:, k, :].ravel()) for k, name in enumerate("qkv"))
    return None


#: model_type of config.json -> rule(config, key suffix, shape) -> (axis, parts) or None
FUSED_RULES = {"gpt2": _gpt2, "phi3": _phi3, "phi4mm": _phi3, "gpt_neox": _neox, "bloom": _neox}


def fused_parts(ref: LayerRef, config: dict | None) -> list[LayerRef]:
    """The parts of a fused projection when ``config`` describes it, else []."""
    if not config or len(ref.shape) != 2:
        return []
    rule = FUSED_RULES.get(str(config.get("model_type", "")))
    if rule is None:
        return []
    parts = None
    for n in range(1, min(4, ref.longname.count(".") + 2)):
        suffix = ".".join(ref.longname.split(".")[-n:])
        parts = rule(config, suffix, ref.shape)
        if parts:
            break
    if not parts:
        return []
    axis, items = parts
    out = []
    for item in items:
        name = item[0]
        if len(item) == 3:
            loader = split_loader(ref.loader, axis, item[1], item[2])
            size = item[2] - item[1]
        else:
            loader = functools.partial(_take, ref.loader, axis, item[1])
            size = len(item[1])
        shape = list(ref.shape)
        shape[axis] = size
        out.append(dataclasses.replace(ref, layer_id=-1, name=f"{ref.name}.{name}", longname=f"{ref.longname}.{name}",
                                       layer_type="dense", shape=tuple(shape), loader=loader))
    return out


def model_config(model) -> dict:
    """The Hugging Face ``config.json`` of a model: beside a path, or a torch module's ``.config``."""
    import json
    import os

    if isinstance(model, (str, os.PathLike)):
        from ...errors import SpectralWatchError
        from .containment import companion_file, read_small_file

        cfg = companion_file(os.fspath(model), "config.json")  # inside the model's folder (containment.py)
        if cfg is not None:
            try:
                data = json.loads(read_small_file(cfg, "config.json").decode("utf-8"))
                return data if isinstance(data, dict) else {}
            except SpectralWatchError:  # refused (a FIFO, over the size limit): said, not ignored
                raise
            except (OSError, ValueError, RecursionError):  # not readable as JSON: nothing to split by
                return {}
        return {}
    config = getattr(model, "config", None)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        try:
            data = to_dict()
            return data if isinstance(data, dict) else {}
        except Exception:  # a config object that cannot serialise itself: no split
            return {}
    return config if isinstance(config, dict) else {}


class FusedSplitSource:
    """``split_fused=True``: fused projections the config describes become their parts.

    The fused tensor keeps its id and is listed as skipped (with the names of its parts); the parts
    are numbered after every other layer.
    """

    def __init__(self, source, config: dict):
        self._source, self._config = source, config or {}
        self.wrapped = (source,)  # the source read
        self.format = getattr(source, "format", "")
        self.description = getattr(source, "description", "")
        self.notes = list(getattr(source, "notes", []))

    def layers(self) -> Iterator[LayerRef]:
        parts: list[LayerRef] = []

        def walk():
            for ref in self._source.layers():
                split = [] if ref.skip else fused_parts(ref, self._config)
                if split:
                    parts.extend(split)
                    names = ", ".join(p.name for p in split)
                    ref = dataclasses.replace(ref, skip=f"split_fused=True: analysed as its parts {names}")
                yield ref

        return append_parts(walk(), parts, 0)

    def __iter__(self) -> Iterator[LayerRef]:
        return self.layers()

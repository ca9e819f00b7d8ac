"""LoRA / PEFT adapters: the low-rank update ``B @ A`` of each adapted layer (``peft=True``).

Input: a PEFT adapter folder (``adapter_config.json`` + ``adapter_model.safetensors`` or
``adapter_model.bin``), one of its files, a PEFT model object (``peft.PeftModel``: a torch module
whose adapted layers hold ``lora_A`` / ``lora_B``), or its state dict. Pairs are found by name:
``<path>.lora_A[.<adapter>]`` (``r x in``) and ``<path>.lora_B[.<adapter>]`` (``out x r``).

* ``<path>.lora_BA`` (layer type ``lora``, the id of ``lora_A``): the product ``B @ A``, which has
  rank ``r``: its ``r`` non-zero eigenvalues come from the ``r x r`` core of two thin QR
  factorisations (:func:`~spectralwatch.matrices.low_rank_core`); the ``out x in`` product is
  never formed. As in WeightWatcher 0.7.7 the product is not multiplied by PEFT's scale
  ``lora_alpha / r`` (alpha and the other scale-free columns do not depend on it).
* with ``peft='with_base'``, also ``<path>.lora_W_plus_AB`` (the id of ``lora_B``): the merged
  weight ``W + s B A`` with PEFT's scale ``s`` (``lora_alpha / r``, ``/ sqrt(r)`` with rsLoRA,
  per-module ``alpha_pattern`` / ``rank_pattern``; 1 when neither a config nor a PEFT module gives
  it), and every other layer of the model as usual. ``W`` is the adapted layer's ``base_layer``
  in a PEFT model, else the matching layer of ``base_model=``.

With ``peft=True`` every other layer is listed as skipped. A base model that lacks an adapted
layer, or whose layer's shape is not ``out x in``, is an error naming both.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import re
from typing import Iterator

import numpy as np

from ...errors import CorruptFileError, InvalidParameterError, SpectralWatchError
from ...core.matrices import low_rank_core
from .base import LayerRef
from .deltas import match_names
from .containment import companion_file, read_small_file
from .patterns import pattern_match

__all__ = ["LoraSource", "adapter_config"]

_AB = re.compile(r"^(?P<prefix>.+?)\.lora_(?P<which>[AB])(?:\.(?P<adapter>[^./]+))?$")
_PEFT_PREFIX = "base_model.model."


def adapter_config(model) -> tuple[dict, str]:
    """``(adapter_config.json contents, its path)`` for an adapter folder or file, else ``({}, '')``."""
    if not isinstance(model, (str, os.PathLike)):
        return {}, ""
    cfg = companion_file(os.fspath(model), "adapter_config.json")  # inside the adapter's folder (containment.py)
    if cfg is None:
        return {}, ""
    try:
        data = json.loads(read_small_file(cfg, "adapter_config.json").decode("utf-8"))
    except SpectralWatchError:  # refused (a FIFO, over the size limit): said, not ignored
        raise
    except (OSError, ValueError, RecursionError):  # unreadable: the adapter is read without its config
        return {}, cfg
    return (data if isinstance(data, dict) else {}), cfg


def _pattern_value(patterns, prefix: str, default):
    """The value of the first key of ``patterns`` matching the module ``prefix`` (PEFT's rule), else ``default``.

    The keys come from the adapter's file: they are matched as PEFT matches them, but in linear time
    (:func:`.patterns.pattern_match`: a key such as ``(a+)+$`` cannot hang the analysis).
    """
    if isinstance(patterns, dict):
        name = prefix[len(_PEFT_PREFIX):] if prefix.startswith(_PEFT_PREFIX) else prefix
        for key, value in patterns.items():
            if isinstance(key, str) and (pattern_match(key, name) or pattern_match(key, prefix)):
                return value
    return default


def _config_number(value, what: str, where: str, *, positive: bool) -> float:
    """A number of ``adapter_config.json`` (untrusted input), or an error naming the file and the key."""
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise CorruptFileError(
            f"The adapter_config.json of {where} gives '{what}' = {value!r}, not a {'positive ' if positive else ''}"
            "finite number: fix the file, or pass peft=True (which does not use PEFT's scale).")
    return float(value)


def _scale(prefix: str, adapter: str, r: int, config: dict, model, where: str = "") -> float:
    """PEFT's scale of ``B A`` for the module at ``prefix``."""
    module_scaling = _module_scaling(model, prefix, adapter)
    if module_scaling is not None:
        return module_scaling
    if not config:
        return 1.0
    alpha = _pattern_value(config.get("alpha_pattern"), prefix, config.get("lora_alpha", r))
    rank = _pattern_value(config.get("rank_pattern"), prefix, r)
    alpha = _config_number(alpha, "lora_alpha", where, positive=False)
    rank = _config_number(rank or r, "r", where, positive=True)
    return alpha / (math.sqrt(rank) if config.get("use_rslora") else rank)


def _module_scaling(model, prefix: str, adapter: str):
    get = getattr(model, "get_submodule", None)
    if get is None:
        return None
    try:
        scaling = getattr(get(prefix), "scaling", None)
    except (AttributeError, KeyError):
        return None
    if isinstance(scaling, dict) and isinstance(scaling.get(adapter or "default"), (int, float)):
        return float(scaling[adapter or "default"])
    return None


def _core(a_loader, b_loader) -> np.ndarray:
    return low_rank_core(b_loader(), a_loader())


def _merged(w_loader, a_loader, b_loader, scale: float, transpose: bool) -> np.ndarray:
    W = np.array(w_loader(), dtype=np.float64)
    BA = np.asarray(b_loader(), dtype=np.float64) @ np.asarray(a_loader(), dtype=np.float64)
    W += scale * (BA.T if transpose else BA)
    return W


class LoraSource:
    """Rewrites a source's ``lora_A`` / ``lora_B`` pairs into LoRA products (and merged weights)."""

    def __init__(self, source, mode, *, model=None, base=None, config: dict | None = None, where: str = ""):
        self._source, self._mode, self._model, self._base = source, mode, model, base
        self.wrapped = tuple(s for s in (source, base) if s is not None)  # the sources read
        self._config = config or {}
        self._where = where or getattr(source, "description", "the adapter")
        self.format = f"peft ({getattr(source, 'format', '')})"
        self.description = f"LoRA adapter {self._where}"
        self.notes = list(getattr(source, "notes", []))

    def _pairs(self, refs):
        pairs: dict = {}
        for ref in refs:
            m = _AB.match(ref.longname)
            if m and len(ref.shape) == 2:
                pairs.setdefault((m["prefix"], m["adapter"] or ""), {})[m["which"]] = ref
        pairs = {k: v for k, v in pairs.items() if "A" in v and "B" in v}
        if not pairs:
            raise InvalidParameterError(
                f"peft={self._mode!r} was given but {self._where} holds no LoRA adapter (no pair of "
                "'lora_A' / 'lora_B' weights).")
        for (prefix, _), ab in pairs.items():
            a, b = ab["A"], ab["B"]
            if a.shape[0] != b.shape[1]:
                raise InvalidParameterError(
                    f"The LoRA factors of '{prefix}' in {self._where} do not fit together: lora_A is "
                    f"{tuple(a.shape)} and lora_B {tuple(b.shape)} (expected r x in and out x r).")
        return pairs

    def _base_weights(self, refs, pairs) -> dict:
        """prefix -> the LayerRef of W, from the model itself or from ``base_model``."""
        own = {r.longname: r for r in refs}
        found = {}
        for prefix, _ in pairs:
            ref = own.get(prefix + ".base_layer")
            if ref is not None:
                found[prefix] = ref
        if self._base is None:
            return found
        base_refs = {r.longname: r for r in self._base.layers() if len(r.shape) == 2}
        wanted = [p[len(_PEFT_PREFIX):] if p.startswith(_PEFT_PREFIX) else p for p, _ in pairs]
        matched = match_names(wanted, list(base_refs))
        base_where = getattr(self._base, "description", "the base model")
        for (prefix, _), name in zip(pairs, wanted):
            if name not in matched:
                raise InvalidParameterError(
                    f"The base model {base_where} does not match the LoRA adapter {self._where}: it has no "
                    f"layer '{name}' (adapted as '{prefix}').")
            found[prefix] = base_refs[matched[name]]
        return found

    def _check(self, prefix, a, b, w) -> bool:
        """True when W is stored (in, out) (transposed); raises when it fits neither way."""
        out_in = (b.shape[0], a.shape[1])
        if tuple(w.shape) == out_in:
            return False
        if tuple(w.shape) == out_in[::-1]:
            return True
        raise InvalidParameterError(
            f"The base weight of '{prefix}' ({w.longname}, shape {tuple(w.shape)}) does not match the LoRA "
            f"adapter {self._where}: B @ A is {out_in[0]} x {out_in[1]}.")

    def layers(self) -> Iterator[LayerRef]:
        refs = list(self._source.layers())
        pairs = self._pairs(refs)
        bases = self._base_weights(refs, pairs)
        for prefix, ab in pairs.items():
            if prefix[0] in bases:
                self._check(prefix[0], ab["A"], ab["B"], bases[prefix[0]])
        if self._mode == "with_base":
            missing = [p for p, _ in pairs if p not in bases]
            if missing:
                raise InvalidParameterError(
                    f"peft='with_base' needs the base weights of the adapted layers, but {self._where} has none "
                    f"for '{missing[0]}'{' and others' if len(missing) > 1 else ''}: pass the model the adapter "
                    "was trained on as base_model=.")
        by_ref = {}
        for key, ab in pairs.items():
            by_ref[id(ab["A"])] = ("A", key, ab)
            by_ref[id(ab["B"])] = ("B", key, ab)
        for ref in refs:
            role = by_ref.get(id(ref))
            if role is None:
                if self._mode is True:
                    ref = dataclasses.replace(ref, skip=ref.skip or "peft=True analyses only the LoRA products B @ A")
                yield ref
            elif role[0] == "A":
                yield self._product(ref, role[1], role[2])
            elif self._mode == "with_base":
                yield self._merged_ref(ref, role[1], role[2], bases[role[1][0]])

    @staticmethod
    def _names(prefix: str, adapter: str, what: str, ref: LayerRef) -> tuple[str, str]:
        tail = f".{what}" + (f".{adapter}" if adapter and adapter != "default" else "")
        short = prefix.split(".")[-1] if ref.name != ref.longname else prefix
        return short + tail, prefix + tail

    def _product(self, a: LayerRef, key, ab) -> LayerRef:
        prefix, adapter = key
        b = ab["B"]
        name, longname = self._names(prefix, adapter, "lora_BA", a)
        return dataclasses.replace(a, name=name, longname=longname, layer_type="lora",
                                   shape=(int(b.shape[0]), int(a.shape[1])), rank=int(a.shape[0]),
                                   loader=functools.partial(_core, a.loader, b.loader))

    def _merged_ref(self, b: LayerRef, key, ab, w: LayerRef) -> LayerRef:
        prefix, adapter = key
        a = ab["A"]
        transpose = self._check(prefix, a, b, w)
        scale = _scale(prefix, adapter, int(a.shape[0]), self._config, self._model, self._where)
        name, longname = self._names(prefix, adapter, "lora_W_plus_AB", b)
        return dataclasses.replace(b, name=name, longname=longname, layer_type=w.layer_type,
                                   shape=tuple(w.shape), dtype=w.dtype, quant=w.quant,
                                   loader=functools.partial(_merged, w.loader, a.loader, b.loader, scale, transpose))

    def __iter__(self) -> Iterator[LayerRef]:
        return self.layers()

"""``base_model=``: analyse what fine-tuning changed, ``W - W_base``, layer by layer.

Any two sources can be compared (a torch module against a safetensors folder, two GGUF files...).
Layers are matched by ``longname``; when fewer than half of the model's layers match exactly
(checkpoints that differ by a prefix such as ``bert.`` or ``base_model.model.``), the remaining
names are matched by their longest unique common suffix of path components. A matched pair whose
shapes differ (and are not each other's transpose) is not analysed, and neither is a layer missing
from the base: both stay in the table of skipped layers with the reason (``describe(...,
skipped=True)``, ``Report.skipped``), and so do the base's layers that match nothing (id -1).
The difference is formed in float64 when a layer is loaded, one pair at a time.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from typing import Iterator

import numpy as np

from .base import ANALYSABLE_TYPES, LayerRef

__all__ = ["DeltaSource", "match_names"]


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[./]", name) if p]


def match_names(names: list[str], base_names: list[str]) -> dict[str, str]:
    """Map model layer names to base layer names: exact first, then unique path suffixes."""
    base_set = set(base_names)
    out = {n: n for n in names if n in base_set}
    if len(out) * 2 >= len(names):
        return out
    used = set(out.values())
    index: dict[tuple, list[str]] = {}
    for b in base_names:
        if b in used:
            continue
        parts = _parts(b)
        for k in range(1, len(parts) + 1):
            index.setdefault(tuple(parts[-k:]), []).append(b)
    for n in names:
        if n in out:
            continue
        parts = _parts(n)
        for k in range(len(parts), 0, -1):  # the longest suffix that names exactly one base layer
            hits = [b for b in index.get(tuple(parts[-k:]), []) if b not in used]
            if len(hits) == 1:
                out[n] = hits[0]
                used.add(hits[0])
                break
    return out


def _difference(loader, base_loader, transpose: bool) -> np.ndarray:
    W = np.asarray(loader(), dtype=np.float64)
    B = np.asarray(base_loader(), dtype=np.float64)
    if transpose:
        B = B.T
    if W.shape != B.shape:
        raise ValueError(f"the layer's shape {W.shape} differs from the base's {B.shape}")
    W -= B
    return W


class DeltaSource:
    """The layers of ``source`` minus the matching layers of ``base``."""

    def __init__(self, source, base):
        self._source, self._base = source, base
        self.wrapped = (source, base)  # the sources read
        self.format = f"delta ({getattr(source, 'format', '')} - {getattr(base, 'format', '')})"
        self.description = (f"{getattr(source, 'description', '')} minus base model "
                            f"{getattr(base, 'description', '')}")
        self.notes = list(getattr(source, "notes", [])) + list(getattr(base, "notes", []))

    def layers(self) -> Iterator[LayerRef]:
        refs = list(self._source.layers())
        base_refs = [b for b in self._base.layers() if b.layer_type in ANALYSABLE_TYPES and not b.skip]
        by_name = {b.longname: b for b in base_refs}
        wanted = [r.longname for r in refs if r.layer_type in ANALYSABLE_TYPES and not r.skip]
        matched = match_names(wanted, list(by_name))
        where = getattr(self._base, "description", "the base model")
        for ref in refs:
            if ref.layer_type not in ANALYSABLE_TYPES or ref.skip:
                yield ref
                continue
            base_name = matched.get(ref.longname)
            if base_name is None:
                yield dataclasses.replace(ref, skip=f"no layer '{ref.longname}' in the base model {where}")
                continue
            b = by_name[base_name]
            if tuple(b.shape) == tuple(ref.shape):
                transpose = False
            elif len(ref.shape) == 2 and tuple(b.shape) == tuple(ref.shape)[::-1]:
                transpose = True
            else:
                yield dataclasses.replace(ref, skip=f"shape {tuple(ref.shape)} differs from the base layer "
                                                    f"'{base_name}' {tuple(b.shape)} in {where}")
                continue
            yield dataclasses.replace(
                ref, loader=functools.partial(_difference, ref.loader, b.loader, transpose),
                quant=" - ".join(q for q in dict.fromkeys((ref.quant, b.quant)) if q), rank=0)
        for name in sorted(set(by_name) - set(matched.values())):
            b = by_name[name]
            yield dataclasses.replace(b, layer_id=-1, skip=f"only in the base model {where} (no layer '{name}' "
                                                             "in the model)")

    def __iter__(self) -> Iterator[LayerRef]:
        return self.layers()

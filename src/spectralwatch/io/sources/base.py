"""What every source yields: a lazy reference to one candidate layer's weight tensor.

A source walks a model and yields one :class:`LayerRef` per candidate layer, in network order
(numbered siblings of names stored alphabetically put back in numeric order, :mod:`.order`),
numbering them like WeightWatcher 0.7.7 does for that kind of input: where the reference numbers
names in their stored order (a state dict, a folder), the ids are then not monotone in the
listing. Nothing is read until :meth:`LayerRef.load` is called, so a driver can hold one tensor at
a time.

Canonical tensor layout returned by ``load()`` (whatever the framework stored):

* dense / embedding: 2-D ``(rows, cols)`` (orientation does not matter for the spectrum);
* conv1d: 3-D ``(out_channels, in_channels, k)``;
* conv2d: 4-D ``(out_channels, in_channels, kh, kw)``;
* conv3d: 5-D ``(out_channels, in_channels, kd, kh, kw)``;
* conv_transpose: ``(in_channels, out_channels, *kernel)`` as PyTorch stores it (each kernel
  position's matrix is the transpose of the forward one: the spectrum is the same);
* a grouped convolution keeps PyTorch's ``(out, in / groups, *kernel)`` and says ``groups``;
* lstm / gru / rnn: one gate's 2-D matrix (input-to-hidden or hidden-to-hidden);
* lora: the ``r x r`` core of a low-rank product ``B @ A`` (same non-zero singular values as
  the product, see :func:`spectralwatch.matrices.low_rank_core`); ``shape`` is the product's;
* norm / unknown: whatever the tensor is (these are never analysed).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterator, Protocol

import numpy as np

from ...options.vocabulary import ANALYSABLE_TYPES, CONV_TYPES, LAYER_TYPES

__all__ = ["LayerRef", "Source", "LAYER_TYPES", "ANALYSABLE_TYPES", "CONV_TYPES"]

@dataclass(frozen=True)
class LayerRef:
    """A candidate layer, not yet loaded.

    Attributes
    ----------
    layer_id : int
        WeightWatcher-compatible id (see each source for its numbering rule).
    name : str
        Short name (last component of a module path; the key without ``.weight`` for a state dict).
    longname : str
        Full path of the layer in the model.
    layer_type : str
        One of :data:`LAYER_TYPES`.
    shape : tuple of int
        Shape of the tensor in the canonical layout (see module docstring).
    dtype : str
        The stored dtype, e.g. ``'float32'``, ``'bfloat16'``.
    loader : callable
        ``loader() -> numpy.ndarray`` returning the tensor in the canonical layout, as float32 or
        float64 (half precision is widened losslessly to float32).
    quant : str
        How the stored values were quantised before being dequantised for the analysis, e.g.
        ``'Q4_1'`` (GGUF), ``'int8 (DequantizeLinear)'`` (ONNX); ``''`` for plain floats.
    groups : int
        Convolution groups (1 for a dense convolution; the channel count for a depthwise one).
    rank : int
        A known bound on the rank (a LoRA product: ``r``), 0 when unknown; only that many
        eigenvalues are computed.
    skip : str
        Why the source cannot analyse this candidate ('' when it can): the reason shown by
        ``describe(..., skipped=True)`` and in ``Report.skipped``.
    """

    layer_id: int
    name: str
    longname: str
    layer_type: str
    shape: tuple
    dtype: str
    loader: Callable[[], np.ndarray] = field(repr=False, compare=False)
    quant: str = ""
    groups: int = 1
    rank: int = 0
    skip: str = ""

    def load(self) -> np.ndarray:
        """Read the tensor (canonical layout, float32 or float64)."""
        return self.loader()


class Source(Protocol):
    """An opened model: iterable of :class:`LayerRef` in network order (docs/formats.md, "Layer order")."""

    #: short format name, e.g. ``'torch.nn.Module'``, ``'safetensors'``
    format: str
    #: what was opened, e.g. the file path
    description: str

    def layers(self) -> Iterator[LayerRef]:
        ...

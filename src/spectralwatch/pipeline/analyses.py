"""Optional per-layer analyses, switched on by options, each adding columns to a layer's row.

Each analysis lives in its own module of the pure core (``rmt.py``, ``stats.py``, ...); this
module only decides, from the options, which of them run for a layer, and hands each the
:class:`LayerContext`. Adding an analysis = one function in its module + one line here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..core.rng import layer_rng

__all__ = ["LayerContext", "extra_columns"]


@dataclass(frozen=True)
class LayerContext:
    """Everything an optional analysis may need about one analysed matrix group.

    Attributes
    ----------
    stack : ndarray, shape (k, N, M)
        The matrices of this group (float64, tall), *unscaled*; multiply eigenvalues by
        ``eval_scale`` to get the units of ``evals``.
    eval_scale : float
    evals : ndarray
        The group's sorted (pooled) eigenvalues, in the units of the details table.
    fit : PowerLawFit or None
        The power-law fit (None when the spectrum is all zeros).
    row : dict
        The columns computed so far (read them, do not modify).
    options : Options
    layer_id, slice_id : int
    weights : bool
        Whether the stack holds the layer's stored weights (False for a pseudo-inverse,
        ``inverse=True``, and for the product of two layers, ``intra=True``).
    """

    stack: np.ndarray
    eval_scale: float
    evals: np.ndarray
    fit: object
    row: dict
    options: object
    layer_id: int
    slice_id: int = 0
    weights: bool = True

    @property
    def N(self) -> int:
        return self.stack.shape[1]

    @property
    def M(self) -> int:
        return self.stack.shape[2]

    @cached_property
    def rng(self) -> np.random.Generator:
        return layer_rng(self.options.rng, self.layer_id, self.slice_id)


def extra_columns(ctx: LayerContext) -> dict:
    """Columns of every optional analysis the options ask for."""
    cols: dict = {}
    if getattr(ctx.options, "vectors", False):
        from ..core.vectors import vector_columns

        cols.update(vector_columns(ctx))
    if ctx.options.mp_fit or ctx.options.randomize or ctx.options.detX:
        from ..core.rmt_columns import rmt_columns

        cols.update(rmt_columns(ctx))
    if getattr(ctx.options, "fit_quality", False) or getattr(ctx.options, "farms", False):
        from .stats_columns import stats_columns

        cols.update(stats_columns(ctx))
    return cols

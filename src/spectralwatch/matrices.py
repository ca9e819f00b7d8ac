"""Weight tensor -> the 2-D matrices whose spectra are analysed.

WeightWatcher's conventions (Martin & Mahoney, JMLR 22, 2021), see ``REFERENCE.md`` section 1:

* a dense / embedding / Hugging Face ``Conv1D`` weight is one ``N x M`` matrix (``N >= M``);
* a conv weight ``(out, in, *kernel)`` gives one ``out x in`` matrix per kernel position,
  ``rf = prod(kernel)`` of them. Pooled (the default) their eigenvalues form one ESD; with
  ``conv2d_norm`` each conv2d slice is scaled by ``1/sqrt(2)`` (eigenvalues x 1/2). Unpooled,
  each slice is its own row, scaled by ``sqrt(rf/2)`` (eigenvalues x rf/2).

Unlike the reference, ``N`` and ``M`` are always ``max``/``min`` of the slice shape (the
reference swaps them for even-sized kernels), and 3-D ``Conv1d`` kernels are sliced the same way
(without the conv2d scaling).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["LayerMatrices", "layer_matrices", "matrix_geometry", "NonFiniteWeightsError"]


class NonFiniteWeightsError(ValueError):
    """The weight tensor holds NaN or Inf values; its spectrum is undefined."""


@dataclass(frozen=True)
class LayerMatrices:
    """The matrices of one layer, stacked.

    Attributes
    ----------
    stack : ndarray, shape (rf, N, M)
        float64 matrices, each oriented tall (``N >= M``).
    N, M : int
        Long and short side of every matrix.
    rf : int
        Receptive field: number of matrices (kernel positions).
    eval_scale : float
        Factor applied to every eigenvalue (``conv2d_norm`` scaling).
    """

    stack: np.ndarray
    N: int
    M: int
    rf: int
    eval_scale: float

    @property
    def Q(self) -> float:
        return self.N / self.M


def matrix_geometry(layer_type: str, shape: tuple) -> tuple[int, int, int]:
    """``(N, M, rf)`` of a layer from its type and tensor shape, without loading it."""
    if layer_type in ("conv1d", "conv2d") and len(shape) >= 3:
        out_c, in_c = int(shape[0]), int(shape[1])
        rf = int(np.prod(shape[2:]))
        return max(out_c, in_c), min(out_c, in_c), rf
    if len(shape) == 2:
        return int(max(shape)), int(min(shape)), 1
    return 0, 0, 1


def layer_matrices(weights: np.ndarray, layer_type: str, *, conv2d_norm: bool = True,
                   pooled: bool = True) -> LayerMatrices:
    """Slice a weight tensor (canonical layout, see ``sources.base``) into its matrices.

    Parameters
    ----------
    weights : ndarray
        2-D ``(rows, cols)``, 3-D ``(out, in, k)`` or 4-D ``(out, in, kh, kw)``.
    layer_type : str
        ``'dense'``, ``'embedding'``, ``'conv1d'`` or ``'conv2d'``.
    conv2d_norm : bool
        Apply WeightWatcher's conv2d normalisation.
    pooled : bool
        Scaling for pooled (``1/2``) or per-slice (``rf/2``) conv2d spectra.

    Raises
    ------
    NonFiniteWeightsError
        When the tensor holds NaN or Inf.
    ValueError
        When the tensor's shape does not fit the layer type.
    """
    W = np.asarray(weights)
    if W.ndim < 2 or W.ndim > 4 or min(W.shape) == 0:
        raise ValueError(f"a {layer_type} weight must be a non-empty 2-D to 4-D tensor; got shape {W.shape}")
    if not np.isfinite(W).all():
        n_nan = int(np.isnan(W).sum())
        n_inf = int(np.isinf(W).sum())
        raise NonFiniteWeightsError(f"weights contain {n_nan} NaN and {n_inf} Inf values")
    if W.ndim == 2:
        stack = W[None, :, :]
    else:
        out_c, in_c = W.shape[:2]
        # (out, in, *k) -> (rf, out, in): one matrix per kernel position, row-major over the kernel
        stack = np.moveaxis(W.reshape(out_c, in_c, -1), 2, 0)
    if stack.shape[1] < stack.shape[2]:
        stack = np.swapaxes(stack, 1, 2)
    stack = np.ascontiguousarray(stack, dtype=np.float64)
    rf, N, M = stack.shape
    scale = 1.0
    if layer_type == "conv2d" and conv2d_norm:
        scale = 0.5 if pooled else rf / 2.0
    return LayerMatrices(stack=stack, N=N, M=M, rf=rf, eval_scale=scale)

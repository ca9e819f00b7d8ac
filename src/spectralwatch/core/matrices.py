"""Weight tensor -> the 2-D matrices whose spectra are analysed.

WeightWatcher's conventions (Martin & Mahoney, JMLR 22, 2021), see ``REFERENCE.md`` section 1:

* a dense / embedding / Hugging Face ``Conv1D`` weight is one ``N x M`` matrix (``N >= M``);
* a conv weight ``(out, in, *kernel)`` gives one ``out x in`` matrix per kernel position,
  ``rf = prod(kernel)`` of them. Pooled (the default) their eigenvalues form one ESD; with
  ``conv2d_norm`` each conv2d slice is scaled by ``1/sqrt(2)`` (eigenvalues x 1/2). Unpooled,
  each slice is its own row, scaled by ``sqrt(rf/2)`` (eigenvalues x rf/2).

Unlike the reference, ``N`` and ``M`` are always ``max``/``min`` of the slice shape (the
reference swaps them for even-sized kernels), and 3-D ``Conv1d`` kernels, 5-D ``Conv3d`` kernels
and transposed convolutions are sliced the same way (without the conv2d scaling).

Grouped convolutions (``groups > 1``, depthwise when every group has one input channel): with
``grouped_conv='reference'`` the stored ``(out, in / groups, *k)`` tensor is sliced as if it were
dense, as WeightWatcher 0.7.7 does (a depthwise ``(C, 1, 3, 3)`` kernel gives nine ``C x 1``
matrices, a 9-eigenvalue "ESD"). With ``grouped_conv='block'`` each kernel position's matrix is
the layer's true ``out x in`` map, block diagonal with one ``out/groups x in/groups`` block per
group; its eigenvalues are the union of the blocks' eigenvalues, so the slices are the blocks
(``rf * groups`` of them, ``M * rf`` eigenvalues in all; for a depthwise kernel the squared weights).

A LoRA product ``B @ A`` (rank ``r``) is never formed: :func:`low_rank_core` gives an ``r x r``
matrix with the same non-zero singular values, from two thin QR factorisations.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options.vocabulary import GROUPED_CONV

__all__ = ["LayerMatrices", "layer_matrices", "matrix_geometry", "low_rank_core", "NonFiniteWeightsError",
           "SpectrumRangeError", "check_spectrum_range", "GROUPED_CONV"]

#: treatments of grouped / depthwise convolutions (see the module docstring)
_CONV_TYPES = ("conv1d", "conv2d", "conv3d", "conv_transpose")


class NonFiniteWeightsError(ValueError):
    """The weight tensor holds NaN or Inf values; its spectrum is undefined."""


class SpectrumRangeError(NonFiniteWeightsError):
    """The weights are finite, but their eigenvalues (squared singular values) are not float64 numbers.

    Either the squared Frobenius norm (the sum of the eigenvalues) exceeds the float64 maximum
    (about ``1.8e308``: a weight of ``1e160`` already does), or the weights are not all zero but so
    small that every eigenvalue underflows to 0. A subclass of :class:`NonFiniteWeightsError`, so
    whoever reports that error as the layer's failure reason reports this one too.
    """


_F64 = np.finfo(np.float64)
#: weights whose largest magnitude is in this range can be neither too large nor too small for
#: float64 eigenvalues, whatever their number (up to 1e12 entries): no further check is needed
_SAFE_LOW, _SAFE_HIGH = 1e-150, 1e140
#: entries per chunk of the exact check (bounds its temporary)
_CHUNK = 1 << 20


def check_spectrum_range(W: np.ndarray) -> None:
    """Raise :class:`SpectrumRangeError` when W's eigenvalues cannot be float64 numbers.

    The eigenvalues of ``W^T W`` sum to ``||W||_F^2 <= max|w|^2 * W.size``. The common case (every
    float16 / float32 / integer tensor, and float64 weights of ordinary size) is settled by the
    largest magnitude alone; otherwise ``||W||_F^2`` is computed exactly, scaled by ``max|w|`` so
    that the computation itself neither overflows nor underflows.
    """
    if W.dtype.kind not in "f":  # integer and bool weights: |w| < 2^64, squares far below 1e308
        return
    hi, lo = float(np.max(W)), float(np.min(W))
    m = max(abs(hi), abs(lo))
    if m == 0.0 or _SAFE_LOW <= m <= _SAFE_HIGH:
        return
    if not m <= _F64.max:  # a long double beyond the float64 range
        raise SpectrumRangeError(f"eigenvalues overflow float64: the largest |weight| ({W.dtype}) is beyond "
                                 f"the float64 maximum {_F64.max:.3g}")
    flat = W.reshape(-1)
    scaled = 0.0
    for start in range(0, flat.size, _CHUNK):
        part = np.asarray(flat[start:start + _CHUNK], dtype=np.float64) / m
        scaled += float(np.dot(part, part))  # in [1, W.size]: no overflow, no harmful underflow
    log10_norm = 2.0 * np.log10(m) + np.log10(scaled)
    if log10_norm > np.log10(_F64.max):
        raise SpectrumRangeError(
            f"eigenvalues overflow float64: the largest |weight| is {m:.3g}, so the squared weights "
            f"(the eigenvalues) sum to about 1e{log10_norm:.0f}, above the float64 maximum {_F64.max:.3g}")
    if m * m * scaled == 0.0:
        raise SpectrumRangeError(
            f"eigenvalues underflow float64: the weights are not all zero, but the largest |weight| is {m:.3g}, "
            f"so every squared weight (every eigenvalue) rounds to 0")


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


def _block_groups(layer_type: str, shape: tuple, groups: int, grouped_conv: str) -> int:
    """Number of diagonal blocks to slice a conv kernel into (1: slice it as a dense kernel)."""
    if grouped_conv != "block" or groups <= 1 or layer_type not in _CONV_TYPES or len(shape) < 3:
        return 1
    # (out, in/g, *k) for a convolution, (in, out/g, *k) for a transposed one: the first axis
    # holds the groups either way
    return groups if int(shape[0]) % groups == 0 else 1


def matrix_geometry(layer_type: str, shape: tuple, *, groups: int = 1,
                    grouped_conv: str = "reference") -> tuple[int, int, int]:
    """``(N, M, rf)`` of a layer from its type and tensor shape, without loading it.

    For a grouped convolution treated as ``'block'``, ``N x M`` is the full ``out x in`` map.
    """
    if layer_type in _CONV_TYPES and len(shape) >= 3:
        g = _block_groups(layer_type, shape, groups, grouped_conv)
        out_c, in_c = int(shape[0]), int(shape[1]) * g
        rf = int(np.prod(shape[2:]))
        return max(out_c, in_c), min(out_c, in_c), rf
    if len(shape) == 2:
        return int(max(shape)), int(min(shape)), 1
    return 0, 0, 1


def layer_matrices(weights: np.ndarray, layer_type: str, *, conv2d_norm: bool = True,
                   pooled: bool = True, groups: int = 1, grouped_conv: str = "reference") -> LayerMatrices:
    """Slice a weight tensor (canonical layout, see ``sources.base``) into its matrices.

    Parameters
    ----------
    weights : ndarray
        2-D ``(rows, cols)``, or a conv kernel ``(out, in, *k)`` of 3 to 5 dimensions.
    layer_type : str
        ``'dense'``, ``'embedding'``, ``'conv1d'``, ``'conv2d'``, ``'conv3d'``, ``'conv_transpose'``...
    conv2d_norm : bool
        Apply WeightWatcher's conv2d normalisation.
    pooled : bool
        Scaling for pooled (``1/2``) or per-slice (``rf/2``) conv2d spectra.
    groups : int
        Groups of a convolution (its first axis holds ``groups`` blocks).
    grouped_conv : {'reference', 'block'}
        ``'block'`` slices each kernel position into its ``groups`` diagonal blocks (see the
        module docstring); ``'reference'`` ignores ``groups``.

    Raises
    ------
    NonFiniteWeightsError
        When the tensor holds NaN or Inf; :class:`SpectrumRangeError` (a subclass) when its
        eigenvalues would overflow float64 or all underflow to 0.
    ValueError
        When the tensor's shape does not fit the layer type, or its dtype is complex or not numeric.
    """
    W = np.asarray(weights)
    if W.ndim < 2 or W.ndim > 5 or min(W.shape) == 0:
        raise ValueError(f"a {layer_type} weight must be a non-empty 2-D to 5-D tensor; got shape {W.shape}")
    if W.dtype.kind == "c":  # casting to float64 would silently drop the imaginary parts
        raise ValueError(f"complex weights ({W.dtype}) are not supported: only real matrices are analysed")
    if W.dtype.kind in "OUSMm":  # objects, text, dates: no numbers to analyse
        raise ValueError(f"weights of dtype {W.dtype} are not numbers")
    # a sum is finite iff every term is (barring overflow near 1e308): no temporary the size of W
    with np.errstate(over="ignore", invalid="ignore"):
        total = np.sum(W, dtype=np.float64)
    if not np.isfinite(total) and not np.isfinite(W).all():
        n_nan = int(np.isnan(W).sum())
        n_inf = int(np.isinf(W).sum())
        raise NonFiniteWeightsError(f"weights contain {n_nan} NaN and {n_inf} Inf values")
    check_spectrum_range(W)
    if W.ndim == 2:
        stack = W[None, :, :]
    else:
        out_c, in_c = W.shape[:2]
        # (out, in, *k) -> (rf, out, in): one matrix per kernel position, row-major over the kernel
        stack = np.moveaxis(W.reshape(out_c, in_c, -1), 2, 0)
        g = _block_groups(layer_type, W.shape, groups, grouped_conv)
        if g > 1:  # (rf, g*b, in) -> (rf*g, b, in): the diagonal blocks of each position's map
            stack = stack.reshape(stack.shape[0] * g, out_c // g, in_c)
    if stack.shape[1] < stack.shape[2]:
        stack = np.swapaxes(stack, 1, 2)
    stack = np.ascontiguousarray(stack, dtype=np.float64)
    rf, N, M = stack.shape
    scale = 1.0
    if layer_type == "conv2d" and conv2d_norm:
        scale = 0.5 if pooled else rf / 2.0
    return LayerMatrices(stack=stack, N=N, M=M, rf=rf, eval_scale=scale)


def low_rank_core(B: np.ndarray, A: np.ndarray) -> np.ndarray:
    """An ``r x r`` matrix with the non-zero singular values of ``B @ A`` (never formed).

    With thin QR factorisations ``B = Q_B R_B`` and ``A^T = Q_A R_A``,
    ``B A = Q_B (R_B R_A^T) Q_A^T`` and the outer factors have orthonormal columns, so
    ``B A`` and ``R_B R_A^T`` share their singular values. Cost ``O((out + in) r^2)`` instead of
    ``O(out in r)`` for the product and ``O(out in min(out, in))`` for its SVD.

    Parameters
    ----------
    B : ndarray, shape (out, r)
    A : ndarray, shape (r, in)

    Raises
    ------
    ValueError
        When the inner dimensions differ.
    """
    B = np.asarray(B, dtype=np.float64)
    A = np.asarray(A, dtype=np.float64)
    if B.ndim != 2 or A.ndim != 2 or B.shape[1] != A.shape[0]:
        raise ValueError(f"cannot multiply LoRA factors of shapes {B.shape} (B) and {A.shape} (A)")
    r_b = np.linalg.qr(B, mode="r")
    r_a = np.linalg.qr(A.T, mode="r")
    return r_b @ r_a.T

r"""The matrices of the analyses that change *what* is analysed: pseudo-inverses, cross-layer products, one stacked matrix.

Each builds ordinary :class:`~spectralwatch.matrices.LayerMatrices` and hands them to the normal
per-layer pipeline (:mod:`spectralwatch.pipeline.layer`, through :mod:`spectralwatch.pipeline.cross_layer`), so every column, every fit option and every
optional analysis (``vectors``, ...) means the same thing as for a plain layer.

``inverse=True``
    Each matrix :math:`W` is replaced by its Moore-Penrose pseudo-inverse: the ESD becomes
    :math:`\{1/\lambda_i : \lambda_i > 0\}` plus the same number of zeros as before (the rank is
    unchanged; singular values below :math:`s_{max} N \epsilon` count as zero, the rule of
    ``matrix_rank``). Every column then describes :math:`W^+`: ``lambda_max`` is
    :math:`1/\lambda_{min}^{+}`, ``sv_max`` is :math:`1/s_{min}^{+}`, the tail fitted by the power
    law is made of the *smallest* eigenvalues of :math:`W^T W`.

``intra=True`` (WeightWatcher's experimental intra-layer analysis)
    For each pair of consecutive analysed layers, with matrices :math:`W_0` (first kernel
    position of a convolution) and :math:`W_1`, transposed so that their largest common size
    :math:`s` is the inner dimension,

    .. math::

        X = \frac{W_0 W_1}{\|W_0\|_F \|W_1\|_F}
        \quad\text{or, with ``sparsify=True`` (the default)}\quad
        X = \frac{W_0 S W_1}{\|W_0\|_F \|W_1\|_F + \|S\|_F^{1/2}},

    :math:`S` an :math:`s \times s` matrix of independent fair 0/1 draws (from ``rng``; it stands
    for the ReLU gates between the layers). As in WeightWatcher 0.7.7, the "eigenvalues" of the
    pair are the *singular values* :math:`\sigma_i(X)`, not their squares; here they are obtained
    as the eigenvalues of :math:`Y^T Y = (X^T X)^{1/2}` for :math:`Y = U \Sigma^{1/2} V^T`, so
    ``sv_max`` = :math:`\sigma_{max}^{1/2}` and the eigenvectors are :math:`X`'s singular vectors on
    its short side. With ``conv2d_norm`` (the default) a pair whose second layer is a conv2d has
    its values multiplied by :math:`1/\sqrt{2}` (the reference scales
    :math:`X` like a conv2d matrix). One row per compatible pair, ``layer_id`` of the second
    layer, ``name`` ``'<id0> X <id1>'``, ``Xflag=True``.

``stacked=True`` (WeightWatcher's experimental stacked analysis)
    Every analysed layer's weights :math:`B` (a dense matrix as stored, rows = outputs; a
    convolution's tall kernel-position matrices side by side) are standardised robustly,
    :math:`(B - \mathrm{median}(B)) / \mathrm{MAD}(B)`, zero-padded on the right to the widest
    layer and stacked vertically into one matrix (transposed if it is wide), analysed as one row:
    ``layer_id`` 0, ``name`` ``'Stacked Layer'``, ``layer_type`` ``'stacked'``, plus
    ``stacked_layers`` (how many layers it holds).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from .matrices import LayerMatrices, NonFiniteWeightsError, layer_matrices

__all__ = ["inverse_matrices", "pseudo_inverse", "first_matrix", "align_pair", "intra_pair_matrix", "root_matrices",
           "standardize", "stack_block", "stack_layers"]

_EPS = np.finfo(np.float64).eps


# ------------------------------------------------------------------------------------ inverse

def pseudo_inverse(W: np.ndarray) -> np.ndarray:
    r"""``(W^+)^T``: same shape as ``W``, singular values :math:`1/s_i` (0 where :math:`s_i` is 0).

    Singular values :math:`s_i \le s_{max} \max(N, M) \epsilon` are treated as zero (the
    ``matrix_rank`` rule), so the rank is preserved.
    """
    U, s, Vt = np.linalg.svd(np.asarray(W, dtype=np.float64), full_matrices=False)
    keep = s > (s[0] if s.size else 0.0) * max(W.shape) * _EPS
    inv = np.zeros_like(s)
    inv[keep] = 1.0 / s[keep]
    return (U * inv) @ Vt


def inverse_matrices(mats: LayerMatrices) -> LayerMatrices:
    """The layer's matrices replaced by their (transposed) pseudo-inverses; eigenvalues become 1/lambda."""
    stack = np.stack([pseudo_inverse(W) for W in mats.stack])
    return dataclasses.replace(mats, stack=stack, eval_scale=1.0 / mats.eval_scale)


# -------------------------------------------------------------------------------------- intra

def first_matrix(tensor: np.ndarray) -> np.ndarray:
    """A dense weight as stored; a conv kernel ``(out, in, *k)``: its first position, oriented tall."""
    W = np.asarray(tensor, dtype=np.float64)
    if W.ndim > 2:
        W = W.reshape(W.shape[0], W.shape[1], -1)[:, :, 0]
        if W.shape[0] < W.shape[1]:
            W = W.T
    return W


def align_pair(W0: np.ndarray, W1: np.ndarray):
    """Transpose ``W0``, ``W1`` so that ``W0 @ W1`` contracts their largest common size.

    Returns ``(W0, W1)``, or ``None`` when the two matrices have no size in common.
    """
    common = set(W0.shape) & set(W1.shape)
    if not common:
        return None
    s = max(common)
    if W0.shape[1] != s:
        W0 = W0.T
    if W1.shape[0] != s:
        W1 = W1.T
    return W0, W1


def intra_pair_matrix(W0: np.ndarray, W1: np.ndarray, *, sparsify: bool = False, rng=None) -> np.ndarray:
    r"""The normalised product :math:`X` of two aligned matrices (see the module docstring)."""
    norm = np.linalg.norm(W0) * np.linalg.norm(W1)
    if not sparsify:
        return (W0 @ W1) / norm
    gen = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
    s = W0.shape[1]
    S = gen.integers(0, 2, size=(s, s)).astype(np.float64)
    return (W0 @ S @ W1) / (norm + np.sqrt(np.linalg.norm(S)))


def root_matrices(X: np.ndarray, eval_scale: float = 1.0) -> LayerMatrices:
    """Matrices whose ESD is the singular values of ``X``: ``Y = U diag(sqrt(sigma)) V^T``, tall."""
    U, sv, Vt = np.linalg.svd(X, full_matrices=False)
    sv = np.where(sv > (sv[0] if sv.size else 0.0) * max(X.shape) * _EPS, sv, 0.0)  # exact zeros
    Y = (U * np.sqrt(sv)) @ Vt
    if Y.shape[0] < Y.shape[1]:
        Y = Y.T
    return LayerMatrices(stack=np.ascontiguousarray(Y[None]), N=Y.shape[0], M=Y.shape[1], rf=1,
                         eval_scale=eval_scale)


# ------------------------------------------------------------------------------------ stacked

def standardize(B: np.ndarray) -> np.ndarray:
    r"""Robust standardisation :math:`(B - \mathrm{median}(B)) / \mathrm{MAD}(B)` over all entries.

    When more than half of the entries are equal (MAD = 0, e.g. a pruned layer) the standard
    deviation is used instead; a constant matrix becomes all zeros.
    """
    B = np.asarray(B, dtype=np.float64)
    centred = B - np.median(B)
    scale = np.median(np.abs(centred))
    if not scale > 0:
        scale = centred.std()
    return centred / scale if scale > 0 else np.zeros_like(centred)


def stack_block(tensor: np.ndarray, layer_type: str) -> np.ndarray:
    """One layer's block: a 2-D weight as stored, a conv kernel's tall slices side by side."""
    if np.ndim(tensor) == 2:
        if not np.isfinite(tensor).all():
            raise NonFiniteWeightsError("weights contain NaN or Inf values")
        return np.asarray(tensor, dtype=np.float64)
    mats = layer_matrices(tensor, layer_type, conv2d_norm=False)
    return np.concatenate(list(mats.stack), axis=1)


def stack_layers(blocks: list) -> np.ndarray:
    """Standardise each block, zero-pad to the widest, stack vertically; tall orientation."""
    width = max(B.shape[1] for B in blocks)
    padded = [np.pad(standardize(B), ((0, 0), (0, width - B.shape[1]))) for B in blocks]
    W = np.vstack(padded)
    return W.T if W.shape[0] < W.shape[1] else W

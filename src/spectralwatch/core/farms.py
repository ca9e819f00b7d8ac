r"""FARMS: the spectrum of fixed-aspect-ratio sub-matrices (Hu et al., ICML 2025)."""

from __future__ import annotations

import numpy as np

__all__ = ["farms_spectrum"]


def _starts(total: int, size: int) -> np.ndarray:
    """Start offsets of ``ceil(total / size)`` windows of ``size`` evenly covering ``0..total``."""
    count = -(-total // size)
    return np.unique(np.round(np.linspace(0, total - size, count)).astype(int))


def farms_spectrum(stack: np.ndarray, q: float = 1.0):
    r"""Pooled eigenvalues of the fixed-aspect-ratio sub-matrices of each matrix of ``stack``.

    FARMS (Hu et al., "Eigenspectrum analysis of neural networks without aspect ratio bias",
    ICML 2025): the ESD of a weight matrix depends on its aspect ratio :math:`Q = N/M`, which
    biases alpha between layers of different shapes; FARMS measures the *average* ESD of
    sub-matrices that all have the same aspect ratio. Here each tall ``N x M`` matrix is covered by
    ``ceil(N / (q s)) x ceil(M / s)`` windows of ``round(q s) x s`` entries (``s = M``, or
    ``floor(N / q)`` when ``N < q M``), spaced evenly, and the eigenvalues of all windows are
    pooled: the pooled sample is the average of the windows' ESDs, each having ``s`` eigenvalues.
    With ``q = 1`` a square matrix is its own single window. (The paper's own window sizes and
    strides may differ; ``q`` is its aspect ratio.)

    Returns
    -------
    evals : ndarray
        Sorted pooled eigenvalues (units of ``W^T W`` of the windows).
    windows : int
    """
    k, N, M = stack.shape
    s = M if N >= q * M else max(1, int(N // q))
    rows = min(N, max(1, int(round(q * s))))
    r0, c0 = _starts(N, rows), _starts(M, s)
    blocks = np.stack([stack[i, a:a + rows, b:b + s] for i in range(k) for a in r0 for b in c0])
    gram = np.einsum("kij,kil->kjl", blocks, blocks, optimize=True)
    evals = np.linalg.eigvalsh(gram).ravel()
    return np.sort(np.clip(evals, 0.0, None)), blocks.shape[0]

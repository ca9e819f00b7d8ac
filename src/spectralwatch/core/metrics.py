"""Per-layer metrics computed from a layer's eigenvalues (REFERENCE.md section 3).

All functions are pure: arrays in, numbers out. Formulas follow WeightWatcher 0.7.7 and
Martin, Peng & Mahoney, "Predicting trends in the quality of state-of-the-art neural networks
without access to training or testing data", Nature Communications 12, 4122 (2021).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

__all__ = ["SpectralMetrics", "spectral_metrics", "matrix_rank", "numerical_rank", "matrix_entropy",
           "alpha_metrics"]

_EPS = np.finfo(np.float64).eps
#: WeightWatcher's additive guard in the entropy (keeps log(0) out of the sum)
ENTROPY_EPSILON = 1e-10


def matrix_rank(svals: np.ndarray, N: int) -> int:
    """Numerical rank: ``#{s > s_max * N * eps}`` (the rule of ``numpy.linalg.matrix_rank``)."""
    svals = np.asarray(svals, dtype=np.float64)
    if svals.size == 0:
        return 0
    return int(np.count_nonzero(svals > svals.max() * N * _EPS))


def numerical_rank(svals: np.ndarray, N: int, storage_tol: float = 0.0) -> int:
    """Rank at the stored precision: ``#{s > max(s_max * N * eps64, storage_tol)}`` (:mod:`.precision`).

    ``N`` is the long side of the matrix (``max(N, M)``); ``storage_tol`` the rounding-noise bound
    of the stored format (:func:`spectralwatch.core.precision.storage_noise_bound`), 0 for float64
    or exact integers, where this is :func:`matrix_rank`.
    """
    svals = np.asarray(svals, dtype=np.float64)
    if svals.size == 0:
        return 0
    return int(np.count_nonzero(svals > max(svals.max() * N * _EPS, float(storage_tol))))


def matrix_entropy(evals: np.ndarray, rank: int) -> float:
    """Normalised matrix (von Neumann) entropy ``-sum p ln p / ln(rank)``, ``p = lambda / sum(lambda)``.

    Computed like WeightWatcher: ``1e-10`` is added to every ``p`` and to the rank. Returns NaN for
    an all-zero spectrum.
    """
    evals = np.asarray(evals, dtype=np.float64)
    total = evals.sum()
    if not total > 0:
        return float("nan")
    p = evals / total + ENTROPY_EPSILON
    return float(-np.sum(p * np.log(p)) / np.log(rank + ENTROPY_EPSILON))


@dataclass(frozen=True)
class SpectralMetrics:
    """Fit-independent metrics of one layer (column names of the details table)."""

    num_evals: int
    lambda_max: float
    sv_max: float
    sv_min: float
    norm: float
    log_norm: float
    spectral_norm: float
    log_spectral_norm: float
    stable_rank: float
    matrix_rank: int
    rank_loss: int
    numerical_rank: int
    numerical_rank_loss: int
    weak_rank_loss: int
    entropy: float

    def as_dict(self) -> dict:
        return asdict(self)


def _log10(x: float) -> float:
    return float(np.log10(x)) if x > 0 else float("nan")


def spectral_metrics(evals: np.ndarray, svals_per_slice: np.ndarray, N: int, *,
                     tolerance: float = 1e-6, storage_tol=None) -> SpectralMetrics:
    """Metrics of a (pooled) spectrum.

    Parameters
    ----------
    evals : ndarray
        The layer's eigenvalues (all slices pooled), any order.
    svals_per_slice : ndarray, shape (rf, M)
        Singular values of each matrix (for ``sv_min`` and the per-slice ``rank_loss``).
    N : int
        Long side of the matrices (enters the rank tolerance ``s_max * N * eps``).
    tolerance : float
        ``weak_rank_loss`` counts eigenvalues below it.
    storage_tol : array_like, shape (rf,), optional
        Per matrix, the rounding-noise bound of the stored precision in the units of the singular
        values (:func:`spectralwatch.core.precision.storage_noise_bound`); None means float64
        storage (``numerical_rank`` is then the per-matrix reference rank).

    Notes
    -----
    ``norm = sum(lambda)`` (squared Frobenius norm), ``stable_rank = norm / lambda_max``,
    ``matrix_rank`` on the pooled singular values, ``rank_loss`` = sum over slices of
    ``M - rank(slice)``. ``sv_min`` is the smallest singular value over all slices (WeightWatcher
    0.7.7 reports the largest of the per-slice minima). ``numerical_rank`` is the sum over the
    matrices of :func:`numerical_rank` (so ``numerical_rank + numerical_rank_loss = num_evals``).
    """
    evals = np.asarray(evals, dtype=np.float64)
    lam_max = float(evals.max())
    norm = float(evals.sum())
    svals = np.sqrt(evals)
    rank = matrix_rank(svals, N)
    rank_loss = sum(len(s) - matrix_rank(s, N) for s in svals_per_slice)
    tols = np.zeros(len(svals_per_slice)) if storage_tol is None else np.broadcast_to(
        np.asarray(storage_tol, dtype=np.float64), (len(svals_per_slice),))
    num_rank = sum(numerical_rank(s, N, t) for s, t in zip(svals_per_slice, tols))
    return SpectralMetrics(
        num_evals=int(evals.size),
        lambda_max=lam_max,
        sv_max=float(np.sqrt(lam_max)),
        sv_min=float(np.min(svals_per_slice)),
        norm=norm,
        log_norm=_log10(norm),
        spectral_norm=lam_max,
        log_spectral_norm=_log10(lam_max),
        stable_rank=norm / lam_max if lam_max > 0 else float("nan"),
        matrix_rank=rank,
        rank_loss=int(rank_loss),
        numerical_rank=int(num_rank),
        numerical_rank_loss=int(evals.size - num_rank),
        weak_rank_loss=int(np.count_nonzero(evals < tolerance)),
        entropy=matrix_entropy(evals, rank),
    )


def alpha_metrics(evals: np.ndarray, alpha: float) -> dict:
    """``alpha_weighted = alpha * log10(lambda_max)`` and ``log_alpha_norm = log10(sum lambda^alpha)``.

    Both are NaN when the fit failed (WeightWatcher computes them with ``alpha = -1``). When
    ``lambda^alpha`` overflows (or underflows to 0) in float64, ``log_alpha_norm`` is computed as
    ``alpha log10(lambda_max) + log10(sum (lambda / lambda_max)^alpha)``, which is finite.
    """
    if not alpha > 0:
        return {"alpha_weighted": float("nan"), "log_alpha_norm": float("nan")}
    evals = np.asarray(evals, dtype=np.float64)
    lam_max = float(evals.max())
    with np.errstate(over="ignore", under="ignore"):
        s = float(np.sum(evals ** alpha))
        log_alpha_norm = _log10(s)
        if not 0.0 < s < np.inf and lam_max > 0:  # out of float64 range: in units of lambda_max^alpha
            log_alpha_norm = alpha * float(np.log10(lam_max)) + float(np.log10(np.sum((evals / lam_max) ** alpha)))
    return {"alpha_weighted": alpha * _log10(lam_max), "log_alpha_norm": log_alpha_norm}

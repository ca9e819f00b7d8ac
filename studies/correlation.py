r"""Rank correlations between a metric and accuracy, with seeded bootstrap intervals.

Both statistics are computed for many resamples at once (one row per resample), so a bootstrap of
a few thousand resamples over a few dozen networks takes milliseconds.

* Spearman's :math:`\rho`: the Pearson correlation of the ranks (ties get their average rank),
  Spearman (1904).
* Kendall's :math:`\tau_b`: :math:`\tau_b = \sum_{i<j} s^x_{ij} s^y_{ij} /
  \sqrt{\sum_{i<j} |s^x_{ij}| \sum_{i<j} |s^y_{ij}|}` with :math:`s^x_{ij} = \mathrm{sign}(x_i - x_j)`,
  which is Kendall's (1945) tie-corrected form (pairs tied in x or in y leave the denominator).
* Bootstrap: networks are resampled with replacement (Efron & Tibshirani 1993, the percentile
  interval); metric and accuracy of one network stay together, and every metric of one design is
  resampled with the same indices. A resample in which the metric or the accuracy is constant has no
  correlation and is left out (``n_boot_valid`` says how many remain).
"""

from __future__ import annotations

import numpy as np

__all__ = ["spearman", "kendall_tau_b", "bootstrap_indices", "correlate"]


def _as_rows(x) -> np.ndarray:
    x = np.asarray(x, dtype=float)
    return x[None, :] if x.ndim == 1 else x


def _rank_rows(x: np.ndarray) -> np.ndarray:
    from scipy.stats import rankdata

    return rankdata(x, axis=-1)  # average ranks for ties


def spearman(x, y) -> np.ndarray:
    """Spearman's rho of each row of ``x`` with the same row of ``y`` (NaN where a row is constant).

    ``x`` and ``y``: arrays of shape (n,) or (rows, n). Returns shape (rows,).
    """
    rx, ry = _rank_rows(_as_rows(x)), _rank_rows(_as_rows(y))
    rx = rx - rx.mean(axis=-1, keepdims=True)
    ry = ry - ry.mean(axis=-1, keepdims=True)
    den = np.sqrt((rx * rx).sum(-1) * (ry * ry).sum(-1))
    with np.errstate(invalid="ignore", divide="ignore"):
        rho = (rx * ry).sum(-1) / den
    return np.where(den > 0, np.clip(rho, -1.0, 1.0), np.nan)


def kendall_tau_b(x, y) -> np.ndarray:
    """Kendall's tau-b of each row of ``x`` with the same row of ``y`` (NaN where a row is constant).

    Uses all n^2 ordered pairs (each unordered pair twice and the diagonal as ties, which cancels in
    the ratio): memory rows x n^2, fine for the few dozen networks of one design.
    """
    x, y = _as_rows(x), _as_rows(y)
    sx = np.sign(x[:, :, None] - x[:, None, :])
    sy = np.sign(y[:, :, None] - y[:, None, :])
    num = (sx * sy).sum(axis=(1, 2))
    den = np.sqrt(np.abs(sx).sum(axis=(1, 2)) * np.abs(sy).sum(axis=(1, 2)))
    with np.errstate(invalid="ignore", divide="ignore"):
        tau = num / den
    return np.where(den > 0, np.clip(tau, -1.0, 1.0), np.nan)


def bootstrap_indices(n: int, n_boot: int, seed) -> np.ndarray:
    """``n_boot`` resamples of ``range(n)`` with replacement, shape (n_boot, n), from ``default_rng(seed)``."""
    if n < 2:
        raise ValueError(f"a correlation needs at least 2 networks; got {n}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be a positive int; got {n_boot}")
    return np.random.default_rng(seed).integers(0, n, size=(n_boot, n))


def _interval(values: np.ndarray, level: float) -> tuple:
    ok = values[np.isfinite(values)]
    if not len(ok):
        return (np.nan, np.nan)
    lo, hi = np.quantile(ok, [(1 - level) / 2, (1 + level) / 2])
    return (float(lo), float(hi))


def correlate(metric, accuracy, *, indices: np.ndarray, level: float = 0.95) -> dict:
    """Spearman and Kendall correlation of ``metric`` with ``accuracy`` and their bootstrap intervals.

    Parameters
    ----------
    metric, accuracy : array of shape (n,)
        One value per network.
    indices : array of shape (n_boot, n)
        The resamples (:func:`bootstrap_indices`); shared between metrics so their intervals are paired.
    level : float
        Coverage of the percentile interval.

    Returns
    -------
    dict with ``n``, ``spearman``, ``spearman_lo``, ``spearman_hi``, ``kendall``, ``kendall_lo``,
    ``kendall_hi``, ``n_boot_valid``.
    """
    m = np.asarray(metric, dtype=float)
    a = np.asarray(accuracy, dtype=float)
    if m.shape != a.shape or m.ndim != 1:
        raise ValueError(f"metric and accuracy must be 1-d of one length; got {m.shape} and {a.shape}")
    if not (np.isfinite(m).all() and np.isfinite(a).all()):
        raise ValueError("metric and accuracy must be finite (drop the networks whose metric failed first)")
    bm, ba = m[indices], a[indices]
    rho_b, tau_b = spearman(bm, ba), kendall_tau_b(bm, ba)
    s_lo, s_hi = _interval(rho_b, level)
    k_lo, k_hi = _interval(tau_b, level)
    return {"n": len(m), "spearman": float(spearman(m, a)[0]), "spearman_lo": s_lo, "spearman_hi": s_hi,
            "kendall": float(kendall_tau_b(m, a)[0]), "kendall_lo": k_lo, "kendall_hi": k_hi,
            "n_boot_valid": int(np.isfinite(rho_b).sum())}

r"""The exact, bounded Kolmogorov-Smirnov scan over candidate ``xmin`` of :mod:`spectralwatch.fit`.

Each candidate's distance :math:`D_i` (see :mod:`spectralwatch.fit` for the definitions) is bounded
from below by its maximum over a few sampled tail positions; candidates are evaluated exactly in
order of increasing bound, and the scan stops when no remaining bound is below the best exact
:math:`D`. The result is the same candidate an exhaustive scan finds (the first of smallest D).
Also the small-n estimator, the ``xmin_peak`` window and ``clip_xmax``'s finger removal.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

SMALL_N_CUTOFF = 20  # below this many eigenvalues the small-n estimator is used
SMALL_N_MIN_TAIL = 8  # smallest tail the small-n estimator considers

_DENSE_MAX_N = 256  # up to this size every D is computed; above it, the bounded scan
_LB_LEVELS = (16, 64, 256, 1024)  # sampled tail positions per candidate, coarse to fine
_SEED = 8  # candidates of smallest bound evaluated exactly to start the scan
_CHUNK = 1 << 15  # elements per 2-D block of the exact evaluation
_SLACK = 1e-12  # absorbs last-ulp differences between bound and exact terms


class Scan(NamedTuple):
    """Internal outcome of one scan: chosen index and per-candidate arrays."""

    best: int
    alphas: np.ndarray
    Ds: np.ndarray
    data: np.ndarray
    message: str = ""


def log_values(data: np.ndarray) -> np.ndarray:
    """``ln(x / median)``: smaller magnitudes than ``ln x``, hence more accurate differences."""
    return np.log(data / data[data.size // 2])


def _tail_stats(logd: np.ndarray):
    """Tail sizes ``t`` and sums ``s_i = sum_{j>=i} ln(x_j/x_i)`` of all candidates.

    ``s_i = s_{i+1} + (t - 1)(ln x_{i+1} - ln x_i)`` is accumulated from the
    top: every term is >= 0, so there is no cancellation and ``s_i = 0``
    exactly when the tail is constant.
    """
    n = logd.size
    t = np.arange(n, 1, -1, dtype=np.float64)
    s = np.cumsum(((t - 1.0) * np.diff(logd))[::-1])[::-1]
    return t, s


def exact_ks(logd: np.ndarray, alphas: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Exact ``D`` of the candidates ``idx`` (ascending), in padded 2-D blocks.

    Rows are padded with ``+inf`` logs: their terms become ``|1 - 0 - 1| = 0``.
    """
    n = logd.size
    out = np.ones(idx.size)
    with np.errstate(invalid="ignore"):
        ok = np.flatnonzero(alphas[idx] > 1.0)
    if ok.size == 0:
        return out
    windows = sliding_window_view(np.concatenate([logd, np.full(n, np.inf)]), n)
    start = 0
    while start < ok.size:
        width = n - idx[ok[start]]
        stop = min(ok.size, start + max(1, _CHUNK // width))
        rows = idx[ok[start:stop]]
        t = (n - rows).astype(np.float64)[:, None]
        block = windows[rows, :width] - logd[rows, None]
        block *= (1.0 - alphas[rows])[:, None]
        np.exp(block, out=block)
        np.subtract(1.0, block, out=block)
        block -= np.minimum(np.arange(width) / t, 1.0)
        np.abs(block, out=block)
        out[ok[start:stop]] = block.max(axis=1)
        start = stop
    return out


def _lower_bound(logd: np.ndarray, alphas: np.ndarray, idx: np.ndarray,
                 samples: int) -> np.ndarray:
    """Lower bound of ``D`` per candidate: the maximum over sampled tail positions.

    The block is laid out (samples, candidates) so the reduction is vectorised.
    """
    t = (logd.size - idx).astype(np.float64)
    k = np.floor(np.linspace(0.0, 1.0, samples)[:, None] * (t - 1.0))
    block = np.take(logd, k.astype(np.intp) + idx)
    block -= logd[idx]
    block *= 1.0 - alphas[idx]
    np.exp(block, out=block)
    np.subtract(1.0, block, out=block)
    k /= t
    block -= k
    np.abs(block, out=block)
    bound = block.max(axis=0)
    with np.errstate(invalid="ignore"):
        bound[~(alphas[idx] > 1.0)] = 1.0
    return bound


def _argmin_ks(logd: np.ndarray, alphas: np.ndarray, idx: np.ndarray):
    """First candidate of ``idx`` (ascending) with smallest exact ``D``.

    Bounds from ever more sampled positions prune the candidates; survivors
    are evaluated exactly in order of increasing bound until no bound is below
    the best exact ``D``. Returns the chosen position in ``idx`` and ``D`` for
    all of ``idx`` (NaN where a candidate was proved unable to win).
    """
    if logd.size <= _DENSE_MAX_N or idx.size <= 2 * _LB_LEVELS[0]:
        Ds = exact_ks(logd, alphas, idx)
        return int(np.argmin(Ds)), Ds
    Ds = np.full(idx.size, np.nan)
    bound = _lower_bound(logd, alphas, idx, _LB_LEVELS[0])
    live, best_d = np.arange(idx.size), np.inf
    for samples in _LB_LEVELS[1:] + (0,):
        seed = np.sort(live[np.argsort(bound[live], kind="stable")[:_SEED]])
        Ds[seed] = exact_ks(logd, alphas, idx[seed])
        best_d = min(best_d, float(Ds[seed].min()))
        live = live[np.isnan(Ds[live]) & (bound[live] - _SLACK <= best_d)]
        if live.size <= _SEED or samples == 0:
            break
        finer = _lower_bound(logd, alphas, idx[live], samples)
        bound[live] = np.maximum(bound[live], finer)
    live = live[np.argsort(bound[live], kind="stable")]
    done, batch = 0, _SEED
    while done < live.size and bound[live[done]] - _SLACK <= best_d:
        todo = live[done:done + batch]
        todo = np.sort(todo[bound[todo] - _SLACK <= best_d])
        Ds[todo] = exact_ks(logd, alphas, idx[todo])
        best_d = min(best_d, float(Ds[todo].min()))
        done, batch = done + batch, batch * 4
    return int(np.flatnonzero(Ds == best_d)[0]), Ds


def failed_scan(message: str) -> Scan:
    return Scan(-1, np.empty(0), np.empty(0), np.empty(0), message)


def scan_ks(data: np.ndarray, candidates: np.ndarray | None = None) -> Scan:
    """Maximum-likelihood alpha for every candidate and KS selection of ``xmin``."""
    logd = log_values(data)
    t, s = _tail_stats(logd)
    with np.errstate(divide="ignore", invalid="ignore"):
        alphas = np.where(s > 0.0, 1.0 + t / s, np.nan)
    idx = np.arange(t.size) if candidates is None else candidates
    pos, ds = _argmin_ks(logd, alphas, idx)
    Ds = np.full(t.size, np.nan)
    Ds[idx] = ds
    if not np.isfinite(alphas[idx[pos]]):
        return failed_scan(f"all {data.size} eigenvalues are equal" if candidates is None
                            else "the tail above every candidate xmin is constant")
    return Scan(int(idx[pos]), alphas, Ds, data)


def scan_small_n(data: np.ndarray) -> Scan:
    """Small-n variant: bias-corrected alpha on tails of at least 8 values.

    As in the reference, the reported candidate is the first minimum of ``D``
    (ineligible candidates have ``alpha = 0`` and ``D = 1``); if no candidate
    is eligible the whole sample is the tail.
    """
    n = data.size
    logd = log_values(data)
    t, s = _tail_stats(logd)
    eligible = (t >= SMALL_N_MIN_TAIL) & (s > 1e-12)
    alphas = np.zeros(n - 1)
    note = f"small-n fit on {n} eigenvalues"
    if eligible.any():
        alphas[eligible] = 1.0 + (t[eligible] - 1.0) / s[eligible]
        Ds = exact_ks(logd, alphas, np.arange(n - 1))
        return Scan(int(np.argmin(Ds)), alphas, Ds, data, note)
    if not s[0] > 1e-12:
        return failed_scan(f"all {n} eigenvalues are equal")
    alphas[0] = 1.0 + (n - 1.0) / s[0]
    Ds = np.ones(n - 1)
    Ds[0] = exact_ks(logd, alphas, np.zeros(1, dtype=np.intp))[0]
    return Scan(0, alphas, Ds, data, note)


def scan_default(data: np.ndarray) -> Scan:
    return scan_small_n(data) if data.size < SMALL_N_CUTOFF else scan_ks(data)


def peak_window(data: np.ndarray, xmin_max: float | None):
    """``(low, high)`` of the ``xmin_peak`` rule, or a message why there is none.

    The peak is the left edge of the fullest bin of a 100-bin histogram of
    ``log10(data)``; ``low = 0.95 * peak`` and ``high = xmin_max``, default ``1.5 * peak``.
    """
    counts, edges = np.histogram(np.log10(data), bins=100)
    peak = 10.0 ** edges[int(np.argmax(counts))]
    low = 0.95 * peak
    high = 1.5 * peak if xmin_max is None else xmin_max
    if high < low:
        return None, (f"xmin_max={xmin_max:g} is below 0.95 times the ESD peak ({low:g})")
    return (low, high), ""


def scan_window(data: np.ndarray, window) -> Scan:
    """KS scan restricted to the candidates ``window[0] <= xmin <= window[1]``."""
    low, high = window
    idx = np.flatnonzero((data[:-1] >= low) & (data[:-1] <= high))
    if idx.size == 0:
        return failed_scan(f"no candidate xmin between {low:g} and {high:g}")
    return scan_ks(data, idx)


def scan_xmin_peak(data: np.ndarray, xmin_max: float | None) -> Scan:
    """KS scan restricted to ``0.95 * peak <= xmin <= xmin_max`` (see :func:`peak_window`)."""
    window, message = peak_window(data, xmin_max)
    return failed_scan(message) if window is None else scan_window(data, window)


def scan_clip_xmax(data: np.ndarray, max_fingers: int, finger_thresh: float):
    """Remove up to ``max_fingers - 2`` top eigenvalues while alpha drops enough.

    Returns the kept scan, the alpha of the unclipped fit and the number of
    fingers removed.
    """
    first = scan_default(data)
    if first.best < 0:
        return first, -1.0, 0
    first_alpha = float(first.alphas[first.best])
    n = data.size
    for idx in range(2, min(max_fingers, n // 2)):
        if n - idx < 2:
            break
        fit = scan_default(data[:-idx])
        if fit.best < 0:
            break
        alpha = float(fit.alphas[fit.best])
        if alpha + finger_thresh < first_alpha:
            return fit, first_alpha, idx - 1
        if alpha <= 2.0:
            break
    return first, first_alpha, 0

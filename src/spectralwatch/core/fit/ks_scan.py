r"""The Kolmogorov-Smirnov scan over candidate ``xmin``: of one sample, and of many samples at once.

For a sorted sample :math:`x_0 \le \dots \le x_{n-1}` every :math:`x_i` (:math:`i \le n-2`) is a
candidate cut-off with a tail of :math:`t = n - i` values, the power-law maximum-likelihood exponent
:math:`\hat\alpha_i = 1 + t/s_i` (:math:`s_i = \sum_{j\ge i}\ln(x_j/x_i)`) and the KS distance

.. math::

    D_i = \max_{0 \le k < t} \left| 1 - (x_{i+k}/x_i)^{1-\hat\alpha_i} - k/t \right| ,

and the scan picks the first candidate of smallest :math:`D_i` (Clauset, Shalizi & Newman, SIAM
Review 51 (2009), section 3.3; WeightWatcher's fitter). Both entry points are exact: the choice,
alpha and D are those of the exhaustive scan, bit for bit; they prune with lower bounds of each
:math:`D_i` (its maximum over a few sampled :math:`k`) and evaluate candidates exactly in order of
increasing bound until no bound is below the best exact :math:`D`.

* :func:`scan_ks` and its variants (small n, a window of candidates, ``clip_xmax``): one sample,
  the default fit of :func:`spectralwatch.fit_power_law` and of every layer.
* :func:`batch_scan`: every row of a 2-D array (bootstrap replicates, synthetic goodness-of-fit
  samples), optionally with tied values merged (Clauset et al.'s convention).

The two share the kernels (:func:`log_values`, :func:`tail_sums`, :func:`ks_terms`) and differ
only in their pruning schedule, tuned for one long sample against many short ones (the constants
below say why).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["SMALL_N_CUTOFF", "SMALL_N_MIN_TAIL", "Scan", "BatchScan", "log_values", "tail_sums", "ks_terms",
           "exact_ks", "scan_ks", "scan_small_n", "scan_default", "scan_window", "scan_xmin_peak",
           "scan_clip_xmax", "peak_window", "failed_scan", "batch_scan", "first_positions"]

# WeightWatcher's small-sample rule: below SMALL_N_CUTOFF values the exponent is the bias-corrected
# 1 + (t - 1)/s, on tails of at least SMALL_N_MIN_TAIL values (the reference's constants)
SMALL_N_CUTOFF = 20
SMALL_N_MIN_TAIL = 8
# ties in the D of two candidates closer than this are rounding (bound and exact terms are computed
# in different orders): a bound is pruned only when it exceeds the best D by more than SLACK
SLACK = 1e-12
# elements of one 2-D block of exact KS terms (256 KiB of float64: stays in the L2 cache)
BLOCK_ELEMENTS = 1 << 15
# candidates of smallest bound evaluated exactly first (one sample), or per row in the first round,
# x4 each further round (many samples); 8 is enough for the minimum to be among them most times
SEED_CANDIDATES = 8

# -- one sample: n up to DENSE_MAX_N: every D exactly (n^2/2 terms are cheaper than any pruning);
# above it, bounds from ever more sampled tail positions, coarse to fine (each level 4x the last
# prunes most of the survivors of the previous one; measured on spectra of 300-30000 values)
DENSE_MAX_N = 256
BOUND_LEVELS = (16, 64, 256, 1024)

# -- many samples: rows up to BATCH_DENSE_MAX_N values: every D as one broadcast (B, n, n) block;
# above it one level of 8-position bounds, then exact rounds (finer bounds for all candidates of all
# rows measured slower than exact distances of the few survivors per row)
BATCH_DENSE_MAX_N = 40
BATCH_BOUND_LEVELS = (8,)
# (B, n, n) elements of one block of the dense batched evaluation (16 MiB of float64)
BATCH_DENSE_ELEMENTS = 1 << 21


class Scan(NamedTuple):
    """Internal outcome of one scan: chosen index and per-candidate arrays."""

    best: int
    alphas: np.ndarray
    Ds: np.ndarray
    data: np.ndarray
    message: str = ""


def log_values(data: np.ndarray) -> np.ndarray:
    """``ln(x / median)`` along the last axis (rows sorted): smaller magnitudes than ``ln x``, hence
    more accurate differences."""
    n = data.shape[-1]
    return np.log(data / data[..., [n // 2]])


def tail_sums(logd: np.ndarray):
    """Tail sizes ``t`` and sums ``s_i = sum_{j>=i} ln(x_j/x_i)`` of all candidates (last axis).

    ``s_i = s_{i+1} + (t - 1)(ln x_{i+1} - ln x_i)`` is accumulated from the
    top: every term is >= 0, so there is no cancellation and ``s_i = 0``
    exactly when the tail is constant.
    """
    n = logd.shape[-1]
    t = np.arange(n, 1, -1, dtype=np.float64)
    s = np.cumsum(((t - 1.0) * np.diff(logd, axis=-1))[..., ::-1], axis=-1)[..., ::-1]
    return t, s


def ks_terms(block: np.ndarray, one_minus_alpha, k_over_t) -> np.ndarray:
    """In place: ``block`` of ``ln(x_{i+k}/x_i)`` becomes ``|1 - (x_{i+k}/x_i)^(1-alpha) - k/t|``.

    The one kernel of every KS distance here (exact, bounds, one sample or many): the same
    operations in the same order, hence bit-identical terms whichever path computes them.
    ``one_minus_alpha`` and ``k_over_t`` broadcast against ``block``.
    """
    block *= one_minus_alpha
    with np.errstate(over="ignore", invalid="ignore"):
        np.exp(block, out=block)
    np.subtract(1.0, block, out=block)
    block -= k_over_t
    np.abs(block, out=block)
    return block


def exact_ks(logd: np.ndarray, alphas: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Exact ``D`` of the candidates ``idx`` (ascending) of one sample, in padded 2-D blocks.

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
        stop = min(ok.size, start + max(1, BLOCK_ELEMENTS // width))
        rows = idx[ok[start:stop]]
        t = (n - rows).astype(np.float64)[:, None]
        block = windows[rows, :width] - logd[rows, None]
        ks_terms(block, (1.0 - alphas[rows])[:, None], np.minimum(np.arange(width) / t, 1.0))
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
    bound = ks_terms(block, 1.0 - alphas[idx], k / t).max(axis=0)
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
    if logd.size <= DENSE_MAX_N or idx.size <= 2 * BOUND_LEVELS[0]:
        Ds = exact_ks(logd, alphas, idx)
        return int(np.argmin(Ds)), Ds
    Ds = np.full(idx.size, np.nan)
    bound = _lower_bound(logd, alphas, idx, BOUND_LEVELS[0])
    live, best_d = np.arange(idx.size), np.inf
    for samples in BOUND_LEVELS[1:] + (0,):
        seed = np.sort(live[np.argsort(bound[live], kind="stable")[:SEED_CANDIDATES]])
        Ds[seed] = exact_ks(logd, alphas, idx[seed])
        best_d = min(best_d, float(Ds[seed].min()))
        live = live[np.isnan(Ds[live]) & (bound[live] - SLACK <= best_d)]
        if live.size <= SEED_CANDIDATES or samples == 0:
            break
        finer = _lower_bound(logd, alphas, idx[live], samples)
        bound[live] = np.maximum(bound[live], finer)
    live = live[np.argsort(bound[live], kind="stable")]
    done, batch = 0, SEED_CANDIDATES
    while done < live.size and bound[live[done]] - SLACK <= best_d:
        todo = live[done:done + batch]
        todo = np.sort(todo[bound[todo] - SLACK <= best_d])
        Ds[todo] = exact_ks(logd, alphas, idx[todo])
        best_d = min(best_d, float(Ds[todo].min()))
        done, batch = done + batch, batch * 4
    return int(np.flatnonzero(Ds == best_d)[0]), Ds


def failed_scan(message: str) -> Scan:
    return Scan(-1, np.empty(0), np.empty(0), np.empty(0), message)


def scan_ks(data: np.ndarray, candidates: np.ndarray | None = None) -> Scan:
    """Maximum-likelihood alpha for every candidate and KS selection of ``xmin``."""
    logd = log_values(data)
    t, s = tail_sums(logd)
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
    t, s = tail_sums(logd)
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


# --------------------------------------------------------------------------------------------
# many samples at once
# --------------------------------------------------------------------------------------------
# rows of one batch are scanned in groups of at most this many values (row count x row length):
# the scan holds about a dozen float64 arrays of that size, so a group needs ~100 MB whatever the
# number of rows (the rows are independent: the grouping changes no result)
BATCH_GROUP_ELEMENTS = 1 << 20


@dataclass(frozen=True)
class BatchScan:
    """Outcome of :func:`batch_scan`: one entry per row; ``-1`` / NaN where a row has no fit."""

    index: np.ndarray
    alpha: np.ndarray
    xmin: np.ndarray
    D: np.ndarray
    n_tail: np.ndarray
    alphas: np.ndarray | None = None  # (B, n-1) per candidate, with ``full=True``
    Ds: np.ndarray | None = None  # (B, n-1): exact D, NaN where pruned or not a candidate


def first_positions(X: np.ndarray) -> np.ndarray:
    """``F[b, j]``: the position of the first value equal to ``X[b, j]`` (rows sorted)."""
    B, n = X.shape
    new = np.ones((B, n), dtype=bool)
    new[:, 1:] = X[:, 1:] != X[:, :-1]
    return np.maximum.accumulate(np.where(new, np.arange(n), 0), axis=1)


def _exact_pairs(logd, alphas, rows, cands, F=None):
    """Exact KS distance of the candidates ``(rows[p], cands[p])``, in 2-D blocks of similar width."""
    n = logd.shape[1]
    out = np.empty(rows.size)
    order = np.argsort(cands, kind="stable")
    start = 0
    while start < order.size:
        width = n - int(cands[order[start]])
        stop = min(order.size, start + max(1, BLOCK_ELEMENTS // width))
        sel = order[start:stop]
        r, c = rows[sel], cands[sel]
        k = np.arange(width)
        pos = c[:, None] + k
        inside = pos < n
        np.minimum(pos, n - 1, out=pos)
        block = logd[r[:, None], pos] - logd[r, c][:, None]
        ks_terms(block, (1.0 - alphas[r, c])[:, None], k / (n - c).astype(np.float64)[:, None])
        keep = inside if F is None else inside & (F[r[:, None], pos] == pos)
        block[~keep] = 0.0
        out[sel] = block.max(axis=1)
        start = stop
    return out


def _dense(logd, alphas, valid, D, F=None):
    """Exact D of every valid candidate of every row, by broadcasting (no gathers), in row chunks.

    Entry ``[b, i, j]`` is the KS term of candidate ``i`` at tail position ``j >= i``.
    """
    B, n = logd.shape
    m = n - 1
    j = np.arange(n)
    k = (j[None, :] - j[:m, None]).astype(np.float64)  # k = j - i
    keep = k >= 0
    kt = k / (n - j[:m]).astype(np.float64)[:, None]
    step = max(1, BATCH_DENSE_ELEMENTS // (m * n))
    for start in range(0, B, step):
        sl = slice(start, min(B, start + step))
        block = logd[sl, None, :] - logd[sl, :m, None]
        ks_terms(block, (1.0 - alphas[sl])[:, :, None], kt)
        if F is None:
            block[:, ~keep] = 0.0
        else:  # with merged ties only first occurrences are points of the empirical CDF
            block[~(keep & (F[sl, None, :] == j))] = 0.0
        vals = block.max(axis=2)
        v = valid[sl]
        D[sl][v] = vals[v]


def _bound_pairs(logd, alphas, rows, cands, samples, F=None):
    """Lower bound of D per candidate: the KS term at ``samples`` evenly spread tail positions.

    Computed for a quarter of :data:`BATCH_GROUP_ELEMENTS` terms at a time (the candidates are
    independent), so the (samples, candidates) blocks stay small.
    """
    n = logd.shape[1]
    out = np.empty(rows.size)
    step = max(1, BATCH_GROUP_ELEMENTS // (4 * samples))
    for a in range(0, rows.size, step):
        r, c = rows[a:a + step], cands[a:a + step]
        t = (n - c).astype(np.float64)
        k = np.floor(np.linspace(0.0, 1.0, samples)[:, None] * (t - 1.0))
        pos = k.astype(np.intp) + c
        if F is not None:  # with merged ties only first occurrences are points of the empirical CDF
            pos = F[r, pos]
            k = (pos - c).astype(np.float64)
        block = logd[r, pos] - logd[r, c]
        out[a:a + step] = ks_terms(block, 1.0 - alphas[r, c], k / t).max(axis=0)
    return out


def _pick(live, bound, k):
    """``(rows, cands)`` of the ``k`` live candidates of smallest bound in each row."""
    masked = np.where(live, bound, np.inf)
    if k < masked.shape[1]:
        part = np.argpartition(masked, k, axis=1)[:, :k]
    else:
        part = np.broadcast_to(np.arange(masked.shape[1]), masked.shape)
    rows = np.repeat(np.arange(masked.shape[0]), part.shape[1])
    cands = part.ravel()
    ok = live[rows, cands]
    return rows[ok], cands[ok]


def batch_scan(X, *, window=None, index=None, merge=False, full=False) -> BatchScan:
    r"""The power-law fit of every row of ``X``, by the KS scan of :func:`spectralwatch.fit_power_law`.

    Parameters
    ----------
    X : ndarray, shape (B, n)
        Samples, each row sorted ascending and > 0 (bootstrap replicates, synthetic data sets).
    window : (float, float), optional
        Only candidates ``lo <= x <= hi`` (the ``xmin_peak`` window, a bounded search range).
    index : int, optional
        A single candidate position (the ``'hill'`` rule: ``n // 2``).
    merge : bool
        Tied values are one candidate and one step of the empirical CDF (CSN, the ``powerlaw``
        package), instead of one per position (WeightWatcher).
    full : bool
        Also return every candidate's alpha and D (``BatchScan.alphas``, ``.Ds``).

    Returns
    -------
    BatchScan

    Notes
    -----
    Exact (the same choice and bit-identical alpha and D as the one-sample scan, with rows of
    fewer than 20 values fitted by WeightWatcher's small-n rule) but vectorised over rows: a lower
    bound of every candidate's D from 8 sampled tail positions prunes the candidates of every row
    at once, and the survivors are evaluated exactly in rounds (8, 32, 128... per row), the
    candidates of smallest bound first, until no row has a candidate whose bound is below its best
    exact D. Rows are scanned in groups of at most :data:`BATCH_GROUP_ELEMENTS` values, so the
    working memory is bounded (about 100 MB) whatever ``B``.
    """
    X = np.asarray(X, dtype=np.float64)
    B, n = X.shape
    index_arr = np.full(B, -1)
    out = BatchScan(index_arr, np.full(B, np.nan), np.full(B, np.nan), np.full(B, np.nan),
                    np.zeros(B, dtype=np.intp),
                    np.full((B, max(n - 1, 0)), np.nan) if full else None,
                    np.full((B, max(n - 1, 0)), np.nan) if full else None)
    if n < 2:
        return out
    step = max(1, BATCH_GROUP_ELEMENTS // n)
    for start in range(0, B, step):
        sl = slice(start, min(B, start + step))
        _scan_group(X[sl], window, index, merge, full, out, sl)
    return out


def _scan_group(X, window, index, merge, full, out: BatchScan, sl) -> None:
    """:func:`batch_scan` of the rows ``sl`` (held in ``X``), written into ``out``."""
    B, n = X.shape
    logd = log_values(X)
    t, s = tail_sums(logd)
    small = n < SMALL_N_CUTOFF and window is None and index is None and not merge
    with np.errstate(divide="ignore", invalid="ignore"):
        if small:
            eligible = (t >= SMALL_N_MIN_TAIL) & (s > 1e-12)
            alphas = np.where(eligible, 1.0 + (t - 1.0) / s, 0.0)
        else:
            alphas = np.where(s > 0.0, 1.0 + t / s, np.nan)
    cand = np.ones((B, n - 1), dtype=bool)
    if window is not None:
        cand &= (X[:, :-1] >= window[0]) & (X[:, :-1] <= window[1])
    if index is not None:
        cand[:] = False
        cand[:, index] = True
    F = first_positions(X) if merge else None
    if merge:
        cand &= F[:, :-1] == np.arange(n - 1)
    with np.errstate(invalid="ignore"):
        valid = cand & (alphas > 1.0)
    D = np.where(cand, 1.0, np.nan)  # invalid candidates: D = 1, like the one-sample scan
    pruned = None
    if index is not None:
        rows, cands = np.nonzero(valid)
        D[rows, cands] = _exact_pairs(logd, alphas, rows, cands, F)
    elif n <= BATCH_DENSE_MAX_N or small:
        _dense(logd, alphas, valid, D, F)
    else:
        done = _bounded(logd, alphas, valid, D, F)
        pruned = valid & ~done
    best = np.argmin(np.where(cand, D, np.inf), axis=1)
    best[~cand.any(axis=1)] = -1
    if small:
        best = _small_fallback(best, alphas, s, valid, logd, D, n)
    r = np.flatnonzero(best >= 0)
    alpha = np.full(B, np.nan)
    alpha[r] = alphas[r, best[r]]
    with np.errstate(invalid="ignore"):
        ok = alpha > (0.0 if small else 1.0)
    best[~ok] = -1
    r = np.flatnonzero(ok)
    out.index[sl] = best
    out.alpha[sl] = np.where(ok, alpha, np.nan)
    xmin, d_best, n_tail = np.full(B, np.nan), np.full(B, np.nan), np.zeros(B, dtype=np.intp)
    xmin[r] = X[r, best[r]]
    d_best[r] = D[r, best[r]]
    n_tail[r] = (X[r] >= xmin[r, None]).sum(axis=1)
    out.xmin[sl], out.D[sl], out.n_tail[sl] = xmin, d_best, n_tail
    if full:
        if pruned is not None:  # proved unable to win: not computed
            D[pruned] = np.nan
        out.alphas[sl] = alphas
        out.Ds[sl] = np.where(cand, D, np.nan)


def _bounded(logd, alphas, valid, D, F):
    """Fill ``D`` exactly for every candidate that can still be a row's minimum; return which were."""
    B, m = valid.shape
    n = m + 1
    rows, cands = np.nonzero(valid)
    bound = np.full((B, m), np.inf)
    bound[rows, cands] = _bound_pairs(logd, alphas, rows, cands, BATCH_BOUND_LEVELS[0], F)
    done = np.zeros((B, m), dtype=bool)
    best = np.full(B, np.inf)
    levels = [lv for lv in BATCH_BOUND_LEVELS[1:] if lv < n]
    k = SEED_CANDIDATES
    while True:
        live = valid & ~done & (bound - SLACK <= best[:, None])
        if not live.any():
            return done
        if levels and live.sum() > 2 * k * B:  # many survivors: a finer bound first
            r, c = np.nonzero(live)
            bound[r, c] = np.maximum(bound[r, c], _bound_pairs(logd, alphas, r, c, levels.pop(0), F))
            live = valid & ~done & (bound - SLACK <= best[:, None])
        r, c = _pick(live, bound, k)
        D[r, c] = _exact_pairs(logd, alphas, r, c, F)
        done[r, c] = True
        np.minimum.at(best, r, D[r, c])
        k *= 4


def _small_fallback(best, alphas, s, valid, logd, D, n):
    """Small-n rule: a row without an eligible candidate is fitted as a whole (CSN's estimator on n)."""
    none = ~valid.any(axis=1)
    if not none.any():
        return best
    rows = np.flatnonzero(none & (s[:, 0] > 1e-12))
    alphas[rows, 0] = 1.0 + (n - 1.0) / s[rows, 0]
    D[rows, 0] = _exact_pairs(logd, alphas, rows, np.zeros(rows.size, dtype=np.intp))
    best = best.copy()
    best[none] = -1
    best[rows] = 0
    return best

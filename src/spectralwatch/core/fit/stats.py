r"""Fits you can trust: uncertainty, goodness of fit and alternative tails of a power-law fit.

Everything follows Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM
Review 51 (2009) 661-703 (below: CSN):

* :func:`bootstrap_alpha` -- a bootstrap confidence interval of alpha: the tail is resampled
  ``n_boot`` times as one 2-D array and the Kolmogorov-Smirnov scan re-chooses ``xmin`` inside
  each replicate (all replicates in one vectorised, exact bounded scan, :func:`batch_scan`); the
  same replicates measure how stable ``xmin`` is.
* :func:`goodness_of_fit` -- CSN's semi-parametric bootstrap p-value (their section 4.1): synthetic
  samples draw from the fitted power law above ``xmin`` and from the data below it, and are
  re-fitted from scratch, ``xmin`` included; ``p`` is the fraction whose KS distance exceeds the
  data's.
* :func:`compare_tails` -- log-likelihood-ratio tests of the power law against the lognormal,
  exponential, stretched exponential and truncated power law on the same tail (Vuong's test; the
  nested test for the truncated power law), and the best-supported law.
* :func:`fit_quality` -- the flags a row carries when its fit should not be trusted.

The asymptotic standard error of alpha, :math:`(\hat\alpha - 1)/\sqrt{n_{tail}}` (CSN eq. 3.2), is
the ``sigma`` of every fit. Options of :func:`spectralwatch.analyze` switch each analysis on; see
docs/statistics.md. Pure core: arrays in, frozen dataclasses out; scipy is imported only by the
functions that need it.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from .ks_scan import SMALL_N_CUTOFF, SMALL_N_MIN_TAIL

__all__ = [
    "AlphaBootstrap",
    "GoodnessOfFit",
    "TailComparison",
    "ALTERNATIVES",
    "batch_scan",
    "bootstrap_alpha",
    "goodness_of_fit",
    "compare_tails",
    "fit_quality",
]

#: the alternatives of :func:`compare_tails`, with the column abbreviation of each
ALTERNATIVES = {"lognormal": "lognormal", "exponential": "exp", "stretched_exponential": "stretched_exp",
                "truncated_power_law": "tpl"}
SIGNIFICANCE = 0.1  # CSN (section 5): a sign of R is trusted when p < 0.1
FEW_TAIL = 16  # below this the relative standard error of alpha - 1, 1/sqrt(n_tail), exceeds 25%
STABLE_FRACTION = 2.0 / 3.0  # a replicate "keeps" xmin when its tail keeps >= 2/3 of the values
UNSTABLE_XMIN = 0.5  # flag when fewer than half of the replicates keep it

_DENSE_MAX_N = 40  # rows up to this length: every candidate's D, as one broadcast (B, n, n) block (measured faster)
_LEVELS = (8,)  # sampled tail positions of the lower bound (finer levels measured slower: exact is cheap)
_SEED = 8  # candidates per row evaluated exactly in the first round, x4 each round
_CHUNK = 1 << 16  # elements per 2-D block of exact evaluation
_SLACK = 1e-12


# --------------------------------------------------------------------------------------------
# the KS scan of many samples at once
# --------------------------------------------------------------------------------------------
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


def _first_positions(X: np.ndarray) -> np.ndarray:
    """``F[b, j]``: the position of the first value equal to ``X[b, j]`` (rows sorted)."""
    B, n = X.shape
    new = np.ones((B, n), dtype=bool)
    new[:, 1:] = X[:, 1:] != X[:, :-1]
    return np.maximum.accumulate(np.where(new, np.arange(n), 0), axis=1)


def _exact_pairs(logd, alphas, rows, cands, F=None):
    """Exact KS distance of the candidates ``(rows[p], cands[p])``, in 2-D blocks of similar width.

    Same operations, in the same order, as :func:`spectralwatch._ks_scan._exact_ks` (bit-identical D).
    """
    n = logd.shape[1]
    out = np.empty(rows.size)
    order = np.argsort(cands, kind="stable")
    start = 0
    while start < order.size:
        width = n - int(cands[order[start]])
        stop = min(order.size, start + max(1, _CHUNK // width))
        sel = order[start:stop]
        r, c = rows[sel], cands[sel]
        k = np.arange(width)
        pos = c[:, None] + k
        inside = pos < n
        np.minimum(pos, n - 1, out=pos)
        block = logd[r[:, None], pos] - logd[r, c][:, None]
        block *= (1.0 - alphas[r, c])[:, None]
        np.exp(block, out=block)
        np.subtract(1.0, block, out=block)
        block -= k / (n - c).astype(np.float64)[:, None]
        np.abs(block, out=block)
        keep = inside if F is None else inside & (F[r[:, None], pos] == pos)
        block[~keep] = 0.0
        out[sel] = block.max(axis=1)
        start = stop
    return out


def _dense(logd, alphas, valid, D, F=None):
    """Exact D of every valid candidate of every row, by broadcasting (no gathers), in row chunks.

    Entry ``[b, i, j]`` is the KS term of candidate ``i`` at tail position ``j >= i``; the same
    operations in the same order as :func:`_exact_pairs`, so the values are bit-identical.
    """
    B, n = logd.shape
    m = n - 1
    j = np.arange(n)
    k = (j[None, :] - j[:m, None]).astype(np.float64)  # k = j - i
    keep = k >= 0
    kt = k / (n - j[:m]).astype(np.float64)[:, None]
    step = max(1, (1 << 21) // (m * n))
    for start in range(0, B, step):
        sl = slice(start, min(B, start + step))
        block = logd[sl, None, :] - logd[sl, :m, None]
        block *= (1.0 - alphas[sl])[:, :, None]
        with np.errstate(over="ignore", invalid="ignore"):
            np.exp(block, out=block)
        np.subtract(1.0, block, out=block)
        block -= kt
        np.abs(block, out=block)
        if F is None:
            block[:, ~keep] = 0.0
        else:  # with merged ties only first occurrences are points of the empirical CDF
            block[~(keep & (F[sl, None, :] == j))] = 0.0
        vals = block.max(axis=2)
        v = valid[sl]
        D[sl][v] = vals[v]


def _bound_pairs(logd, alphas, rows, cands, samples, F=None):
    """Lower bound of D per candidate: the KS term at ``samples`` evenly spread tail positions."""
    n = logd.shape[1]
    t = (n - cands).astype(np.float64)
    k = np.floor(np.linspace(0.0, 1.0, samples)[:, None] * (t - 1.0))
    pos = k.astype(np.intp) + cands
    if F is not None:  # with merged ties only first occurrences are points of the empirical CDF
        pos = F[rows, pos]
        k = (pos - cands).astype(np.float64)
    block = logd[rows, pos] - logd[rows, cands]
    block *= 1.0 - alphas[rows, cands]
    np.exp(block, out=block)
    np.subtract(1.0, block, out=block)
    block -= k / t
    np.abs(block, out=block)
    return block.max(axis=0)


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
    exact D. (Finer bounds, 16-1024 samples as in the one-sample scan, measured slower here: exact
    distances of a few candidates per row are cheaper than finer bounds for all of them.)
    """
    X = np.asarray(X, dtype=np.float64)
    B, n = X.shape
    fail = BatchScan(np.full(B, -1), np.full(B, np.nan), np.full(B, np.nan), np.full(B, np.nan),
                     np.zeros(B, dtype=np.intp))
    if n < 2:
        return fail
    logd = np.log(X / X[:, [n // 2]])
    t = np.arange(n, 1, -1, dtype=np.float64)
    s = np.cumsum(((t - 1.0) * np.diff(logd, axis=1))[:, ::-1], axis=1)[:, ::-1]
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
    F = _first_positions(X) if merge else None
    if merge:
        cand &= F[:, :-1] == np.arange(n - 1)
    with np.errstate(invalid="ignore"):
        valid = cand & (alphas > 1.0)
    D = np.where(cand, 1.0, np.nan)  # invalid candidates: D = 1, like the one-sample scan
    pruned = None
    if index is not None:
        rows, cands = np.nonzero(valid)
        D[rows, cands] = _exact_pairs(logd, alphas, rows, cands, F)
    elif n <= _DENSE_MAX_N or small:
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
    res = BatchScan(best, np.where(ok, alpha, np.nan), np.full(B, np.nan), np.full(B, np.nan),
                    np.zeros(B, dtype=np.intp))
    res.xmin[r] = X[r, best[r]]
    res.D[r] = D[r, best[r]]
    res.n_tail[r] = (X[r] >= res.xmin[r, None]).sum(axis=1)
    if full:
        if pruned is not None:  # proved unable to win: not computed
            D[pruned] = np.nan
        return BatchScan(res.index, res.alpha, res.xmin, res.D, res.n_tail, alphas, np.where(cand, D, np.nan))
    return res


def _bounded(logd, alphas, valid, D, F):
    """Fill ``D`` exactly for every candidate that can still be a row's minimum; return which were."""
    B, m = valid.shape
    n = m + 1
    rows, cands = np.nonzero(valid)
    bound = np.full((B, m), np.inf)
    bound[rows, cands] = _bound_pairs(logd, alphas, rows, cands, _LEVELS[0], F)
    done = np.zeros((B, m), dtype=bool)
    best = np.full(B, np.inf)
    levels = [lv for lv in _LEVELS[1:] if lv < n]
    k = _SEED
    while True:
        live = valid & ~done & (bound - _SLACK <= best[:, None])
        if not live.any():
            return done
        if levels and live.sum() > 2 * k * B:  # many survivors: a finer bound first
            r, c = np.nonzero(live)
            bound[r, c] = np.maximum(bound[r, c], _bound_pairs(logd, alphas, r, c, levels.pop(0), F))
            live = valid & ~done & (bound - _SLACK <= best[:, None])
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


# --------------------------------------------------------------------------------------------
# bootstrap of alpha and xmin
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class AlphaBootstrap:
    """Bootstrap confidence interval of alpha and the stability of ``xmin``.

    Attributes
    ----------
    low, high : float
        Percentile interval of the replicates' alphas at ``level``.
    level : float
    n_boot : int
        Replicates that gave a fit.
    xmin_stability : float
        Fraction of replicates whose own KS scan kept at least two thirds of the tail: 1 when
        ``xmin`` is well determined, small when the KS curve is flat or has rival minima.
    alphas, xmins : numpy.ndarray
        The replicates' estimates (read-only).
    """

    low: float
    high: float
    level: float
    n_boot: int
    xmin_stability: float
    alphas: np.ndarray
    xmins: np.ndarray

    @property
    def std(self) -> float:
        """Bootstrap standard deviation of alpha."""
        return float(np.std(self.alphas, ddof=1)) if self.alphas.size > 1 else math.nan

    def __repr__(self) -> str:
        return (f"AlphaBootstrap({100 * self.level:g}% CI [{self.low:.4f}, {self.high:.4f}], "
                f"n_boot={self.n_boot}, xmin_stability={self.xmin_stability:.2f})")


def _ro(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _scan_kwargs(fit) -> dict:
    """How the replicates of ``fit`` choose ``xmin`` (its own rule)."""
    rule = getattr(fit, "xmin_rule", None)
    if rule is not None and rule[0] == "window":
        return {"window": rule[1]}
    return {"merge": bool(getattr(fit, "ties", "reference") == "merge")}


def bootstrap_alpha(fit, n_boot, rng=None, *, level=0.9) -> AlphaBootstrap:
    r"""Bootstrap confidence interval of a power-law fit's alpha, resampling its tail.

    Parameters
    ----------
    fit : PowerLawFit
        A successful fit (its ``data`` and ``xmin`` are used).
    n_boot : int
        Replicates (a few hundred for a 90% interval).
    rng : None, int or numpy.random.Generator
    level : float
        Coverage of the interval.

    Returns
    -------
    AlphaBootstrap

    Notes
    -----
    The ``n_tail`` values ``>= xmin`` are resampled with replacement into an ``(n_boot, n_tail)``
    array; every row is fitted by the KS scan (:func:`batch_scan`), which may move ``xmin`` up
    inside the replicate. The interval is the ``(1 -+ level)/2`` percentiles of the replicates'
    alphas (Efron & Tibshirani 1993, ch. 13); ``xmin_stability`` is the fraction of replicates
    whose chosen tail holds at least 2/3 of their values. With a fixed ``xmin`` (or the ``'hill'``
    rule) the tail is not re-scanned: alpha is the MLE on each replicate. Cost: one vectorised
    scan of ``n_boot`` samples of ``n_tail`` values.
    """
    rng = np.random.default_rng(rng)
    tail = np.asarray(fit.data)[np.asarray(fit.data) >= fit.xmin]
    m = tail.size
    reps = np.sort(tail[rng.integers(0, m, size=(int(n_boot), m))], axis=1)
    rule = getattr(fit, "xmin_rule", ("ks",))
    if rule[0] in ("fixed", "index") or m < 3:
        with np.errstate(divide="ignore"):
            s = np.log(reps / fit.xmin).sum(axis=1)
        alphas = np.where(s > 0, 1.0 + m / s, np.nan)
        xmins = np.full(alphas.shape, float(fit.xmin))
        kept = np.ones(alphas.shape, dtype=bool)
    else:
        kw = _scan_kwargs(fit)
        kw.pop("window", None)  # inside the tail every value is a candidate
        res = batch_scan(reps, **kw)
        alphas, xmins = res.alpha, res.xmin
        kept = res.n_tail >= STABLE_FRACTION * m
    ok = np.isfinite(alphas)
    a = alphas[ok]
    if a.size == 0:
        return AlphaBootstrap(math.nan, math.nan, level, 0, math.nan, _ro([]), _ro([]))
    lo, hi = np.quantile(a, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    return AlphaBootstrap(float(lo), float(hi), float(level), int(a.size), float(kept[ok].mean()),
                          _ro(a), _ro(xmins[ok]))


# --------------------------------------------------------------------------------------------
# goodness of fit
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class GoodnessOfFit:
    """CSN's semi-parametric bootstrap goodness-of-fit test of a power-law fit.

    Attributes
    ----------
    p : float
        Fraction of synthetic power-law samples whose KS distance (after their own full fit)
        is at least the data's; ``p <= 0.1`` rules the power law out (CSN section 4.1).
    D : float
        The data's KS distance.
    n_samples : int
    Ds : numpy.ndarray
        The synthetic samples' KS distances (read-only).
    """

    p: float
    D: float
    n_samples: int
    Ds: np.ndarray

    @property
    def p_stderr(self) -> float:
        """Monte-Carlo standard error of ``p``: ``sqrt(p (1 - p) / n_samples)``."""
        return math.sqrt(self.p * (1.0 - self.p) / self.n_samples) if self.n_samples else math.nan

    def __repr__(self) -> str:
        return f"GoodnessOfFit(p={self.p:.3f}, D={self.D:.4f}, n_samples={self.n_samples})"


def goodness_of_fit(fit, n_samples, rng=None) -> GoodnessOfFit:
    r"""Semi-parametric bootstrap p-value of a power-law fit (CSN section 4.1).

    Each synthetic sample has as many values as the fitted data: with probability
    ``n_tail / n`` a value is drawn from the fitted power law above ``xmin``
    (:math:`x = x_{min} (1-u)^{-1/(\alpha-1)}`), otherwise uniformly from the data below
    ``xmin``. Every sample is fitted from scratch by the same rule as the data (KS scan over all
    candidates, or the fit's window), all of them in one :func:`batch_scan`; ``p`` is the fraction
    of samples with ``D* >= D``. CSN recommend ``n_samples`` of about ``1/(4 eps^2)`` for a p
    accurate to ``eps`` (2500 for 0.01); 100 to 200 separate clear rejections from clear fits.
    Under the null (data from the fitted law) ``p`` is uniform.
    """
    rng = np.random.default_rng(rng)
    data = np.asarray(fit.data)
    n = data.size
    body = data[data < fit.xmin]
    n_tail = n - body.size
    G = int(n_samples)
    from_tail = rng.random((G, n)) < n_tail / n
    u = rng.random((G, n))
    synth = fit.xmin * (1.0 - u) ** (-1.0 / (fit.alpha - 1.0))
    if body.size:
        synth = np.where(from_tail, synth, body[rng.integers(0, body.size, size=(G, n))])
    synth.sort(axis=1)
    rule = getattr(fit, "xmin_rule", ("ks",))
    if rule[0] in ("fixed", "index"):
        Ds = _fixed_ks(synth, fit.xmin) if rule[0] == "fixed" else batch_scan(synth, index=rule[1]).D
    else:
        Ds = batch_scan(synth, **_scan_kwargs(fit)).D
    Ds = Ds[np.isfinite(Ds)]
    p = float(np.mean(Ds >= fit.D)) if Ds.size else math.nan
    return GoodnessOfFit(p, float(fit.D), int(Ds.size), _ro(Ds))


def _fixed_ks(X, xmin):
    """KS distance of each row's power-law MLE above a fixed ``xmin``."""
    out = np.full(X.shape[0], np.nan)
    for b, row in enumerate(X):
        tail = row[row >= xmin]
        if tail.size < 2:
            continue
        s = np.log(tail / xmin).sum()
        if s <= 0:
            continue
        a = 1.0 + tail.size / s
        k = np.arange(tail.size) / tail.size
        out[b] = np.max(np.abs(-np.expm1((1.0 - a) * np.log(tail / xmin)) - k))
    return out


# --------------------------------------------------------------------------------------------
# alternative tails
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class TailComparison:
    """Power law against the alternatives on one tail.

    Attributes
    ----------
    fits : dict
        ``{law: TailFit | TruncatedPowerLawFit}``, ``'power_law'`` included.
    tests : dict
        ``{alternative: LikelihoodRatio}``, each with ``R > 0`` favouring the power law.
    best : str
        The best-supported law: among the power law and the alternatives that beat it
        significantly (``R < 0``, ``p < level``), the one of smallest AIC
        (:math:`2k - 2\\ln L`, so an extra parameter must buy one unit of log-likelihood).
    level : float
    """

    fits: dict
    tests: dict
    best: str
    level: float

    def columns(self) -> dict:
        """The row columns: ``best_tail`` and ``lr_<alt>``, ``lr_<alt>_z``, ``lr_<alt>_p``."""
        cols = {"best_tail": self.best}
        for alt, short in ALTERNATIVES.items():
            lr = self.tests.get(alt)
            cols[f"lr_{short}"] = lr.R if lr else math.nan
            cols[f"lr_{short}_z"] = lr.normalized_R if lr else math.nan
            cols[f"lr_{short}_p"] = lr.p if lr else math.nan
        return cols

    def __repr__(self) -> str:
        parts = ", ".join(f"{alt}: R={lr.R:.3g} p={lr.p:.3g}" for alt, lr in self.tests.items())
        return f"TailComparison(best={self.best!r}; {parts})"


_N_PARAMS = {"power_law": 1, "exponential": 1, "lognormal": 2, "stretched_exponential": 2,
             "truncated_power_law": 2}


def compare_tails(data, xmin, *, alternatives=tuple(ALTERNATIVES), level=SIGNIFICANCE) -> TailComparison:
    r"""Likelihood-ratio tests of the power law against alternative laws on ``data >= xmin``.

    Every law is fitted by maximum likelihood to the same tail
    (:func:`spectralwatch.distributions.fit_tail`); for each alternative the pointwise
    log-likelihood differences give Vuong's normalised statistic and two-sided p-value (CSN
    section 5 and appendix C); the truncated power law contains the power law (``Lambda = 0``),
    so its p-value is the nested one. When an alternative's maximum is its power-law limit (the
    lognormal with :math:`\sigma \to \infty`, the stretched exponential with :math:`\beta \to 0`)
    and the power law is not worse, the two are indistinguishable: ``p = 1``. See
    :class:`TailComparison` for the choice of ``best``.
    """
    from .laws import fit_tail, likelihood_ratio

    data = np.asarray(data, dtype=np.float64)
    tail = np.sort(data[data >= xmin])
    fits = {"power_law": fit_tail(tail, xmin, "power_law")}
    tests = {}
    for alt in alternatives:
        fits[alt] = fit_tail(tail, xmin, alt)
        if fits["power_law"].success and fits[alt].success:
            lr = likelihood_ratio(fits["power_law"].logpdf(tail), fits[alt].logpdf(tail),
                                  nested=alt == "truncated_power_law", first="power_law", second=alt)
            if "power-law limit" in fits[alt].message and lr.R >= 0:
                # the alternative's supremum is the power law itself (lognormal sigma -> inf, stretched
                # exponential beta -> 0): the two are not distinguishable, whatever Vuong's z says
                lr = dataclasses.replace(lr, normalized_R=0.0, p=1.0)
            tests[alt] = lr
    candidates = ["power_law"] + [a for a, lr in tests.items() if lr.R < 0 and lr.p < level]
    best = min(candidates, key=lambda d: 2 * _N_PARAMS[d] - 2 * fits[d].loglikelihood) \
        if fits["power_law"].success else ""
    return TailComparison(fits, tests, best, level)


# --------------------------------------------------------------------------------------------
# flags
# --------------------------------------------------------------------------------------------
def fit_quality(fit, *, boot=None, comparison=None) -> str:
    """Why a fit should not be trusted, as ``';'``-joined flags (``''`` when nothing is wrong).

    ``few_tail``: fewer than 16 tail eigenvalues (relative error of alpha - 1 above 25%);
    ``lognormal``: a lognormal explains the tail significantly better (needs ``compare_tails``);
    ``unstable_xmin``: fewer than half of the bootstrap replicates keep the tail (needs
    ``bootstrap``). A failed fit is flagged ``failed``.
    """
    if fit is None or getattr(fit, "status", "failed") != "success":
        return "failed"
    flags = []
    if fit.n_tail < FEW_TAIL:
        flags.append("few_tail")
    if comparison is not None:
        lr = comparison.tests.get("lognormal")
        if lr is not None and lr.R < 0 and lr.p < comparison.level:
            flags.append("lognormal")
    if boot is not None and boot.n_boot and boot.xmin_stability < UNSTABLE_XMIN:
        flags.append("unstable_xmin")
    return ";".join(flags)

r"""Uncertainty of a power-law fit: a bootstrap confidence interval of alpha, and the goodness of fit.

Following Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM Review 51
(2009) 661-703 (below: CSN):

* :func:`bootstrap_alpha` -- a bootstrap confidence interval of alpha: the tail is resampled
  ``n_boot`` times and the Kolmogorov-Smirnov scan re-chooses ``xmin`` inside each replicate
  (:func:`~spectralwatch.core.fit.ks_scan.batch_scan`); the same replicates measure how stable
  ``xmin`` is.
* :func:`goodness_of_fit` -- CSN's semi-parametric bootstrap p-value (their section 4.1): synthetic
  samples draw from the fitted power law above ``xmin`` and from the data below it, and are
  re-fitted from scratch, ``xmin`` included; ``p`` is the fraction whose KS distance exceeds the
  data's.

Both process their samples in groups of rows (:data:`GROUP_ELEMENTS` values at a time), so the
memory they need is bounded (about 100-200 MB) whatever the number of samples and the sample size,
and the random numbers are drawn in the same order as if all samples were drawn at once: a seed
gives the same result whatever the grouping (:class:`_Draws`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np

from .ks_scan import batch_scan
from ...errors import InvalidParameterError
from ...options.vocabulary import BOOTSTRAP_METHODS

__all__ = ["AlphaBootstrap", "GoodnessOfFit", "bootstrap_alpha", "goodness_of_fit", "STABLE_FRACTION",
           "GROUP_ELEMENTS", "SMALL_TAIL", "BOOTSTRAP_METHODS"]

STABLE_FRACTION = 2.0 / 3.0  # a replicate "keeps" xmin when its tail keeps >= 2/3 of the values
# below this many tail values the percentile interval covers too little (at a nominal 0.90: 0.74 for
# tails of ~28 values, 0.82 for ~94, 0.87 for ~185: docs/statistics.md) and method='auto' takes the
# parametric basic interval; above it the percentile interval, which assumes no law
SMALL_TAIL = 300
# values of the samples drawn and scanned at a time (8 MiB per float64 array; the scan of a group
# holds a dozen such arrays): the bound on memory whatever the sample count
GROUP_ELEMENTS = 1 << 20


def _ro(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


def _groups(count: int, width: int):
    """Row slices of ``count`` rows of ``width`` values, each at most :data:`GROUP_ELEMENTS` values."""
    step = max(1, GROUP_ELEMENTS // max(width, 1))
    return [slice(i, min(count, i + step)) for i in range(0, count, step)]


class _Draws:
    """The random numbers of ``(count, width)`` blocks drawn one after the other from ``rng``, group by group.

    ``rng.random((count, width))`` then a second such block then ``rng.integers(...)`` hold
    ``count * width`` values each; drawing them in row groups instead reproduces every value: a
    copy of the generator is moved ahead past the blocks before it (``advance`` on PCG64, which
    ``numpy.random.default_rng`` uses; other bit generators draw and discard the values, in
    groups). :meth:`finish` leaves ``rng`` where drawing all blocks at once would have.
    """

    def __init__(self, rng: np.random.Generator, count: int, width: int, blocks: int):
        self.rng, self.size = rng, count * width
        self.streams = [self._ahead(rng, b * self.size) for b in range(blocks)]

    @staticmethod
    def _ahead(rng: np.random.Generator, draws: int) -> np.random.Generator:
        gen = copy.deepcopy(rng)
        if draws == 0:
            return gen
        bits = gen.bit_generator
        if isinstance(bits, (np.random.PCG64, np.random.PCG64DXSM)):
            state = bits.state
            bits.advance(draws)  # one 64-bit draw per double of random()
            moved = bits.state
            moved["has_uint32"], moved["uinteger"] = state["has_uint32"], state["uinteger"]  # advance resets them
            bits.state = moved
            return gen
        left = draws
        while left:
            k = min(left, GROUP_ELEMENTS)
            gen.random(k)
            left -= k
        return gen

    def finish(self) -> None:
        """Move ``rng`` to the state after all blocks (that of the last stream, fully drawn)."""
        self.rng.bit_generator.state = self.streams[-1].bit_generator.state


# --------------------------------------------------------------------------------------------
# bootstrap of alpha and xmin
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True, repr=False)
class AlphaBootstrap:
    """Bootstrap confidence interval of alpha and the stability of ``xmin``.

    Attributes
    ----------
    low, high : float
        The interval at ``level`` (see ``method``).
    level : float
    n_boot : int
        Replicates that gave a fit.
    xmin_stability : float
        Fraction of the tail's resamples whose own KS scan kept at least two thirds of the tail: 1
        when ``xmin`` is well determined, small when the KS curve is flat or has rival minima.
    alphas, xmins : numpy.ndarray
        The estimates of the replicates behind the interval (read-only).
    method : str
        ``'percentile'``: the percentiles of the alphas of the tail resampled with replacement;
        ``'parametric'``: the basic (pivotal) interval ``[2 alpha - q_hi, 2 alpha - q_lo]`` of the
        alphas of synthetic tails drawn from the fitted power law, each re-scanned.
    n_tail : int
        The fit's tail size; below :data:`SMALL_TAIL` (300) the percentile interval covers less than
        its level (measured: docs/statistics.md), and ``method='auto'`` takes the parametric one.
    """

    low: float
    high: float
    level: float
    n_boot: int
    xmin_stability: float
    alphas: np.ndarray
    xmins: np.ndarray
    method: str = "percentile"
    n_tail: int = 0

    @property
    def small_tail(self) -> bool:
        """True when the tail has fewer than :data:`SMALL_TAIL` values (see ``method``)."""
        return self.n_tail < SMALL_TAIL

    @property
    def std(self) -> float:
        """Bootstrap standard deviation of alpha."""
        return float(np.std(self.alphas, ddof=1)) if self.alphas.size > 1 else math.nan

    def __repr__(self) -> str:
        return (f"AlphaBootstrap({100 * self.level:g}% CI [{self.low:.4f}, {self.high:.4f}] ({self.method}), "
                f"n_boot={self.n_boot}, xmin_stability={self.xmin_stability:.2f})")


def _scan_kwargs(fit) -> dict:
    """How the replicates of ``fit`` choose ``xmin`` (its own rule and ties)."""
    kw = {"merge": bool(getattr(fit, "ties", "reference") == "merge")}
    rule = getattr(fit, "xmin_rule", None)
    if rule is not None and rule[0] == "window":
        kw["window"] = rule[1]
    return kw




def bootstrap_alpha(fit, n_boot, rng=None, *, level=0.9, method="auto") -> AlphaBootstrap:
    r"""Bootstrap confidence interval of a power-law fit's alpha.

    Parameters
    ----------
    fit : PowerLawFit
        A successful fit (its ``data``, ``xmin``, ``alpha`` and rule are used).
    n_boot : int
        Replicates (a few hundred for a 90% interval).
    rng : None, int or numpy.random.Generator
    level : float
        Coverage of the interval.
    method : {'auto', 'percentile', 'parametric'}
        ``'auto'`` (default): ``'parametric'`` when the tail has fewer than :data:`SMALL_TAIL`
        values, ``'percentile'`` otherwise.

    Returns
    -------
    AlphaBootstrap

    Notes
    -----
    ``xmin_stability`` always comes from the tail's resamples: the ``n_tail`` values ``>= xmin``
    resampled with replacement into ``(n_boot, n_tail)`` rows (drawn and scanned in groups of
    rows), each fitted by the KS scan (:func:`batch_scan`), which may move ``xmin`` up inside the
    replicate; the fraction whose chosen tail holds at least 2/3 of their values.

    ``'percentile'``: the ``(1 -+ level)/2`` percentiles of those replicates' alphas (Efron &
    Tibshirani 1993, ch. 13). It covers too little on short tails (measured at a nominal 0.90: 0.74
    for tails of ~28 values, 0.82 for ~94, 0.87 for ~185: docs/statistics.md): resampling a short
    tail makes many ties and short KS-chosen tails, so the replicates' alphas scatter more, and more
    asymmetrically, than the estimate does.

    ``'parametric'``: ``n_boot`` synthetic tails of ``n_tail`` values drawn from the fitted power law
    above ``xmin`` (:math:`x = x_{min}(1-u)^{-1/(\hat\alpha-1)}`), each re-scanned like the
    resamples; the basic bootstrap interval
    :math:`[2\hat\alpha - q_{(1+l)/2}, 2\hat\alpha - q_{(1-l)/2}]` (Davison & Hinkley, *Bootstrap
    Methods and their Application*, 1997, eq. 5.6) of their alphas :math:`q`: their spread around
    :math:`\hat\alpha` stands for that of :math:`\hat\alpha` around the truth, skew reversed (lower
    end at least 1). It assumes the tail is a power law, where the percentile interval assumes
    nothing; the cost is the same. With a fixed ``xmin`` (or the ``'hill'`` rule) there is no scan to
    repeat: alpha is the MLE on each replicate.
    """
    if not (isinstance(method, str) and method in BOOTSTRAP_METHODS):
        raise InvalidParameterError("The 'method' parameter of bootstrap_alpha must be one of "
                                    + ", ".join(repr(m) for m in BOOTSTRAP_METHODS) + f". Got {method!r}.")
    rng = np.random.default_rng(rng)
    tail = np.asarray(fit.data)[np.asarray(fit.data) >= fit.xmin]
    m, B = tail.size, int(n_boot)
    if method == "auto":
        method = "parametric" if m < SMALL_TAIL else "percentile"
    rule = getattr(fit, "xmin_rule", ("ks",))
    fixed = rule[0] in ("fixed", "index") or m < 3
    kw = _scan_kwargs(fit)
    kw.pop("window", None)  # inside the tail every value is a candidate
    alphas, xmins = np.full(B, np.nan), np.full(B, np.nan)
    kept = np.ones(B, dtype=bool)
    for sl in _groups(B, m):  # rows drawn in order from rng: the same values as one (B, m) draw
        reps = np.sort(tail[rng.integers(0, m, size=(sl.stop - sl.start, m))], axis=1)
        if fixed:
            with np.errstate(divide="ignore"):
                s = np.log(reps / fit.xmin).sum(axis=1)
            alphas[sl] = np.where(s > 0, 1.0 + m / s, np.nan)
            xmins[sl] = float(fit.xmin)
        else:
            res = batch_scan(reps, **kw)
            alphas[sl], xmins[sl] = res.alpha, res.xmin
            kept[sl] = res.n_tail >= STABLE_FRACTION * m
    ok = np.isfinite(alphas)
    stability = float(kept[ok].mean()) if ok.any() else math.nan
    if method == "parametric":  # tails of m values from the fitted law, re-scanned like the resamples
        for sl in _groups(B, m):  # drawn after all the resamples' indices: the same values whatever the grouping
            u = rng.random((sl.stop - sl.start, m))
            reps = np.sort(fit.xmin * (1.0 - u) ** (-1.0 / (fit.alpha - 1.0)), axis=1)
            if fixed:
                s = np.log(reps / fit.xmin).sum(axis=1)
                alphas[sl] = np.where(s > 0, 1.0 + m / s, np.nan)
                xmins[sl] = float(fit.xmin)
            else:
                res = batch_scan(reps, **kw)
                alphas[sl], xmins[sl] = res.alpha, res.xmin
        ok = np.isfinite(alphas)
    a = alphas[ok]
    if a.size == 0:
        return AlphaBootstrap(math.nan, math.nan, level, 0, math.nan, _ro([]), _ro([]), method, m)
    lo, hi = np.quantile(a, [(1.0 - level) / 2.0, (1.0 + level) / 2.0])
    if method == "parametric":
        lo, hi = max(1.0, 2.0 * fit.alpha - hi), 2.0 * fit.alpha - lo
    return AlphaBootstrap(float(lo), float(hi), float(level), int(a.size), stability, _ro(a), _ro(xmins[ok]),
                          method, m)


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
    candidates, or the fit's window; :func:`batch_scan`, in groups of rows); ``p`` is the fraction
    of samples with ``D* >= D``. CSN recommend ``n_samples`` of about ``1/(4 eps^2)`` for a p
    accurate to ``eps`` (2500 for 0.01); 100 to 200 separate clear rejections from clear fits.
    Under the null (data from the fitted law) ``p`` is uniform.
    """
    rng = np.random.default_rng(rng)
    Ds = _synthetic_Ds(fit, int(n_samples), rng)
    Ds = Ds[np.isfinite(Ds)]
    p = float(np.mean(Ds >= fit.D)) if Ds.size else math.nan
    return GoodnessOfFit(p, float(fit.D), int(Ds.size), _ro(Ds))


def _synthetic_Ds(fit, G: int, rng: np.random.Generator) -> np.ndarray:
    """The KS distances of Clauset et al.'s semi-parametric samples of ``fit``, each refitted by its rule.

    As many values as the fitted data: with probability ``n_tail / n`` from the fitted power law
    above ``xmin``, otherwise uniformly from the data below it; drawn and scanned in groups of rows.
    """
    data = np.asarray(fit.data)
    n = data.size
    body = data[data < fit.xmin]
    n_tail = n - body.size
    rule = getattr(fit, "xmin_rule", ("ks",))
    # the draws of the one-shot form: from_tail = random((G, n)), u = random((G, n)), then the body
    # indices integers(0, body.size, (G, n)); each taken group by group from its own stream
    draws = _Draws(rng, G, n, 3 if body.size else 2)
    Ds = np.full(G, np.nan)
    for sl in _groups(G, n):
        shape = (sl.stop - sl.start, n)
        from_tail = draws.streams[0].random(shape) < n_tail / n
        synth = fit.xmin * (1.0 - draws.streams[1].random(shape)) ** (-1.0 / (fit.alpha - 1.0))
        if body.size:
            synth = np.where(from_tail, synth, body[draws.streams[2].integers(0, body.size, size=shape)])
        synth.sort(axis=1)
        if rule[0] == "fixed":
            Ds[sl] = _fixed_ks(synth, fit.xmin)
        elif rule[0] == "index":
            Ds[sl] = batch_scan(synth, index=rule[1]).D
        else:
            Ds[sl] = batch_scan(synth, **_scan_kwargs(fit)).D
    draws.finish()
    return Ds


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

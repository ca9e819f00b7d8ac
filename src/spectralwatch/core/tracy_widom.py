r"""The Tracy-Widom law of the largest eigenvalue, and spikes declared against it at a stated false-positive rate.

A layer's ``W^T W`` (``W`` of shape ``N x M``, ``N >= M``, i.i.d. entries of variance ``v``) has
its largest eigenvalue at the Marchenko-Pastur edge :math:`v(\sqrt N + \sqrt M)^2`, with
fluctuations of order :math:`N^{-2/3}` of it that follow the Tracy-Widom law of the real
(:math:`\beta = 1`) ensembles:

.. math::

    \frac{\lambda_{max}/v - \mu_{NM}}{\sigma_{NM}} \to TW_1,
    \quad \mu_{NM} = (\sqrt{N'} + \sqrt{M'})^2,
    \quad \sigma_{NM} = (\sqrt{N'} + \sqrt{M'})\left(\tfrac{1}{\sqrt{N'}} + \tfrac{1}{\sqrt{M'}}\right)^{1/3},

with :math:`N' = N - 1/2`, :math:`M' = M - 1/2` (Johnstone, Ann. Statist. 29, 2001, who proves
it with ``N - 1``, ``M``; the half-integer shifts are the ones of Ma, Bernoulli 18, 2012, that make
the error :math:`O(N^{-2/3})`). This holds for Gaussian entries and, by universality, for any
entries with enough moments (Soshnikov 2002; Pillai & Yin, Ann. Appl. Probab. 24, 2014).

:math:`F_1` is computed as the Fredholm determinant
:math:`F_1(s) = \det(I - K_s)_{L^2(0,\infty)}`, :math:`K_s(x, y) = \tfrac12 \mathrm{Ai}(\tfrac{x+y}{2} + s)`
(Ferrari & Spohn, J. Phys. A 38, 2005), discretised by Gauss-Legendre quadrature as Bornemann
(Math. Comp. 79, 2010) shows to converge exponentially; the upper tail :math:`1 - F_1` comes from
the eigenvalues of the discretised kernel, so it keeps its relative accuracy far out. Checked
against the published values: mean -1.2065, variance 1.6078, 95% and 99% quantiles 0.9793 and
2.0234 (tests/test_phases.py).

**Spikes** (:func:`tracy_widom_spikes`): the sequential test of Kritchman & Nadler (Chemometrics
Intell. Lab. Syst. 94, 2008; IEEE Trans. Signal Process. 57, 2009). For ``k = 0, 1, ...``: fit the
noise variance ``v`` to the bulk without the ``k`` largest eigenvalues (quantile least squares
against the Marchenko-Pastur law, :mod:`spectralwatch.core.rmt`), and declare eigenvalue ``k + 1``
a spike when it exceeds :math:`v(\mu + s_{\alpha}\sigma)` at the dimensions ``N - k``,
``M - k``; stop at the first that does not. :math:`s_\alpha` is the :math:`1 - \alpha` quantile
of :math:`TW_1` (of the maximum of ``rf`` independent ones for a conv layer's pooled ``rf``
matrices), so a matrix of pure noise gets one or more spikes with probability about ``alpha``
(the false-positive rate, 1% by default; measured in benchmarks/phases).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

__all__ = ["tw1_cdf", "tw1_sf", "tw1_ppf", "wishart_edge_scaling", "TWSpikes", "tracy_widom_spikes",
           "DEFAULT_FPR"]

#: false-positive rate of the spike test (probability that a pure-noise matrix gets a spike)
DEFAULT_FPR = 0.01
_NODES = 48  # Gauss-Legendre nodes: 40 already agree with 120 to 1e-10 on [-8, 8]


@functools.lru_cache(maxsize=1)
def _legendre() -> tuple:
    return np.polynomial.legendre.leggauss(_NODES)


def _kernel_eigenvalues(s: float) -> np.ndarray:
    """Eigenvalues of the discretised, symmetrised kernel ``K_s`` (real, below 1; some are negative)."""
    from scipy.special import airy

    length = 2.0 * (14.0 - min(s, 0.0))  # Ai((x + y)/2 + s) < 1e-30 beyond
    x, w = _legendre()
    x = 0.5 * length * (x + 1.0)
    sw = np.sqrt(0.5 * length * w)
    i, j = np.triu_indices(_NODES)  # K is symmetric: Ai on the upper triangle only
    K = np.empty((_NODES, _NODES))
    K[i, j] = K[j, i] = 0.5 * airy(0.5 * (x[i] + x[j]) + s)[0]
    return np.minimum(np.linalg.eigvalsh(sw[:, None] * K * sw[None, :]), 1.0 - 1e-16)


def _log_cdf(s: float) -> float:
    if s > 60.0:  # Ai underflows: F1 = 1 to double precision
        return 0.0
    return float(np.sum(np.log1p(-_kernel_eigenvalues(s))))


def tw1_cdf(s) -> np.ndarray:
    r"""The Tracy-Widom distribution function :math:`F_1(s)` (real, :math:`\beta = 1`)."""
    s = np.asarray(s, dtype=np.float64)
    return np.exp(np.vectorize(_log_cdf, otypes=[float])(s))


def tw1_sf(s) -> np.ndarray:
    r""":math:`1 - F_1(s)`, accurate in the upper tail (no cancellation)."""
    s = np.asarray(s, dtype=np.float64)
    return -np.expm1(np.vectorize(_log_cdf, otypes=[float])(s))


@functools.lru_cache(maxsize=256)
def tw1_ppf(p: float) -> float:
    r"""The ``p`` quantile of :math:`TW_1` (``0 < p < 1``), by root finding on :func:`tw1_cdf`."""
    from scipy.optimize import brentq

    from ..errors import InvalidParameterError

    if not 0.0 < p < 1.0:
        raise InvalidParameterError(f"tw1_ppf needs a probability strictly between 0 and 1. Got {p!r}.")
    return float(brentq(lambda s: float(tw1_cdf(s)) - p, -9.0, 14.0, xtol=1e-7))


def wishart_edge_scaling(N: float, M: float) -> tuple[float, float]:
    r"""``(mu, sigma)``: centring and scale of the largest eigenvalue of ``W^T W`` (unit-variance entries).

    :math:`\mu = (\sqrt{N'} + \sqrt{M'})^2`, :math:`\sigma = (\sqrt{N'} + \sqrt{M'})
    (1/\sqrt{N'} + 1/\sqrt{M'})^{1/3}`, :math:`N' = N - 1/2`, :math:`M' = M - 1/2`.
    """
    a, b = np.sqrt(max(N - 0.5, 0.5)), np.sqrt(max(M - 0.5, 0.5))
    return float((a + b) ** 2), float((a + b) * (1.0 / a + 1.0 / b) ** (1.0 / 3.0))


@dataclass(frozen=True)
class TWSpikes:
    """Result of :func:`tracy_widom_spikes`.

    Attributes
    ----------
    num : int
        Eigenvalues declared spikes (the ``tw_spikes`` column).
    edge : float
        Marchenko-Pastur edge :math:`v(\\sqrt N + \\sqrt M)^2` of the noise fitted without the spikes
        (units of the eigenvalues).
    threshold : float
        The last test's threshold: eigenvalue ``num + 1`` lies below it.
    variance : float
        ``v``, the fitted per-entry noise variance, in the units of the eigenvalues.
    statistic : float
        The largest eigenvalue in Tracy-Widom units, noise fitted to the whole spectrum.
    pvalue : float
        Probability that pure noise of that variance gives a largest eigenvalue at least as
        large (the ``tw_pvalue`` column); 0 when it underflows.
    fpr : float
        The false-positive rate the test was run at.
    """

    num: int
    edge: float
    threshold: float
    variance: float
    statistic: float
    pvalue: float
    fpr: float


def _failed(fpr: float) -> TWSpikes:
    nan = float("nan")
    return TWSpikes(-1, nan, nan, nan, nan, nan, fpr)


def tracy_widom_spikes(evals, N: int, M: int, *, rf: int = 1, fpr: float = DEFAULT_FPR,
                       max_spikes: int | None = None) -> TWSpikes:
    """Count the eigenvalues that stand out of a Marchenko-Pastur bulk at false-positive rate ``fpr``.

    Parameters
    ----------
    evals : array_like
        The eigenvalues of ``W_i^T W_i`` of ``rf`` matrices of shape ``N x M`` (pooled), any order.
    N, M : int
        The long and the short side of each matrix.
    rf : int
        Number of matrices pooled (a conv layer's kernel positions).
    fpr : float
        Probability that a matrix of pure noise gets at least one spike (``0 < fpr < 1``).
    max_spikes : int, optional
        Stop there (default: half the eigenvalues).

    Returns
    -------
    TWSpikes
        ``num = -1`` (NaN elsewhere) for fewer than 4 eigenvalues or a spectrum without a positive
        bulk.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> W = rng.standard_normal((600, 300))
    >>> tracy_widom_spikes(np.linalg.eigvalsh(W.T @ W), 600, 300).num
    0
    >>> u, v = rng.standard_normal(600), rng.standard_normal(300)
    >>> W2 = W + 2.0 * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v)) * np.sqrt(600)
    >>> tracy_widom_spikes(np.linalg.eigvalsh(W2.T @ W2), 600, 300).num
    1
    """
    from ..errors import InvalidParameterError
    from .rmt import marchenko_pastur_ppf

    if not 0.0 < fpr < 1.0:
        raise InvalidParameterError(f"The 'fpr' parameter of tracy_widom_spikes must be in (0, 1). Got {fpr!r}.")
    x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    n = x.size
    if n < 4 or not np.all(np.isfinite(x)) or N < 2 or M < 2:
        return _failed(fpr)
    x = np.clip(x, 0.0, None)
    rf = max(int(rf), 1)
    kmax = n // 2 if max_spikes is None else min(int(max_spikes), n // 2)
    # unit-mean MP quantiles at every half level j / 2n: level (i + 1/2 + k/2)/n is j = 2i + 1 + k
    q_all = marchenko_pastur_ppf(np.arange(2 * n + 1) / (2.0 * n), N / M)
    s_alpha = tw1_ppf(float((1.0 - fpr) ** (1.0 / rf)))

    def noise_variance(k: int) -> float:
        q = q_all[2 * np.arange(n - k) + 1 + k]
        return float(np.dot(q, x[:n - k]) / np.dot(q, q)) / N

    v0 = noise_variance(0)
    if not v0 > 0:
        return _failed(fpr)
    mu0, sd0 = wishart_edge_scaling(N, M)
    stat = (x[-1] / v0 - mu0) / sd0
    sf = float(tw1_sf(stat))
    pvalue = float(-np.expm1(rf * np.log1p(-min(sf, 1.0 - 1e-16))))
    k, v = 0, v0
    while True:
        mu, sd = wishart_edge_scaling(N - k / rf, M - k / rf)
        threshold = v * (mu + s_alpha * sd)
        if k >= kmax or not x[n - 1 - k] > threshold:
            break
        k += 1
        v = noise_variance(k)
        if not v > 0:
            break
    edge = v * (np.sqrt(N) + np.sqrt(M)) ** 2
    return TWSpikes(num=k, edge=float(edge), threshold=float(threshold), variance=v, statistic=float(stat),
                    pvalue=pvalue, fpr=float(fpr))

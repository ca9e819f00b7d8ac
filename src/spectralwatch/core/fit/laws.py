r"""Alternative laws for the tail of a sample, and their maximum-likelihood fits.

Every law here is a continuous density on the tail ``xmin <= x`` (``<= xmax`` when given),
normalised on that range, as in Clauset, Shalizi & Newman, "Power-law distributions in
empirical data", SIAM Review 51 (2009) 661-703, Table 2.1:

=====================  =========================================  ==========================
law                    density ``p(x) ∝``                         parameters
=====================  =========================================  ==========================
power law              :math:`x^{-\alpha}`                        ``alpha > 1``
truncated power law    :math:`x^{-\alpha} e^{-\lambda x}`         ``alpha``, ``Lambda >= 0``
exponential            :math:`e^{-\lambda x}`                     ``Lambda > 0``
stretched exponential  :math:`x^{\beta-1} e^{-(\lambda x)^\beta}` ``Lambda, beta > 0``
lognormal              :math:`x^{-1} e^{-(\ln x-\mu)^2/2\sigma^2}` ``mu``, ``sigma > 0``
=====================  =========================================  ==========================

The truncated power law is normalised with the upper incomplete gamma function,

.. math::

    \int_{x_{min}}^{\infty} x^{-\alpha} e^{-\lambda x}\,dx
        = \lambda^{\alpha-1}\,\Gamma(1-\alpha, \lambda x_{min}),

which needs :math:`\Gamma(s, z)` for every real :math:`s = 1-\alpha` (``scipy.special.gammaincc``
only covers :math:`s > 0`): see :func:`log_upper_gamma`.

This module is part of the pure core: arrays in, frozen dataclasses out; it imports scipy, so
``import spectralwatch`` does not import it (it is loaded when a tail comparison is asked for).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .special import (
    concave_newton,
    lognormal_natural,
    mills_excess,
    log_upper_gamma,
    tpl_log_norm,
)
from ...errors import InvalidParameterError
from .truncated import TPL_ALPHA_RANGE, TruncatedPowerLawFit, check_tail, tail_problem, fit_truncated_power_law  # noqa: F401

__all__ = [
    "log_upper_gamma",
    "tpl_log_norm",
    "TruncatedPowerLawFit",
    "fit_truncated_power_law",
    "TailFit",
    "fit_tail",
    "TAIL_LAWS",
    "LikelihoodRatio",
    "likelihood_ratio",
]

# --------------------------------------------------------------------------------------------
# the other tail laws: power law with fixed xmin, exponential, stretched exponential, lognormal
# --------------------------------------------------------------------------------------------
TAIL_LAWS = ("power_law", "exponential", "stretched_exponential", "lognormal", "truncated_power_law")
_PARAM_NAMES = {
    "power_law": ("alpha",),
    "exponential": ("Lambda",),
    "stretched_exponential": ("Lambda", "beta"),
    "lognormal": ("mu", "sigma"),
}
STRETCHED_BETA_RANGE = (1e-6, 50.0)  # beta -> 0 is the power law limit, beta = 1 the exponential


@dataclass(frozen=True, repr=False)
class TailFit:
    r"""Maximum-likelihood fit of one law to the tail ``x >= xmin`` (untruncated above).

    Attributes
    ----------
    distribution : str
        ``'power_law'``, ``'exponential'``, ``'stretched_exponential'`` or ``'lognormal'``.
    params : tuple of (name, value)
        ``alpha``; ``Lambda``; ``Lambda, beta``; ``mu, sigma`` (of ``ln x``). Also readable as
        attributes through :meth:`param`.
    loglikelihood : float
        Total log-likelihood of the tail (densities of ``x``).
    n_tail : int
    xmin : float
    success : bool
    message : str
    """

    distribution: str
    params: tuple
    loglikelihood: float
    n_tail: int
    xmin: float
    success: bool
    message: str = ""
    aux: tuple = ()  # the law's internal parametrisation, when it differs (stretched exponential: ln c)

    @property
    def xmax(self) -> float:
        return math.inf

    def param(self, name: str) -> float:
        """The value of one parameter, e.g. ``fit.param('sigma')``."""
        return dict(self.params)[name]

    def logpdf(self, x) -> np.ndarray:
        """Log-density at ``x >= xmin``."""
        return _logpdf(self.distribution, dict(self.params + self.aux), self.xmin, np.asarray(x, dtype=np.float64))

    def cdf(self, x):
        """``P(X <= x)`` on the tail."""
        return _cdf(self.distribution, dict(self.params + self.aux), self.xmin, np.asarray(x, dtype=np.float64))

    def __repr__(self) -> str:
        if not self.success:
            return f"TailFit({self.distribution!r}, success=False, message={self.message!r})"
        ps = ", ".join(f"{k}={v:.4g}" for k, v in self.params)
        return f"TailFit({self.distribution!r}, {ps}, loglikelihood={self.loglikelihood:.4f}, n_tail={self.n_tail})"


def _logpdf(dist, p, xmin, x):
    if dist == "power_law":
        a = p["alpha"]
        return math.log(a - 1.0) - math.log(xmin) - a * np.log(x / xmin)
    if dist == "exponential":
        lam = p["Lambda"]
        return math.log(lam) - lam * (x - xmin)
    if dist == "stretched_exponential":
        lam, b = p["Lambda"], p["beta"]
        ly = np.log(x / xmin)
        # beta lam^beta x^(beta-1) exp(-(lam x)^beta + (lam xmin)^beta), with c = (Lambda xmin)^beta
        log_c = p["log_c"] if "log_c" in p else b * (math.log(lam) + math.log(xmin))
        return math.log(b) + log_c - math.log(xmin) + (b - 1.0) * ly - math.exp(log_c) * np.expm1(b * ly)
    if dist == "lognormal":
        # with w = ln(x/xmin), d = mu - ln xmin, z0 = -d/sigma: for z0 > 0 the -d^2/2sigma^2 of the
        # exponent cancels analytically against ln Q(z0) = -z0^2/2 + ln(erfcx(z0/sqrt2)/2), which keeps
        # the power-law-like limit (mu -> -inf, sigma -> inf) exact
        mu, s = p["mu"], p["sigma"]
        w = np.log(x / xmin)
        d = mu - math.log(xmin)
        z0 = -d / s
        head = -np.log(x) - math.log(s) - 0.5 * math.log(2 * math.pi)
        if z0 > 0:
            return head - w * w / (2 * s * s) + w * (d / (s * s)) - math.log(0.5 * float(special.erfcx(z0 / math.sqrt(2))))
        z = (w - d) / s
        return head - 0.5 * z * z - float(special.log_ndtr(-z0))
    raise ValueError(dist)


def _cdf(dist, p, xmin, x):
    if dist == "power_law":
        return -np.expm1((1.0 - p["alpha"]) * np.log(x / xmin))
    if dist == "exponential":
        return -np.expm1(-p["Lambda"] * (x - xmin))
    if dist == "stretched_exponential":
        lam, b = p["Lambda"], p["beta"]
        c = math.exp(p["log_c"] if "log_c" in p else b * (math.log(lam) + math.log(xmin)))
        return -np.expm1(-c * np.expm1(b * np.log(x / xmin)))
    if dist == "lognormal":
        mu, s = p["mu"], p["sigma"]
        z0 = (math.log(xmin) - mu) / s
        dz = np.log(x / xmin) / s  # z - z0
        if z0 > 0:  # 1 - Q(z)/Q(z0) with ln Q(z) = -z^2/2 + ln(erfcx(z/sqrt2)/2): no cancellation
            z = z0 + dz
            log_ratio = (-0.5 * dz * (2 * z0 + dz) + np.log(special.erfcx(z / math.sqrt(2)))
                         - math.log(float(special.erfcx(z0 / math.sqrt(2)))))
        else:
            log_ratio = special.log_ndtr(-(z0 + dz)) - float(special.log_ndtr(-z0))
        return -np.expm1(log_ratio)
    raise ValueError(dist)


def _tail_failed(dist, n, xmin, message) -> TailFit:
    return TailFit(dist, tuple((k, math.nan) for k in _PARAM_NAMES[dist]), math.nan, int(n), float(xmin),
                   False, message)


def _done(dist, params: dict, tail: np.ndarray, xmin: float, message: str = "", aux=None) -> TailFit:
    aux = aux or {}
    ll = float(np.sum(_logpdf(dist, {**params, **aux}, xmin, tail)))
    ok = bool(np.isfinite(ll))
    return TailFit(dist, tuple(params.items()), ll, int(tail.size), float(xmin), ok,
                   message if ok else "the likelihood is not finite at the maximum", tuple(aux.items()))


def fit_tail(data, xmin, distribution, *, xmax=None):
    """Maximum-likelihood fit of ``distribution`` to the tail ``data >= xmin``.

    Parameters
    ----------
    data : array_like
    xmin : float
    distribution : {'power_law', 'exponential', 'stretched_exponential', 'lognormal',
        'truncated_power_law'}
    xmax : float, optional
        Upper truncation; only for ``'truncated_power_law'``.

    Returns
    -------
    TailFit or TruncatedPowerLawFit

    Notes
    -----
    Closed forms for the power law (:math:`\\hat\\alpha = 1 + n/\\sum\\ln(x/x_{min})`) and the
    exponential (:math:`\\hat\\lambda = 1/(\\bar x - x_{min})`); the stretched exponential
    (Weibull tail) profiles out :math:`\\lambda^\\beta = n/\\sum (x^\\beta - x_{min}^\\beta)` and
    maximises over :math:`\\ln\\beta` (a grid, then a bounded Brent search); the lognormal
    (normalised by :math:`\\Phi(-(\\ln x_{min}-\\mu)/\\sigma)`) is maximised over
    :math:`(\\mu, \\ln\\sigma)` by L-BFGS-B with its analytic gradient. Clauset, Shalizi & Newman
    (2009), Table 2.1.
    """
    if distribution == "truncated_power_law":
        return fit_truncated_power_law(data, xmin, xmax=xmax)
    if distribution not in _PARAM_NAMES:
        raise InvalidParameterError(
            "The 'distribution' parameter of fit_tail must be one of " + ", ".join(repr(d) for d in TAIL_LAWS)
            + f". Got {distribution!r}.")
    if xmax is not None:
        raise InvalidParameterError(
            f"The 'xmax' parameter of fit_tail must be None for {distribution!r} (only the truncated power "
            f"law is fitted with an upper truncation). Got {xmax!r}.")
    tail, _ = check_tail(data, xmin, None, "fit_tail")
    xmin = float(xmin)
    problem = tail_problem(tail)
    if problem:
        return _tail_failed(distribution, tail.size, xmin, problem)
    return _FITTERS[distribution](tail, xmin)


def _fit_power_law_tail(tail, xmin):
    s = float(np.sum(np.log(tail / xmin)))
    return _done("power_law", {"alpha": 1.0 + tail.size / s}, tail, xmin)


def _fit_exponential(tail, xmin):
    return _done("exponential", {"Lambda": 1.0 / float(np.mean(tail - xmin))}, tail, xmin)


def _stretched_profile(log_beta, ly, sum_ly, n):
    """Profile log-likelihood (per point, without ``-ln xmin``) of the stretched exponential.

    With :math:`L = \\ln(x/x_{min})`, :math:`S(\\beta) = \\sum \\mathrm{expm1}(\\beta L)`:
    :math:`\\ell_p/n = \\ln\\beta + \\ln n - \\ln S + (\\beta-1)\\bar L - 1`; ``log_beta`` may be
    an array (a grid: evaluated as a 2-D block).
    """
    b = np.exp(np.asarray(log_beta, dtype=np.float64))
    bl = b[..., None] * ly
    top = bl.max(axis=-1, keepdims=True)
    # ln S without overflow: S = e^top * sum(e^{bL - top} - e^{-top})
    log_s = top[..., 0] + np.log(np.sum(np.exp(bl - top) - np.exp(-top), axis=-1))
    small = top[..., 0] < 1e-3  # expm1 keeps the digits when every beta * L is small
    if np.any(small):
        log_s = np.where(small, np.log(np.sum(np.expm1(bl), axis=-1)), log_s)
    return np.log(b) + math.log(n) - log_s + (b - 1.0) * sum_ly / n - 1.0


def _fit_stretched_exponential(tail, xmin):
    r"""Stretched exponential by the profile likelihood in ``ln beta`` (grid, then bounded Brent).

    The fit is carried as ``(c, beta)`` with :math:`c = (\lambda x_{min})^\beta = n / S(\beta)`:
    as :math:`\beta \to 0` (where the law tends to the power law with :math:`\alpha - 1 = c\beta`)
    :math:`\lambda = c^{1/\beta}/x_{min}` leaves the floating-point range (reported as ``inf``)
    while the density stays exact.
    """
    from scipy.optimize import minimize_scalar

    ly = np.log(tail / xmin)
    n, sum_ly = tail.size, float(ly.sum())
    lo, hi = math.log(STRETCHED_BETA_RANGE[0]), math.log(STRETCHED_BETA_RANGE[1])
    grid = np.linspace(lo, hi, 33)
    vals = _stretched_profile(grid, ly, sum_ly, n)
    vals = np.where(np.isfinite(vals), vals, -np.inf)
    if not np.isfinite(vals).any():
        return _tail_failed("stretched_exponential", n, xmin, "no finite likelihood for beta in its range")
    k = int(np.argmax(vals))
    a, b = grid[max(k - 1, 0)], grid[min(k + 1, grid.size - 1)]
    res = minimize_scalar(lambda u: -float(_stretched_profile(u, ly, sum_ly, n)), bounds=(a, b),
                          method="bounded", options={"xatol": 1e-10})
    u = float(res.x) if -res.fun >= vals[k] else float(grid[k])
    beta = math.exp(u)
    log_c = math.log(n) - float(_stretched_profile_log_s(beta, ly))
    log_lam = log_c / beta - math.log(xmin)
    lam = math.exp(log_lam) if log_lam < 709.0 else math.inf
    message = ""
    if abs(u - lo) < 1e-6:
        message = "beta at the lower edge of its range (the power-law limit)"
    elif abs(u - hi) < 1e-6:
        message = "beta at the upper edge of its range"
    return _done("stretched_exponential", {"Lambda": lam, "beta": beta}, tail, xmin, message,
                 aux={"log_c": log_c})


def _stretched_profile_log_s(b, ly):
    """``ln S(beta) = ln sum expm1(beta * L)`` for one beta, without overflow."""
    bl = b * ly
    top = float(bl.max())
    if top < 1e-3:
        return math.log(float(np.sum(np.expm1(bl))))
    return top + math.log(float(np.sum(np.exp(bl - top) - math.exp(-top))))


def _fit_lognormal(tail, xmin):
    r"""Lognormal on the tail by maximum likelihood in the natural parameters of ``u = ln(x/xmin)/U``.

    The left-truncated lognormal is an exponential family in :math:`(a, b)`,
    :math:`p(u) \propto e^{a u + b u^2}` (:math:`b < 0`), with sufficient statistics
    :math:`(\bar u, \overline{u^2})`: the likelihood is concave, each evaluation is O(1), and the
    boundary :math:`b \to 0^-` is the power law :math:`\alpha = 1 - a/U` (where
    :math:`\mu \to -\infty`, :math:`\sigma \to \infty`). L-BFGS-B with the exact gradient
    :math:`(\bar u - E[u], \overline{u^2} - E[u^2])`.
    """
    w = np.log(tail / xmin)
    U = float(w.max())
    u = w / U
    mu1, mu2 = float(u.mean()), float((u * u).mean())

    def value(a, b):
        return a * mu1 + b * mu2 - lognormal_natural(a, b)[3]

    def grad(a, b):
        _, s, z0, _ = lognormal_natural(a, b)
        ew, ew2 = mills_excess(z0)
        return np.array([mu1 - s * ew, mu2 - s * s * ew2])  # u = s W exactly (truncation at u = 0)

    var = max(mu2 - mu1 * mu1, 1e-12)
    b = -1.0 / (2.0 * var)
    a = -2.0 * b * mu1
    a, b, message = concave_newton(value, grad, a, b, b_max=_LOGNORMAL_B_EDGE)
    m, s, _, _ = lognormal_natural(a, b)
    if b >= _LOGNORMAL_B_EDGE:
        message = "sigma at the edge of its range (the power-law limit)"
    params = {"mu": math.log(xmin) + U * m, "sigma": U * s}
    return _done("lognormal", params, tail, xmin, "" if message == "converged" else message)


_LOGNORMAL_B_EDGE = -1e-10  # b -> 0-: the power-law limit; here b u^2 <= 1e-10 on the whole tail


_FITTERS = {
    "power_law": _fit_power_law_tail,
    "exponential": _fit_exponential,
    "stretched_exponential": _fit_stretched_exponential,
    "lognormal": _fit_lognormal,
}


# --------------------------------------------------------------------------------------------
# likelihood-ratio tests
# --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LikelihoodRatio:
    r"""Log-likelihood-ratio test of two laws on the same tail (Vuong 1989; Clauset et al. 2009, §5).

    Attributes
    ----------
    first, second : str
        The two laws; ``R > 0`` favours ``first``.
    R : float
        :math:`\sum_i [\ln p_1(x_i) - \ln p_2(x_i)]`.
    normalized_R : float
        Vuong's statistic :math:`R / (\sigma\sqrt n)`, with :math:`\sigma^2` the variance of the
        pointwise differences; asymptotically standard normal when neither law is better.
    p : float
        Two-sided p-value of the sign of ``R``: :math:`\mathrm{erfc}(|R|/(\sigma\sqrt{2n}))`; for a
        nested pair, from Wilks' theorem with one degree of freedom on the boundary of the larger
        family (:math:`\tfrac12\chi^2_0 + \tfrac12\chi^2_1`, Self & Liang 1987):
        :math:`\tfrac12 P(\chi^2_1 > 2|R|)`.
    nested : bool
    n : int
        Tail size.
    """

    first: str
    second: str
    R: float
    normalized_R: float
    p: float
    nested: bool
    n: int

    def preferred(self, level: float = 0.1) -> str:
        """The law the test supports at significance ``level`` (Clauset et al.: 0.1), or ``''``."""
        if not (self.p < level) or self.R == 0 or not np.isfinite(self.R):
            return ""
        return self.first if self.R > 0 else self.second


_SAME_LAW_SD = 1e-7  # pointwise log-density differences below this are fitting round-off, not evidence


def likelihood_ratio(ll1, ll2, *, nested=False, first="first", second="second") -> LikelihoodRatio:
    """Vuong's test from pointwise log-likelihoods ``ll1``, ``ll2`` of the same tail values."""
    d = np.asarray(ll1, dtype=np.float64) - np.asarray(ll2, dtype=np.float64)
    n = d.size
    if n == 0 or not np.isfinite(d).all():
        return LikelihoodRatio(first, second, math.nan, math.nan, math.nan, nested, n)
    R = float(d.sum())
    sd = float(np.sqrt(np.mean((d - d.mean()) ** 2)))
    if sd < _SAME_LAW_SD and abs(R) < _SAME_LAW_SD * n:  # the two fitted densities coincide: no evidence
        return LikelihoodRatio(first, second, R, 0.0, 1.0, nested, n)
    norm = R / (sd * math.sqrt(n)) if sd > 0 else (0.0 if R == 0 else math.copysign(math.inf, R))
    if nested:
        # R = 0 (the larger law's maximum is on the smaller one, Lambda = 0) up to rounding: p = 1
        # P(chi2_1 > 2|R|) = erfc(sqrt(|R|)) (scipy.stats, slow to import, is not needed)
        p = 0.5 * float(special.erfc(math.sqrt(abs(R)))) if abs(R) > 1e-9 * max(1.0, n) else 1.0
    else:
        p = float(special.erfc(abs(norm) / math.sqrt(2.0))) if sd > 0 else (1.0 if R == 0 else 0.0)
    return LikelihoodRatio(first, second, R, norm, p, nested, n)

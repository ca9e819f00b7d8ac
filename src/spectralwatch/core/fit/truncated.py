r"""The truncated power law :math:`p(x) \propto x^{-\alpha} e^{-\lambda x}` on ``x >= xmin``: its
maximum-likelihood fit.

Normalised with the upper incomplete gamma function (see :func:`spectralwatch._special.log_upper_gamma`
and the table of tail laws in :mod:`spectralwatch.distributions`, which re-exports everything here).
The fit maximises the concave log-likelihood in ``(alpha, lambda * xmin)`` by a safeguarded Newton
iteration; the power law (``lambda = 0``) is the boundary of the parameter space.

Part of the pure core: arrays in, frozen dataclasses out; imports scipy, so ``import spectralwatch``
does not import it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .special import log_norm_pl, tpl_log_norm
from ...errors import InvalidParameterError

__all__ = ["TPL_ALPHA_RANGE", "TruncatedPowerLawFit", "fit_truncated_power_law"]

TPL_ALPHA_RANGE = (0.0, 50.0)  # default search range of the truncated power law's exponent


@dataclass(frozen=True, repr=False)
class TruncatedPowerLawFit:
    r"""Maximum-likelihood truncated power law :math:`p(x) \propto x^{-\alpha} e^{-\lambda x}` on a tail.

    Attributes
    ----------
    alpha, Lambda : float
        Exponent and exponential cut-off rate (``Lambda = 0`` is a pure power law); NaN when
        the fit failed.
    loglikelihood : float
        Total log-likelihood of the tail, in the units of the data (densities of ``x``).
    n_tail : int
        Number of tail values (``xmin <= x``, and ``<= xmax`` when truncated).
    xmin, xmax : float
        The tail's range (``xmax = inf`` when not truncated).
    alpha_stderr, Lambda_stderr : float
        Asymptotic standard errors from the observed Fisher information (NaN on the boundary
        ``Lambda = 0`` or when the fit failed).
    success : bool
    message : str
        Why the fit failed, or how it ended (``'Lambda = 0: the power law is the maximum'``).
    iterations : int
        Newton iterations used.
    """

    alpha: float
    Lambda: float
    loglikelihood: float
    n_tail: int
    xmin: float
    xmax: float
    alpha_stderr: float
    Lambda_stderr: float
    success: bool
    message: str = ""
    iterations: int = 0

    distribution = "truncated_power_law"

    @property
    def params(self) -> dict:
        return {"alpha": self.alpha, "Lambda": self.Lambda}

    def _log_norm(self) -> float:
        return float(tpl_log_norm(self.alpha, self.Lambda * self.xmin, self.xmax / self.xmin))

    def logpdf(self, x) -> np.ndarray:
        """Log-density at ``x`` (meaningful on the tail range only)."""
        y = np.asarray(x, dtype=np.float64) / self.xmin
        return -self.alpha * np.log(y) - self.Lambda * self.xmin * y - math.log(self.xmin) - self._log_norm()

    def ccdf(self, x) -> np.ndarray:
        r"""``P(X > x)`` on the tail: :math:`y^{1-\alpha} Z(\alpha, \mu y; y_{max}/y) / Z(\alpha, \mu)`."""
        y = np.atleast_1d(np.asarray(x, dtype=np.float64) / self.xmin)
        mu = self.Lambda * self.xmin
        ymax = self.xmax / self.xmin
        out = np.empty(y.shape)
        for i, yi in enumerate(y.ravel()):  # the truncation ratio differs per point
            if yi >= ymax:
                out.flat[i] = 0.0
                continue
            lz = tpl_log_norm(self.alpha, mu * yi, ymax / yi)
            out.flat[i] = math.exp(float((1.0 - self.alpha) * math.log(yi) + lz) - self._log_norm())
        return np.minimum(out, 1.0).reshape(np.shape(x)) if np.ndim(x) else float(out[0])

    def cdf(self, x):
        """``P(X <= x)`` on the tail."""
        return 1.0 - self.ccdf(x)

    def __repr__(self) -> str:
        if not self.success:
            return f"TruncatedPowerLawFit(success=False, message={self.message!r})"
        return (f"TruncatedPowerLawFit(alpha={self.alpha:.4f}, Lambda={self.Lambda:.4g}, "
                f"loglikelihood={self.loglikelihood:.4f}, n_tail={self.n_tail})")


def _moments(alpha: float, mu: float, ymax: float, h: float = 1e-4):
    r"""``ln Z`` and the first two moments of :math:`(\ln y, y)` under the law, from ``ln Z``.

    :math:`E[y] = Z(\alpha-1)/Z(\alpha)`, :math:`E[y^2] = Z(\alpha-2)/Z(\alpha)`,
    :math:`E[\ln y] = -\partial_\alpha \ln Z` and
    :math:`\mathrm{Var}(\ln y) = \partial^2_\alpha \ln Z` (central differences of step ``h``),
    :math:`E[y \ln y] = E[y]\,E_{\alpha-1}[\ln y]`. All nine values in one vectorised call.
    """
    da = np.array([0.0, h, -h])
    alphas = np.concatenate([alpha + da, alpha - 1.0 + da, [alpha - 2.0]])
    lz = tpl_log_norm(alphas, mu, ymax)
    L0, Lp, Lm = lz[0], lz[1], lz[2]
    e_log = -(Lp - Lm) / (2 * h)
    var_log = (Lp - 2 * L0 + Lm) / (h * h)
    e_y = math.exp(lz[3] - L0) if np.isfinite(lz[3]) else math.inf
    e_y2 = math.exp(lz[6] - L0) if np.isfinite(lz[6]) else math.inf
    e_log1 = -(lz[4] - lz[5]) / (2 * h)
    cov = e_y * e_log1 - e_y * e_log
    return L0, e_log, e_y, var_log, e_y2 - e_y * e_y, cov


def check_tail(data, xmin, xmax, func: str):
    """Validate ``data``/``xmin``/``xmax``; return the sorted tail (float64) and ``xmax`` (inf if None)."""
    arr = np.asarray(data)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        what = f"shape {arr.shape}" if arr.ndim != 1 else f"dtype {arr.dtype}"
        raise InvalidParameterError(
            f"The 'data' parameter of {func} must be a 1-D array of real numbers. Got an array of {what}.")
    if isinstance(xmin, bool) or not isinstance(xmin, (int, float, np.integer, np.floating)) \
            or not (np.isfinite(xmin) and xmin > 0):
        raise InvalidParameterError(f"The 'xmin' parameter of {func} must be a finite number > 0. Got {xmin!r}.")
    if xmax is None:
        xmax = math.inf
    elif isinstance(xmax, bool) or not isinstance(xmax, (int, float, np.integer, np.floating)) \
            or not xmax > xmin:
        raise InvalidParameterError(
            f"The 'xmax' parameter of {func} must be None or a number > xmin ({xmin!r}). Got {xmax!r}.")
    arr = arr.astype(np.float64)
    tail = np.sort(arr[(arr >= xmin) & (arr <= xmax)])
    return tail, float(xmax)


def tail_problem(tail: np.ndarray) -> str:
    """Why no law can be fitted to this (sorted) tail; ``''`` when one can."""
    if not np.isfinite(tail).all():
        return "the tail contains non-finite values"
    if tail.size < 2 or tail[0] == tail[-1]:
        return f"{tail.size} tail value(s), not all equal, are needed (at least 2)"
    return ""


def _tpl_failed(n, xmin, xmax, message) -> TruncatedPowerLawFit:
    nan = math.nan
    return TruncatedPowerLawFit(nan, nan, nan, int(n), float(xmin), float(xmax), nan, nan, False, message)


def fit_truncated_power_law(data, xmin, *, xmax=None, alpha_range=TPL_ALPHA_RANGE,
                            max_iter=100) -> TruncatedPowerLawFit:
    r"""Maximum-likelihood fit of :math:`p(x) = C x^{-\alpha} e^{-\lambda x}` to ``data >= xmin``.

    Parameters
    ----------
    data : array_like
        1-D positive sample; only the values in ``[xmin, xmax]`` are fitted.
    xmin : float
        Lower end of the tail (fixed, e.g. the power-law fit's ``xmin``).
    xmax : float, optional
        Upper truncation of the likelihood (the density is normalised on ``[xmin, xmax]``);
        default: none.
    alpha_range : (float, float), optional
        Search range of the exponent; default ``(0, 50)``. With ``Lambda > 0`` any real
        exponent is a valid law, ``alpha <= 1`` included.
    max_iter : int, optional
        Newton iterations allowed.

    Returns
    -------
    TruncatedPowerLawFit
        ``success=False`` with a message for fewer than 2 distinct tail values or
        non-finite data.

    Notes
    -----
    With :math:`y = x/x_{min}`, :math:`\mu = \lambda x_{min}` the log-likelihood is

    .. math::

        \ell(\alpha, \mu) = -\alpha \sum \ln y_i - \mu \sum y_i - n \ln Z(\alpha, \mu) - n \ln x_{min},

    an exponential family in :math:`(-\alpha, -\mu)` with sufficient statistics
    :math:`(\ln y, y)`, hence concave: its gradient is :math:`n(E[\ln y] - \overline{\ln y},
    E[y] - \bar y)` and its Hessian :math:`-n\,\mathrm{Cov}(\ln y, y)`. The maximum is found by
    projected Newton steps with backtracking on the box ``alpha_range`` x ``[0, inf)``. When the
    power law itself (``Lambda = 0``, :math:`\hat\alpha = 1 + n/\sum\ln y`) satisfies the
    Karush-Kuhn-Tucker condition :math:`E[y] \le \bar y` it is the maximum and is returned
    directly. :math:`Z = \mu^{\alpha-1}\Gamma(1-\alpha, \mu)` (:func:`tpl_log_norm`,
    :func:`log_upper_gamma`). Clauset, Shalizi & Newman, SIAM Review 51 (2009), Table 2.1 and
    Appendix B.

    Examples
    --------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> x = rng.pareto(1.5, 200_000) + 1.0          # power law, alpha = 2.5, on [1, inf)
    >>> x = x[rng.random(x.size) < np.exp(-0.05 * (x - 1))]   # thinned by e^{-0.05 x}
    >>> fit = fit_truncated_power_law(x, 1.0)
    >>> round(fit.alpha, 1), round(fit.Lambda, 2)
    (2.5, 0.05)
    """
    func = "fit_truncated_power_law"
    lo, hi = alpha_range
    if not (np.isfinite(lo) and np.isfinite(hi) and lo < hi):
        raise InvalidParameterError(
            f"The 'alpha_range' parameter of {func} must be two finite numbers low < high. Got {alpha_range!r}.")
    tail, xmax = check_tail(data, xmin, xmax, func)
    xmin = float(xmin)
    n = tail.size
    problem = tail_problem(tail)
    if problem:
        return _tpl_failed(n, xmin, xmax, problem)
    y = tail / xmin
    ymax = xmax / xmin
    mean_log, mean_y = float(np.mean(np.log(y))), float(np.mean(y))

    def loglik(a, mu):
        lz = float(tpl_log_norm(a, mu, ymax))
        return n * (-a * mean_log - mu * mean_y - lz) - n * math.log(xmin)

    alpha, mu, message, it = _tpl_newton(mean_log, mean_y, ymax, n, lo, hi, max_iter)
    ll = loglik(alpha, mu)
    se_a = se_l = math.nan
    if mu > 0:
        _, _, _, v_log, v_y, cov = _moments(alpha, mu, ymax)
        det = v_log * v_y - cov * cov
        if det > 0:
            se_a = math.sqrt(v_y / det / n)
            se_l = math.sqrt(v_log / det / n) / xmin
    ok = np.isfinite(ll)
    return TruncatedPowerLawFit(alpha, mu / xmin, ll, n, xmin, xmax, se_a, se_l, bool(ok),
                                message if ok else "the likelihood is not finite at the maximum", it)


def _tpl_newton(mean_log, mean_y, ymax, n, lo, hi, max_iter):
    """Maximise the (per-point) truncated power law likelihood in ``(alpha, mu)``; see the fit."""

    def f(a, mu):  # per-point log-likelihood up to the constant -ln xmin
        return -a * mean_log - mu * mean_y - float(tpl_log_norm(a, mu, ymax))

    # the boundary Lambda = 0: the power law MLE (truncated or not) and the KKT check
    if np.isinf(ymax):
        a_pl = 1.0 + 1.0 / mean_log
    else:
        a_pl = _pl_truncated_alpha(mean_log, ymax, lo, hi)
    a_pl = min(max(a_pl, lo), hi)
    if np.isfinite(f(a_pl, 0.0)):
        lz = tpl_log_norm(np.array([a_pl, a_pl - 1.0]), 0.0, ymax)
        e_y = math.exp(lz[1] - lz[0]) if np.isfinite(lz[1]) else math.inf
        if e_y <= mean_y and lo < a_pl < hi:
            return a_pl, 0.0, "Lambda = 0: the power law is the maximum", 0
    # Newton on (alpha, mu), where the likelihood is concave. On an untruncated tail mu = 0 has no
    # finite likelihood when alpha <= 1, so a step that would cross it is replaced by the Newton step
    # in (alpha, ln mu) (chain rule: exact gradient and Hessian), which approaches 0 multiplicatively.
    untruncated = bool(np.isinf(ymax))
    a, mu = min(max(a_pl, lo), hi), 1.0 / mean_y
    cur = f(a, mu)
    message = f"no convergence in {max_iter} iterations"
    it = 0
    for it in range(1, max_iter + 1):
        _, e_log, e_y, v_log, v_y, cov = _moments(a, mu, ymax)
        g = np.array([e_log - mean_log, e_y - mean_y])  # gradient of f (per point)
        H = -np.array([[v_log, cov], [cov, v_y]])
        at_lo, at_hi = a <= lo + 1e-10, a >= hi - 1e-10
        free = np.array([not ((at_lo and g[0] < 0) or (at_hi and g[0] > 0)),
                         untruncated or not (mu <= 0 and g[1] < 0)])
        step = _newton_step(g, H, free)
        # a coordinate already on its bound that the joint step would push outside: fix it too
        blocked = np.array([(at_lo and step[0] < 0) or (at_hi and step[0] > 0),
                            not untruncated and mu <= 0 and step[1] < 0])
        if (blocked & free).any():
            free &= ~blocked
            step = _newton_step(g, H, free)
        decrement = float(g @ step)
        if decrement < 1e-17 or not free.any():
            message = "converged"
            break
        log_step = untruncated and step[1] < 0 and mu + step[1] <= 0.1 * mu
        if log_step:
            gl = np.array([g[0], mu * g[1]])
            Hl = np.array([[H[0, 0], mu * H[0, 1]], [mu * H[0, 1], mu * mu * H[1, 1] + mu * g[1]]])
            step = _newton_step(gl, Hl, free)
        # shorten the whole step (the direction stays an ascent direction) to stay in the box
        tt = 1.0
        if step[0] < 0 and a + step[0] < lo:
            tt = (a - lo) / -step[0]
        elif step[0] > 0 and a + step[0] > hi:
            tt = (hi - a) / step[0]
        if log_step:
            tt = min(tt, 5.0 / max(abs(step[1]), 1e-300))  # at most a factor e^5 on Lambda per step
        elif step[1] < 0 and mu + step[1] < 0:
            tt = min(tt, mu / -step[1])
        for _ in range(60):
            na = min(max(a + tt * step[0], lo), hi)
            na = lo if na < lo + 1e-10 else hi if na > hi - 1e-10 else na  # land exactly on a bound
            nmu = mu * math.exp(tt * step[1]) if log_step else max(mu + tt * step[1], 0.0)
            if not log_step and nmu <= 1e-9 * mu:  # a step shortened to the bound mu = 0 lands exactly on
                nmu = 0.0  # it (a rounding residue of 1e-17 would pin the next steps to nothing)
            new = f(na, nmu)
            if np.isfinite(new) and new >= cur - 1e-15 * abs(cur):
                break
            tt *= 0.5
        else:
            message = "line search failed"
            break
        change = abs(na - a) + abs(nmu - mu) * mean_y
        a, mu, cur = na, nmu, new
        if change < 1e-12:
            message = "converged"
            break
    if np.isfinite(f(a_pl, 0.0)) and f(a_pl, 0.0) > cur:  # safety net: never worse than the power law
        return a_pl, 0.0, "Lambda = 0: the power law is the maximum", it
    return float(a), float(mu), message, it


def _newton_step(g, H, free):
    """Newton ascent step of a concave quadratic model on the ``free`` coordinates (others: 0)."""
    step = np.zeros(2)
    if free.all():
        det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
        if det != 0.0 and np.isfinite(det):
            step = -np.array([H[1, 1] * g[0] - H[0, 1] * g[1], H[0, 0] * g[1] - H[1, 0] * g[0]]) / det
        else:
            step = g.copy()
        if not (g @ step > 0):  # not an ascent direction (Hessian not negative definite numerically)
            step = g / np.abs(np.diag(H)).clip(1e-300)
    elif free.any():
        j = int(np.flatnonzero(free)[0])
        step[j] = -g[j] / H[j, j] if H[j, j] < 0 else g[j]
    return step


def _pl_truncated_alpha(mean_log, ymax, lo, hi):
    """MLE exponent of a power law on ``[1, ymax]``: root of ``E[ln y] = mean_log`` (monotone in alpha)."""
    from scipy.optimize import brentq

    def g(a):
        h = 1e-5
        lz = log_norm_pl(np.array([a + h, a - h]), math.log(ymax))
        return -(lz[0] - lz[1]) / (2 * h) - mean_log

    a_lo, a_hi = lo - 1.0, hi + 1.0
    if g(a_lo) * g(a_hi) > 0:
        return a_lo if g(a_lo) < 0 else a_hi
    return brentq(g, a_lo, a_hi, xtol=1e-12)

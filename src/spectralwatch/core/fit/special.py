r"""Special functions and small solvers behind the tail laws of :mod:`spectralwatch.distributions`.

* :func:`log_upper_gamma` -- :math:`\ln\Gamma(s, z)` for every real ``s`` (``scipy.special.gammaincc``
  covers only ``s > 0``), and :func:`tpl_log_norm`, the normaliser of the truncated power law;
* the moments of a truncated normal from the continued fraction of the Mills ratio (the lognormal
  tail), without cancellation far in the tail;
* a damped, projected Newton iteration for the concave two-parameter likelihoods.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import special

__all__ = ["log_upper_gamma", "tpl_log_norm"]

_EPS = np.finfo(float).eps
_CF_MAX_ITER = 2000  # continued fraction: terms needed grow like 1/z near z = 2; far fewer in practice
_SERIES_TERMS = np.arange(1, 41)  # z < 2: 2^40 / 40! < 1e-35
_ZETA_K = np.arange(2, 60)
_ZETA_COEF = (-1.0) ** _ZETA_K * special.zeta(_ZETA_K.astype(float)) / _ZETA_K  # 0.5^60 / 60 < 1e-19

# --------------------------------------------------------------------------------------------
# log of the upper incomplete gamma function for every real s
# --------------------------------------------------------------------------------------------
def _lgamma_cf(s: np.ndarray, z: np.ndarray) -> np.ndarray:
    r"""``ln Gamma(s, z)`` by Legendre's continued fraction (modified Lentz), for ``z >= max(2, s+1)``.

    :math:`\Gamma(s,z) = e^{-z} z^s / (z+1-s-\frac{1(1-s)}{z+3-s-\frac{2(2-s)}{z+5-s-\dots}})`
    (Numerical Recipes, 3rd ed., section 6.2); valid for every real ``s``. About 45 terms at
    ``z = 2``, fewer above. Few arguments (the likelihood maximisation) run as plain floats;
    many (a CDF over a sample) as arrays, all elements iterated until the slowest converges.
    """
    if s.size <= 32:
        h = np.array([_cf_scalar(float(si), float(zi)) for si, zi in zip(s, z)])
    else:
        tiny = 1e-300
        b = z + 1.0 - s
        c = np.full_like(z, 1.0 / tiny)
        d = 1.0 / b
        h = d.copy()
        for i in range(1, _CF_MAX_ITER):
            an = -i * (i - s)
            b += 2.0
            d = an * d + b
            d[np.abs(d) < tiny] = tiny
            c = b + an / c
            c[np.abs(c) < tiny] = tiny
            d = 1.0 / d
            delta = d * c
            h *= delta
            if np.all(np.abs(delta - 1.0) <= 2.0 * _EPS):
                break
    return -z + s * np.log(z) + np.log(h)


def _cf_scalar(s: float, z: float) -> float:
    """The continued fraction of :func:`_lgamma_cf` for one argument, in plain floats."""
    tiny = 1e-300
    b = z + 1.0 - s
    c = 1.0 / tiny
    d = 1.0 / b
    h = d
    for i in range(1, _CF_MAX_ITER):
        an = -i * (i - s)
        b += 2.0
        d = an * d + b
        if abs(d) < tiny:
            d = tiny
        c = b + an / c
        if abs(c) < tiny:
            c = tiny
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) <= 2.0 * _EPS:
            break
    return h


def _lgamma1p(s: np.ndarray) -> np.ndarray:
    r""":math:`\ln\Gamma(1+s)` for ``|s| <= 0.5``, accurate relative to itself as ``s -> 0``.

    :math:`\ln\Gamma(1+s) = -\gamma s + \sum_{k\ge2} (-1)^k \zeta(k) s^k / k` (Abramowitz &
    Stegun 6.1.33); ``scipy.special.gammaln(1 + s)`` loses the digits of ``s`` below 1e-8. The
    polynomial is evaluated by Horner's rule (its terms shrink at least like :math:`2^{-k}`).
    """
    s = np.asarray(s, dtype=np.float64)
    acc = np.zeros_like(s)
    for c in _ZETA_COEF[::-1]:
        acc = acc * s + c
    return -np.euler_gamma * s + acc * s * s


def _lgamma_series(s: np.ndarray, z: np.ndarray) -> np.ndarray:
    r"""``ln Gamma(s, z)`` for ``-0.5 < s <= 0.5`` and ``0 < z < 2`` from the power series.

    .. math::

        \Gamma(s, z) = \frac{\Gamma(1+s) - 1}{s} - \frac{z^s - 1}{s}
            - \sum_{k \ge 1} \frac{(-1)^k z^{s+k}}{k!\,(s+k)},

    with both fractions written with ``expm1`` so that ``s -> 0`` (where the sum tends to
    :math:`E_1(z)`, the exponential integral) loses no precision.
    """
    lz = np.log(z)
    small = s == 0.0
    safe = np.where(small, 1.0, s)
    first = np.where(small, -np.euler_gamma, np.expm1(_lgamma1p(s)) / safe)
    second = np.where(small, lz, np.expm1(safe * lz) / safe)
    # -sum_k (-1)^k z^(s+k) / (k! (s+k)) = z^s sum_k p_k / (s+k), p_k = -(-z)^k / k!, by recurrence
    # (stopped once every term is below 1e-17 of the first, z^(s+1)/(s+1): the rest cannot show)
    p = -np.ones_like(z)
    total = np.zeros_like(z)
    for k in _SERIES_TERMS:
        p = p * (-z) / k
        total += p / (s + k)
        if k > 1 and np.all(np.abs(p) <= 1e-17 * z):
            break
    return np.log(first - second + np.exp(s * lz) * total)


def log_upper_gamma(s, z) -> np.ndarray:
    r"""Natural log of the (non-regularised) upper incomplete gamma function :math:`\Gamma(s, z)`.

    Parameters
    ----------
    s : array_like
        Any real order (``scipy.special.gammaincc`` covers only ``s > 0``).
    z : array_like
        Arguments ``z > 0`` (``z = 0`` gives ``gammaln(s)`` for ``s > 0`` and ``inf`` otherwise).
        Broadcast with ``s``.

    Returns
    -------
    numpy.ndarray
        :math:`\ln\Gamma(s, z)`, accurate to a few ulps relative to :math:`\Gamma` on the whole
        plane, with no overflow or underflow (large ``z``, very negative ``s``, tiny ``z``).

    Notes
    -----
    Four regions: ``z >= max(2, s+1)``: Legendre's continued fraction; ``s > 0.5``:
    ``gammaln(s) + log(gammaincc(s, z))``; ``-0.5 < s <= 0.5``: the power series around
    ``s = 0`` (:func:`_lgamma_series`); ``s <= -0.5``: that series at ``s + m`` followed by
    ``m`` steps of the recurrence :math:`\Gamma(s,z) = (\Gamma(s+1,z) - z^s e^{-z})/s`, run on
    :math:`R(s) = \Gamma(s,z)\,e^{z} z^{-s}` (:math:`R(s) = (z R(s+1) - 1)/s`) so nothing
    overflows. For ``z < 2`` and ``s <= -0.5`` each step amplifies relative errors by at most
    :math:`(z+1)/|s| \le 6`, and the product stays bounded because the factors shrink as
    :math:`|s|` grows.

    Examples
    --------
    >>> import numpy as np
    >>> round(float(np.exp(log_upper_gamma(0.0, 1.0))), 12)   # E_1(1)
    0.219383934396
    >>> round(float(log_upper_gamma(-2.5, 1e4)), 6)   # e^-z z^(s-1) (1 + ...): no underflow
    -10032.236541
    """
    s, z = np.broadcast_arrays(np.asarray(s, dtype=np.float64), np.asarray(z, dtype=np.float64))
    shape = s.shape
    s, z = s.ravel().copy(), z.ravel().copy()
    out = np.full(s.shape, np.nan)
    zero = z == 0.0
    out[zero & (s > 0)] = special.gammaln(s[zero & (s > 0)])
    out[zero & (s <= 0)] = np.inf
    pos = z > 0.0
    cf = pos & (z >= np.maximum(2.0, s + 1.0))
    if cf.any():
        out[cf] = _lgamma_cf(s[cf], z[cf])
    rest = pos & ~cf
    big = rest & (s > 0.5)
    if big.any():
        out[big] = special.gammaln(s[big]) + np.log(special.gammaincc(s[big], z[big]))
    low = rest & (s <= 0.5)
    if low.any():
        out[low] = _lgamma_low(s[low], z[low])
    return out.reshape(shape)


def _lgamma_low(s: np.ndarray, z: np.ndarray) -> np.ndarray:
    """``ln Gamma(s, z)`` for ``s <= 0.5``, ``0 < z < 2``: series near 0, then the recurrence down."""
    m = np.maximum(np.ceil(-0.5 - s + 1e-12), 0.0)  # steps so that s + m is in (-0.5, 0.5]
    s0 = s + m
    lz = np.log(z)
    log_r = _lgamma_series(s0, z) - s0 * lz + z  # ln R(s0)
    r = np.exp(log_r)
    for step in range(1, int(m.max()) + 1 if m.size else 1):
        act = m >= step
        sj = s0[act] - step  # R(sj) from R(sj + 1)
        r[act] = (z[act] * r[act] - 1.0) / sj
    return s * lz - z + np.log(r)


# --------------------------------------------------------------------------------------------
# truncated power law
# --------------------------------------------------------------------------------------------
def log_norm_pl(alpha, log_ymax):
    r"""``ln \int_1^{ymax} y^{-alpha} dy`` (``log_ymax = inf`` for no truncation)."""
    alpha = np.asarray(alpha, dtype=np.float64)
    c = 1.0 - alpha
    if np.isinf(log_ymax):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(alpha > 1.0, -np.log(alpha - 1.0), np.inf)
    t = c * log_ymax
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # expm1(t)/c > 0 always; for large |t| write it without overflow
        val = np.where(np.abs(t) < 50.0, np.log(np.expm1(t) / np.where(c == 0, 1.0, c)),
                       np.where(t > 0, t - np.log(np.abs(c)), np.log(-np.expm1(t)) - np.log(np.abs(c))))
    return np.where(c == 0.0, math.log(log_ymax) if log_ymax > 0 else -np.inf, val)


def _log_norm_series(alpha, mu, log_ymax):
    r"""``ln \int_1^{ymax} y^{-alpha} e^{-mu y} dy`` for ``mu * ymax <= 1`` by expanding the exponential.

    :math:`\sum_k (-\mu)^k/k!\, (y_{max}^{k+1-\alpha} - 1)/(k+1-\alpha)`; as
    :math:`e^{-\mu y} \ge e^{-1}` on the range, the alternating sum loses at most a factor
    :math:`e^2` to cancellation.
    """
    k = np.arange(0, 30, dtype=np.float64)
    c = 1.0 - np.asarray(alpha, dtype=np.float64)[..., None] + k
    t = c * log_ymax
    safe = np.where(c == 0.0, 1.0, c)
    e = np.where(c == 0.0, log_ymax, np.expm1(t) / safe)
    with np.errstate(divide="ignore"):
        coef = np.where(k == 0, 1.0, np.exp(k * np.log(np.asarray(mu)[..., None]) - special.gammaln(k + 1.0)))
    coef = coef * np.where(k % 2 == 1, -1.0, 1.0)
    return np.log((coef * e).sum(axis=-1))


def tpl_log_norm(alpha, mu, ymax=np.inf) -> np.ndarray:
    r"""``ln Z`` with :math:`Z(\alpha,\mu) = \int_1^{y_{max}} y^{-\alpha} e^{-\mu y}\,dy`.

    The dimensionless normaliser of the truncated power law: with :math:`y = x/x_{min}` and
    :math:`\mu = \lambda x_{min}`, the density of :math:`x` is
    :math:`x_{min}^{-1} y^{-\alpha} e^{-\mu y} / Z`. For an untruncated tail
    :math:`Z = \mu^{\alpha-1}\Gamma(1-\alpha, \mu)`; ``mu = 0`` is the power law
    (:math:`Z = 1/(\alpha-1)`, infinite for :math:`\alpha \le 1`). Broadcasts over ``alpha``
    and ``mu``.
    """
    alpha, mu = np.broadcast_arrays(np.asarray(alpha, dtype=np.float64), np.asarray(mu, dtype=np.float64))
    out = np.empty(alpha.shape)
    log_ymax = math.log(ymax) if np.isfinite(ymax) else np.inf
    zero = mu == 0.0
    if zero.any():
        out[zero] = log_norm_pl(alpha[zero], log_ymax)
    pos = ~zero
    if np.isfinite(ymax):
        ser = pos & (mu * ymax <= 1.0)
        if ser.any():
            out[ser] = _log_norm_series(alpha[ser], mu[ser], log_ymax)
        pos = pos & ~ser
    if pos.any():
        s, m = 1.0 - alpha[pos], mu[pos]
        a = log_upper_gamma(s, m)
        if np.isfinite(ymax):
            b = log_upper_gamma(s, m * ymax)
            a = a + np.log1p(-np.exp(b - a))
        out[pos] = -s * np.log(m) + a
    return out


def mills_excess(z0: float):
    r"""``E[W]`` and ``E[W^2]`` for :math:`W = Z - z_0`, :math:`Z` standard normal truncated to ``Z >= z0``.

    :math:`E[W] = h - z_0` and :math:`E[W^2] = 1 - z_0 (h - z_0)`, with :math:`h = \phi(z_0)/Q(z_0)`
    the inverse Mills ratio, cancel catastrophically for large :math:`z_0`. There the continued
    fraction :math:`h = z + 1/(z + 2/(z + 3/(z + \dots)))` gives both without cancellation:
    with :math:`D_k = z + (k+1)/D_{k+1}`, :math:`E[W] = 1/D_1` and :math:`E[W^2] = 2/(D_1 D_2)`.
    """
    if z0 < 4.0:
        h = math.sqrt(2.0 / math.pi) / float(special.erfcx(z0 / math.sqrt(2.0)))
        d = h - z0
        return d, 1.0 - z0 * d
    D2 = z0
    for k in range(80, 2, -1):  # 80 terms: converged to 1e-16 for z0 >= 4
        D2 = z0 + k / D2
    D1 = z0 + 2.0 / D2
    return 1.0 / D1, 2.0 / (D1 * D2)


def lognormal_natural(a: float, b: float):
    r"""``(m, s, z0, ln Z)`` of the density :math:`\propto e^{a u + b u^2}` on ``u >= 0`` (``b < 0``).

    It is a normal of mean :math:`m = -a/(2b)` and deviation :math:`s = 1/\sqrt{-2b}` truncated at 0,
    :math:`z_0 = -m/s`, and :math:`\ln Z = \ln(s\sqrt{2\pi}) + z_0^2/2 + \ln Q(z_0)`, written with
    ``erfcx`` for :math:`z_0 > 0` so that the :math:`z_0^2/2` cancel analytically.
    """
    c = -b
    s = 1.0 / math.sqrt(2.0 * c)
    m = a / (2.0 * c)
    z0 = -m / s
    base = math.log(s) + 0.5 * math.log(2.0 * math.pi)
    if z0 > 0:
        lz = base + math.log(0.5 * float(special.erfcx(z0 / math.sqrt(2.0))))
    else:
        lz = base + 0.5 * z0 * z0 + float(special.log_ndtr(-z0))
    return m, s, z0, lz


def concave_newton(value, grad, a, b, *, b_max, max_iter=200):
    """Maximise a smooth concave ``value(a, b)`` with ``b <= b_max`` by damped, projected Newton steps.

    The Hessian comes from central differences of the exact gradient (relative steps 1e-6).
    Returns ``(a, b, message)``.
    """
    cur = value(a, b)
    message = f"no convergence in {max_iter} iterations"
    for _ in range(max_iter):
        g = grad(a, b)
        ha, hb = 1e-6 * max(1.0, abs(a)), 1e-6 * abs(b)
        H = np.column_stack([(grad(a + ha, b) - grad(a - ha, b)) / (2 * ha),
                             (grad(a, b + hb) - grad(a, b - hb)) / (2 * hb)])
        H = 0.5 * (H + H.T)
        at_edge = b >= b_max and g[1] > 0
        if at_edge:
            step = np.array([-g[0] / H[0, 0] if H[0, 0] < 0 else g[0], 0.0])
        else:
            det = H[0, 0] * H[1, 1] - H[0, 1] * H[1, 0]
            step = -np.array([H[1, 1] * g[0] - H[0, 1] * g[1], H[0, 0] * g[1] - H[1, 0] * g[0]]) / det \
                if det > 0 and H[0, 0] < 0 else g / np.maximum(np.abs(np.diag(H)), 1e-300)
            if not g @ step > 0:
                step = g / np.maximum(np.abs(np.diag(H)), 1e-300)
        decrement = float(g @ step)
        if decrement < 1e-15:
            return a, b, "converged"
        tt = 1.0
        for _ in range(60):
            na = a + tt * step[0]
            nb = min(b + tt * step[1], b_max)
            if nb >= 0:
                nb = b_max
            new = value(na, nb)
            if np.isfinite(new) and new >= cur - 1e-15 * abs(cur):
                break
            tt *= 0.5
        else:
            return a, b, "line search failed"
        if abs(new - cur) <= 1e-16 * max(1.0, abs(cur)) and abs(na - a) + abs(nb - b) < 1e-12 * (1 + abs(a)):
            return na, nb, "converged"
        a, b, cur = na, nb, new
    return a, b, message

r"""Truncated power-law fit of an ESD tail: ``analyze(fit='TPL')`` and ``fit='E_TPL'``.

The tail :math:`\lambda \ge x_{min}` is fitted by :math:`p(\lambda) \propto \lambda^{-\alpha}
e^{-\Lambda\lambda}` by maximum likelihood (:func:`spectralwatch.distributions.fit_truncated_power_law`,
normalised with the upper incomplete gamma function). ``xmin`` is the one the power-law fit
chose (its Kolmogorov-Smirnov scan; with ``'E_TPL'`` restricted to the ``xmin_peak`` window), so
alpha and Lambda describe the same tail as the power-law columns. A truncated power law observed
above any :math:`x'_{min} \ge x_{min}` is the same law, so the estimates stay consistent whatever
cut the scan picks.

WeightWatcher 0.7.7 delegates this to the third-party ``powerlaw`` package, which chooses
``xmin`` by the truncated law's own KS distance (one two-parameter fit per candidate).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .powerlaw import PowerLawFit
from ..metrics import alpha_metrics

__all__ = ["TruncatedTail", "fit_tail_tpl", "tpl_columns"]


@dataclass(frozen=True)
class TruncatedTail:
    """A truncated power law on the tail a power-law fit selected.

    Attributes
    ----------
    tpl : TruncatedPowerLawFit
        The maximum-likelihood fit (alpha, Lambda, log-likelihood, standard errors).
    D : float
        KS distance of the fit on the tail, ``max_k |F(x_k) - k/n|`` (the power-law ``D``'s
        convention).
    sigma : float
        Standard error of alpha (observed Fisher information; ``(alpha - 1)/sqrt(n)`` when
        ``Lambda = 0``, where the fit is the power law).
    """

    tpl: object
    D: float
    sigma: float


def _tpl_cdf(tpl, x: np.ndarray) -> np.ndarray:
    r"""CDF of a fitted truncated power law at the tail points ``x``, vectorised.

    With :math:`y = x/x_{min}`, :math:`\mu = \Lambda x_{min}` and
    :math:`G(y) = \int_y^\infty t^{-\alpha} e^{-\mu t} dt = y^{1-\alpha} Z(\alpha, \mu y)`,
    :math:`P(X > x) = (G(y) - G(y_{max})) / (G(1) - G(y_{max}))` (:math:`G(y_{max}) = 0` untruncated).
    """
    from .laws import tpl_log_norm

    y = np.asarray(x, dtype=np.float64) / tpl.xmin
    mu = tpl.Lambda * tpl.xmin

    def log_g(v):
        return (1.0 - tpl.alpha) * np.log(v) + tpl_log_norm(tpl.alpha, mu * v)

    with np.errstate(over="ignore", invalid="ignore"):
        g1 = log_g(1.0)
        ccdf = np.exp(log_g(y) - g1)
        if np.isfinite(tpl.xmax):
            gmax = float(np.exp(log_g(tpl.xmax / tpl.xmin) - g1))
            ccdf = (ccdf - gmax) / (1.0 - gmax)
    if not np.all(np.isfinite(ccdf)):  # mu = 0 with alpha <= 1 on a bounded range: the fit's own CDF
        return np.asarray(tpl.cdf(x), dtype=np.float64)
    return 1.0 - np.clip(ccdf, 0.0, 1.0)


def fit_tail_tpl(pl: PowerLawFit, *, truncate_at_xmax: bool = False) -> TruncatedTail:
    """Truncated power law on the tail ``pl.data >= pl.xmin`` of a successful power-law fit.

    ``truncate_at_xmax=True`` (``xmax='force'``) normalises the likelihood on ``[xmin, xmax]``.
    """
    from .laws import fit_truncated_power_law

    data = np.asarray(pl.data)
    tail = data[data >= pl.xmin]
    tpl = fit_truncated_power_law(tail, pl.xmin, xmax=float(tail[-1]) if truncate_at_xmax else None)
    if not tpl.success:
        return TruncatedTail(tpl, math.nan, math.nan)
    n = tail.size
    D = float(np.max(np.abs(_tpl_cdf(tpl, tail) - np.arange(n) / n)))
    sigma = tpl.alpha_stderr if np.isfinite(tpl.alpha_stderr) else (tpl.alpha - 1.0) / math.sqrt(n)
    return TruncatedTail(tpl, D, float(sigma))


def tpl_columns(evals: np.ndarray, pl: PowerLawFit, options) -> dict:
    """The fit columns of a layer with ``fit='TPL'``: alpha, Lambda, D, sigma replace the power law's.

    ``alpha_weighted``, ``log_alpha_norm`` and ``warning`` follow the truncated alpha, like the
    reference's. A failed power-law fit leaves the row failed (``Lambda = -1``).
    """
    if pl.status != "success":
        return {"Lambda": -1.0}
    tail = fit_tail_tpl(pl, truncate_at_xmax=options.xmax == "force")
    tpl = tail.tpl
    if not tpl.success:
        return {"Lambda": -1.0, "alpha": -1.0, "D": -1.0, "sigma": -1.0, "status": "failed", "warning": "",
                "alpha_weighted": math.nan, "log_alpha_norm": math.nan,
                "message": f"truncated power-law fit failed: {tpl.message}"}
    alpha = float(tpl.alpha)
    warning = "over-trained" if alpha < 2.0 else "under-trained" if alpha > 6.0 else ""
    cols = {"alpha": alpha, "Lambda": float(tpl.Lambda), "D": tail.D, "sigma": tail.sigma, "warning": warning}
    cols.update(alpha_metrics(evals, alpha))
    return cols

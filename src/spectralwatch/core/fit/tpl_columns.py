r"""Truncated power-law fit of an ESD tail: ``analyze(fit='TPL')`` and ``fit='E_TPL'``.

The tail :math:`\lambda \ge x_{min}` is fitted by :math:`p(\lambda) \propto \lambda^{-\alpha}
e^{-\Lambda\lambda}` by maximum likelihood (:func:`~spectralwatch.core.fit.truncated.fit_truncated_power_law`,
normalised with the upper incomplete gamma function), with ``xmin`` chosen by the truncated law's own
Kolmogorov-Smirnov scan (:func:`~spectralwatch.core.fit.tail_scan.scan_law`; with ``'E_TPL'``
restricted to the ``xmin_peak`` window, with a fixed or ``'hill'`` ``xmin`` that one), as
WeightWatcher 0.7.7 asks of the ``powerlaw`` package (``xmin_distribution='truncated_power_law'``).
The power-law scan's ``xmin`` is not used: it sits where the tail looks like a power law, which
for a truncated power law is far out, and the estimates there are biased (docs/statistics.md).

``xmin``, ``n_tail`` and ``num_pl_spikes`` of the row are then the truncated law's, like
``alpha``, ``D`` and ``sigma``.
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
    """A truncated power law on the tail its own KS scan selected.

    Attributes
    ----------
    tpl : TruncatedPowerLawFit
        The maximum-likelihood fit (alpha, Lambda, log-likelihood, standard errors, ``xmin``).
    D : float
        KS distance of the fit on its tail, ``max_k |F(x_k) - k/n|`` (the power-law ``D``'s
        convention).
    sigma : float
        Standard error of alpha (observed Fisher information; ``(alpha - 1)/sqrt(n)`` when
        ``Lambda = 0``, where the fit is the power law).
    scan : LawScan or None
        The scan that chose ``xmin`` (None when ``xmin`` was fixed by the power-law fit's rule).
    """

    tpl: object
    D: float
    sigma: float
    scan: object = None


def fit_tail_tpl(pl: PowerLawFit, *, truncate_at_xmax: bool = False) -> TruncatedTail:
    """Truncated power law on the data of a successful power-law fit, ``xmin`` by its own scan.

    The candidates follow the power-law fit's rule (:attr:`PowerLawFit.xmin_rule`): every value
    (``'ks'``), the window (``xmin_peak``, ``xmin_range``), or the fit's own ``xmin`` when it was
    fixed or the ``'hill'`` rule. ``truncate_at_xmax=True`` (``xmax='force'``) then normalises the
    likelihood on ``[xmin, xmax]`` (``xmin`` as chosen by the untruncated scan).
    """
    from .laws import fit_truncated_power_law
    from .tail_scan import scan_law, law_D

    data = np.asarray(pl.data)
    rule = getattr(pl, "xmin_rule", ("ks",))
    scan = None
    if rule[0] in ("fixed", "index"):
        xmin = float(pl.xmin)
    else:
        scan = scan_law(data, "truncated_power_law", window=rule[1] if rule[0] == "window" else None,
                        merge=getattr(pl, "ties", "reference") == "merge")
        if scan.index < 0:
            return TruncatedTail(scan.fit, math.nan, math.nan, scan)
        xmin = scan.xmin
    tail = data[data >= xmin]
    if truncate_at_xmax or scan is None:
        tpl = fit_truncated_power_law(tail, xmin, xmax=float(tail[-1]) if truncate_at_xmax else None)
    else:
        tpl = scan.fit
    if not tpl.success:
        return TruncatedTail(tpl, math.nan, math.nan, scan)
    n = tail.size
    D = scan.D if (scan is not None and not truncate_at_xmax) else law_D(tpl, tail)
    sigma = tpl.alpha_stderr if np.isfinite(tpl.alpha_stderr) else (tpl.alpha - 1.0) / math.sqrt(n)
    return TruncatedTail(tpl, float(D), float(sigma), scan)


def tpl_columns(evals: np.ndarray, pl: PowerLawFit, options) -> dict:
    """The fit columns of a layer with ``fit='TPL'``: the truncated law's alpha, Lambda, D, sigma, xmin,
    n_tail and num_pl_spikes replace the power law's.

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
    cols = {"alpha": alpha, "Lambda": float(tpl.Lambda), "D": tail.D, "sigma": tail.sigma, "warning": warning,
            "xmin": float(tpl.xmin), "n_tail": int(tpl.n_tail),
            "num_pl_spikes": int(tpl.n_tail + pl.num_pl_spikes - pl.n_tail)}
    cols.update(alpha_metrics(evals, alpha))
    return cols

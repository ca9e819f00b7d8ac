r"""The fit statistics as options of :func:`spectralwatch.analyze`: validation, columns, FARMS.

Options (all off by default: the default table and summary are WeightWatcher's):

========================  =================================================================
``bootstrap=N``           bootstrap CI of alpha (``alpha_ci_low``, ``alpha_ci_high``) and
                          ``xmin_stability``, :func:`spectralwatch.stats.bootstrap_alpha`
``ci_level=0.9``          coverage of that interval
``gof_samples=N``         goodness-of-fit p-value ``gof_p`` (Clauset et al. 2009, section 4.1)
``compare_tails=True``    likelihood-ratio tests against lognormal, exponential, stretched
                          exponential and truncated power law (``lr_*``, ``best_tail``)
``xmin_method``           ``'ks'`` (default, the reference), ``'peak'`` (``xmin_peak``),
                          ``'hill'`` (TempBalance's ``PL_Alpha_Hill``), ``'fixed'`` (with ``xmin=``)
``xmin_range=(lo, hi)``   bound the KS search
``farms=True``            FARMS alpha (``farms_alpha``...) from fixed-aspect-ratio sub-matrices
``fit_quality=True``      the ``fit_quality`` flags (implied by the options above)
``exclude_flagged=True``  the model summary leaves flagged layers out
========================  =================================================================

See docs/statistics.md for the formulas and the papers.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from ..errors import InvalidParameterError

__all__ = ["STATS_KEYS", "stats_options", "fit_kwargs", "stats_columns", "farms_spectrum", "XMIN_METHODS"]

XMIN_METHODS = ("ks", "peak", "hill", "fixed")
#: the keywords of analyze() validated by :func:`stats_options`
STATS_KEYS = ("bootstrap", "ci_level", "gof_samples", "compare_tails", "xmin_method", "xmin", "xmin_range",
              "farms", "farms_q", "fit_quality", "exclude_flagged")


def _bad(name, func, allowed, value) -> InvalidParameterError:
    return InvalidParameterError(f"The '{name}' parameter of {func} must be {allowed}. Got {value!r}.")


def _flag(name, func, value) -> bool:
    value = False if value is None else value
    if not isinstance(value, (bool, np.bool_)):
        raise _bad(name, func, "True or False", value)
    return bool(value)


def _count(name, func, value) -> int:
    value = 0 if value is None or value is False else value
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0 or value == 1:
        raise _bad(name, func, "0 (off) or an int >= 2", value)
    return int(value)


def _real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def stats_options(func, *, bootstrap=0, ci_level=0.9, gof_samples=0, compare_tails=False, xmin_method=None,
                  xmin=None, xmin_range=None, farms=False, farms_q=1.0, fit_quality=False,
                  exclude_flagged=False, fix_fingers=None):
    """Validate the statistics options; return ``(fields for Options, fix_fingers)``.

    ``xmin_method='peak'`` is WeightWatcher's ``fix_fingers='xmin_peak'`` (returned as such);
    ``xmin=`` alone means ``xmin_method='fixed'``.
    """
    out = {"bootstrap": _count("bootstrap", func, bootstrap), "gof_samples": _count("gof_samples", func, gof_samples)}
    if not (_real(ci_level) and 0 < ci_level < 1):
        raise _bad("ci_level", func, "a number between 0 and 1", ci_level)
    out["ci_level"] = float(ci_level)
    for name, value in (("compare_tails", compare_tails), ("farms", farms), ("fit_quality", fit_quality),
                        ("exclude_flagged", exclude_flagged)):
        out[name] = _flag(name, func, value)
    if xmin_method is None:
        xmin_method = "fixed" if xmin is not None else "ks"
    if not (isinstance(xmin_method, str) and xmin_method in XMIN_METHODS):
        raise _bad("xmin_method", func, "one of " + ", ".join(repr(m) for m in XMIN_METHODS), xmin_method)
    if xmin_method == "fixed":
        if not (_real(xmin) and xmin > 0):
            raise _bad("xmin", func, "a finite number > 0 with xmin_method='fixed'", xmin)
        xmin = float(xmin)
    elif xmin is not None:
        raise _bad("xmin", func, f"None unless xmin_method='fixed' (it is {xmin_method!r})", xmin)
    if xmin_range is not None:
        ok = isinstance(xmin_range, (tuple, list)) and len(xmin_range) == 2 and all(
            v is None or (_real(v) and v >= 0) for v in xmin_range)
        if not ok or (None not in xmin_range and xmin_range[0] > xmin_range[1]):
            raise _bad("xmin_range", func, "a pair (low, high) of numbers >= 0 (or None) with low <= high",
                       xmin_range)
        if xmin_method != "ks":
            raise _bad("xmin_range", func, f"None unless xmin_method='ks' (it is {xmin_method!r})", xmin_range)
        xmin_range = (0.0 if xmin_range[0] is None else float(xmin_range[0]),
                      math.inf if xmin_range[1] is None else float(xmin_range[1]))
    if xmin_method == "peak":
        if fix_fingers not in (None, "xmin_peak"):
            raise _bad("fix_fingers", func, "None or 'xmin_peak' with xmin_method='peak'", fix_fingers)
        fix_fingers = "xmin_peak"
    elif (xmin_method != "ks" or xmin_range is not None) and fix_fingers is not None:
        raise _bad("fix_fingers", func, "None with xmin_method='hill' or 'fixed' or an xmin_range", fix_fingers)
    if not (_real(farms_q) and farms_q >= 1):
        raise _bad("farms_q", func, "a number >= 1 (rows / columns of the sub-matrices)", farms_q)
    out.update(xmin_method=xmin_method, xmin=xmin, xmin_range=xmin_range, farms_q=float(farms_q))
    out["fit_quality"] = out["fit_quality"] or out["exclude_flagged"] or bool(
        out["bootstrap"] or out["gof_samples"] or out["compare_tails"])
    if out["compare_tails"]:
        _preload()
    return out, fix_fingers


def _preload() -> None:
    """Import the tail-law modules (and scipy's) in the driver, before a process pool forks.

    Forked workers inherit them instead of each importing scipy.optimize again at every
    ``analyze()`` call (0.2-1 s per worker on a busy machine).
    """
    import scipy.optimize  # noqa: F401

    from ..core.fit import laws as distributions
    from ..core.fit import stats


def fit_kwargs(options) -> dict:
    """Extra keywords of :func:`spectralwatch.fit_power_law` for the layer's xmin rule."""
    method = getattr(options, "xmin_method", "ks")
    if method == "fixed":
        return {"xmin": options.xmin}
    if method == "hill":
        return {"xmin": "hill"}
    if getattr(options, "xmin_range", None) is not None:
        return {"xmin_range": options.xmin_range}
    return {}


# --------------------------------------------------------------------------------------------
# columns of one layer
# --------------------------------------------------------------------------------------------
_CI_NAN = {"alpha_ci_low": math.nan, "alpha_ci_high": math.nan, "xmin_stability": math.nan}


def stats_columns(ctx) -> dict:
    """The statistics columns of one analysed matrix group (see the module docstring).

    The objects behind them (:class:`~spectralwatch.stats.AlphaBootstrap`,
    :class:`~spectralwatch.stats.GoodnessOfFit`, :class:`~spectralwatch.stats.TailComparison`)
    travel in the row's private ``_stats`` entry, read by ``Report.get_statistics(layer)``.
    """
    from ..core.fit.stats import (
        ALTERNATIVES,
        bootstrap_alpha,
        compare_tails,
        fit_quality,
        goodness_of_fit,
    )

    o, fit = ctx.options, ctx.fit
    ok = fit is not None and getattr(fit, "status", "") == "success"
    cols, objects = {}, {}
    boot = comparison = None
    if o.bootstrap:
        boot = bootstrap_alpha(fit, o.bootstrap, ctx.rng, level=o.ci_level) if ok else None
        cols.update(_CI_NAN if boot is None else {"alpha_ci_low": boot.low, "alpha_ci_high": boot.high,
                                                  "xmin_stability": boot.xmin_stability})
        objects["bootstrap"] = boot
    if o.gof_samples:
        gof = goodness_of_fit(fit, o.gof_samples, ctx.rng) if ok else None
        cols["gof_p"] = math.nan if gof is None else gof.p
        objects["gof"] = gof
    if o.compare_tails:
        comparison = compare_tails(fit.data, fit.xmin) if ok else None
        if comparison is None:
            cols["best_tail"] = ""
            for short in ALTERNATIVES.values():
                cols.update({f"lr_{short}": math.nan, f"lr_{short}_z": math.nan, f"lr_{short}_p": math.nan})
        else:
            cols.update(comparison.columns())
        objects["comparison"] = comparison
    if o.farms:
        cols.update(_farms_columns(ctx))
    if o.fit_quality:
        cols["fit_quality"] = fit_quality(fit, boot=boot, comparison=comparison)
    if objects:
        cols["_stats"] = objects
    return cols


# --------------------------------------------------------------------------------------------
# FARMS: fixed-aspect-ratio sub-matrices
# --------------------------------------------------------------------------------------------
def _starts(total: int, size: int) -> np.ndarray:
    """Start offsets of ``ceil(total / size)`` windows of ``size`` evenly covering ``0..total``."""
    count = -(-total // size)
    return np.unique(np.round(np.linspace(0, total - size, count)).astype(int))


def farms_spectrum(stack: np.ndarray, q: float = 1.0):
    r"""Pooled eigenvalues of the fixed-aspect-ratio sub-matrices of each matrix of ``stack``.

    FARMS (Hu et al., "Eigenspectrum analysis of neural networks without aspect ratio bias",
    ICML 2025): the ESD of a weight matrix depends on its aspect ratio :math:`Q = N/M`, which
    biases alpha between layers of different shapes; FARMS measures the *average* ESD of
    sub-matrices that all have the same aspect ratio. Here each tall ``N x M`` matrix is covered by
    ``ceil(N / (q s)) x ceil(M / s)`` windows of ``round(q s) x s`` entries (``s = M``, or
    ``floor(N / q)`` when ``N < q M``), spaced evenly, and the eigenvalues of all windows are
    pooled: the pooled sample is the average of the windows' ESDs, each having ``s`` eigenvalues.
    With ``q = 1`` a square matrix is its own single window. (The paper's own window sizes and
    strides may differ; ``q`` is its aspect ratio.)

    Returns
    -------
    evals : ndarray
        Sorted pooled eigenvalues (units of ``W^T W`` of the windows).
    windows : int
    """
    k, N, M = stack.shape
    s = M if N >= q * M else max(1, int(N // q))
    rows = min(N, max(1, int(round(q * s))))
    r0, c0 = _starts(N, rows), _starts(M, s)
    blocks = np.stack([stack[i, a:a + rows, b:b + s] for i in range(k) for a in r0 for b in c0])
    gram = np.einsum("kij,kil->kjl", blocks, blocks, optimize=True)
    evals = np.linalg.eigvalsh(gram).ravel()
    return np.sort(np.clip(evals, 0.0, None)), blocks.shape[0]


def _farms_columns(ctx) -> dict:
    from ..core.fit.powerlaw import fit_power_law

    evals, windows = farms_spectrum(ctx.stack, ctx.options.farms_q)
    evals = evals * ctx.eval_scale
    fit = fit_power_law(evals, thresh=1e-5, **fit_kwargs(ctx.options))
    good = fit.status == "success"
    return {"farms_alpha": fit.alpha if good else math.nan, "farms_xmin": fit.xmin if good else math.nan,
            "farms_D": fit.D if good else math.nan, "farms_n_tail": fit.n_tail, "farms_windows": windows,
            "farms_num_evals": int(evals.size)}

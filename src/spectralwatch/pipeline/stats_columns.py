r"""The columns of the fit statistics of one layer, and of FARMS (options of :func:`spectralwatch.analyze`).

Options (all off by default: the default table and summary are WeightWatcher's):

========================  =================================================================
``bootstrap=N``           bootstrap CI of alpha (``alpha_ci_low``, ``alpha_ci_high``, ``alpha_ci_method``:
                          ``'parametric'`` below 300 tail values, else ``'percentile'``) and
                          ``xmin_stability``, :func:`spectralwatch.core.fit.uncertainty.bootstrap_alpha`
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

import numpy as np

from ..core.farms import farms_spectrum
from ..core.fit.powerlaw import fit_checked

__all__ = ["fit_kwargs", "stats_columns"]

def fit_kwargs(config) -> dict:
    """Extra keywords of :func:`spectralwatch.fit_power_law` for the layer's xmin rule (``config``: a
    :class:`~spectralwatch.options.FitConfig` or :class:`~spectralwatch.options.AnalysesConfig`)."""
    if config.xmin_method == "fixed":
        return {"xmin": config.xmin}
    if config.xmin_method == "hill":
        return {"xmin": "hill"}
    if config.xmin_range is not None:
        return {"xmin_range": config.xmin_range}
    return {}


# --------------------------------------------------------------------------------------------
# columns of one layer
# --------------------------------------------------------------------------------------------
_CI_NAN = {"alpha_ci_low": math.nan, "alpha_ci_high": math.nan, "xmin_stability": math.nan, "alpha_ci_method": ""}


def stats_columns(ctx) -> dict:
    """The statistics columns of one analysed matrix group (see the module docstring).

    The objects behind them (:class:`~spectralwatch.core.fit.uncertainty.AlphaBootstrap`,
    :class:`~spectralwatch.core.fit.uncertainty.GoodnessOfFit`, :class:`~spectralwatch.core.fit.comparison.TailComparison`)
    travel in the row's private ``_stats`` entry, read by ``Report.get_statistics(layer)``.
    """
    from ..core.fit.comparison import ALTERNATIVES, compare_tails
    from ..core.fit.quality import fit_quality
    from ..core.fit.uncertainty import bootstrap_alpha, goodness_of_fit

    o, fit = ctx.options, ctx.fit
    ok = fit is not None and getattr(fit, "status", "") == "success"
    cols, objects = {}, {}
    boot = comparison = None
    if o.bootstrap:
        boot = bootstrap_alpha(fit, o.bootstrap, ctx.rng, level=o.ci_level) if ok else None
        cols.update(_CI_NAN if boot is None else {"alpha_ci_low": boot.low, "alpha_ci_high": boot.high,
                                                  "xmin_stability": boot.xmin_stability,
                                                  "alpha_ci_method": boot.method})
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
def _farms_columns(ctx) -> dict:
    evals, windows = farms_spectrum(ctx.stack, ctx.options.farms_q)
    evals = evals * ctx.eval_scale
    fit = fit_checked(evals, thresh=1e-5, ties="reference", **fit_kwargs(ctx.options))
    good = fit.status == "success"
    return {"farms_alpha": fit.alpha if good else math.nan, "farms_xmin": fit.xmin if good else math.nan,
            "farms_D": fit.D if good else math.nan, "farms_n_tail": fit.n_tail, "farms_windows": windows,
            "farms_num_evals": int(evals.size)}

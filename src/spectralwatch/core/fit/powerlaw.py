r"""Power-law fit of the tail of an eigenvalue spectrum.

Reproduces the default fitter of WeightWatcher 0.7.7 (its ``WWFit`` class) with
an exact but much faster search over the lower cut-off ``xmin``.

Notes
-----
Let :math:`x_0 \le \dots \le x_{n-1}` be the sorted eigenvalues above ``thresh``.
Every :math:`x_i`, :math:`i \le n-2`, is a candidate ``xmin`` with a tail of
:math:`t = n - i` values, and

.. math::

    s_i = \sum_{j \ge i} \ln(x_j / x_i), \quad
    \hat\alpha_i = 1 + t / s_i, \quad
    \sigma_i = (\hat\alpha_i - 1) / \sqrt{t}, \quad
    D_i = \max_{0 \le k < t} \left| 1 - (x_{i+k}/x_i)^{1-\hat\alpha_i} - k/t \right|

(:math:`D_i = 1` when :math:`\hat\alpha_i \le 1` or the tail is constant). The fit is
the first candidate of smallest Kolmogorov-Smirnov distance: the estimator of
Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM
Review 51 (2009) 661-703, applied to weight matrices by Martin & Mahoney,
"Implicit self-regularization in deep neural networks", JMLR 22 (2021) 1-73.

Below 20 eigenvalues the reference uses :math:`\hat\alpha_i = 1 + (t-1)/s_i` on
tails of at least 8 values (others get :math:`\alpha = 0, D = 1`). It computes
:math:`J_i = D_i - 0.868/\sqrt{t}`, but the candidate it reports is the first
minimum of :math:`D_i`, and that is what is reproduced here. With fewer than 8
values the whole sample is the tail; there the reference reports
:math:`\sigma = -1/\sqrt{n}` (its sigma is computed before alpha), while this
module reports :math:`(\hat\alpha - 1)/\sqrt{n}`.

The search is exact: each :math:`D_i` is bounded from below by its maximum over a
few sampled :math:`k`; candidates are evaluated in order of increasing bound, and
the scan stops when no remaining bound is below the best exact :math:`D`.
"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from .comparison import ALTERNATIVES, compare_tails
from .ks_scan import (
    SMALL_N_CUTOFF,
    batch_scan,
    exact_ks,
    failed_scan,
    log_values,
    peak_window,
    Scan,
    scan_clip_xmax,
    scan_default,
    scan_ks,
    scan_window,
)
from .uncertainty import BOOTSTRAP_METHODS, bootstrap_alpha, goodness_of_fit
from ...errors import InvalidParameterError
from ...options import OPTIONS, defaults_of, document_options, keyword_values, suggest_keywords, validate

__all__ = ["fit_checked", "PowerLawFit", "fit_power_law", "set_fit_drawer"]

#: ``thresh=None``: values at or below this fraction of the largest are not fitted (zeros, negative
#: values, and the round-off of zero eigenvalues computed in float64, ~1e-16-1e-13 of the largest)
RELATIVE_THRESH = 1e-12


# The figure of a fit is drawn by spectralwatch.render (core imports no renderer): `import
# spectralwatch` registers its drawer here (render.plots.layer.fit_figure).
_DRAWER: list = []


def set_fit_drawer(draw) -> None:
    """Register the function that draws a fit: ``draw(fit, *, ax=None, title=None) -> Axes``."""
    _DRAWER[:] = [draw]


def _frozen(values=()) -> np.ndarray:
    arr = np.array(values, dtype=np.float64)
    arr.flags.writeable = False
    return arr


@dataclass(frozen=True, eq=False, repr=False)
class PowerLawFit:
    """Result of :func:`fit_power_law`; a failed fit is a result, not an exception.

    Attributes
    ----------
    alpha, xmin, xmax, D, sigma : float
        Exponent, lower cut-off, largest fitted eigenvalue, KS distance and
        standard error ``(alpha - 1) / sqrt(n_tail)``; all ``-1.0`` when failed.
    n_tail : int
        Number of fitted eigenvalues ``>= xmin``.
    num_pl_spikes : int
        Number of eigenvalues (after ``xmax`` clipping, also those ``<= thresh``)
        that are ``>= xmin``; ``-1`` when failed.
    status, warning, message, method : str
        ``'success'`` or ``'failed'``; ``'over-trained'`` (alpha < 2),
        ``'under-trained'`` (alpha > 6) or ``''``; why the fit failed or a note
        on how it was made; ``'ks'``, ``'small_n'``, ``'xmin_peak'`` or ``'clip_xmax'``.
    num_fingers : int
        Number of top eigenvalues removed by ``clip_xmax``.
    raw_alpha : float
        Exponent of the unclipped fit (equal to ``alpha`` unless clipped).
    xmins, alphas, Ds : numpy.ndarray
        Candidate cut-offs, their exponents and KS distances (NaN where the
        bounded scan proved a candidate cannot win). Read-only.
    data : numpy.ndarray
        Sorted data the scan ran on. Read-only.
    xmin_rule : tuple
        How ``xmin`` was chosen, for the resampling methods: ``('ks',)``,
        ``('window', (lo, hi))``, ``('index', i)`` (the ``'hill'`` rule) or ``('fixed',)``.
    ties : str
        ``'reference'`` or ``'merge'`` (see :func:`fit_power_law`).
    distribution : str
        The law of :attr:`tail`.
    tail : TailFit, TruncatedPowerLawFit or None
        The fit of ``distribution`` (None for the power law itself), on the tail above its own
        ``xmin`` (``tail.xmin``), chosen by that law's KS scan within the same rule (all
        candidates, or the window); with a fixed ``xmin`` or the ``'hill'`` rule, above ``xmin``.
    tail_scan : LawScan or None
        That scan: the law's ``xmin``, its KS distance ``D`` and every candidate's ``Ds``.
    ci : AlphaBootstrap or None
        Bootstrap confidence interval of alpha and xmin stability (``bootstrap=N``).
    gof : GoodnessOfFit or None
        Semi-parametric bootstrap goodness-of-fit p-value (``gof_samples=N``).
    """

    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    n_tail: int
    num_pl_spikes: int
    status: str
    warning: str
    message: str
    method: str
    num_fingers: int
    raw_alpha: float
    xmins: np.ndarray
    alphas: np.ndarray
    Ds: np.ndarray
    data: np.ndarray
    xmin_rule: tuple = ("ks",)
    ties: str = "reference"
    distribution: str = "power_law"
    tail: object = None
    tail_scan: object = None
    ci: object = None
    gof: object = None

    def compare(self, alternatives=None, *, level=0.1):
        """Likelihood-ratio tests of this power law against other laws on the same tail.

        Parameters
        ----------
        alternatives : str or sequence of str, optional
            Any of ``'lognormal'``, ``'exponential'``, ``'stretched_exponential'``,
            ``'truncated_power_law'``; default: all four.
        level : float
            Significance at which an alternative counts as better (Clauset et al.: 0.1).

        Returns
        -------
        TailComparison
            ``.tests[alt]`` is a :class:`~spectralwatch.distributions.LikelihoodRatio`
            (``R > 0`` favours the power law), ``.best`` the best-supported law.
        """
        if self.status != "success":
            raise ValueError(f"cannot compare a failed fit ({self.message})")
        alts = tuple(ALTERNATIVES) if alternatives is None else (
            (alternatives,) if isinstance(alternatives, str) else tuple(alternatives))
        bad = [a for a in alts if a not in ALTERNATIVES]
        if bad:
            raise _invalid("alternatives", "among " + ", ".join(repr(a) for a in ALTERNATIVES), bad[0])
        return compare_tails(self.data, self.xmin, alternatives=alts, level=level)

    def plot(self, ax=None, *, title=None):
        """The log-log ESD of the fitted eigenvalues with the fitted power law from ``xmin``.

        Returns the matplotlib Axes (a new figure, shown inline in a notebook, when ``ax`` is
        None); a failed fit draws the histogram and says why it failed. See
        :func:`spectralwatch.render.plots.layer.esd_loglog` (needs matplotlib:
        ``pip install 'spectralwatch[plot]'``).
        """
        if not _DRAWER:  # pragma: no cover - registered by `import spectralwatch`
            raise RuntimeError("No figure drawer is registered: import spectralwatch first.")
        return _DRAWER[0](self, ax=ax, title=title)

    def ks_curve(self) -> np.ndarray:
        """Exact KS distance ``D_i`` of every candidate in :attr:`xmins`, for plots."""
        if self.xmins.size == 0:
            return np.empty(0)
        idx = np.arange(self.xmins.size)
        return exact_ks(log_values(self.data), np.asarray(self.alphas), idx)

    def __repr__(self) -> str:
        if self.status != "success":
            return f"PowerLawFit(status='failed', message={self.message!r})"
        extra = f", warning={self.warning!r}" if self.warning else ""
        if self.ci is not None:
            extra += f", ci=[{self.ci.low:.4f}, {self.ci.high:.4f}]"
        if self.gof is not None:
            extra += f", gof_p={self.gof.p:.3f}"
        if self.tail is not None:
            extra += f", tail={self.tail!r}"
        return (f"PowerLawFit(alpha={self.alpha:.4f}, xmin={self.xmin:.4g}, "
                f"D={self.D:.4f}, sigma={self.sigma:.4f}, n_tail={self.n_tail}, "
                f"method={self.method!r}{extra})")


DF = defaults_of("fit_power_law")


def _failed(method: str, message: str) -> PowerLawFit:
    empty = _frozen()
    return PowerLawFit(-1.0, -1.0, -1.0, -1.0, -1.0, 0, -1, "failed", "", message, method,
                       0, -1.0, empty, empty, empty, empty)


def _result(scan: Scan, evals: np.ndarray, method: str, raw_alpha: float | None = None,
            num_fingers: int = 0) -> PowerLawFit:
    """Turn a scan into a :class:`PowerLawFit`; ``evals`` are the clipped eigenvalues."""
    if scan.best < 0:
        return _failed(method, scan.message)
    i, data = scan.best, scan.data
    alpha, xmin = float(scan.alphas[i]), float(data[i])
    sigma = (alpha - 1.0) / float(np.sqrt(data.size - i))
    warning = "over-trained" if alpha < 2.0 else "under-trained" if alpha > 6.0 else ""
    message = scan.message
    if num_fingers:
        note = f"clipped {num_fingers} top eigenvalue(s) as fingers"
        message = f"{note}; {message}" if message else note
    return PowerLawFit(
        alpha=alpha, xmin=xmin, xmax=float(data[-1]), D=float(scan.Ds[i]), sigma=sigma,
        n_tail=int(data.size - np.searchsorted(data, xmin, side="left")),
        num_pl_spikes=int(evals.size - np.searchsorted(evals, xmin, side="left")),
        status="success", warning=warning, message=message, method=method,
        num_fingers=num_fingers, raw_alpha=alpha if raw_alpha is None else raw_alpha,
        xmins=_frozen(data[:-1]), alphas=_frozen(scan.alphas), Ds=_frozen(scan.Ds),
        data=_frozen(data))


def _invalid(name: str, allowed: str, value) -> InvalidParameterError:
    return InvalidParameterError(
        f"The {name!r} parameter of fit_power_law must be {allowed}. Got {value!r}.")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_))


def _is_real(value) -> bool:
    return (isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))
            and bool(np.isfinite(value)))


def _sorted_evals(evals) -> np.ndarray:
    """Eigenvalues as a sorted 1-D float64 array; raises on non-numeric input."""
    arr = np.asarray(evals)
    if arr.ndim != 1 or arr.dtype.kind not in "iuf":
        what = f"shape {arr.shape}" if arr.ndim != 1 else f"dtype {arr.dtype}"
        raise InvalidParameterError(
            "The 'evals' parameter of fit_power_law must be a 1-D array of real numbers. "
            f"Got an array of {what}.")
    return np.sort(arr.astype(np.float64))


def _fit_fixed_xmin(data: np.ndarray, evals: np.ndarray, xmin: float) -> PowerLawFit:
    """Maximum-likelihood alpha above a given ``xmin`` (no scan); ``D`` against that tail."""
    tail = data[data >= xmin]
    if tail.size < 2 or not tail[-1] > xmin:
        return _failed("fixed", f"{tail.size} value(s) >= xmin={xmin:g}, not all equal to it, are needed "
                                "(at least 2)")
    t = tail.size
    s = float(np.sum(np.log(tail / xmin)))
    alpha = 1.0 + t / s
    D = float(np.max(np.abs(-np.expm1((1.0 - alpha) * np.log(tail / xmin)) - np.arange(t) / t)))
    return PowerLawFit(
        alpha=alpha, xmin=float(xmin), xmax=float(data[-1]), D=D, sigma=(alpha - 1.0) / math.sqrt(t), n_tail=t,
        num_pl_spikes=int(evals.size - np.searchsorted(evals, xmin, side="left")), status="success",
        warning="over-trained" if alpha < 2.0 else "under-trained" if alpha > 6.0 else "", message="",
        method="fixed", num_fingers=0, raw_alpha=alpha, xmins=_frozen([xmin]), alphas=_frozen([alpha]),
        Ds=_frozen([D]), data=_frozen(data), xmin_rule=("fixed",))


def _scan_merged(data: np.ndarray, window) -> Scan:
    """KS scan with tied values merged (one candidate and one CDF step per distinct value)."""
    res = batch_scan(data[None, :], window=window, merge=True, full=True)
    if res.index[0] < 0:
        where = "" if window is None else f" between {window[0]:g} and {window[1]:g}"
        return failed_scan(f"no usable candidate xmin{where} (fewer than 2 distinct values above each)")
    return Scan(int(res.index[0]), res.alphas[0], res.Ds[0], data)


def _scan_for(data, evals, xmin, xmin_range, ties, fix_fingers, xmin_max, max_fingers, finger_thresh):
    """Run the requested xmin rule; return ``(result or None, scan, method, rule, extra)``."""
    if xmin is not None and not isinstance(xmin, str):
        return _fit_fixed_xmin(data, evals, float(xmin)), None, "fixed", ("fixed",), {}
    if xmin == "hill":
        i = data.size // 2
        if i > data.size - 2:
            return None, failed_scan(f"only {data.size} values: the 'hill' rule needs 3"), "hill", None, {}
        return None, scan_ks(data, np.array([i])), "hill", ("index", i), {}
    if xmin == "peak" or fix_fingers == "xmin_peak":
        window, message = peak_window(data, xmin_max)
        if window is None:
            return None, failed_scan(message), "xmin_peak", None, {}
        scan = _scan_merged(data, window) if ties == "merge" else scan_window(data, window)
        return None, scan, "xmin_peak", ("window", window), {}
    if fix_fingers == "clip_xmax":
        scan, raw_alpha, fingers = scan_clip_xmax(data, max_fingers, finger_thresh)
        return None, scan, "clip_xmax", ("ks",), {"raw_alpha": raw_alpha, "num_fingers": fingers}
    if xmin_range is not None:
        scan = _scan_merged(data, xmin_range) if ties == "merge" else scan_window(data, xmin_range)
        return None, scan, "ks", ("window", xmin_range), {}
    if ties == "merge":
        return None, _scan_merged(data, None), "ks", ("ks",), {}
    method = "small_n" if data.size < SMALL_N_CUTOFF else "ks"
    return None, scan_default(data), method, ("ks",), {}


@suggest_keywords
@document_options("fit_power_law")
def fit_power_law(evals, *,
        xmin: str | float | None = DF.xmin, xmin_range: tuple | None = DF.xmin_range, xmax: int | str | None = DF.xmax,
        distribution: str = DF.distribution, rng: Any = DF.rng, bootstrap: int = DF.bootstrap,
        gof_samples: int = DF.gof_samples, ci_level: float = DF.ci_level, ci_method: str = DF.ci_method,
        ties: str = DF.ties, fix_fingers: str | None = DF.fix_fingers, xmin_max: float | None = DF.xmin_max,
        max_fingers: int = DF.max_fingers, finger_thresh: float = DF.finger_thresh, thresh: float | None = DF.thresh) -> PowerLawFit:
    """Fit a power law ``p(x) ~ x^-alpha`` to the tail of a positive sample (an eigenvalue spectrum).

    The defaults are Clauset, Shalizi & Newman's estimator for any positive data: scale-free (the
    same fit for ``c * evals``, whatever ``c > 0``) and with tied values merged.
    ``ties='reference', thresh=1e-5`` is WeightWatcher 0.7.7's fitter, reproduced exactly (what
    :func:`spectralwatch.analyze` uses on every layer).

    Parameters
    ----------
    evals : array_like
        1-D sample, in any order: eigenvalues, or any positive data (see ``thresh``).
    {options}

    Returns
    -------
    PowerLawFit
        With ``status='failed'`` and a message when no fit is possible (fewer than 2 values
        above the threshold, constant data, non-finite values...). :meth:`PowerLawFit.compare` runs
        the likelihood-ratio tests against the alternative laws.

    Raises
    ------
    InvalidParameterError
        If an option (or the type or shape of ``evals``) is invalid.

    Notes
    -----
    Formulas in the module docstring and docs/statistics.md.

    Examples
    --------
    >>> import numpy as np
    >>> x = np.random.default_rng(0).pareto(2.0, 5000) + 1.0
    >>> fit = fit_power_law(x)
    >>> 2.8 < fit.alpha < 3.2
    True
    >>> fit.compare().best
    'power_law'
    """
    values = validate("fit_power_law", keyword_values("fit_power_law", locals()))
    return fit_checked(_sorted_evals(evals), **values)


def fit_checked(evals: np.ndarray, *, xmin=None, xmin_range=None, xmax=None, distribution="power_law", rng=None,
                bootstrap=0, gof_samples=0, ci_level=OPTIONS["ci_level"].default, ci_method="auto", ties="reference",
                fix_fingers=None,
                xmin_max=None, max_fingers=OPTIONS["max_fingers"].default,
                finger_thresh=OPTIONS["finger_thresh"].default, thresh=1e-5) -> PowerLawFit:
    """:func:`fit_power_law` on already valid options and a sorted float64 ``evals`` (no checks).

    For the pipeline, which validated its options once at the public entry; ``xmin_range`` may
    hold ``inf`` (an open upper end). Its defaults are WeightWatcher's fitter (``ties='reference'``,
    the absolute ``thresh=1e-5``), not :func:`fit_power_law`'s; ``thresh=None`` is the relative
    threshold.
    """
    method = fix_fingers if isinstance(fix_fingers, str) else "ks"
    if xmin == "peak":
        method = "xmin_peak"
    bad = int(np.count_nonzero(~np.isfinite(evals)))
    if bad:
        return _failed(method, f"evals contain {bad} non-finite value(s) (NaN or inf)")
    if _is_int(xmax) and xmax != 0:
        k = abs(int(xmax))
        if k > evals.size / 2:
            return _failed(method, f"xmax={k} would drop more than half of the "
                                   f"{evals.size} eigenvalues")
        evals = evals[:-k]
    if thresh is None:  # relative: RELATIVE_THRESH of the largest value
        top = float(evals[-1]) if evals.size else 0.0
        data = evals[evals > RELATIVE_THRESH * top] if top > 0 else evals[:0]
        where = f"{RELATIVE_THRESH:g} x the largest value ({top:g})" if top > 0 else "0 (no positive value)"
    else:
        data = evals[evals > thresh]
        where = f"{thresh:g}"
    if data.size < 2:
        return _failed(method, f"only {data.size} eigenvalues above {where}; at least 2 are needed")
    done, scan, method, rule, extra = _scan_for(data, evals, xmin, xmin_range, ties, fix_fingers, xmin_max,
                                                max_fingers, finger_thresh)
    fit = done if done is not None else _result(scan, evals, method, **extra)
    if fit.status != "success":
        return fit
    return _with_statistics(fit, rule=rule, ties=ties, distribution=distribution, rng=rng, bootstrap=bootstrap,
                            gof_samples=gof_samples, ci_level=ci_level, ci_method=ci_method)


def _with_statistics(fit, *, rule, ties, distribution, rng, bootstrap, gof_samples, ci_level,
                     ci_method="auto") -> PowerLawFit:
    """Attach the rule, the alternative tail, the bootstrap interval and the GoF p-value asked for."""
    if rule == ("ks",) and ties == "reference" and distribution == "power_law" and not bootstrap \
            and not gof_samples:
        return fit  # the reference path: nothing to add
    import dataclasses

    fit = dataclasses.replace(fit, xmin_rule=rule, ties=ties, distribution=distribution)
    changes = {}
    if distribution != "power_law":  # the law's own xmin (tail_scan.py), within the fit's rule
        from .laws import fit_tail
        from .tail_scan import scan_law

        if rule[0] in ("fixed", "index"):
            changes["tail"] = fit_tail(fit.data, fit.xmin, distribution)
        else:
            scan = scan_law(fit.data, distribution, window=rule[1] if rule[0] == "window" else None,
                            merge=ties == "merge")
            changes["tail"], changes["tail_scan"] = scan.fit, scan
    if bootstrap or gof_samples:
        gen = np.random.default_rng(rng)
        if bootstrap:
            changes["ci"] = bootstrap_alpha(fit, bootstrap, gen, level=ci_level, method=ci_method)
        if gof_samples:
            changes["gof"] = goodness_of_fit(fit, gof_samples, gen)
    return dataclasses.replace(fit, **changes) if changes else fit

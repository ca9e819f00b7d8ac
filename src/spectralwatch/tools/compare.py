r"""Compare models without test data ("don't peek"), and check the metrics against accuracies.

:func:`compare` analyses several models with the same options and puts their summary metrics side
by side. HTSR predicts, among models of one architecture family, that smaller ``alpha_weighted``
(:math:`\hat\alpha`), ``log_alpha_norm``, ``log_spectral_norm`` and ``log_norm`` go with better
test accuracy. The prediction holds only for some comparisons: docs/study.md measures where (on
small MLPs a smaller mean alpha went with better accuracy across training time and learning rate,
with worse accuracy across width and weight decay, and the four norm-based metrics mostly had the
opposite sign), so a ranking from the weights alone is a hypothesis to check with accuracies.

When accuracies are known, each metric is checked as in Martin, Peng & Mahoney, "Predicting
trends in the quality of state-of-the-art neural networks without access to training or testing
data", Nature Communications 12, 4122 (2021), Table 1: the least-squares line
:math:`\text{acc} \approx a\,m + b` of accuracy against the model-level metric :math:`m`, its
root-mean-square error :math:`\sqrt{\tfrac1n\sum (\text{acc}_i - a m_i - b)^2}`, its coefficient
of determination :math:`R^2 = 1 - SS_{res}/SS_{tot}`, and Kendall's rank correlation
:math:`\tau` (the tau-b variant, which accounts for ties) between metric and accuracy, with its
two-sided p-value (exact for small samples without ties).

A metric supports the theory only when its correlation has the sign HTSR predicts
(:data:`HTSR_SIGN`: for every default metric, smaller is better, so :math:`\tau < 0`); a strong
correlation of the other sign contradicts it, and is reported as such. With fewer than
:data:`MIN_MODELS` models no rank correlation can be significant (on 3 models even
:math:`|\tau| = 1` has an exact p of 1/3), and the comparison says so.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError, NotComputedError
from ..options import DEFAULTS as D
from ..options import Options, document_options, keyword_values, suggest_keywords, validate
from ..pipeline.analyze import run
from ..results.report import Report

__all__ = ["compare", "Comparison", "MetricFit", "fit_metric", "COMPARE_METRICS", "HTSR_SIGN", "MIN_MODELS", "format_p",
           "plot_metric_vs_accuracy", "plot_alpha_curves", "save_comparison_figures"]

#: model-level metrics compared by default (Martin, Peng & Mahoney 2021, Table 1, plus alpha)
COMPARE_METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm")
#: the sign of the correlation with accuracy that HTSR predicts: -1 = smaller is better (Martin &
#: Mahoney, JMLR 2021; Martin, Peng & Mahoney, Nat. Commun. 2021); a metric not listed has no prediction
HTSR_SIGN = {"alpha": -1, "alpha_weighted": -1, "log_alpha_norm": -1, "log_spectral_norm": -1, "log_norm": -1}
#: below this many models a Kendall tau cannot reach p < 0.05 (n = 4: the exact two-sided p of
#: tau = +-1 is 1/12 = 0.083), and the comparison warns
MIN_MODELS = 5


@dataclass(frozen=True)
class MetricFit:
    """Least-squares fit of accuracy against one model-level metric.

    Attributes
    ----------
    metric : str
    slope, intercept : float
        ``accuracy ~ slope * metric + intercept``.
    rmse : float
        Root-mean-square residual, in accuracy units.
    r2 : float
        Coefficient of determination (NaN when the accuracies are all equal).
    kendall_tau : float
        Kendall's tau-b between the metric and the accuracy (NaN when either is constant).
    n : int
        Number of models in the fit.
    kendall_p : float
        Two-sided p-value of ``kendall_tau`` under independence: exact (the permutation
        distribution) without ties up to 33 models, else the normal approximation with the
        tie-corrected variance (``scipy.stats.kendalltau``).
    predicted_sign : int
        The sign of the correlation HTSR predicts (:data:`HTSR_SIGN`): -1 (smaller is better),
        +1, or 0 when the theory makes no prediction for this metric.
    """

    metric: str
    slope: float
    intercept: float
    rmse: float
    r2: float
    kendall_tau: float
    n: int
    kendall_p: float = math.nan
    predicted_sign: int = 0

    @property
    def agrees(self):
        """True when tau has the predicted sign, False when the opposite one, None when tau is 0 or
        NaN or there is no prediction."""
        if not self.predicted_sign or not (self.kendall_tau == self.kendall_tau) or self.kendall_tau == 0:
            return None
        return (self.kendall_tau > 0) == (self.predicted_sign > 0)

    @property
    def reading(self) -> str:
        """How the correlation stands against the theory, in words."""
        if not self.predicted_sign:
            return "HTSR makes no prediction for this metric"
        want = "smaller" if self.predicted_sign < 0 else "larger"
        if self.agrees is None:
            return f"no rank correlation (HTSR predicts {want} {self.metric} = better)"
        if self.agrees:
            return f"the sign HTSR predicts ({want} {self.metric} = better)"
        return f"OPPOSITE to HTSR's prediction ({want} {self.metric} = better)"

    def predict(self, values):
        """Accuracy predicted by the line at metric ``values``."""
        return self.slope * np.asarray(values, dtype=float) + self.intercept

    def __repr__(self) -> str:
        return (f"MetricFit({self.metric!r}: slope={self.slope:.4g}, intercept={self.intercept:.4g}, "
                f"rmse={self.rmse:.4g}, r2={self.r2:.4f}, kendall_tau={self.kendall_tau:.4f}, "
                f"kendall_p={self.kendall_p:.3g}, n={self.n})")


def fit_metric(values, accuracies, *, metric: str = "") -> MetricFit:
    """Least-squares line, RMSE, R^2 and Kendall tau-b (with its p-value) of ``accuracies`` against ``values``.

    Parameters
    ----------
    values, accuracies : array_like, same length (>= 2)
        One model-level metric and the accuracy of each model.

    Raises
    ------
    ValueError
        For fewer than 2 models, different lengths, non-finite values, or a constant metric
        (no line can be fitted).

    Examples
    --------
    >>> fit = fit_metric([1.0, 2.0, 3.0], [0.9, 0.8, 0.7], metric="alpha")
    >>> round(fit.slope, 6), round(fit.r2, 6), fit.kendall_tau
    (-0.1, 1.0, -1.0)
    """
    x = np.asarray(values, dtype=float).ravel()
    y = np.asarray(accuracies, dtype=float).ravel()
    if x.size != y.size:
        raise InvalidParameterError(f"{x.size} metric values but {y.size} accuracies for metric {metric!r}.")
    if x.size < 2:
        raise InvalidParameterError(f"A fit of accuracy against {metric or 'a metric'} needs at least 2 models; got {x.size}.")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise InvalidParameterError(f"Metric {metric!r} or the accuracies contain NaN or infinite values.")
    xc, yc = x - x.mean(), y - y.mean()
    sxx = float(xc @ xc)
    if sxx == 0.0:
        raise InvalidParameterError(f"Metric {metric!r} has the same value for every model: no line can be fitted.")
    slope = float(xc @ yc) / sxx
    intercept = float(y.mean() - slope * x.mean())
    resid = y - (slope * x + intercept)
    ss_res, ss_tot = float(resid @ resid), float(yc @ yc)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else math.nan
    tau = _kendall_tau_b(x, y)
    return MetricFit(metric=metric, slope=slope, intercept=intercept, rmse=math.sqrt(ss_res / x.size),
                     r2=r2, kendall_tau=tau, n=int(x.size), kendall_p=_kendall_p(x, y, tau),
                     predicted_sign=HTSR_SIGN.get(metric, 0))


def _kendall_p(x: np.ndarray, y: np.ndarray, tau: float) -> float:
    """Two-sided p-value of Kendall's tau-b: ``scipy.stats.kendalltau`` (exact without ties for up to
    33 values, the tie-corrected normal approximation otherwise)."""
    if not tau == tau:
        return math.nan
    from scipy.stats import kendalltau

    return float(kendalltau(x, y, variant="b", method="auto").pvalue)


def _kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    r"""Kendall's :math:`\tau_b = (C - D) / \sqrt{(n_0 - n_x)(n_0 - n_y)}` over all pairs (O(n^2)).

    ``C``/``D``: concordant/discordant pairs, :math:`n_0 = n(n-1)/2`, :math:`n_x`/:math:`n_y`: pairs
    tied in x / in y. Model comparisons hold tens of models, so the direct count is exact and fast.
    """
    i, j = np.triu_indices(x.size, k=1)
    sx, sy = np.sign(x[i] - x[j]), np.sign(y[i] - y[j])
    s = float(np.sum(sx * sy))
    nx, ny = float(np.count_nonzero(sx)), float(np.count_nonzero(sy))
    return s / math.sqrt(nx * ny) if nx > 0 and ny > 0 else math.nan


class Comparison:
    """The result of :func:`compare`.

    Attributes
    ----------
    names : tuple of str
    reports : tuple of Report
    summary : pandas.DataFrame
        One row per model (index: name): the summary metrics, ``num_layers``, ``num_failed``,
        ``num_flagged`` (reliably fitted layers outside [2, 6]), ``num_unreliable`` (layers fitted on
        too few eigenvalues: ``fit_reliable`` false), and ``accuracy`` when given.
    fits : tuple of MetricFit
        One per metric, when accuracies were given (empty otherwise).
    metrics : tuple of str
    """

    def __init__(self, names, reports, accuracies, metrics):
        import pandas as pd

        self.names = tuple(names)
        self.reports = tuple(reports)
        self.metrics = tuple(metrics)
        rows = []
        for name, rep in zip(self.names, self.reports):
            d = rep.details
            reliable = d["fit_reliable"].fillna(False).astype(bool) if "fit_reliable" in d else \
                np.ones(len(d), dtype=bool)
            flagged = int((d["warning"].isin(["over-trained", "under-trained"]) & reliable).sum()) \
                if "warning" in d else 0
            unreliable = int(((d["status"] == "success") & ~reliable).sum()) if "status" in d else 0
            row = {"model": name, **{m: rep.summary.get(m, math.nan) for m in self.metrics},
                   "num_layers": rep.num_layers, "num_failed": rep.num_failed, "num_flagged": flagged,
                   "num_unreliable": unreliable}
            rows.append(row)
        self.summary = pd.DataFrame(rows).set_index("model")
        self.accuracies = None if accuracies is None else tuple(float(a) for a in accuracies)
        if self.accuracies is not None:
            self.summary["accuracy"] = self.accuracies
        self.fits = tuple(self._fits())

    def _fits(self):
        if self.accuracies is None:
            return []
        fits = []
        for metric in self.metrics:
            values = self.summary[metric].to_numpy(dtype=float)
            ok = np.isfinite(values)
            if ok.sum() >= 2 and np.ptp(values[ok]) > 0:
                fits.append(fit_metric(values[ok], np.asarray(self.accuracies)[ok], metric=metric))
        return fits

    def fit_table(self):
        """The fits as a DataFrame (index: metric; slope, intercept, rmse, r2, kendall_tau, n,
        kendall_p, htsr: the sign the theory predicts, agrees: whether tau has it)."""
        import pandas as pd

        cols = ["slope", "intercept", "rmse", "r2", "kendall_tau", "n", "kendall_p"]
        rows = [{c: getattr(f, c) for c in cols} | {"metric": f.metric, "htsr": _prediction(f.predicted_sign),
                                                    "agrees": _agrees_word(f.agrees)} for f in self.fits]
        return pd.DataFrame(rows, columns=["metric", *cols, "htsr", "agrees"]).set_index("metric")

    @property
    def warnings(self) -> list:
        """What a reader must know before trusting the correlations (empty without accuracies)."""
        if self.accuracies is None:
            return []
        out = []
        n = len(self.accuracies)
        if n < MIN_MODELS:
            out.append(f"only {n} models: no rank correlation can be significant below {MIN_MODELS} models "
                       f"(with {n}, even a perfect Kendall tau of +-1 has an exact two-sided p of "
                       f"{_perfect_tau_p(n):.2g}); treat these correlations as anecdotes, not evidence")
        wrong = [f for f in self.fits if f.agrees is False]
        if wrong:
            what = ", ".join(f"{f.metric} (tau {f.kendall_tau:+.2f}, p {format_p(f.kendall_p)})" for f in wrong)
            out.append(f"{len(wrong)} of {len(self.fits)} metrics rank these models against HTSR's prediction "
                       f"(smaller is better): {what}")
        return out

    def ranking(self, metric: str = "alpha_weighted") -> list:
        """Model names from predicted best to worst: ascending ``metric`` (smaller is better in HTSR)."""
        if metric not in self.summary:
            raise NotComputedError(f"no metric {metric!r} in this comparison; available: {', '.join(self.metrics)}")
        return list(self.summary[metric].sort_values(kind="stable").index)

    def alpha_curves(self) -> dict:
        """Per model, its per-layer ``alpha`` in network order (a numpy array, NaN for failed fits)."""
        out = {}
        for name, rep in zip(self.names, self.reports):
            d = rep.details
            a = d["alpha"].to_numpy(dtype=float).copy() if "alpha" in d else np.full(len(d), np.nan)
            if "status" in d:
                a[(d["status"] != "success").to_numpy()] = np.nan
            out[name] = a
        return out

    def to_dict(self) -> dict:
        """JSON-ready: models (summary rows), fits, and per-model alpha curves (see docs/report.md)."""
        summary = self.summary.reset_index()
        return {
            "models": [{k: _json_value(v) for k, v in r.items()} for r in summary.to_dict("records")],
            "fits": [{"metric": f.metric, "slope": f.slope, "intercept": f.intercept, "rmse": f.rmse,
                      "r2": _json_value(f.r2), "kendall_tau": _json_value(f.kendall_tau), "n": f.n,
                      "kendall_p": _json_value(f.kendall_p), "htsr_prediction": _prediction(f.predicted_sign),
                      "agrees_with_htsr": f.agrees, "reading": f.reading}
                     for f in self.fits],
            "warnings": self.warnings,
            "alpha_curves": {k: [_json_value(v) for v in a] for k, a in self.alpha_curves().items()},
        }

    def __repr__(self) -> str:
        return f"<spectralwatch Comparison of {len(self.names)} models: {', '.join(self.names)}>"


def format_p(p: float) -> str:
    """A p-value for people: two decimals, or two significant digits below 0.01."""
    return "nan" if not p == p else f"{p:.2f}" if p >= 0.01 else f"{p:.1e}"


def _prediction(sign: int) -> str:
    return "smaller is better" if sign < 0 else "larger is better" if sign > 0 else "none"


def _agrees_word(agrees) -> str:
    return "yes" if agrees else "NO" if agrees is False else "-"


def _perfect_tau_p(n: int) -> float:
    """Exact two-sided p of a perfect rank correlation of ``n`` values: ``2 / n!`` (at most 1)."""
    return min(1.0, 2.0 / math.factorial(n))


def _json_value(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (float, np.floating)):
        return None if not math.isfinite(float(v)) else float(v)
    return v


def _default_name(model, i: int) -> str:
    if isinstance(model, (str, Path)):
        p = Path(model)
        return p.name if p.name not in ("model.safetensors", "pytorch_model.bin") else f"{p.parent.name}/{p.name}"
    return f"model {i + 1}"


def _check_accuracies(accuracies, n: int):
    if accuracies is None:
        return None
    try:
        acc = [float(a) for a in accuracies]
    except (TypeError, ValueError):
        raise InvalidParameterError(f"The 'accuracies' parameter of compare must be a list of {n} numbers. "
                                    f"Got {accuracies!r}.") from None
    if len(acc) != n or not all(math.isfinite(a) for a in acc):
        raise InvalidParameterError(f"The 'accuracies' parameter of compare must be a list of {n} finite "
                                    f"numbers (one per model). Got {accuracies!r}.")
    return acc


@suggest_keywords
@document_options("compare")
def compare(models, *, names=None, accuracies=None, metrics=COMPARE_METRICS,
        layers: Any = D.layers, min_evals: int | None = D.min_evals, max_evals: int | None = D.max_evals,
        max_N: int | None = D.max_N, pool: bool = D.pool, conv2d_norm: bool = D.conv2d_norm,
        start_ids: int | None = D.start_ids, grouped_conv: str = D.grouped_conv, split_fused: bool = D.split_fused,
        peft: bool | str = D.peft, base_model: Any = D.base_model, trust_pickle: bool = D.trust_pickle,
        max_work_ratio: float | None = D.max_work_ratio, revision: str | None = D.revision,
        svd_method: str = D.svd_method, tolerance: float = D.tolerance, device: str = D.device,
        cache_dir: str | os.PathLike | None = D.cache_dir, cache_max_bytes: int | None = D.cache_max_bytes,
        fit: str = D.fit, xmax: int | str | None = D.xmax, fix_fingers: str | None = D.fix_fingers,
        xmin_max: float | None = D.xmin_max, max_fingers: int = D.max_fingers,
        finger_thresh: float = D.finger_thresh, xmin_method: str | None = D.xmin_method, xmin: float | None = D.xmin,
        xmin_range: tuple | None = D.xmin_range, rng: Any = D.rng, mp_fit: bool = D.mp_fit,
        mp_fit_method: str = D.mp_fit_method, randomize: bool = D.randomize, detX: bool = D.detX,
        vectors: bool = D.vectors, bootstrap: int = D.bootstrap, ci_level: float = D.ci_level,
        gof_samples: int = D.gof_samples, compare_tails: bool = D.compare_tails, farms: bool = D.farms,
        farms_q: float = D.farms_q, fit_quality: bool = D.fit_quality, exclude_flagged: bool = D.exclude_flagged,
        inverse: bool = D.inverse, intra: bool = D.intra, sparsify: bool = D.sparsify, stacked: bool = D.stacked,
        deltas: bool = D.deltas, progress: bool = D.progress, workers: int | None = D.workers,
        executor: Any = D.executor) -> Comparison:
    """Analyse several models with the same options and compare them.

    Parameters
    ----------
    models : list
        Anything :func:`spectralwatch.analyze` accepts (paths, modules, state dicts), or
        :class:`~spectralwatch.report.Report` objects already computed.
    names : list of str, optional
        Display names (default: file names, else ``model 1``, ``model 2``...).
    accuracies : list of float, optional
        Known test accuracies, one per model: adds the per-metric fits (:class:`MetricFit`).
    metrics : tuple of str
        Model-level metrics to compare (:data:`COMPARE_METRICS`).
    {options}

    Returns
    -------
    Comparison
    """
    values = validate("compare", keyword_values("compare", locals()))
    run_kw = {k: values[k] for k in ("progress", "workers", "executor")}
    options = Options.from_values(values)
    models = list(models)
    if len(models) < 2:
        raise InvalidParameterError(f"The 'models' parameter of compare must hold at least 2 models. "
                                    f"Got {len(models)}.")
    if names is None:
        names = [_default_name(m, i) for i, m in enumerate(models)]
    names = [str(n) for n in names]
    if len(names) != len(models) or len(set(names)) != len(names):
        raise InvalidParameterError(f"The 'names' parameter of compare must be {len(models)} distinct names. "
                                    f"Got {names!r}.")
    if isinstance(metrics, str) or not all(isinstance(m, str) for m in metrics):
        raise InvalidParameterError(f"The 'metrics' parameter of compare must be a tuple of column names. "
                                    f"Got {metrics!r}.")
    acc = _check_accuracies(accuracies, len(models))
    reports = [m if isinstance(m, Report) else run(m, options, **run_kw) for m in models]
    return Comparison(names, reports, acc, metrics)


# ---- figures ---------------------------------------------------------------------------------

def plot_metric_vs_accuracy(comparison: Comparison, metric: str = "alpha_weighted", *, ax=None, title=None):
    """Accuracy against one metric, one point per model, with the least-squares line.

    The legend gives RMSE, R^2 and Kendall's tau with its p-value (Martin, Peng & Mahoney 2021,
    Table 1); the title says when tau has the sign opposite to HTSR's prediction and when there are
    fewer than :data:`MIN_MODELS` models.

    Raises
    ------
    ValueError
        When the comparison has no accuracies or no fit for ``metric``.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ..render.plots.base import COLORS, new_axes, add_legend, set_title
    from ..render.safe_text import figure_text

    fit = next((f for f in comparison.fits if f.metric == metric), None)
    if fit is None:
        raise NotComputedError(f"No fit of accuracy against {metric!r}: compare(...) needs accuracies= and a metric "
                         f"that varies between models (fitted: {[f.metric for f in comparison.fits]}).")
    ax = new_axes(ax)
    x = comparison.summary[metric].to_numpy(dtype=float)
    y = np.asarray(comparison.accuracies, dtype=float)
    ax.scatter(x, y, s=36, color=COLORS["esd"], zorder=3)
    for xi, yi, name in zip(x, y, comparison.names):
        ax.annotate(figure_text(name), (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=7)
    xs = np.linspace(np.nanmin(x), np.nanmax(x), 50)
    ax.plot(xs, fit.predict(xs), color=COLORS["fit"], linestyle="--",
            label=f"least squares: RMSE {fit.rmse:.3g}, R² {fit.r2:.3f}, Kendall τ {fit.kendall_tau:.3f} "
                  f"(p {format_p(fit.kendall_p)})")
    ax.set_xlabel(figure_text(metric))
    ax.set_ylabel("accuracy")
    notes = []
    if fit.agrees is False:
        notes.append(f"sign OPPOSITE to HTSR ({_prediction(fit.predicted_sign)})")
    if fit.n < MIN_MODELS:
        notes.append(f"only {fit.n} models: not significant")
    set_title(ax, title, f"accuracy vs {figure_text(metric)} ({fit.n} models)" + ("\n" + "; ".join(notes) if notes else ""))
    add_legend(ax, loc="best")
    return ax


def plot_alpha_curves(comparison: Comparison, *, ax=None, title=None):
    """Per-layer alpha of every model overlaid, against relative depth (0 = first layer, 1 = last).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ..render.plots.base import COLORS, WELL_TRAINED, new_axes, add_legend, set_title
    from ..render.safe_text import figure_text

    ax = new_axes(ax)
    ax.axhspan(*WELL_TRAINED, color=COLORS["band"], alpha=0.10, label="well-trained: 2 ≤ α ≤ 6")
    palette = ["#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442"]
    for k, (name, alpha) in enumerate(comparison.alpha_curves().items()):
        name = figure_text(name)
        depth = np.linspace(0.0, 1.0, alpha.size) if alpha.size > 1 else np.zeros(alpha.size)
        ax.plot(depth, alpha, marker="o", markersize=3, linewidth=1.1, color=palette[k % len(palette)],
                label=f"{name} (mean α {np.nanmean(alpha):.2f})" if np.isfinite(alpha).any() else name)
    ax.set_xlabel("relative depth (first layer 0, last layer 1)")
    ax.set_ylabel("α")
    set_title(ax, title, "per-layer α of each model")
    add_legend(ax, loc="best")
    return ax


def save_comparison_figures(comparison: Comparison, directory, *, dpi=100, fmt="png", inputs=()) -> list:
    """Write ``compare.alpha-curves.{fmt}`` and, with accuracies, ``compare.{metric}-vs-accuracy.{fmt}``.

    ``inputs``: paths no figure may replace or be written into, besides the reports' own inputs (see
    :func:`spectralwatch.render.plots.layer.save_figures`).

    Returns
    -------
    list of Path
    """
    from ..io.outputs import check_output_folder, protected_paths
    from ..render.plots.base import Canvas

    protected = protected_paths([*(p for r in comparison.reports for p in (getattr(r, "inputs", ()) or ())),
                                 *(inputs or ())])
    out = check_output_folder(directory, protected)
    out.mkdir(parents=True, exist_ok=True)
    canvas = Canvas(dpi=dpi, fmt=fmt, inputs=protected)
    written = []
    plot_alpha_curves(comparison, ax=canvas.axes())
    written.append(canvas.save(out / f"compare.alpha-curves.{fmt}"))
    for fit in comparison.fits:
        plot_metric_vs_accuracy(comparison, fit.metric, ax=canvas.axes())
        written.append(canvas.save(out / f"compare.{fit.metric}-vs-accuracy.{fmt}"))
    return written

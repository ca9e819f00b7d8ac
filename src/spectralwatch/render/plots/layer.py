"""Figures: per layer (ESDs, the power-law fit, its KS scan), per model, and files on disk.

Every function draws on the ``ax`` it is given (a new figure from ``pyplot`` when ``ax`` is None)
and returns that Axes; nothing here calls ``plt.show()``. matplotlib is imported inside the
functions (``pip install 'spectralwatch[plot]'``), so ``import spectralwatch`` stays light.

:func:`save_figures` writes every figure of a :class:`~spectralwatch.report.Report` under
WeightWatcher's file names (``ww.layer{id}.esd.png`` ...); it draws on one reused Agg canvas
without ``pyplot``, which is what makes it many times faster than the reference's ``plot=True``.
The figures of the optional Random-Matrix-Theory analyses (Marchenko-Pastur fit, randomized ESD,
detX) and of the level spacings are in :mod:`spectralwatch.plots_rmt`.

References
----------
C. H. Martin, M. W. Mahoney, "Implicit self-regularization in deep neural networks: evidence from
random matrix theory and implications for learning", JMLR 22 (2021) 1-73 (the ESD figures);
A. Clauset, C. R. Shalizi, M. E. J. Newman, "Power-law distributions in empirical data", SIAM
Review 51 (2009) 661-703 (the KS scan over ``xmin``).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .base import (BINS, COLORS, WELL_TRAINED, Canvas, add_legend, new_axes, positive_values, set_title, shorten,
                   step_hist)
from .kinds import DEFAULT_FIGURES, FIGURE_KINDS, resolve_kinds
from .model import alpha_by_layer, alpha_histogram, layer_groups, layer_label, layer_type_breakdown

__all__ = [
    "esd_loglog", "esd_linear", "esd_loglinear", "ks_distance", "alpha_vs_xmin",
    "alpha_by_layer", "alpha_histogram", "layer_type_breakdown", "layer_groups", "layer_label",
    "model_name", "plot_id", "save_figures", "draw_layer_figure", "fit_figure", "draw_model_figure",
    "LAYER_FIGURES", "MODEL_FIGURES", "FIGURE_KINDS", "DEFAULT_FIGURES", "COLORS", "WELL_TRAINED",
]


def _fitted(fit) -> bool:
    return fit is not None and getattr(fit, "status", "") == "success"


def _fit_text(fit) -> str:
    if not _fitted(fit):
        reason = getattr(fit, "message", "") if fit is not None else "no fit"
        return f"power-law fit failed: {reason}"[:90]
    return f"α = {fit.alpha:.3f}   D_KS = {fit.D:.3f}   λmin = {fit.xmin:.3g}   σ = {fit.sigma:.3f}"


def _xmin_lines(ax, fit, transform=float) -> None:
    if not _fitted(fit):
        return
    ax.axvline(transform(fit.xmin), color=COLORS["xmin"], linestyle=":", linewidth=1.6,
               label=f"λmin = {fit.xmin:.3g}")
    if fit.num_fingers:
        ax.axvline(transform(fit.xmax), color=COLORS["xmax"], linestyle=":", linewidth=1.4,
                   label=f"λmax = {fit.xmax:.3g} ({fit.num_fingers} fingers cut)")


def esd_loglog(evals, fit=None, *, ax=None, title=None, bins=BINS):
    r"""Log-log ESD with the fitted power law and its ``xmin``.

    The density is a histogram on logarithmic bins of the non-zero eigenvalues; the fitted law is
    drawn where it was fitted, :math:`p(\lambda) = f\,\frac{\alpha-1}{\lambda_{min}}
    (\lambda/\lambda_{min})^{-\alpha}` for :math:`\lambda \ge \lambda_{min}`, where ``f`` is the
    fraction of eigenvalues in the tail (so the line sits on the histogram of the whole ESD).

    Parameters
    ----------
    evals : array_like
        Eigenvalues of the layer (``report.get_ESD(layer)``).
    fit : PowerLawFit, optional
        ``report.get_fit(layer)``; a failed or missing fit draws the histogram only.
    ax : matplotlib Axes, optional
    title : str, optional
    bins : int

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    x = positive_values(evals)
    if x.size:
        ax.set_xscale("log")
        ax.set_yscale("log")
        lo, hi = float(x.min()), float(x.max())
        edges = np.geomspace(lo, hi * (1 + 1e-9), bins + 1) if hi > lo else np.array([lo * 0.9, lo * 1.1])
        counts, _ = np.histogram(x, bins=edges)
        dens = counts / (x.size * np.diff(edges))
        shown = np.where(counts > 0, dens, np.nan)
        step_hist(ax, shown, edges, color=COLORS["esd"], alpha=0.35, label="ESD (density)")
        if _fitted(fit):
            xs = np.geomspace(fit.xmin, fit.xmax, 64)
            frac = np.count_nonzero(x >= fit.xmin) / x.size
            ys = frac * (fit.alpha - 1.0) / fit.xmin * (xs / fit.xmin) ** (-fit.alpha)
            ax.plot(xs, ys, color=COLORS["fit"], linestyle="--", linewidth=2.0,
                    label=f"power law, α = {fit.alpha:.2f}")
    _xmin_lines(ax, fit)
    ax.set_xlabel("eigenvalue λ of WᵀW (log scale)")
    ax.set_ylabel("density ρ(λ) (log scale)")
    set_title(ax, title, _fit_text(fit))
    add_legend(ax)
    return ax


def esd_linear(evals, fit=None, *, ax=None, title=None, bins=BINS):
    """Lin-lin ESD: histogram of the eigenvalues with the power-law ``xmin`` marked.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    x = np.asarray(evals, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size:
        counts, edges = np.histogram(x, bins=bins)
        dens = counts / (x.size * np.diff(edges)) if np.ptp(x) > 0 else counts.astype(float)
        step_hist(ax, dens, edges, color=COLORS["esd"], alpha=0.55, outline=False, label="ESD")
    _xmin_lines(ax, fit)
    ax.set_xlabel("eigenvalue λ")
    ax.set_ylabel("density ρ(λ)")
    set_title(ax, title, "linear scale: the bulk, and the tail that the fit sees")
    add_legend(ax)
    return ax


def esd_loglinear(evals, fit=None, *, ax=None, title=None, bins=BINS):
    r"""Log-lin ESD: histogram of :math:`\log_{10}\lambda`, with ``xmin`` and ``xmax`` marked.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    x = positive_values(evals)
    if x.size:
        lx = np.log10(x)
        counts, edges = np.histogram(lx, bins=bins)
        dens = counts / (x.size * np.diff(edges)) if np.ptp(lx) > 0 else counts.astype(float)
        step_hist(ax, dens, edges, color=COLORS["esd"], alpha=0.55, outline=False, label="ESD of log10 λ")
    if _fitted(fit):
        ax.axvline(math.log10(fit.xmin), color=COLORS["xmin"], linestyle=":", linewidth=1.6,
                   label=f"log10 λmin = {math.log10(fit.xmin):.2f}")
        ax.axvline(math.log10(fit.xmax), color=COLORS["xmax"], linestyle=":", linewidth=1.4,
                   label=f"log10 λmax = {math.log10(fit.xmax):.2f}")
    ax.set_xlabel("log10 λ")
    ax.set_ylabel("density")
    set_title(ax, title, "log-lin: a heavy tail is a long shoulder to the right")
    add_legend(ax)
    return ax


def _candidates(fit):
    if fit is None or np.asarray(fit.xmins).size == 0:
        raise ValueError("This fit has no candidate xmin to plot (failed before the KS scan: "
                         f"{getattr(fit, 'message', 'no fit')}).")
    return np.asarray(fit.xmins)


def ks_distance(fit, *, ax=None, title=None):
    r"""Kolmogorov-Smirnov distance :math:`D(x_{min})` of every candidate ``xmin``.

    The fit chooses the first minimum (Clauset, Shalizi & Newman 2009); a flat, noisy or
    multi-modal curve means ``xmin`` (and so alpha) is poorly determined.

    Parameters
    ----------
    fit : PowerLawFit
        ``report.get_fit(layer)``; its exact per-candidate distances come from ``fit.ks_curve()``.

    Raises
    ------
    ValueError
        When the fit has no candidate (it failed before scanning).

    Returns
    -------
    matplotlib.axes.Axes
    """
    xmins = _candidates(fit)
    ax = new_axes(ax)
    ds = fit.ks_curve()
    ax.plot(xmins, ds, color=COLORS["esd"], linewidth=1.3, label="D_KS(xmin)")
    if _fitted(fit):
        ax.plot([fit.xmin], [fit.D], "o", color=COLORS["fit"], markersize=6,
                label=f"chosen: D = {fit.D:.3f} at {fit.xmin:.3g}")
    _xmin_lines(ax, fit)
    _logx(ax, xmins)
    ax.set_xlabel("candidate xmin")
    ax.set_ylabel("KS distance D_KS")
    set_title(ax, title, "the fit takes the xmin of smallest KS distance")
    add_legend(ax)
    return ax


def _logx(ax, xs) -> None:
    xs = np.asarray(xs)
    if xs.size and xs.min() > 0 and xs.max() / xs.min() > 20:
        ax.set_xscale("log")


def alpha_vs_xmin(fit, *, ax=None, title=None):
    r"""The exponent :math:`\hat\alpha(x_{min})` of every candidate ``xmin``, with the 2-6 band.

    A plateau around the chosen ``xmin`` means a stable alpha; a steep slope there means alpha
    depends strongly on where the tail is taken to start.

    Returns
    -------
    matplotlib.axes.Axes
    """
    xmins = _candidates(fit)
    ax = new_axes(ax)
    alphas = np.asarray(fit.alphas, dtype=np.float64)
    finite = np.isfinite(alphas) & (alphas > 0)
    ax.axhspan(*WELL_TRAINED, color=COLORS["band"], alpha=0.10, label="well-trained: 2 ≤ α ≤ 6")
    ax.plot(xmins[finite], alphas[finite], color=COLORS["esd"], linewidth=1.3, label="α(xmin)")
    if _fitted(fit):
        ax.plot([fit.xmin], [fit.alpha], "o", color=COLORS["fit"], markersize=6,
                label=f"chosen: α = {fit.alpha:.2f}")
    _xmin_lines(ax, fit)
    _logx(ax, xmins)
    top = np.nanpercentile(alphas[finite], 98) if finite.any() else 8.0
    ax.set_ylim(max(0.0, min(1.0, np.nanmin(alphas[finite]) if finite.any() else 1.0)), max(top, 7.0) * 1.05)
    ax.set_xlabel("candidate xmin")
    ax.set_ylabel("α")
    set_title(ax, title, "how α depends on where the tail starts")
    add_legend(ax)
    return ax


# ---- files -----------------------------------------------------------------------------------

#: per-layer figures: WeightWatcher's file-name suffix -> what the figure shows
LAYER_FIGURES = {
    "esd": "log-log ESD with the fitted power law and xmin",
    "esd2": "lin-lin ESD",
    "esd3": "log-lin ESD",
    "esd4": "KS distance vs candidate xmin",
    "esd5": "alpha vs candidate xmin",
}
#: per-model figures written by :func:`save_figures` (not in WeightWatcher)
MODEL_FIGURES = {k.name: k.shows for k in FIGURE_KINDS.values() if k.scope == "model"}


def plot_id(row) -> str:
    """WeightWatcher's figure id of a row: ``{layer_id}``, or ``{layer_id}:{slice_id}`` unpooled."""
    sid = row.get("slice_id")
    if sid is None or (isinstance(sid, float) and math.isnan(sid)):
        return f"{int(row['layer_id'])}"
    return f"{int(row['layer_id'])}:{int(sid)}"


def layer_title(row) -> str:
    return f"Layer {plot_id(row)}: {shorten(layer_label(row), 60)}"


def draw_layer_figure(kind: str, ax, evals, fit, title: str) -> bool:
    """Draw one per-layer figure; False when it does not apply (no KS scan for a failed fit)."""
    if kind == "esd":
        esd_loglog(evals, fit, ax=ax, title=title)
    elif kind == "esd2":
        esd_linear(evals, fit, ax=ax, title=title)
    elif kind == "esd3":
        esd_loglinear(evals, fit, ax=ax, title=title)
    elif fit is None or np.asarray(fit.xmins).size == 0:
        return False
    elif kind == "esd4":
        ks_distance(fit, ax=ax, title=title)
    else:
        alpha_vs_xmin(fit, ax=ax, title=title)
    return True


def fit_figure(fit, *, ax=None, title=None):
    """The figure of a power-law fit on its own (``PowerLawFit.plot``): the log-log ESD of the
    eigenvalues it was fitted to, with the fitted law from ``xmin`` (see :func:`esd_loglog`).

    Returns
    -------
    matplotlib.axes.Axes
    """
    return esd_loglog(fit.data, fit, ax=ax, title=title)


def _extra_drawers(report):
    """Per-layer figures of the Random-Matrix-Theory analyses and the spacings (see plots_rmt)."""
    from . import rmt as plots_rmt

    return plots_rmt.drawers(report)


def save_figures(report, directory, *, kinds=None, layers=None, model=True, dpi=100, fmt="png",
                 progress=False, inputs=()) -> list:
    """Write the figures of a report to ``directory`` (created if needed); returns the paths.

    Which figures: ``kinds`` (see :data:`FIGURE_KINDS` and docs/figures.md). By default
    (:data:`DEFAULT_FIGURES`) the three model figures ``model.{kind}.{fmt}`` and, per layer, the
    log-log ESD with its power-law fit, ``ww.layer{id}.esd.{fmt}`` (``{id}`` is
    ``layer_id:slice_id`` for unpooled conv slices): one figure per layer. ``kinds='all'`` writes
    every figure WeightWatcher 0.7.7's ``plot=True`` writes for the analyses the report holds,
    under its file names (``esd`` ... ``esd5``, ``mpfit1``/``mpfit2``, ``randesd1``/``randesd2``,
    ``detX``, ``deltaEs``/``level-stats``), plus the model figures: what ``analyze(plot=True)`` writes.

    Parameters
    ----------
    report : Report
    directory : str or Path
    kinds : None, 'all', str or iterable of str
        Kind names (``'esd,ks'`` or ``['esd', 'ks']``; WeightWatcher's file names such as ``esd2``
        are accepted), ``'all'``, or None for :data:`DEFAULT_FIGURES`.
    layers : iterable of int, optional
        Layer ids to draw (default: all).
    model : bool
        False leaves out the model figures whatever ``kinds`` says.
    dpi : int
    fmt : {'png', 'svg', 'pdf'}
    progress : bool
        Draw a progress line on stderr.
    inputs : iterable of paths
        Files and folders no figure may replace or be written into, besides the report's own
        ``report.inputs`` (:mod:`spectralwatch.io.outputs`): a folder that is, or lies inside, an input
        folder, or that is a symlink or not a folder, is refused
        (:class:`~spectralwatch.errors.OutputPathError`).

    Raises
    ------
    InvalidParameterError
        An unknown kind, or one the report cannot draw (``randomized`` without ``randomize=True``).
    """
    from ...io.outputs import check_output_folder, protected_paths
    from ..progress import Progress

    chosen = resolve_kinds(kinds, getattr(report, "options", None))
    protected = protected_paths([*(getattr(report, "inputs", ()) or ()), *(inputs or ())])
    out = check_output_folder(directory, protected)
    out.mkdir(parents=True, exist_ok=True)
    canvas = Canvas(dpi=dpi, fmt=fmt, inputs=protected)
    files = [f for k in chosen if k.scope == "layer" for f in k.files]
    extras = _extra_drawers(report) if any(f not in LAYER_FIGURES for f in files) else {}
    keep = None if layers is None else {int(i) for i in layers}
    written = []
    rows = [r for r in report.details.to_dict("records") if keep is None or int(r["layer_id"]) in keep] \
        if files else []
    with Progress(len(rows), enabled=bool(progress)) as bar:
        for row in rows:
            written += _save_layer(canvas, out, row, report, extras, files, fmt)
            bar.update(f"figures of {layer_label(row)}")
    if model:
        written += _save_model(report, out, canvas, fmt, [k.name for k in chosen if k.scope == "model"])
    return written


def _save_layer(canvas, out: Path, row: dict, report, extras: dict, files: list, fmt: str) -> list:
    key = (row["layer_id"], int(row["slice_id"]) if "slice_id" in row else 0)
    try:
        evals, fit = report.get_ESD(key), report.get_fit(key)
    except (KeyError, TypeError):  # a layer that failed before its eigenvalues existed
        return []
    written = []
    title = layer_title(row)
    for name in files:
        ax = canvas.axes(name)
        drawn = extras[name](ax, row, evals, fit, title) if name in extras else draw_layer_figure(
            name, ax, evals, fit, title)
        if drawn:
            written.append(canvas.save(out / f"ww.layer{plot_id(row)}.{name}.{fmt}"))
    return written


def model_name(report) -> str:
    """A short name for a report's model: the last two parts of its path, or its description."""
    source = str(getattr(report, "source", "") or "")
    if "/" in source or "\\" in source:
        parts = Path(source.split(" ")[-1]).parts
        return "/".join(parts[-2:])
    return source or "model"


def draw_model_figure(kind: str, canvas: Canvas, details, title: str = "") -> None:
    """Draw the model figure ``kind`` (:data:`MODEL_FIGURES`) on ``canvas`` (its own figure, reused)."""
    if kind == "alpha-by-layer":
        if "alpha_weighted" in details:
            top, bottom = canvas.panels(kind, 2, height_ratios=(3, 2), figsize=(6.4, 5.6))
            alpha_by_layer(details, ax=top, weighted_ax=bottom, title=title)
        else:
            alpha_by_layer(details, ax=canvas.axes(kind), title=title)
    elif kind == "alpha-histogram":
        alpha_histogram(details, ax=canvas.axes(kind), title=title)
    elif kind == "layer-groups":
        ax = canvas.axes(kind)
        layer_type_breakdown(details, ax=ax, title=title)
        labels = [t.get_text() for t in ax.get_yticklabels()] or [""]
        canvas.fig.subplots_adjust(left=min(0.5, 0.08 + 0.0115 * max(map(len, labels))))
    else:
        raise ValueError(f"unknown model figure {kind!r} (known: {', '.join(MODEL_FIGURES)})")


def _save_model(report, out: Path, canvas: Canvas, fmt: str, kinds: list) -> list:
    written = []
    name = model_name(report)
    for kind in kinds:
        draw_model_figure(kind, canvas, report.details, name)
        written.append(canvas.save(out / f"model.{kind}.{fmt}"))
    return written

r"""Figures of the Random-Matrix-Theory analyses and of the level spacings of a layer.

Each function draws on ``ax`` (a new pyplot figure when None) and returns it; nothing is shown.
They use the public API of :mod:`spectralwatch.rmt`: the Marchenko-Pastur (MP) fit of the bulk
(``analyze(mp_fit=True)``), the randomized (element-wise shuffled) ESD
(``report.get_ESD(layer, random=True)`` after ``analyze(randomize=True)``) and the detX cut
(``analyze(detX=True)``). :func:`drawers` tells :func:`spectralwatch.plots.save_figures` which of
them a report can draw, under WeightWatcher's file names (``mpfit1``, ``mpfit2``, ``randesd1``,
``randesd2``, ``detX``, ``deltaEs``, ``level-stats``).

References
----------
V. A. Marchenko, L. A. Pastur, Math. USSR Sbornik 1 (1967) 457-483 (the MP law);
C. H. Martin, M. W. Mahoney, JMLR 22 (2021) 1-73 (MP fits, randomized ESDs and correlation
traps of trained layers); M. L. Mehta, *Random Matrices*, 3rd ed. (2004), ch. 1 (level spacings).
"""

from __future__ import annotations

import math

import numpy as np

from .base import COLORS, add_legend, new_axes, positive_values, set_title, step_hist
from .kinds import option_value

__all__ = ["mp_fit", "quarter_circle_fit", "randomized_esd", "detx", "level_spacings", "level_statistics",
           "drawers"]

BINS = 100


def _fit_mp(evals, Q, M, mp, method):
    from ...core.rmt import fit_marchenko_pastur

    return mp if mp is not None else fit_marchenko_pastur(evals, Q, M, method=method)


def mp_fit(evals, Q: float, M: int, *, mp=None, method="quantile", ax=None, title=None, bins=BINS):
    r"""The rescaled ESD (mean 1) with the fitted Marchenko-Pastur density over its bulk.

    The eigenvalues are rescaled to :math:`\lambda' = W_s^2\lambda`, :math:`W_s=\sqrt{n/\sum\lambda}`;
    the curve is :math:`\rho_Q(\lambda')` with the fitted :math:`\sigma_{mp}`; the dotted line is
    the bulk edge plus the Tracy-Widom margin, past which eigenvalues count as spikes (signal).

    Parameters
    ----------
    evals : array_like
    Q, M : float, int
        Aspect ratio ``N/M`` and short side of the layer's matrices (``report.details``).
    mp : MPFit, optional
        A fit already made; by default :func:`spectralwatch.rmt.fit_marchenko_pastur`.
    method : {'quantile', 'ww'}

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ...core.rmt import marchenko_pastur_pdf

    ax = new_axes(ax)
    mp = _fit_mp(evals, Q, M, mp, method)
    x = np.asarray(evals, dtype=np.float64).ravel()
    if mp.status != "success" or not x.size:
        set_title(ax, title, f"MP fit failed: {mp.message}"[:90])
        return ax
    xr = x * mp.W_scale ** 2
    cut = mp.edge * mp.W_scale ** 2
    right = min(float(xr.max()), 3.0 * cut)  # the bulk stays readable; far spikes are counted
    counts, edges = np.histogram(xr, bins=bins, range=(0.0, right))
    step_hist(ax, counts / (xr.size * np.diff(edges)), edges, color=COLORS["esd"], alpha=0.5, outline=False,
              label="rescaled ESD")
    grid = np.linspace(max(edges[0], 1e-9), edges[-1], 600)
    ax.plot(grid, marchenko_pastur_pdf(grid, Q, mp.sigma), color=COLORS["fit"], linewidth=2.0,
            label=f"MP fit, σ = {mp.sigma:.3f}")
    beyond = int(np.count_nonzero(xr > right))
    if beyond:
        ax.annotate(f"{beyond} eigenvalues beyond the axis, up to λ' = {xr.max():.3g} →", (1.0, 0.02),
                    xycoords="axes fraction", ha="right", fontsize=8, color=COLORS["fit"])
    ax.axvline(cut, color=COLORS["xmax"], linestyle=":", linewidth=1.6,
               label=f"bulk edge + TW margin; {mp.num_spikes} spikes beyond")
    ax.set_xlabel("eigenvalue λ' (rescaled to mean 1)")
    ax.set_ylabel("density")
    set_title(ax, title, f"Marchenko-Pastur fit: Q = {Q:.3g}, σ_mp = {mp.sigma:.3f}, "
           f"mp_softrank = {mp.mp_softrank:.3f}, spikes = {mp.num_spikes}")
    add_legend(ax)
    return ax


def quarter_circle_fit(evals, M: int, *, mp=None, method="quantile", ax=None, title=None, bins=BINS):
    r"""At Q = 1: the singular values :math:`s=\sqrt{\lambda'}` with the quarter-circle law.

    :math:`\rho(s) = \sqrt{4\sigma^2 - s^2}/(\pi\sigma^2)` on :math:`[0, 2\sigma]`.

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ...core.rmt import quarter_circle_pdf

    ax = new_axes(ax)
    mp = _fit_mp(evals, 1.0, M, mp, method)
    x = np.asarray(evals, dtype=np.float64).ravel()
    if mp.status != "success" or not x.size:
        set_title(ax, title, f"MP fit failed: {mp.message}"[:90])
        return ax
    s = np.sqrt(np.clip(x * mp.W_scale ** 2, 0.0, None))
    counts, edges = np.histogram(s, bins=bins)
    step_hist(ax, counts / (s.size * np.diff(edges)), edges, color=COLORS["esd"], alpha=0.5, outline=False,
              label="singular values (rescaled)")
    grid = np.linspace(0.0, max(edges[-1], 2 * mp.sigma), 600)
    ax.plot(grid, quarter_circle_pdf(grid, mp.sigma), color=COLORS["fit"], linewidth=2.0,
            label=f"quarter circle, σ = {mp.sigma:.3f}")
    ax.set_xlabel("singular value s = √λ' (rescaled)")
    ax.set_ylabel("density")
    set_title(ax, title, f"Q = 1: quarter-circle law, {mp.num_spikes} spikes")
    add_legend(ax)
    return ax


def randomized_esd(evals, rand_evals, *, log=False, rand_bulk_max=None, ax=None, title=None, bins=BINS):
    """The real ESD and the ESD of the element-wise shuffled matrices, overlaid.

    Shuffling keeps the element distribution and destroys correlations: what the real spectrum
    has beyond the randomized one is learned structure; a randomized eigenvalue far past the
    randomized bulk is a correlation trap (a few unusually large weights).

    Parameters
    ----------
    evals, rand_evals : array_like
        ``report.get_ESD(layer)`` and ``report.get_ESD(layer, random=True)``.
    log : bool
        Histogram of ``log10`` eigenvalues (WeightWatcher's ``randesd2``) instead of linear.
    rand_bulk_max : float, optional
        The MP bulk edge of the randomized ESD (column ``rand_bulk_max``), marked when given.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    real, rand = positive_values(evals), positive_values(rand_evals)
    tf = np.log10 if log else (lambda v: v)
    both = np.concatenate([tf(real), tf(rand)])
    if both.size:
        edges = np.histogram_bin_edges(both, bins=bins)
        for data, color, label in ((real, COLORS["band"], "real"), (rand, COLORS["random"], "randomized")):
            counts, _ = np.histogram(tf(data), bins=edges)
            step_hist(ax, counts / max(data.size, 1) / np.diff(edges), edges, color=color, alpha=0.5,
                      outline=False, label=f"{label} ESD")
        ax.axvline(tf(rand.max()), color=COLORS["xmax"], linestyle=":", linewidth=1.6,
                   label=f"largest randomized λ = {rand.max():.3g}")
        if rand_bulk_max is not None and np.isfinite(rand_bulk_max) and rand_bulk_max > 0:
            ax.axvline(tf(rand_bulk_max), color=COLORS["random"], linestyle="--", linewidth=1.2,
                       label=f"randomized MP edge = {rand_bulk_max:.3g}")
    ax.set_xlabel("log10 λ" if log else "eigenvalue λ")
    ax.set_ylabel("density")
    set_title(ax, title, ("log10 " if log else "") + "ESD and randomized ESD: the difference is what was learned")
    add_legend(ax)
    return ax


def detx(evals, *, fit=None, ax=None, title=None, bins=BINS):
    r"""Histogram of :math:`\log_{10}` of the rescaled eigenvalues with the detX cut and the PL xmin.

    The detX cut is the smallest tail whose rescaled eigenvalues multiply to less than 1
    (:func:`spectralwatch.rmt.detx_constraint`); in a well-trained layer it sits near the start
    of the power-law tail (``xmin``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    from ...core.rmt import detx_constraint, rescale_to_unit_mean

    ax = new_axes(ax)
    x = positive_values(evals)
    det = detx_constraint(x)
    if x.size < 2 or not np.isfinite(det.val_rescaled):
        set_title(ax, title, "detX: the spectrum is constant or too small")
        return ax
    xr, scale = rescale_to_unit_mean(x)
    counts, edges = np.histogram(np.log10(xr), bins=bins)
    step_hist(ax, counts / (xr.size * np.diff(edges)), edges, color=COLORS["esd"], alpha=0.5, outline=False,
              label="rescaled ESD")
    ax.axvline(math.log10(det.val_rescaled), color=COLORS["random"], linewidth=2.0,
               label=f"detX = 1 cut: {det.num} eigenvalues above")
    if fit is not None and getattr(fit, "status", "") == "success":
        ax.axvline(math.log10(fit.xmin * scale ** 2), color=COLORS["xmin"], linestyle=":", linewidth=1.6,
                   label=f"power-law λmin: {fit.num_pl_spikes} above")
    ax.set_xlabel("log10 λ' (rescaled to mean 1)")
    ax.set_ylabel("density")
    set_title(ax, title, f"detX condition: detX_num = {det.num}")
    add_legend(ax, loc="upper left")
    return ax


def level_spacings(evals, *, xmin=None, ax=None, title=None):
    r"""The spacings :math:`\log_{10}(\lambda_{i+1} - \lambda_i)` in ascending order (WeightWatcher's ``deltaEs``).

    The index where the power-law tail starts (``xmin``) is marked: past it, spacings grow as
    the eigenvalues thin out.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    d = np.diff(x)
    ok = d > 0
    ax.scatter(np.flatnonzero(ok), np.log10(d[ok]), s=4, color=COLORS["esd"], label="log10 Δλ")
    if xmin is not None and np.isfinite(xmin) and xmin > 0:
        ax.axvline(int(np.searchsorted(x, xmin)), color=COLORS["xmin"], linestyle=":", linewidth=1.6,
                   label=f"λmin = {xmin:.3g}")
    ax.set_xlabel("index i of the sorted eigenvalues")
    ax.set_ylabel("log10 (λ[i+1] - λ[i])")
    set_title(ax, title, "level spacings")
    add_legend(ax, loc="upper left")
    return ax


def level_statistics(evals, *, ax=None, title=None, bins=BINS):
    r"""Histogram of :math:`\log_{10}` of the level spacings (WeightWatcher's ``level-stats``).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    d = np.diff(np.sort(np.asarray(evals, dtype=np.float64).ravel()))
    d = d[d > 0]
    if d.size:
        counts, edges = np.histogram(np.log10(d), bins=bins)
        step_hist(ax, counts / (d.size * np.diff(edges)), edges, color=COLORS["esd"], alpha=0.55, outline=False)
    ax.set_xlabel("log10 Δλ")
    ax.set_ylabel("density")
    set_title(ax, title, "level statistics (spacings of the sorted eigenvalues)")
    return ax


# ---- for save_figures ------------------------------------------------------------------------

def drawers(report) -> dict:
    """``{file name: draw(ax, row, evals, fit, title) -> bool}`` of the figures of this module.

    Every one can be drawn from a layer's eigenvalues (the Marchenko-Pastur fit and the detX cut
    are computed when the report does not hold them) except the randomized ESD, which needs
    ``analyze(randomize=True)`` (its drawer returns False without it). Which are written is chosen
    by :func:`spectralwatch.render.plots.kinds.resolve_kinds`.
    """
    method = option_value(report.options, "mp_fit_method", "quantile")

    def mpfit1(ax, row, evals, fit, title):
        if abs(float(row["Q"]) - 1.0) > 1e-12:
            return False  # WeightWatcher draws the quarter circle only for square matrices
        quarter_circle_fit(evals, int(row["M"]), method=method, ax=ax, title=title)
        return True

    def mpfit2(ax, row, evals, fit, title):
        mp_fit(evals, float(row["Q"]), int(row["M"]), method=method, ax=ax, title=title)
        return True

    def rand(log):
        def draw(ax, row, evals, fit, title):
            try:
                random = report.get_ESD((row["layer_id"], int(row.get("slice_id", 0) or 0)), random=True)
            except KeyError:
                return False
            randomized_esd(evals, random, log=log, rand_bulk_max=row.get("rand_bulk_max"), ax=ax, title=title)
            return True
        return draw

    def spacings(ax, row, evals, fit, title):
        ok = fit is not None and getattr(fit, "status", "") == "success"
        level_spacings(evals, xmin=fit.xmin if ok else None, ax=ax, title=title)
        return True

    return {
        "mpfit1": mpfit1, "mpfit2": mpfit2, "randesd1": rand(False), "randesd2": rand(True),
        "detX": lambda ax, row, evals, fit, title: detx(evals, fit=fit, ax=ax, title=title) is not None,
        "deltaEs": spacings,
        "level-stats": lambda ax, row, evals, fit, title: level_statistics(evals, ax=ax, title=title) is not None,
    }

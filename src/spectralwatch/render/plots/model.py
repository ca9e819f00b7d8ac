"""Figures of a whole model: alpha per layer, the histogram of alpha, alpha by kind of layer.

Each function takes ``report.details``, draws on ``ax`` (a new pyplot figure when None) and returns
the Axes; nothing is shown. Re-exported by :mod:`spectralwatch.plots`.
"""

from __future__ import annotations

import math
import re

import numpy as np

from ..safe_text import figure_text
from ..wording import fit_reliable
from .base import COLORS, WELL_TRAINED, add_legend, new_axes, new_panels, set_title, shorten

__all__ = ["alpha_by_layer", "alpha_histogram", "layer_type_breakdown", "layer_groups", "layer_label"]

def layer_label(row) -> str:
    """Short display name of a details row: the long name, or ``layer {id}``."""
    name = row.get("longname") or row.get("name") or ""
    sid = row.get("slice_id")
    text = str(name) if name else f"layer {row.get('layer_id')}"
    return f"{text}[{int(sid)}]" if sid is not None and sid == sid and "slice_id" in row else text


def _ok(details):
    if "status" in details:
        return details[details["status"] == "success"]
    return details


def alpha_by_layer(details, *, ax=None, weighted_ax=None, title=None, weighted=True, label=None, color=None,
                   clip=12.0):
    """Alpha per layer in network order, with the well-trained band [2, 6]; ``alpha_weighted`` on its own axis.

    Points are coloured by warning (over-trained below 2, under-trained above 6; grey for an
    unreliable fit, ``fit_reliable`` false, whatever its warning). Values above
    ``clip`` are drawn as triangles at the top edge so that the band stays readable.
    ``alpha_weighted`` (alpha times log10 of the largest eigenvalue: a scale, not an exponent, and
    negative when that eigenvalue is below 1) never shares alpha's axis: it is drawn on
    ``weighted_ax`` (a second panel below), or, when only ``ax`` is given, on a twin axis with its
    own scale and label on the right. With ``ax=None`` a new figure holds both panels.

    Parameters
    ----------
    details : pandas.DataFrame
        ``report.details``.
    ax : matplotlib Axes, optional
        Where alpha is drawn.
    weighted_ax : matplotlib Axes, optional
        Where ``alpha_weighted`` is drawn (best: a panel below ``ax`` sharing its x axis).
    weighted : bool
        Also draw ``alpha_weighted`` (when the column exists; not with ``color``).
    label : str, optional
        Name of the model in the legend (when several models share the axes).
    color : str, optional
        One colour for the whole curve (several models on one Axes) instead of warning colours.
    clip : float or None

    Returns
    -------
    matplotlib.axes.Axes
        The Axes of alpha (``ax``); the figure also holds that of ``alpha_weighted``.
    """
    show_weighted = bool(weighted) and "alpha_weighted" in details and not color
    if ax is None and show_weighted and weighted_ax is None:
        ax, weighted_ax = new_panels(2)
    ax = new_axes(ax)
    ok = _ok(details)
    pos = np.arange(len(details))[np.asarray(details.index.isin(ok.index))]
    alpha = ok["alpha"].to_numpy(dtype=float) if "alpha" in ok else np.empty(0)
    top = clip if clip and alpha.size and np.nanmax(alpha) > clip else None
    shown = np.minimum(alpha, top) if top else alpha
    if not ax.patches:  # the band once, even with several models on the axes
        ax.axhspan(*WELL_TRAINED, color=COLORS["band"], alpha=0.10, label="well-trained: 2 ≤ α ≤ 6")
    line = color or COLORS["esd"]
    ax.plot(pos, shown, color=line, linewidth=1.0 if color else 0.8, alpha=0.9 if color else 0.6,
            label=f"{figure_text(label)}: α" if (label and color) else None)
    warn = np.asarray(ok["warning"] if "warning" in ok else [""] * len(ok), dtype=object)
    shaky = np.array([not fit_reliable(r) for r in ok.to_dict("records")], dtype=bool) if len(ok) else \
        np.zeros(0, dtype=bool)
    warn = np.where(shaky, "unreliable fit", warn)  # too few eigenvalues: not an over/under-training signal
    for name, mask in (("well-trained", (warn == "") | ~np.isin(warn, ["over-trained", "under-trained",
                                                                      "unreliable fit"])),
                       ("over-trained", warn == "over-trained"), ("under-trained", warn == "under-trained"),
                       ("unreliable fit", warn == "unreliable fit")):
        if mask.any() and not color:
            ax.scatter(pos[mask], shown[mask], s=24, zorder=3, color=COLORS.get(name, COLORS["ok"]),
                       label=f"α, {name} ({int(mask.sum())})")
    if color:
        ax.scatter(pos, shown, s=12, zorder=3, color=color)
    if top is not None:
        above = alpha > top
        ax.scatter(pos[above], np.full(int(above.sum()), top), marker="^", s=40, zorder=4,
                   color=COLORS["under-trained"], label=f"α > {top:g} (clipped)")
    failed = np.setdiff1d(np.arange(len(details)), pos)
    if failed.size:
        ax.scatter(failed, np.full(failed.size, 1.0), marker="x", color=COLORS["failed"],
                   label=f"failed fit, no α ({failed.size})")
    _int_ticks(ax)
    ax.set_ylabel("α")
    mean = float(np.nanmean(alpha)) if alpha.size else float("nan")
    set_title(ax, title, f"mean α = {mean:.2f} over {alpha.size} layers" if alpha.size and not color else "")
    add_legend(ax, loc="upper right")
    if show_weighted:
        aw = ok["alpha_weighted"].to_numpy(dtype=float)
        twin = weighted_ax is None
        weighted_ax = ax.twinx() if twin else weighted_ax
        _weighted(weighted_ax, pos, aw, alpha > top if top is not None else np.zeros(aw.size, bool), twin)
        weighted_ax.set_xlabel("" if twin else "layer, in network order")
        ax.set_xlabel("layer, in network order" if twin else "")
    else:
        ax.set_xlabel("layer, in network order")
    return ax


def _weighted(ax, pos, aw, runaway, twin: bool) -> None:
    """alpha_weighted per layer on its own axis; the layers whose alpha was clipped are clipped here too."""
    finite = np.isfinite(aw)
    keep = finite & ~runaway
    lo, hi = (float(aw[keep].min()), float(aw[keep].max())) if keep.any() else (
        (float(aw[finite].min()), float(aw[finite].max())) if finite.any() else (0.0, 1.0))
    pad = 0.08 * (hi - lo) if hi > lo else 1.0
    lo, hi = lo - pad, hi + pad
    shown = np.clip(aw, lo, hi)
    color = COLORS["second"]
    ax.plot(pos, shown, linestyle="--", color=color, linewidth=0.8, marker="o", markersize=4,
            markerfacecolor="none", label="alpha_weighted = α · log10 λmax")
    out = finite & ((aw > hi) | (aw < lo))
    if out.any():
        ax.scatter(pos[out], shown[out], marker="^", s=36, zorder=4, color=COLORS["under-trained"],
                   label=f"alpha_weighted off the axis ({int(out.sum())})")
    if lo < 0 < hi:
        ax.axhline(0.0, color="grey", linewidth=0.6)
    ax.set_ylim(lo, hi)
    ax.set_ylabel("alpha_weighted", color=color if twin else "black")
    if twin:
        ax.tick_params(axis="y", colors=color)
    else:
        add_legend(ax, loc="upper right")


def _int_ticks(ax) -> None:
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def alpha_histogram(details, *, ax=None, title=None, bins=None, clip=12.0):
    """Histogram of the layers' alpha, with the 2 and 6 thresholds and the mean.

    Values above ``clip`` are counted in the last bin (labelled), so that one runaway layer does
    not squeeze the others into one bar; ``bins`` defaults to about ``2 sqrt(n)`` (5 to 30).

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    alpha = _ok(details)["alpha"].to_numpy(dtype=float) if "alpha" in details else np.empty(0)
    alpha = alpha[np.isfinite(alpha)]
    ax.axvspan(*WELL_TRAINED, color=COLORS["band"], alpha=0.10, label="well-trained: 2 ≤ α ≤ 6")
    if alpha.size:
        nbins = bins or int(min(30, max(5, round(2 * math.sqrt(alpha.size)))))
        top = clip if clip and alpha.max() > clip else None
        shown = np.minimum(alpha, top) if top else alpha
        ax.hist(shown, bins=nbins, color=COLORS["esd"], alpha=0.75, edgecolor="white")
        if top:
            ax.annotate(f"{int((alpha > top).sum())} with α > {top:g}", (top, 0), xytext=(-4, 14),
                        textcoords="offset points", ha="right", fontsize=8, color=COLORS["under-trained"])
        ax.axvline(alpha.mean(), color="black", linestyle="--", linewidth=1.2, label=f"mean α = {alpha.mean():.2f}")
    ax.set_xlabel("α")
    ax.set_ylabel("layers")
    from matplotlib.ticker import MaxNLocator

    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    n_over = int((alpha < WELL_TRAINED[0]).sum())
    n_under = int((alpha > WELL_TRAINED[1]).sum())
    set_title(ax, title, f"{alpha.size} layers: {n_over} below 2, {n_under} above 6")
    add_legend(ax)
    return ax


_NUMBER = re.compile(r"(?<=[._/])\d+(?=[._/]|$)|^\d+(?=[._/])")


def layer_groups(details, max_groups: int = 14):
    """Group key of each row: the long name with its numeric parts replaced by ``*``.

    ``encoder.layer.3.attention.self.query`` -> ``encoder.layer.*.attention.self.query``, so the
    same role in every block forms one group. When that gives more than ``max_groups`` groups,
    the ``layer_type`` is used instead.

    Returns
    -------
    pandas.Series
    """
    names = details["longname"].fillna(details["name"]).astype(str) if "longname" in details else details["name"]
    keys = names.map(lambda s: _NUMBER.sub("*", s))
    if keys.nunique() > max_groups and "layer_type" in details:
        return details["layer_type"].astype(str)
    return keys


def layer_type_breakdown(details, *, ax=None, title=None):
    """Alpha by group of layers (same role in every block, or layer type): one box per group.

    Groups are sorted by median alpha; the label says how many layers each holds.

    Returns
    -------
    matplotlib.axes.Axes
    """
    ax = new_axes(ax)
    ok = _ok(details)
    ok = ok[np.isfinite(ok["alpha"].to_numpy(dtype=float))] if len(ok) else ok
    groups = layer_groups(ok) if len(ok) else []
    data = []
    for key in (sorted(set(groups)) if len(ok) else []):
        values = ok.loc[groups == key, "alpha"].to_numpy(dtype=float)
        data.append((float(np.median(values)), key, values))
    data.sort()
    ax.axvspan(*WELL_TRAINED, color=COLORS["band"], alpha=0.10)
    if data:
        import matplotlib

        major, minor = (int(x) for x in matplotlib.__version__.split(".")[:2])
        horizontal = {"orientation": "horizontal"} if (major, minor) >= (3, 10) else {"vert": False}
        ax.boxplot([d[2] for d in data], widths=0.6, patch_artist=True, **horizontal,
                   boxprops={"facecolor": COLORS["second"], "alpha": 0.6},
                   medianprops={"color": "black"}, flierprops={"markersize": 3})
        for i, (_, _, values) in enumerate(data, start=1):
            ax.scatter(values, np.full(values.size, i), s=9, color=COLORS["esd"], zorder=3)
        ax.set_yticks(range(1, len(data) + 1), [f"{figure_text(shorten(k))} ({d.size})" for _, k, d in data],
                      fontsize=8)
    ax.set_xlabel("α")
    set_title(ax, title, "alpha by kind of layer (number of layers)")
    return ax

"""Shared pieces of the figure modules: the palette, Axes creation, titles, legends, the Agg canvas.

Nothing here imports matplotlib at module level (``import spectralwatch`` stays light).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from ...deps import require
from ..safe_text import figure_text

#: the house palette (colour-blind safe: Okabe-Ito)
COLORS = {
    "esd": "#0072B2", "fit": "#D55E00", "xmin": "#D55E00", "xmax": "#E69F00", "band": "#009E73",
    "over-trained": "#D55E00", "under-trained": "#E69F00", "ok": "#0072B2", "failed": "#7f7f7f",
    "random": "#CC79A7", "second": "#56B4E9", "unreliable fit": "#bbbbbb",
}
WELL_TRAINED = (2.0, 6.0)  # HTSR: alpha in [2, 6] is the well-trained range (Martin & Mahoney 2021)
BINS = 100


def _mpl():
    return require("matplotlib", purpose="draw figures")


def new_axes(ax):
    """``ax``, or the Axes of a new pyplot figure (shown inline by notebooks; never ``show()``)."""
    if ax is not None:
        return ax
    _mpl()
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6.4, 4.4))
    return ax


def new_panels(rows: int = 2, *, height_ratios=(3, 2), figsize=(6.4, 5.6)) -> list:
    """``rows`` Axes stacked in a new pyplot figure, sharing their x axis (never ``show()``)."""
    _mpl()
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(rows, 1, sharex=True, figsize=figsize, gridspec_kw={"height_ratios": height_ratios})
    fig.subplots_adjust(hspace=0.12)
    return list(axes)


def positive_values(evals) -> np.ndarray:
    """Finite eigenvalues above a relative floor (zeros have no logarithm)."""
    x = np.asarray(evals, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return x
    top = float(x.max())
    return x[x > max(top * 1e-12, 0.0)] if top > 0 else x[:0]


def step_hist(ax, values, edges, *, color, alpha=0.35, outline=True, label=None, linewidth=1.0):
    """A histogram (``values`` per bin of ``edges``) as one step patch: a fill and its outline.

    Same drawing as ``ax.stairs`` twice, at a fraction of the cost: the patch is added without
    matplotlib's segment-by-segment scan of its path for the data limits (the limits are set from
    the bin edges and the finite values directly).
    """
    from matplotlib.colors import to_rgba
    from matplotlib.patches import StepPatch

    values = np.asarray(values, dtype=np.float64)
    edges = np.asarray(edges, dtype=np.float64)
    patch = StepPatch(values, edges, fill=True, facecolor=to_rgba(color, alpha),
                      edgecolor=to_rgba(color, 1.0) if outline else "none", linewidth=linewidth if outline else 0,
                      label=label)
    ax.add_artist(patch)
    finite = values[np.isfinite(values)]
    low = 0.0 if ax.get_yscale() != "log" else (float(finite[finite > 0].min()) if (finite > 0).any() else 1.0)
    high = float(finite.max()) if finite.size else 1.0
    ax.update_datalim([(float(edges[0]), low), (float(edges[-1]), max(high, low))])
    ax.autoscale_view()
    return patch


def set_title(ax, title, second: str = "") -> None:
    """A title (a layer or model name: escaped, no mathtext, no control character) and a second line."""
    text = figure_text(title or "")
    if second:
        second = figure_text(second)
        text = f"{text}\n{second}" if text else second
    if text:  # an explicit y skips matplotlib's costly automatic title placement
        ax.set_title(text, fontsize=10, y=1.0, pad=6)


def add_legend(ax, loc="upper right") -> None:
    """A legend of the labelled artists; on the figures written to files, a light one (see below).

    matplotlib's legend lays its entries out in nested boxes, measuring every text twice: on a
    figure written by :func:`~spectralwatch.render.plots.layer.save_figures` it is a fifth of the
    drawing time. There the entries are drawn directly (a short sample of each artist and its
    label, in axes coordinates, in a corner the data are moved away from) by :func:`light_legend`; a figure
    drawn for a notebook (``ax=None`` or the user's Axes) keeps matplotlib's legend.
    """
    handles, labels = ax.get_legend_handles_labels()
    if not handles:
        return
    if getattr(ax.figure, FILE_FIGURE, False):
        light_legend(ax, handles, labels, loc=loc)
    else:
        ax.legend(fontsize=8, frameon=False, loc=loc)  # an explicit loc: 'best' is slow


#: attribute set on the figures of :class:`Canvas` (figures drawn only to be written to files)
FILE_FIGURE = "_spectralwatch_file_figure"
_FONT_PT = 8.0  # legend text size
_LINE_PT = 1.6 * _FONT_PT  # distance between two legend entries
_CHAR_PT = 0.6 * _FONT_PT  # an average character's width (DejaVu Sans), a safe overestimate


def _legend_metrics(ax) -> tuple:
    """(entry step, character width, sample width) in axes fractions, from the axes' size in pixels."""
    px = ax.figure.dpi / 72.0
    height = max(float(ax.bbox.height), 1.0)
    width = max(float(ax.bbox.width), 1.0)
    return _LINE_PT * px / height, _CHAR_PT * px / width, 22.0 * px / width


def _data_points(ax) -> np.ndarray:
    """The plotted data points of ``ax`` (lines, markers, step histograms) in data coordinates."""
    from matplotlib.patches import Rectangle, StepPatch

    chunks = []
    for line in ax.lines:
        if line.get_transform() == ax.transData or line.get_transform().contains_branch(ax.transData):
            chunks.append(np.asarray(line.get_xydata(), dtype=float).reshape(-1, 2))
    for coll in ax.collections:
        offsets = np.asarray(coll.get_offsets(), dtype=float).reshape(-1, 2)
        if len(offsets) and coll.get_offset_transform() == ax.transData:
            chunks.append(offsets)
    for patch in ax.patches:
        if isinstance(patch, Rectangle) and patch.get_transform() == ax.transData:  # bars
            x, y, w, h = patch.get_x(), patch.get_y(), patch.get_width(), patch.get_height()
            chunks.append(np.array([[x, y + h], [x + w, y + h]], dtype=float))
        elif isinstance(patch, StepPatch):
            values, edges, _ = patch.get_data()
            v = np.asarray(values, dtype=float)
            e = np.asarray(edges, dtype=float)
            chunks.append(np.column_stack([np.concatenate([e[:-1], e[1:]]), np.concatenate([v, v])]))
    return np.concatenate(chunks) if chunks else np.empty((0, 2))


def _make_room(ax, n: int, labels, *, left: bool, lower: bool) -> None:
    """Stretch the y axis so that no data point lies under the legend's corner.

    The legend block spans its labels' width (estimated from their length) and ``n`` entries
    from the top (bottom) of the axes; when plotted points fall inside, the upper (lower) y limit
    moves out until they are below (above) it. The x axis is not touched.
    """
    pts = _data_points(ax)
    if not len(pts):
        return
    step, char, sample = _legend_metrics(ax)
    width = min(0.95, 0.04 + sample + char * max(len(str(t)) for t in labels))
    height = 0.06 + n * step
    to_axes = ax.transData + ax.transAxes.inverted()
    with np.errstate(all="ignore"):
        xy = to_axes.transform(pts)
    ok = np.isfinite(xy).all(axis=1)
    xy = xy[ok]
    inside = (xy[:, 0] <= width) if left else (xy[:, 0] >= 1.0 - width)
    ys = xy[inside & (xy[:, 0] >= 0) & (xy[:, 0] <= 1), 1]
    if not ys.size:
        return
    log = ax.get_yscale() == "log"
    lo, hi = ax.get_ylim()
    f = np.log10 if log else (lambda v: v)
    g = (lambda v: 10.0 ** v) if log else (lambda v: v)
    if lower:
        need = float(ys.min())
        if need >= height:
            return
        # axes y of a value v: (f(v) - f(lo')) / (f(hi) - f(lo')); the lowest point must sit at `height`
        top_frac = 1.0 - need  # its distance from the top, in old axes fractions
        span = (f(hi) - f(lo)) * top_frac / (1.0 - height)
        ax.set_ylim(g(f(hi) - span), hi)
    else:
        need = float(ys.max())
        if need <= 1.0 - height:
            return
        span = (f(hi) - f(lo)) * need / (1.0 - height)
        ax.set_ylim(lo, g(f(lo) + span))


def light_legend(ax, handles, labels, *, loc="upper right") -> None:
    """Legend entries drawn as plain artists: per entry, a sample of the artist and its label.

    ``loc``: 'upper right' (also for 'best'), 'upper left', 'lower right' or 'lower left'.
    """
    from matplotlib.collections import Collection
    from matplotlib.lines import Line2D
    from matplotlib.patches import Rectangle

    left = "left" in str(loc)
    lower = "lower" in str(loc)
    n = len(handles)
    _make_room(ax, n, labels, left=left, lower=lower)
    step, _, sample_w = _legend_metrics(ax)
    for k, (handle, label) in enumerate(zip(handles, labels)):
        y = (0.02 + step / 2 + (n - 1 - k) * step) if lower else (0.98 - step / 2 - k * step)
        x0, x1 = (0.02, 0.02 + sample_w) if left else (0.98 - sample_w, 0.98)
        tx = x1 + 0.01 if left else x0 - 0.01
        ax.text(tx, y, label, transform=ax.transAxes, fontsize=_FONT_PT, ha="left" if left else "right",
                va="center", clip_on=False)
        if isinstance(handle, Line2D):
            sample = Line2D([x0, x1], [y, y], transform=ax.transAxes, color=handle.get_color(),
                            linestyle=handle.get_linestyle(), linewidth=min(handle.get_linewidth(), 2.0),
                            marker=handle.get_marker(), markevery=[1], markersize=min(handle.get_markersize(), 6),
                            markerfacecolor=handle.get_markerfacecolor(), alpha=handle.get_alpha())
        elif isinstance(handle, Collection):  # scatter points, bands drawn as collections
            face = handle.get_facecolor()
            color = tuple(face[0]) if len(face) else "grey"
            paths = handle.get_paths() if hasattr(handle, "get_sizes") else []
            marker = "o" if len(paths) else "s"
            sample = Line2D([(x0 + x1) / 2], [y], transform=ax.transAxes, linestyle="none", marker=marker,
                            markersize=5, color=color)
        else:  # a patch: a band, a histogram
            face = handle.get_facecolor()
            sample = Rectangle((x0, y - step / 4), x1 - x0, step / 2, transform=ax.transAxes, facecolor=face,
                               edgecolor=handle.get_edgecolor() if handle.get_linewidth() else "none", linewidth=0.8)
        sample.set_clip_on(False)
        ax.add_artist(sample)


def shorten(text: str, width: int = 38) -> str:
    return text if len(text) <= width else "..." + text[-(width - 3):]


def render_figure(fig, fmt: str = "png", **kwargs) -> bytes:
    """The figure's file contents. A text that matplotlib cannot typeset (mathtext that slipped past
    :func:`~spectralwatch.render.safe_text.figure_text`) is drawn literally instead of failing the figure."""
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format=fmt, **kwargs)
    except ValueError:
        from matplotlib.text import Text

        for text in fig.findobj(Text):
            text.set_parse_math(False)
        buf = io.BytesIO()
        fig.savefig(buf, format=fmt, **kwargs)
    return buf.getvalue()


class Canvas:
    """Agg figures reused from file to file: no pyplot, no window, nothing left open.

    Each kind of figure keeps its own Figure and Axes; between two files only the plotted
    artists are removed. Creating axes and their tick objects anew costs more than drawing a
    figure, so reuse is what makes writing hundreds of files fast. The canvas keeps the glyphs it
    has rasterised (:mod:`.glyphs`), and the legends are light ones (:func:`add_legend`).
    """

    _MARGINS = {"left": 0.13, "right": 0.97, "bottom": 0.12, "top": 0.86}

    def __init__(self, figsize=(6.4, 4.4), dpi=100, fmt="png", inputs=()):
        _mpl()
        self.figsize, self.dpi, self.fmt = figsize, dpi, fmt
        self.inputs = inputs  # paths a figure file may never replace (spectralwatch.io.outputs)
        self._figures = {}
        # fastest zlib level: files ~1.5x larger, encoding ~5x faster
        self._kwargs = {"pil_kwargs": {"compress_level": 1}} if fmt == "png" else {}

    def axes(self, kind=None):
        """A clean Axes; ``kind=None`` gives a brand-new one (figures drawn once)."""
        return self.panels(kind)[0]

    def panels(self, kind=None, rows: int = 1, *, height_ratios=None, figsize=None) -> list:
        """``rows`` clean Axes stacked in one figure, sharing their x axis (``kind``: reuse them)."""
        from matplotlib.figure import Figure

        from .glyphs import file_canvas_class

        key = (kind, rows)
        if kind is not None and key in self._figures:
            fig = self._figures[key]
            axes = fig.axes[:rows]
            for ax in axes:
                _reset(ax)
        else:
            fig = Figure(figsize=figsize or self.figsize, dpi=self.dpi)
            file_canvas_class()(fig)  # Agg, rasterising each glyph once (glyphs.py)
            setattr(fig, FILE_FIGURE, True)
            if rows == 1:
                axes = [fig.add_subplot(1, 1, 1)]
            else:
                axes = list(fig.subplots(rows, 1, sharex=True, gridspec_kw={"height_ratios": height_ratios}))
            if kind is not None:
                self._figures[key] = fig
        fig.subplots_adjust(**self._MARGINS, hspace=0.12 if rows > 1 else None)
        self.fig = fig
        return axes

    def save(self, path: Path) -> Path:
        """Write the figure to ``path``: checked against the inputs, written whole (atomically)."""
        from ...io.outputs import write_atomic

        for ax in self.fig.axes:  # minor ticks of log axes are most of the drawing time
            ax.minorticks_off()
        write_atomic(path, render_figure(self.fig, self.fmt, **self._kwargs), self.inputs, what="figure")
        return path


def _reset(ax) -> None:
    """Remove what was plotted on ``ax`` and restore autoscaling; keep the axes and ticks."""
    for artist in [*ax.lines, *ax.patches, *ax.collections, *ax.texts, *ax.images, *ax.artists]:
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.set_title("")
    ax.relim()
    ax.ignore_existing_data_limits = True
    ax.set_autoscale_on(True)

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


def positive_values(evals) -> np.ndarray:
    """Finite eigenvalues above a relative floor (zeros have no logarithm)."""
    x = np.asarray(evals, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    if x.size == 0:
        return x
    top = float(x.max())
    return x[x > max(top * 1e-12, 0.0)] if top > 0 else x[:0]


def set_title(ax, title, second: str = "") -> None:
    """A title (a layer or model name: escaped, no mathtext, no control character) and a second line."""
    text = figure_text(title or "")
    if second:
        second = figure_text(second)
        text = f"{text}\n{second}" if text else second
    if text:  # an explicit y skips matplotlib's costly automatic title placement
        ax.set_title(text, fontsize=10, y=1.0, pad=6)


def add_legend(ax, loc="upper right") -> None:
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, frameon=False, loc=loc)  # an explicit loc: 'best' is slow


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
    figure, so reuse is what makes writing hundreds of files fast.
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
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure

        if kind is not None and kind in self._figures:
            fig = self._figures[kind]
            ax = fig.axes[0]
            _reset(ax)
        else:
            fig = Figure(figsize=self.figsize, dpi=self.dpi)
            FigureCanvasAgg(fig)
            ax = fig.add_subplot(1, 1, 1)
            if kind is not None:
                self._figures[kind] = fig
        fig.subplots_adjust(**self._MARGINS)
        self.fig = fig
        return ax

    def save(self, path: Path) -> Path:
        """Write the figure to ``path``: checked against the inputs, written whole (atomically)."""
        from ...io.outputs import write_atomic

        for ax in self.fig.axes:  # minor ticks of log axes are most of the drawing time
            ax.minorticks_off()
        write_atomic(path, render_figure(self.fig, self.fmt, **self._kwargs), self.inputs, what="figure")
        return path


def _reset(ax) -> None:
    """Remove what was plotted on ``ax`` and restore autoscaling; keep the axes and ticks."""
    for artist in [*ax.lines, *ax.patches, *ax.collections, *ax.texts, *ax.images]:
        artist.remove()
    if ax.legend_ is not None:
        ax.legend_.remove()
    ax.set_title("")
    ax.relim()
    ax.ignore_existing_data_limits = True
    ax.set_autoscale_on(True)

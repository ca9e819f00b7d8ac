"""Figures shown inline in a Jupyter notebook: one function both APIs call for ``plot=True``.

``analyze(plot=True)`` (and ``WeightWatcher.analyze(plot=True)``) write the figure files; inside a
Jupyter kernel they are also shown under the cell, as WeightWatcher shows them, through
:func:`show_inline`. Outside a kernel nothing is shown (no window ever opens: spectralwatch never
calls ``plt.show()``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["in_notebook", "show_inline"]


def in_notebook() -> bool:
    """True inside a Jupyter (IPython) kernel, where rich output is shown under the cell.

    A terminal IPython session or a plain script is not a notebook. IPython is never imported
    here: a kernel has imported it already.
    """
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return False
    try:
        shell = ipython.get_ipython()
    except Exception:  # pragma: no cover - a broken IPython install
        return False
    return shell is not None and getattr(shell, "kernel", None) is not None


def show_inline(figures) -> int:
    """Display figures under the current notebook cell; returns how many were shown.

    Parameters
    ----------
    figures : iterable
        Paths of image files (``.png``, ``.svg``; a ``.pdf`` cannot be shown and is passed over),
        PNG bytes, or matplotlib Figures. Files are read at once (they may be deleted afterwards).
    """
    from IPython.display import SVG, Image, display

    shown = 0
    for fig in figures:
        if isinstance(fig, (str, os.PathLike)):
            path = Path(fig)
            suffix = path.suffix.lower()
            if suffix == ".png":
                display(Image(data=path.read_bytes(), format="png"))
            elif suffix == ".svg":
                display(SVG(data=path.read_bytes()))
            else:
                continue
        elif isinstance(fig, (bytes, bytearray)):
            display(Image(data=bytes(fig), format="png"))
        else:
            display(fig)
        shown += 1
    return shown

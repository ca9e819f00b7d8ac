"""A dependency-free progress line on stderr (opt-in: the library never prints otherwise).

The line fits the terminal: its width is read at each update (a resized window is followed), the
bar shrinks first, then the layer name is shortened from the left; the line is never longer than
the terminal is wide, so it is redrawn in place (``\\r``) instead of wrapping onto a new line at
every update.
"""

from __future__ import annotations

import sys
import time

from .text import stream_columns

__all__ = ["Progress", "progress_line"]

_MAX_BAR = 30
_MIN_BAR = 10


def _shorten(label: str, width: int) -> str:
    """``label`` in at most ``width`` characters, cut from the left (``...`` marks the cut)."""
    if width <= 0:
        return ""
    if len(label) <= width:
        return label
    return label[-width:] if width <= 3 else "..." + label[-(width - 3):]


def progress_line(done: int, total: int, elapsed: float, label: str, columns: int) -> str:
    """The text of the progress line: at most ``columns - 1`` characters, ASCII only.

    One column is left free: a terminal that auto-wraps at its last column would otherwise move
    the cursor to a new line and the next ``\\r`` could not redraw this one.
    """
    room = max(int(columns) - 1, 1)
    eta = elapsed / done * (total - done) if done else 0.0
    counts = f"{done}/{total} {elapsed:6.1f}s ETA {eta:6.1f}s"
    # no control character (newline, escape sequence) reaches the terminal; ASCII for any encoding
    label = "".join(ch if " " <= ch <= "~" else "?" for ch in " ".join(str(label).split()))
    bar_width = min(_MAX_BAR, room - len(counts) - 3 - 1 - 12)  # keep 12 columns for the layer name
    if bar_width >= _MIN_BAR:
        filled = int(bar_width * done / max(total, 1))
        head = f"[{'#' * filled}{'.' * (bar_width - filled)}] {counts}"
    else:
        head = counts
    if len(head) >= room:
        return head[:room]
    return f"{head} {_shorten(label, room - len(head) - 1)}".rstrip() if room - len(head) > 1 else head


class Progress:
    """``with Progress(total, enabled) as p: p.update(label)`` draws ``[####....] 3/10 ... label``.

    Parameters
    ----------
    total : int
    enabled : bool
    stream : file, optional
        Default ``sys.stderr``.
    columns : int, optional
        A fixed width; by default the terminal's (:func:`~.text.stream_columns`, 80 when unknown).
    """

    def __init__(self, total: int, enabled: bool = True, stream=None, columns: int | None = None):
        self.total = max(total, 1)
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.columns = columns
        self.done = 0
        self.start = time.perf_counter()
        self._last = 0  # length of the line drawn last: a shorter one is padded to erase it

    def __enter__(self):
        return self

    def update(self, label: str = "") -> None:
        self.done += 1
        if not self.enabled:
            return
        columns = self.columns or stream_columns(self.stream)
        line = progress_line(self.done, self.total, time.perf_counter() - self.start, label, columns)
        self.stream.write("\r" + line.ljust(min(self._last, max(columns - 1, 1))))
        self._last = len(line)
        self.stream.flush()

    def __exit__(self, *exc):
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
        return False

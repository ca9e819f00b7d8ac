"""Text output of the command line: aligned tables coloured by warning, a summary panel, markdown.

Colours are ANSI escape codes, used only when the output is a terminal and ``NO_COLOR`` is not
set (https://no-color.org); piped output is plain text, byte for byte the same on every machine.
No third-party dependency: ``pip install spectralwatch`` gives the full command line.
"""

from __future__ import annotations

import math
import os

import numpy as np

from ..core.columns import FIT_COLUMNS
from .safe_text import markdown_text, term_text
from .wording import TERMINAL_STYLE, alpha_reading, fit_reliable, mean_alpha_sentence

__all__ = ["use_color", "render_table", "render_markdown", "summary_panel", "summary_lines", "failure_line",
           "fmt_value", "verdict", "phase_lines", "terminal_columns", "stream_columns", "clip_left", "wrap_text", "NAME_COLUMNS",
           "DROP_ORDER"]

_CODES = {"bold": "1", "dim": "2", "red": "31", "green": "32", "yellow": "33", "blue": "34", "cyan": "36"}
_ROW_STYLE = {"over-trained": "red", "under-trained": "yellow", "failed": "dim"}


def use_color(stream, mode: str = "auto") -> bool:
    """Whether to colour output on ``stream``: ``mode`` 'always', 'never' or 'auto' (a TTY, no NO_COLOR)."""
    if mode == "always":
        return True
    if mode == "never" or os.environ.get("NO_COLOR"):
        return False
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def paint(text: str, style: str | None, color: bool) -> str:
    if not color or not style:
        return text
    codes = ";".join(_CODES[s] for s in style.split("+"))
    return f"\x1b[{codes}m{text}\x1b[0m"


def fmt_value(v, width_hint: int = 0) -> str:
    """A cell: ints as they are, floats with 3 decimals (3 significant digits when tiny or huge)."""
    if v is None:
        return ""
    if isinstance(v, (bool, np.bool_)):
        return "yes" if v else "no"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        x = float(v)
        if math.isnan(x):
            return ""
        if x.is_integer() and abs(x) < 1e6 and width_hint == -1:
            return str(int(x))
        a = abs(x)
        return f"{x:.3f}" if (a == 0 or 1e-3 <= a < 1e6) else f"{x:.3g}"
    return term_text(str(v))  # a name from a file: no escape sequence, no newline reaches the terminal


#: columns holding names and paths: shortened from the left (the end of a layer path is the
#: informative part); other text columns wrap onto more lines instead of being cut
NAME_COLUMNS = ("name", "longname", "model")
#: the order in which columns of the terminal table are left out to fit a narrow terminal (first
#: listed, first left out); columns not listed here (``layer_id``, ``name``, ``alpha``,
#: ``warning``...) are always shown
DROP_ORDER = ("rf", "D", "detX_num", "num_traps", "mp_softrank", "num_spikes", "log_norm", "stable_rank",
              "log_spectral_norm", "N", "M", "layer_type", "alpha_weighted", "status")
_MIN_NAME_WIDTH = 16


def clip_left(text: str, width: int) -> str:
    """``text`` shortened to ``width`` characters by cutting its start (``…`` marks the cut)."""
    if width < 2:
        return text[-width:] if width > 0 else ""
    return text if len(text) <= width else "…" + text[-(width - 1):]


def wrap_text(text: str, width: int) -> list:
    """``text`` wrapped at spaces into lines of at most ``width`` characters (long words are split)."""
    import textwrap

    if len(text) <= width:
        return [text]
    return textwrap.wrap(text, max(width, 1), break_on_hyphens=False) or [""]


def terminal_columns(stream=None, fallback: int = 80) -> int | None:
    """Columns of the terminal ``stream`` writes to; None when it is not a terminal (a pipe, a file).

    ``COLUMNS`` in the environment wins (as :func:`shutil.get_terminal_size` reads it); then the
    size of ``stream``'s own terminal, then :func:`shutil.get_terminal_size`, then ``fallback``.
    Output to a pipe gets None: what spectralwatch prints there never depends on a terminal.
    """
    isatty = getattr(stream, "isatty", None)
    if stream is not None and not (isatty and isatty()):
        return None
    return stream_columns(stream, fallback)


def stream_columns(stream=None, fallback: int = 80) -> int:
    """Columns of the terminal of ``stream`` (``COLUMNS`` first, then ``shutil``, then ``fallback``)."""
    import shutil

    env = os.environ.get("COLUMNS", "")
    if env.isdigit() and int(env) > 0:
        return int(env)
    try:
        return os.get_terminal_size(stream.fileno()).columns or fallback
    except (AttributeError, OSError, ValueError, TypeError):
        pass
    return shutil.get_terminal_size((fallback, 24)).columns or fallback


def _row_style(row: dict) -> str | None:
    if row.get("status") == "failed":
        return _ROW_STYLE["failed"]
    if not fit_reliable(row):  # too few eigenvalues: not an over- or under-training signal
        return TERMINAL_STYLE["unreliable"]
    return _ROW_STYLE.get(row.get("warning") or "")


#: the text of the warning cell of a row whose fit is unreliable (the column keeps the reference's value)
UNRELIABLE_CELL = "unreliable fit"


def _cell(full: dict, col: str):
    """The value shown in a cell: none for the fit columns of a failed row; for an unreliable fit,
    ``'unreliable fit'`` in the warning cell instead of the reference's over/under-trained."""
    if full.get("status") == "failed" and col in FIT_COLUMNS:
        return None
    if col == "warning" and full.get("status") == "success" and not fit_reliable(full):
        return UNRELIABLE_CELL
    return full[col]


def _cell_lines(text: str, column: str, max_width: int) -> list:
    if column in NAME_COLUMNS:
        return [clip_left(text, max_width)]
    return wrap_text(text, max_width)


def render_table(frame, columns, *, color=False, max_width=48, width=None, wide=False) -> str:
    """An aligned text table of ``frame[columns]``; rows coloured by warning when ``color``.

    Numbers are right-aligned, text left-aligned. Cells longer than ``max_width``: names
    (:data:`NAME_COLUMNS`) are shortened from the left (the end of a layer path is the informative
    part); other text wraps onto more lines, so nothing else is cut. ``alpha`` is green inside [2, 6].
    A row whose fit rests on too few eigenvalues (``fit_reliable`` false) is dim, and its warning
    cell says ``unreliable fit`` rather than the reference's ``over-trained`` / ``under-trained``.

    Parameters
    ----------
    frame : pandas.DataFrame
    columns : sequence of str
        The columns to show (those absent from ``frame`` are ignored).
    color : bool
    max_width : int
        Widest cell.
    width : int, optional
        The terminal's width (:func:`terminal_columns`). A wider table leaves out columns in
        :data:`DROP_ORDER` order (then shortens names down to 16 characters) until it fits, and
        ends with a line naming the columns left out. None: no limit (output to a pipe or a file).
    wide : bool
        Show every column whatever ``width`` is (the command line's ``--wide``).
    """
    cols = [c for c in columns if c in frame.columns]
    full = frame.to_dict("records") if len(frame) else []
    texts = [[fmt_value(_cell(f, c)) for c in cols] for f in full]
    numeric = {c: frame[c].dtype.kind in "iuf" for c in cols}
    limit = None if (wide or width is None) else max(int(width), 20)
    dropped: list = []
    name_width = max_width

    def layout(shown, name_width):
        idx = [cols.index(c) for c in shown]
        cells = [[_cell_lines(row[i], cols[i], name_width if cols[i] in NAME_COLUMNS else max_width) for i in idx]
                 for row in texts]
        widths = [max([len(c)] + [len(line) for row in cells for line in row[k]]) for k, c in enumerate(shown)]
        return cells, widths

    shown = list(cols)
    cells, widths = layout(shown, name_width)
    if limit is not None:
        for col in DROP_ORDER:
            if sum(widths) + 2 * (len(widths) - 1) <= limit:
                break
            if col in shown and len(shown) > 1:
                shown.remove(col)
                dropped.append(col)
                cells, widths = layout(shown, name_width)
        while sum(widths) + 2 * (len(widths) - 1) > limit and name_width > _MIN_NAME_WIDTH:
            name_width = max(_MIN_NAME_WIDTH, name_width - (sum(widths) + 2 * (len(widths) - 1) - limit))
            cells, widths = layout(shown, name_width)
    flags = [numeric[c] for c in shown]

    def line(values):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, flags)).rstrip()

    out = [paint(line([term_text(c) for c in shown]), "bold", color)]
    for r, row in zip(full, cells):
        style = _row_style(r)
        for k in range(max(len(c) for c in row) if row else 1):
            text = line([c[k] if k < len(c) else "" for c in row])
            if style:
                text = paint(text, style, color)
            elif color and k == 0 and "alpha" in shown:
                a = r.get("alpha")
                if a is not None and 2.0 <= float(a) <= 6.0:
                    i = shown.index("alpha")
                    start = sum(widths[:i]) + 2 * i
                    end = start + widths[i]
                    text = text[:start] + paint(text[start:end], "green", True) + text[end:]
            out.append(text)
    if dropped:
        note = (f"({len(dropped)} column{'s' * (len(dropped) > 1)} left out to fit {limit} columns: "
                f"{', '.join(dropped)}; --wide shows all)")
        out.extend(paint(x, "dim", color) for x in wrap_text(note, limit))
    return "\n".join(out)


def render_markdown(frame, columns=None) -> str:
    """A GitHub-flavoured markdown table (``|`` and control characters in cells escaped)."""
    cols = [c for c in (columns or list(frame.columns)) if c in frame.columns]
    numeric = [frame[c].dtype.kind in "iuf" for c in cols]
    head = "| " + " | ".join(markdown_text(c) for c in cols) + " |"
    rule = "|" + "|".join("---:" if n else "---" for n in numeric) + "|"
    body = ["| " + " | ".join(markdown_text(fmt_value(r[c])) for c in cols) + " |"
            for r in frame[cols].to_dict("records")]
    return "\n".join([head, rule, *body])


def verdict(alpha: float) -> str:
    """The reading of a mean alpha, in words (:func:`spectralwatch.render.wording.alpha_reading`, the
    same words as the HTML report's)."""
    return alpha_reading(alpha).text


def failure_line(counts: dict) -> str:
    """``{reason class: count}`` as one line such as ``'3 failed: 2 NaN or Inf weights, 1 all-zero
    weights'``; ``''`` when nothing failed."""
    if not counts:
        return ""
    return f"{sum(counts.values())} failed: " + ", ".join(f"{n} {cls}" for cls, n in counts.items())


#: how many flagged layers the summary names (the count always covers all of them)
FLAGGED_SHOWN = 6


def _flagged_line(records: list, reliable: list) -> str:
    """``'12 layers flagged (9 under-trained, 3 over-trained): a (under), b (over), ... and 6 more'``
    (layers whose fit is unreliable are not flagged: they are counted apart)."""
    flagged = [r for r, ok in zip(records, reliable) if ok and r.get("warning") in ("over-trained", "under-trained")]
    if not flagged:
        return ""
    counts = {k: sum(r["warning"] == k for r in flagged) for k in ("over-trained", "under-trained")}
    kinds = ", ".join(f"{n} {k}" for k, n in counts.items() if n)
    noun = "layer" if len(flagged) == 1 else "layers"
    names = ", ".join(f"{clip_left(term_text(str(r['name'])), 40)} ({r['warning'].split('-')[0]})"
                      for r in flagged[:FLAGGED_SHOWN])
    more = f" ... and {len(flagged) - FLAGGED_SHOWN} more" if len(flagged) > FLAGGED_SHOWN else ""
    return f"{len(flagged)} {noun} flagged ({kinds}): {names}{more}"


def summary_lines(report, *, unicode: bool = True) -> list:
    """The summary of one report as plain lines (counts, means, the reading of the mean alpha, flagged
    layers, layers whose fit is unreliable, phases, notes); ``unicode=False`` writes alpha and <= in
    ASCII.

    Lines are never cut: :func:`summary_panel` wraps them. A run where every layer failed says so
    and why, instead of printing averages of nothing.
    """
    s = report.summary
    n_failed = report.num_failed
    all_failed = bool(getattr(report, "all_failed", False))
    lines = [f"{report.num_layers} layers analysed"
             + (f", all {n_failed} failed" if all_failed else (f", {n_failed} failed" if n_failed else ""))
             + (f", {len(report.skipped)} skipped" if len(report.skipped) else "")]
    if all_failed:
        lines.append(f"no summary: every layer failed ({getattr(report, 'failure_reason', '')})")
    elif n_failed:
        lines.append(failure_line(report.failures) + " (the message column of --format csv/json says more)")
    if not all_failed:
        for key, value in s.items():
            lines.append(f"{key:<18} {value: .4f}")
    alpha = s.get("alpha")
    if alpha is not None and alpha == alpha:
        lines.append(mean_alpha_sentence(alpha, unicode=unicode))
        d = report.details
        records = d.to_dict("records") if len(d) else []
        reliable = [fit_reliable(r) for r in records]
        shaky = [r for r, ok in zip(records, reliable) if r.get("status") == "success" and not ok]
        flagged = _flagged_line(records, reliable)
        if flagged:
            lines.append(flagged)
        if shaky:
            good = [float(r["alpha"]) for r, ok in zip(records, reliable) if ok]
            noun = "layer" if len(shaky) == 1 else "layers"
            mean = f"; mean alpha without them {np.mean(good):.2f}" if good else ""
            lines.append(f"{len(shaky)} {noun} fitted on too few eigenvalues: alpha unreliable, not flagged "
                         f"(in the means{mean})")
    lines.extend(phase_lines(report.details))
    for note in getattr(report, "notes", ()):
        lines.append(f"note: {term_text(str(note))}")
    return lines


def phase_lines(details, limit: int = 6) -> list:
    """The phases of training counted, and the layers whose label may mislead (``phase_note``), in words."""
    if "phase" not in details or not len(details):
        return []
    labels = details["phase"].fillna("")
    counts = labels[labels != ""].value_counts()
    lines = ["phases: " + (", ".join(f"{n} {p}" for p, n in counts.items()) or "none given")]
    if "phase_note" in details:
        noted = details[details["phase_note"].fillna("") != ""]
        if len(noted):
            lines.append(f"{len(noted)} phase label(s) may mislead (phase_note):")
            for r in noted.head(limit).itertuples():
                note = r.phase_note if len(r.phase_note) <= 80 else r.phase_note[:77] + "..."
                lines.append(f"  {term_text(r.name)} ({r.phase or 'no phase'}): {term_text(note)}")
            if len(noted) > limit:
                lines.append(f"  ... and {len(noted) - limit} more")
    return lines


def summary_panel(report, *, title: str, color=False, unicode=True, width=None) -> str:
    """The summary in a box (``+--+`` corners when the stream cannot print box-drawing characters).

    ``width``: the terminal's width (:func:`terminal_columns`); the box is at most 110 columns and
    never wider than ``width``. Long lines wrap inside the box; nothing is cut.
    """
    lines = summary_lines(report, unicode=unicode)
    title = term_text(title)
    cap = 110 if width is None else max(30, min(110, int(width)))
    box = min(cap, max(len(title) + 6, *(len(x) + 4 for x in lines)))
    inner = box - 4
    h, v, tl, tr, bl, br = ("─", "│", "┌", "┐", "└", "┘") if unicode else ("-", "|", "+", "+", "+", "+")
    head = clip_left(title, box - 6)
    top = f"{tl}{h} {head} " + h * max(0, box - len(head) - 5) + tr
    out = [paint(top, "bold", color)]
    for text in lines:
        style = None
        if text.startswith("mean alpha"):
            style = TERMINAL_STYLE[alpha_reading(report.summary.get("alpha")).key]
        elif "flagged" in text or text.startswith("no summary"):
            style = "yellow"
        elif "unreliable" in text:
            style = "dim"
        for k, part in enumerate(wrap_text(text, inner) if len(text) > inner else [text]):
            body = (part if k == 0 else part).ljust(inner)
            out.append(f"{v} {paint(body, style, color)} {v}")
    out.append(f"{bl}" + h * (box - 2) + br)
    return "\n".join(out)

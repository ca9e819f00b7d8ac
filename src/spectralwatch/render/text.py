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
           "fmt_value", "verdict", "phase_lines"]

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


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else "…" + text[-(width - 1):]


def _row_style(row: dict) -> str | None:
    if row.get("status") == "failed":
        return _ROW_STYLE["failed"]
    if not fit_reliable(row):  # too few eigenvalues: not an over- or under-training signal
        return TERMINAL_STYLE["unreliable"]
    return _ROW_STYLE.get(row.get("warning") or "")


#: the text of the warning cell of a row whose fit is unreliable (the column keeps the reference's value)
UNRELIABLE_CELL = "unreliable fit"


def _cell(row: dict, full: dict, col: str):
    """The value shown in a cell: none for the fit columns of a failed row; for an unreliable fit,
    ``'unreliable fit'`` in the warning cell instead of the reference's over/under-trained."""
    if full.get("status") == "failed" and col in FIT_COLUMNS:
        return None
    if col == "warning" and full.get("status") == "success" and not fit_reliable(full):
        return UNRELIABLE_CELL
    return row[col]


def render_table(frame, columns, *, color=False, max_width=48) -> str:
    """An aligned text table of ``frame[columns]``; rows coloured by warning when ``color``.

    Numbers are right-aligned, text left-aligned; long names are shortened from the left
    (the end of a layer path is the informative part). ``alpha`` is green inside [2, 6]. A row
    whose fit rests on too few eigenvalues (``fit_reliable`` false) is dim, and its warning cell
    says ``unreliable fit`` rather than the reference's ``over-trained`` / ``under-trained``.
    """
    cols = [c for c in columns if c in frame.columns]
    rows = frame[cols].to_dict("records") if len(frame) else []
    full = frame.to_dict("records") if len(frame) else []
    cells = [[_clip(fmt_value(_cell(r, f, c)), max_width) for c in cols] for r, f in zip(rows, full)]
    numeric = [frame[c].dtype.kind in "iuf" for c in cols]
    widths = [max([len(c)] + [len(row[i]) for row in cells]) for i, c in enumerate(cols)]

    def line(values, num_flags):
        return "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(values, widths, num_flags)).rstrip()

    out = [paint(line([term_text(c) for c in cols], numeric), "bold", color)]
    for r, row in zip(full, cells):
        text = line(row, numeric)
        style = _row_style(r)
        if style:
            text = paint(text, style, color)
        elif color and "alpha" in cols:
            a = r.get("alpha")
            if a is not None and 2.0 <= float(a) <= 6.0:
                i = cols.index("alpha")
                start = sum(widths[:i]) + 2 * i
                end = start + widths[i]
                text = text[:start] + paint(text[start:end], "green", True) + text[end:]
        out.append(text)
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


def summary_lines(report, *, unicode: bool = True) -> list:
    """The summary of one report as plain lines (counts, means, the verdict, flagged layers, layers
    whose fit is unreliable); ``unicode=False`` writes alpha and <= in ASCII."""
    s = report.summary
    lines = [f"{report.num_layers} layers analysed"
             + (f", {report.num_failed} failed" if report.num_failed else "")
             + (f", {len(report.skipped)} skipped" if len(report.skipped) else "")]
    if report.num_failed:
        lines.append(failure_line(report.failures) + " (the message column of --format csv/json says more)")
    for key, value in s.items():
        lines.append(f"{key:<18} {value: .4f}")
    alpha = s.get("alpha")
    if alpha is not None and alpha == alpha:
        lines.append(mean_alpha_sentence(alpha, unicode=unicode))
        d = report.details
        records = d.to_dict("records") if len(d) else []
        reliable = [fit_reliable(r) for r in records]
        shaky = [r for r, ok in zip(records, reliable) if r.get("status") == "success" and not ok]
        flagged = [r for r, ok in zip(records, reliable)
                   if ok and r.get("warning") in ("over-trained", "under-trained")]
        if flagged:
            names = ", ".join(f"{term_text(r['name'])} ({r['warning']})" for r in flagged[:6])
            noun = "layer" if len(flagged) == 1 else "layers"
            lines.append(f"{len(flagged)} {noun} flagged: {names}" + (" ..." if len(flagged) > 6 else ""))
        if shaky:
            good = [float(r["alpha"]) for r, ok in zip(records, reliable) if ok]
            noun = "layer" if len(shaky) == 1 else "layers"
            mean = f"; mean alpha without them {np.mean(good):.2f}" if good else ""
            lines.append(f"{len(shaky)} {noun} fitted on too few eigenvalues: alpha unreliable, not flagged "
                         f"(in the means{mean})")
    lines.extend(phase_lines(report.details))
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


def summary_panel(report, *, title: str, color=False, unicode=True) -> str:
    """The summary in a box (``+--+`` corners when the stream cannot print box-drawing characters)."""
    lines = summary_lines(report, unicode=unicode)
    title = term_text(title)
    width = min(110, max(len(title) + 4, *(len(x) for x in lines)) + 2)
    h, v, tl, tr, bl, br = ("─", "│", "┌", "┐", "└", "┘") if unicode else ("-", "|", "+", "+", "+", "+")
    top = f"{tl}{h} {title} " + h * max(0, width - len(title) - 3) + tr
    out = [paint(top, "bold", color)]
    for text in lines:
        body = _clip(text, width - 2).ljust(width - 2)
        style = None
        if text.startswith("mean alpha"):
            style = TERMINAL_STYLE[alpha_reading(report.summary.get("alpha")).key]
        elif "flagged" in text:
            style = "yellow"
        elif "unreliable" in text:
            style = "dim"
        out.append(f"{v} {paint(body, style, color)} {v}")
    out.append(f"{bl}" + h * (width) + br)
    return "\n".join(out)

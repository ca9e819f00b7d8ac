"""Names from model files, escaped for where they are shown: a terminal, markdown, a figure, a CSV cell.

Layer names, file names and messages come from files anyone may have written. Shown raw they can act on
whoever reads them:

* a terminal executes escape sequences (``ESC [2J`` clears the screen, ``ESC ]0;...BEL`` sets the window
  title, colours can hide text) and a newline in a name forges a row of the table;
* Unicode bidirectional controls (``U+202E`` ...) reorder what is shown ("Trojan Source");
* matplotlib parses text between two ``$`` as mathtext, and an unknown command (``$\\foo$``) makes drawing
  the figure raise;
* a spreadsheet evaluates a CSV cell that starts with ``=``, ``+``, ``-`` or ``@`` (or a tab or carriage
  return before them) as a formula ("CSV injection").

Each function here makes a text harmless for one sink; every sink of the package uses them (HTML uses
:func:`html.escape`). The escapes are visible (``\\x1b``, ``\\n``, ``\\u202e``): nothing is silently dropped.
"""

from __future__ import annotations

__all__ = ["term_text", "markdown_text", "figure_text", "csv_cell", "csv_frame", "CSV_FORMULA_PREFIXES"]

#: the first characters that make a spreadsheet read a CSV cell as a formula (OWASP, "CSV Injection")
CSV_FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# C0 controls, DEL, C1 controls; bidirectional formatting; line and paragraph separators; BOM
_CONTROLS = ([*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F),
              *range(0x2066, 0x206A), 0x2028, 0x2029, 0xFEFF])


def _escape(code: int) -> str:
    ch = chr(code)
    if ch in _NAMED:
        return _NAMED[ch]
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


_TABLE = {code: _escape(code) for code in _CONTROLS}


def term_text(text) -> str:
    """``text`` with every control character visible-escaped: safe to print on a terminal, on one line.

    C0 and C1 controls (escape sequences, bell, newlines, tabs), DEL, Unicode bidirectional controls and
    line separators become ``\\x1b``, ``\\n``, ``\\u202e``...; everything else is kept.
    """
    text = text if isinstance(text, str) else str(text)
    if text.isprintable():
        return text
    return text.translate(_TABLE)


def markdown_text(text) -> str:
    """A markdown table cell: :func:`term_text`, and ``|`` escaped (a name cannot add a column or a row)."""
    return term_text(text).replace("|", "\\|")


def figure_text(text) -> str:
    """A matplotlib label: :func:`term_text`, and every ``$`` escaped so that no mathtext is parsed."""
    return term_text(text).replace("$", "\\$")


def csv_cell(value):
    """A CSV cell: text made harmless for spreadsheets; numbers (and anything not text) untouched.

    Control characters are visible-escaped (:func:`term_text`), and a text starting with one of
    :data:`CSV_FORMULA_PREFIXES` is prefixed with a single quote ``'`` so that a spreadsheet shows it as
    text instead of evaluating it (the OWASP recommendation). Reading the CSV back gives ``"'=..."``.
    """
    if not isinstance(value, str):
        return value
    out = term_text(value)
    if value.startswith(CSV_FORMULA_PREFIXES) or out.startswith(CSV_FORMULA_PREFIXES):
        out = "'" + out
    return out


def csv_frame(frame):
    """A copy of a DataFrame whose text cells went through :func:`csv_cell` (``frame`` itself when none
    needs it). Numeric columns are never changed."""
    changed = {}
    for col in frame.columns:
        series = frame[col]
        if series.dtype.kind not in "OSU" and str(series.dtype) != "string":
            continue
        new = series.map(csv_cell)
        if not new.equals(series):
            changed[col] = new
    head = [c for c in frame.columns if isinstance(c, str) and csv_cell(c) != c]
    if not changed and not head:
        return frame
    out = frame.copy()
    for col, new in changed.items():
        out[col] = new
    if head:
        out = out.rename(columns={c: csv_cell(c) for c in head})
    return out

"""A report in a notebook: its rich display (``Report._repr_html_``) and a coloured pandas Styler.

:func:`report_fragment` is the HTML Jupyter shows for a :class:`~spectralwatch.results.report.Report`
at the end of a cell: the summary cards, the reading of the metrics in plain words (with their
caveats) and the layer table coloured by warning, built from the pieces of the full HTML report
(:mod:`spectralwatch.render.html`) without its page (no header, no script, no figures) and with a
stylesheet that applies only inside the fragment. :func:`styled_details` colours the details table
as the command line does.
"""

from __future__ import annotations

from html import escape

from ..core.columns import FIT_COLUMNS, HTML_COLUMNS
from .html import layer_table, reading, summary_cards
from .html_assets import PALETTE, scoped_css
from .text import fmt_value

__all__ = ["report_fragment", "styled_details", "NOTEBOOK_ROWS"]

#: rows of the layer table shown in a notebook (``report.details`` holds them all)
NOTEBOOK_ROWS = 500
_SCOPE = ".sw-report"


def report_fragment(report, *, max_rows: int = NOTEBOOK_ROWS) -> str:
    """The notebook display of a report: an HTML fragment (see the module docstring).

    Parameters
    ----------
    report : Report
    max_rows : int
        At most this many layers in the table, in model order (a note says how many there are).
    """
    from .plots.layer import model_name

    n = report.num_layers
    more = (f"<p class='note'>The first {max_rows} of {n} layers are shown; <code>report.details</code> holds "
            f"them all.</p>" if n > max_rows else "")
    items = "".join(f"<li>{sentence}</li>" for sentence in reading(report))
    return (f"<div class='sw-report'><style>{scoped_css(_SCOPE)}\n"
            f"{_SCOPE} .sw-title {{ font-weight:600; font-size:15px; }} "
            f"{_SCOPE} .sw-src {{ color:var(--mut); font-size:12px; word-break:break-all; }}</style>"
            f"<div class='sw-title'>spectralwatch report: {escape(model_name(report))}</div>"
            f"<div class='sw-src'>{escape(str(report.source))}</div>"
            f"{summary_cards(report)}<ul class='reading'>{items}</ul>"
            f"<div class='scroll'>{layer_table(report, interactive=False, max_rows=max_rows)}</div>{more}"
            f"<p class='note'>Rows: <span class='tag over'>over-trained</span> <span class='tag under'>"
            f"under-trained</span> <span class='tag na'>failed</span>. <code>report.to_html(path)</code> writes "
            f"the full report with its figures; <code>report.plot_esd(layer)</code> draws one layer.</p></div>")


def _row_css(row) -> str:
    if row.get("status") == "failed":
        return f"color:{PALETTE['na']}; background-color:{PALETTE['na_row']}"
    warning = row.get("warning") or ""
    if warning == "over-trained":
        return f"color:{PALETTE['over']}; background-color:{PALETTE['over_row']}"
    if warning == "under-trained":
        return f"color:{PALETTE['under']}; background-color:{PALETTE['under_row']}"
    return ""


def styled_details(details, columns=None):
    """``details`` as a pandas Styler coloured like the command line's table.

    Rows of over-trained layers (alpha < 2) are red, under-trained ones (alpha > 6) amber, failed
    ones grey; an alpha in the well-trained range [2, 6] is green. The fit columns of a failed row
    are blank (the details table holds WeightWatcher's ``-1`` placeholders there), numbers have 3
    decimals as on the terminal.

    Parameters
    ----------
    details : pandas.DataFrame
        ``report.details``.
    columns : list of str, 'all' or None
        The columns to show: by default those of the HTML report's table that the report has.

    Returns
    -------
    pandas.io.formats.style.Styler
        Needs jinja2 (which pandas' Styler uses) to render.
    """
    from ..deps import require

    require("jinja2", purpose="render a pandas Styler (report.style())")
    if columns is None:
        columns = [c for c in HTML_COLUMNS if c in details.columns]
    elif columns == "all":
        columns = list(details.columns)
    else:
        missing = [c for c in columns if c not in details.columns]
        if missing:
            from ..errors import InvalidParameterError

            raise InvalidParameterError(f"The 'columns' of style() must be columns of report.details; "
                                        f"not there: {missing}.")
    frame = details[list(columns)].copy()
    failed = (details["status"] == "failed") if "status" in details else None
    if failed is not None and failed.any():
        for c in frame.columns:
            if c in FIT_COLUMNS:
                frame[c] = frame[c].astype(float).where(~failed)  # not the -1 placeholders
    css = [_row_css(row) for row in details.to_dict("records")]

    def row_colours(frame_):
        import pandas as pd

        return pd.DataFrame([[css[i]] * frame_.shape[1] for i in range(frame_.shape[0])],
                            index=frame_.index, columns=frame_.columns)

    def alpha_colour(values):
        return [f"color:{PALETTE['good']}; font-weight:600"
                if not css[i] and isinstance(v, float) and 2.0 <= v <= 6.0 else ""  # NaN compares False
                for i, v in enumerate(values)]

    styler = frame.style.apply(row_colours, axis=None)
    if "alpha" in frame.columns:
        styler = styler.apply(alpha_colour, subset=["alpha"])
    styler = styler.format(lambda v: fmt_value(v), na_rep="", escape="html")  # names come from model files
    return styler.hide(axis="index")

"""A self-contained HTML report of one analysis: one file, no network, figures inline.

``report_html(report)`` (also ``Report.to_html(path)``) returns one HTML document with inline CSS
and JavaScript and the figures as inline PNG images (``data:`` URIs): summary cards, the reading
of the metrics in plain words, the per-model figures, a sortable and filterable table of the
layers with warnings highlighted, one ESD figure per layer, and the skipped layers. Nothing is
fetched when it is opened, so it can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import datetime
import math
from html import escape

import numpy as np

from ..core.columns import FIT_COLUMNS, HTML_COLUMNS
from .text import fmt_value
from .wording import UNRELIABLE_WHY, alpha_reading, fit_reliable, mean_alpha_sentence

__all__ = ["report_html", "reading", "tail_class", "summary_cards", "layer_table", "row_class"]

_CARDS = (("alpha", "mean α", "power-law exponent of the ESD tail; HTSR's range for trained layers is 2-6"),
          ("alpha_weighted", "mean α̂", "alpha_weighted = α·log10 λmax; compares models of different depth"),
          ("log_spectral_norm", "log spectral norm", "mean log10 of the largest eigenvalue"),
          ("log_norm", "log Frobenius norm", "mean log10 of the squared Frobenius norm"),
          ("log_alpha_norm", "log α-norm", "mean log10 Σ λ^α (the Shatten α-norm)"),
          ("stable_rank", "stable rank", "mean ‖W‖²_F / ‖W‖²₂"))


def tail_class(alpha, reliable: bool = True) -> tuple[str, str]:
    """(css class, words) for one alpha: :func:`spectralwatch.render.wording.alpha_reading`, the
    terminal's words too."""
    r = alpha_reading(alpha, reliable=reliable)
    return r.key, r.text


def _row_reading(row):
    ok = row.get("status") == "success"
    return alpha_reading(row.get("alpha") if ok else None, reliable=not ok or fit_reliable(row))


def _fmt(v) -> str:
    """A cell of the report: as in the text table, with non-finite numbers left blank."""
    if isinstance(v, (float, np.floating)) and not math.isfinite(float(v)):
        return ""
    return fmt_value(v)


def reading(report) -> list:
    """The metrics in plain words: a list of sentences (HTML-escaped)."""
    d, s = report.details, report.summary
    out = []
    ok = d[d["status"] == "success"] if "status" in d else d
    values = ok["alpha"].to_numpy(dtype=float) if "alpha" in ok else np.empty(0)
    finite = np.isfinite(values)
    reliable = np.array([fit_reliable(r) for r in ok.to_dict("records")], dtype=bool) if len(ok) else finite
    alpha, good = values[finite], values[finite & reliable]
    if alpha.size:
        mean = float(alpha.mean())
        cls = alpha_reading(mean).key
        out.append(f"Over {alpha.size} fitted layers, <span class='tag {cls}'>{escape(mean_alpha_sentence(mean))}"
                   f"</span>.")
        within = int(((good >= 2) & (good <= 6)).sum())
        if good.size:
            out.append(f"{within} of {good.size} reliably fitted layers ({100 * within / good.size:.0f}%) are in "
                       f"HTSR's range for trained layers, 2 ≤ α ≤ 6; {int((good < 2).sum())} are below 2 (a very "
                       f"heavy tail: HTSR's over-training warning), {int((good > 6).sum())} above 6 (close to a "
                       f"random matrix: HTSR's under-training warning).")
        shaky = int(alpha.size - good.size)
        if shaky:
            out.append(f"{shaky} layers were fitted on too few eigenvalues ({UNRELIABLE_WHY}): their α is "
                       f"unreliable and they are not counted as over- or "
                       f"under-trained (their <code>warning</code> column keeps WeightWatcher's value, and they are "
                       f"in the means, which are WeightWatcher's).")
        worst = ok[finite & reliable]
        worst = worst.assign(_dist=np.abs(worst["alpha"].astype(float) - 3.0)).nlargest(3, "_dist")
        names = ", ".join(f"{escape(str(r['name']))} (α {r['alpha']:.2f})" for _, r in worst.iterrows()
                          if r["alpha"] < 2 or r["alpha"] > 6)
        if names:
            out.append(f"The layers farthest from the well-trained range: {names}. Look at their ESD figures "
                       f"below: a clean straight tail on the log-log plot makes α trustworthy.")
    if getattr(report, "all_failed", False):
        out.append(f"<b>Every layer failed: there is no model summary</b> ({escape(report.failure_reason)}).")
    elif report.num_failed:
        why = "; ".join(f"{n} {escape(cls)}" for cls, n in report.failures.items())
        out.append(f"{report.num_failed} layers could not be analysed or fitted ({why}; each row's message "
                   f"column says more); they are left out of the means.")
    if len(report.skipped):
        out.append(f"{len(report.skipped)} candidate layers were skipped (listed at the end).")
    for note in getattr(report, "notes", ()):
        out.append(f"Note: {escape(str(note))}.")
    if "alpha_weighted" in s and math.isfinite(s["alpha_weighted"]):
        out.append(f"Mean α̂ (alpha_weighted) = {s['alpha_weighted']:.3f} and mean log spectral norm = "
                   f"{s.get('log_spectral_norm', math.nan):.3f}: on their own these numbers say little; "
                   f"compare them between models of one family: smaller means better (Martin, Peng &amp; "
                   f"Mahoney, Nature Communications 2021). Use <code>spectralwatch compare</code>.")
    return out


def _png(draw, canvas, kind=None) -> str:
    """Draw with ``draw(ax)`` on the shared canvas (``kind``: reuse its Axes); a ``data:`` URI of the PNG."""
    draw(canvas.axes(kind))
    return _encoded(canvas)


def _encoded(canvas) -> str:
    """The canvas's current figure as a ``data:`` URI of a PNG (text matplotlib cannot typeset is drawn
    literally: :func:`~spectralwatch.render.plots.base.render_figure`)."""
    from .plots.base import render_figure

    for a in canvas.fig.axes:
        a.minorticks_off()
    data = render_figure(canvas.fig, "png", pil_kwargs={"compress_level": 6})
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def summary_cards(report) -> str:
    """The summary cards of a report (HTML): layer counts, the mean metrics, the flagged layers."""
    s = report.summary
    cards = [f"<div class='card'><div class='k'>layers</div><div class='v'>{report.num_layers}</div>"
             f"<div class='h'>{report.num_failed} failed, {len(report.skipped)} skipped</div></div>"]
    for key, label, help_ in _CARDS:
        if key in s:
            cls = tail_class(s[key])[0] if key == "alpha" else ""
            cards.append(f"<div class='card {cls}' title='{escape(help_)}'><div class='k'>{escape(label)}</div>"
                         f"<div class='v'>{_fmt(s[key])}</div><div class='h'>{escape(help_)}</div></div>")
    d = report.details
    if "warning" in d:
        rows = d.to_dict("records")
        reliable = [fit_reliable(r) for r in rows]
        over = sum(ok and r.get("warning") == "over-trained" for r, ok in zip(rows, reliable))
        under = sum(ok and r.get("warning") == "under-trained" for r, ok in zip(rows, reliable))
        shaky = sum(r.get("status") == "success" and not ok for r, ok in zip(rows, reliable))
        note = f"; {shaky} unreliable fits (too few eigenvalues) not counted" if shaky else ""
        cards.append(f"<div class='card {'over' if over + under else 'good'}'><div class='k'>flagged layers</div>"
                     f"<div class='v'>{over + under}</div><div class='h'>{over} over-trained (α &lt; 2), "
                     f"{under} under-trained (α &gt; 6){note}</div></div>")
    return "<div class='cards'>" + "".join(cards) + "</div>"


def row_class(row) -> str:
    """The CSS class of a layer's row: ``'failed'``, ``'unreliable'`` (``fit_reliable`` false), ``'over'`` (over-trained), ``'under'`` or ``''``."""
    if row.get("status") == "failed":
        return "failed"
    if not fit_reliable(row):
        return "unreliable"
    w = row.get("warning", "")
    return {"over-trained": "over", "under-trained": "under"}.get(w, "")


def layer_table(report, *, interactive: bool = True, max_rows: int | None = None) -> str:
    """The table of layers (HTML), rows coloured by warning, a reading of each layer's tail.

    ``interactive``: the page's table (``id='layers'``, which its script sorts and filters, names
    linking to the ESD figures); otherwise a plain table that can stand in any page (a notebook).
    ``max_rows``: at most this many rows, in model order.
    """
    d = report.details
    cols = [c for c in HTML_COLUMNS if c in d.columns]
    tip = " title='click to sort'" if interactive else ""
    head = "".join(f"<th data-col='{escape(c)}'{tip}>{escape(c)}</th>" for c in cols)
    head += "<th>tail</th>"
    body = []
    records = d.to_dict("records")
    for row in records[:max_rows] if max_rows is not None else records:
        cells = []
        failed = row.get("status") == "failed"
        for c in cols:
            v = None if failed and c in FIT_COLUMNS else row.get(c)  # not the -1 placeholders
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            text = escape(_fmt(v))
            if c == "name" and interactive:
                text = f"<a href='#layer-{_anchor(row)}'>{text}</a>"
            attr = f" data-v='{float(v)!r}'" if num and math.isfinite(float(v)) else ""
            cells.append(f"<td{attr}{' class=num' if num else ''}>{text}</td>")
        r = _row_reading(row)
        cells.append(f"<td><span class='tag {r.key}' title='{escape(r.meaning)}'>{escape(r.label)}</span></td>")
        shown = "unreliable" if row_class(row) == "unreliable" else str(row.get("warning", ""))
        body.append(f"<tr class='{row_class(row)}' data-warning='{escape(shown)}' "
                    f"data-status='{escape(str(row.get('status', '')))}'>{''.join(cells)}</tr>")
    ident = " id='layers'" if interactive else " class='layers'"
    return f"<table{ident}><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _anchor(row) -> str:
    sid = row.get("slice_id")
    return f"{int(row['layer_id'])}" + (f"-{int(sid)}" if sid is not None and sid == sid else "")


def _layer_sections(report, canvas, limit: int) -> str:
    from .plots.layer import layer_title, esd_loglog

    out = []
    rows = report.details.to_dict("records")
    for row in rows[:limit]:
        key = (row["layer_id"], int(row["slice_id"]) if "slice_id" in row else 0)
        try:
            evals, fit = report.get_ESD(key), report.get_fit(key)
        except (KeyError, TypeError):
            continue

        def draw(ax, evals=evals, fit=fit, title=layer_title(row)):
            esd_loglog(evals, fit, ax=ax, title=title)

        cls = row_class(row)
        note = escape(str(row.get("message") or ""))
        out.append(f"<figure id='layer-{_anchor(row)}' class='layer {cls}'><img alt='ESD of layer "
                   f"{escape(str(row['layer_id']))}' src='{_png(draw, canvas, 'esd')}'>"
                   f"<figcaption>{escape(str(row.get('longname') or row.get('name')))} — "
                   f"<span class='tag {_row_reading(row).key}'>"
                   f"{escape(_caption_word(row))}</span> {note}</figcaption></figure>")
    if len(rows) > limit:
        out.append(f"<p class='note'>Figures of the first {limit} of {len(rows)} layers are shown "
                   f"(<code>layer_figures=</code> changes the limit).</p>")
    return "<div class='layers'>" + "".join(out) + "</div>"


def _caption_word(row) -> str:
    if row.get("status") == "success" and not fit_reliable(row):
        return "unreliable fit"
    return str(row.get("warning") or row.get("status") or "")


def _model_figures(report, canvas) -> str:
    from .plots.layer import draw_model_figure

    figs = []
    for kind, alt in (("alpha-by-layer", "alpha per layer, alpha_weighted below"),
                      ("alpha-histogram", "histogram of alpha"), ("layer-groups", "alpha by kind of layer")):
        draw_model_figure(kind, canvas, report.details)
        figs.append(f"<img alt='{alt}' src='{_encoded(canvas)}'>")
    return "<div class='model-figs'>" + "".join(figs) + "</div>"


def _skipped(report) -> str:
    if not len(report.skipped):
        return "<p>No candidate layer was skipped.</p>"
    rows = "".join(f"<tr><td>{escape(str(r['layer_id']))}</td><td>{escape(str(r['name']))}</td>"
                   f"<td>{escape(str(r['layer_type']))}</td><td>{escape(str(r['reason']))}</td></tr>"
                   for r in report.skipped.to_dict("records"))
    return ("<table class='plain'><thead><tr><th>layer_id</th><th>name</th><th>type</th><th>reason</th></tr>"
            f"</thead><tbody>{rows}</tbody></table>")


def report_html(report, *, title=None, figures=True, layer_figures=300) -> str:
    """The HTML document of a report (a string); see the module docstring.

    Parameters
    ----------
    report : Report
    title : str, optional
        Page title (default: the model's name).
    figures : bool
        Embed figures (needs matplotlib: ``pip install 'spectralwatch[plot]'``).
    layer_figures : int
        At most this many per-layer ESD figures.
    """
    from .._version import __version__
    from .html_assets import CSS, JS
    from .plots.base import Canvas
    from .plots.layer import model_name

    name = title or model_name(report)
    figs_html = layers_html = ""
    if figures:
        canvas = Canvas(dpi=90)
        figs_html = "<h2>The model at a glance</h2>" + _model_figures(report, canvas)
        layers_html = ("<h2 id='esd'>Per-layer ESD</h2><p class='note'>Log-log histogram of each layer's "
                       "eigenvalues; the dashed line is the fitted power law, drawn from its start λmin. "
                       "A heavy tail that the line follows closely is a trustworthy α.</p>"
                       + _layer_sections(report, canvas, layer_figures))
    stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    reading_html = "".join(f"<li>{s}</li>" for s in reading(report))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'">
<title>spectralwatch: {escape(name)}</title><style>{CSS}</style></head>
<body><header><h1>spectralwatch report: {escape(name)}</h1>
<p class="sub">{escape(str(report.source))} · spectralwatch {escape(__version__)} · {stamp}</p></header>
<main>{summary_cards(report)}
<h2>Reading</h2><ul class="reading">{reading_html}</ul>
{figs_html}
<h2>Layers</h2>
<div class="controls"><input id="filter" type="search" placeholder="filter: any text in a row (name, type...)">
<select id="show"><option value="all">all layers</option><option value="flagged">flagged only</option>
<option value="over-trained">over-trained (α &lt; 2)</option><option value="under-trained">under-trained (α &gt; 6)</option>
<option value="unreliable">unreliable fits (too few eigenvalues)</option>
<option value="failed">failed fits</option></select> <span id="count"></span></div>
<p class="note">Click a column header to sort (again to reverse); click a name to see its ESD.
Rows: <span class="tag over">over-trained</span> <span class="tag under">under-trained</span>
<span class="tag unreliable">unreliable fit (too few eigenvalues)</span> <span class="tag na">failed</span>.</p>
<div class="scroll">{layer_table(report)}</div>
{layers_html}
<h2>Skipped layers</h2>{_skipped(report)}
<h2>How to read the columns</h2>{_GLOSSARY}
</main><script>{JS}</script></body></html>
"""


_GLOSSARY = """<dl class="glossary">
<dt>alpha</dt><dd>exponent of the power law fitted to the tail of the eigenvalue spectrum (ESD) of WᵀW,
ρ(λ) ~ λ^-α for λ ≥ xmin. HTSR's reading: 2 ≤ α ≤ 6 is the range of trained layers (2-4 heavy, 4-6 moderately
heavy tail); α &lt; 2 its over-training warning; α &gt; 6 close to a random matrix, its under-training warning.
A heuristic, not a measurement of accuracy.</dd>
<dt>fit_reliable</dt><dd>false when the layer has fewer than 50 eigenvalues: its α cannot be read, and the
row is shown as an unreliable fit whatever its <code>warning</code>.</dd>
<dt>alpha_weighted</dt><dd>α · log10 λmax (α̂): weights α by the scale of the layer; its mean compares models.</dd>
<dt>D, sigma, xmin</dt><dd>Kolmogorov-Smirnov distance of the fit (small is good), standard error of α, start of the fitted tail.</dd>
<dt>num_pl_spikes</dt><dd>eigenvalues in the fitted tail (λ ≥ xmin).</dd>
<dt>log_norm, log_spectral_norm</dt><dd>log10 of the squared Frobenius norm and of the largest eigenvalue.</dd>
<dt>stable_rank, entropy</dt><dd>‖W‖²_F/‖W‖²₂, an effective rank; normalised entropy of the spectrum (1 = flat, like a random matrix).</dd>
<dt>log_alpha_norm</dt><dd>log10 Σ λ^α.</dd>
<dt>num_spikes, mp_softrank, num_traps, detX_num</dt><dd>with the Random-Matrix-Theory options: eigenvalues above the
Marchenko-Pastur bulk, bulk edge / λmax, spikes of the randomized matrix (correlation traps), the detX cut.</dd>
<dt>phase, phase_note</dt><dd>with mp_fit: the 5+1 phase of training (Martin &amp; Mahoney) of the layer's spectrum, and
why that label may mislead (few eigenvalues, a feature near a threshold); the rule and its measured accuracy are in
docs/rmt.md.</dd>
</dl>"""

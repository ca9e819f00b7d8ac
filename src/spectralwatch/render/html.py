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
import io
import math
from html import escape

import numpy as np

from ..core.columns import FIT_COLUMNS, HTML_COLUMNS
from .text import fmt_value

__all__ = ["report_html", "reading", "tail_class"]

_CARDS = (("alpha", "mean α", "power-law exponent of the ESD tail; 2-6 is well trained, near 2 best"),
          ("alpha_weighted", "mean α̂", "alpha_weighted = α·log10 λmax; compares models of different depth"),
          ("log_spectral_norm", "log spectral norm", "mean log10 of the largest eigenvalue"),
          ("log_norm", "log Frobenius norm", "mean log10 of the squared Frobenius norm"),
          ("log_alpha_norm", "log α-norm", "mean log10 Σ λ^α (the Shatten α-norm)"),
          ("stable_rank", "stable rank", "mean ‖W‖²_F / ‖W‖²₂"))


def tail_class(alpha) -> tuple[str, str]:
    """(css class, words) for one layer's alpha: the HTSR reading of its tail.

    Martin & Mahoney, JMLR 22 (2021): alpha < 2 very heavy tail (over-fitting risk), 2-4 heavy
    tail (strong correlations: well trained), 4-6 moderately heavy, > 6 close to random
    (Marchenko-Pastur bulk: little learned).
    """
    if alpha is None or not np.isfinite(alpha) or alpha <= 0:
        return "na", "no fit"
    if alpha < 2:
        return "over", "very heavy tail (α < 2): over-fitting risk"
    if alpha < 4:
        return "good", "heavy tail (2 ≤ α < 4): well trained"
    if alpha <= 6:
        return "fair", "moderately heavy tail (4 ≤ α ≤ 6): trained, room to learn"
    return "under", "close to random (α > 6): under-trained"


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
    alpha = ok["alpha"].to_numpy(dtype=float) if "alpha" in ok else np.empty(0)
    alpha = alpha[np.isfinite(alpha)]
    if alpha.size:
        mean = float(alpha.mean())
        cls, words = tail_class(mean)
        out.append(f"The mean α over {alpha.size} fitted layers is <b>{mean:.2f}</b>: on average a "
                   f"<span class='tag {cls}'>{escape(words)}</span>.")
        within = int(((alpha >= 2) & (alpha <= 6)).sum())
        out.append(f"{within} of {alpha.size} layers ({100 * within / alpha.size:.0f}%) are in the well-trained "
                   f"range 2 ≤ α ≤ 6; {int((alpha < 2).sum())} are below 2 (over-trained: the tail is so heavy "
                   f"that the layer may have memorised), {int((alpha > 6).sum())} above 6 (under-trained: the "
                   f"spectrum is still close to that of a random matrix).")
        worst = ok.assign(_dist=np.abs(ok["alpha"].astype(float) - 3.0)).nlargest(3, "_dist")
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
    """The canvas's current figure as a ``data:`` URI of a PNG."""
    buf = io.BytesIO()
    for a in canvas.fig.axes:
        a.minorticks_off()
    canvas.fig.savefig(buf, format="png", pil_kwargs={"compress_level": 6})
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _cards(report) -> str:
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
        over, under = int((d["warning"] == "over-trained").sum()), int((d["warning"] == "under-trained").sum())
        cards.append(f"<div class='card {'over' if over + under else 'good'}'><div class='k'>flagged layers</div>"
                     f"<div class='v'>{over + under}</div><div class='h'>{over} over-trained (α &lt; 2), "
                     f"{under} under-trained (α &gt; 6)</div></div>")
    return "<div class='cards'>" + "".join(cards) + "</div>"


def _row_class(row) -> str:
    if row.get("status") == "failed":
        return "failed"
    w = row.get("warning", "")
    return {"over-trained": "over", "under-trained": "under"}.get(w, "")


def _table(report) -> str:
    d = report.details
    cols = [c for c in HTML_COLUMNS if c in d.columns]
    head = "".join(f"<th data-col='{escape(c)}' title='click to sort'>{escape(c)}</th>" for c in cols)
    head += "<th>tail</th>"
    body = []
    for row in d.to_dict("records"):
        cells = []
        failed = row.get("status") == "failed"
        for c in cols:
            v = None if failed and c in FIT_COLUMNS else row.get(c)  # not the -1 placeholders
            num = isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))
            text = escape(_fmt(v))
            if c == "name":
                text = f"<a href='#layer-{_anchor(row)}'>{text}</a>"
            attr = f" data-v='{float(v)!r}'" if num and math.isfinite(float(v)) else ""
            cells.append(f"<td{attr}{' class=num' if num else ''}>{text}</td>")
        cls, words = tail_class(row.get("alpha") if row.get("status") == "success" else None)
        cells.append(f"<td><span class='tag {cls}'>{escape(words.split(':')[0])}</span></td>")
        body.append(f"<tr class='{_row_class(row)}' data-warning='{escape(str(row.get('warning', '')))}' "
                    f"data-status='{escape(str(row.get('status', '')))}'>{''.join(cells)}</tr>")
    return (f"<table id='layers'><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


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

        cls = _row_class(row)
        note = escape(str(row.get("message") or ""))
        out.append(f"<figure id='layer-{_anchor(row)}' class='layer {cls}'><img alt='ESD of layer "
                   f"{escape(str(row['layer_id']))}' src='{_png(draw, canvas, 'esd')}'>"
                   f"<figcaption>{escape(str(row.get('longname') or row.get('name')))} — "
                   f"<span class='tag {tail_class(row.get('alpha') if row.get('status') == 'success' else None)[0]}'>"
                   f"{escape(str(row.get('warning') or row.get('status') or ''))}</span> {note}</figcaption></figure>")
    if len(rows) > limit:
        out.append(f"<p class='note'>Figures of the first {limit} of {len(rows)} layers are shown "
                   f"(<code>layer_figures=</code> changes the limit).</p>")
    return "<div class='layers'>" + "".join(out) + "</div>"


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
<main>{_cards(report)}
<h2>Reading</h2><ul class="reading">{reading_html}</ul>
{figs_html}
<h2>Layers</h2>
<div class="controls"><input id="filter" type="search" placeholder="filter: any text in a row (name, type...)">
<select id="show"><option value="all">all layers</option><option value="flagged">flagged only</option>
<option value="over-trained">over-trained (α &lt; 2)</option><option value="under-trained">under-trained (α &gt; 6)</option>
<option value="failed">failed fits</option></select> <span id="count"></span></div>
<p class="note">Click a column header to sort (again to reverse); click a name to see its ESD.
Rows: <span class="tag over">over-trained</span> <span class="tag under">under-trained</span>
<span class="tag na">failed</span>.</p>
<div class="scroll">{_table(report)}</div>
{layers_html}
<h2>Skipped layers</h2>{_skipped(report)}
<h2>How to read the columns</h2>{_GLOSSARY}
</main><script>{JS}</script></body></html>
"""


_GLOSSARY = """<dl class="glossary">
<dt>alpha</dt><dd>exponent of the power law fitted to the tail of the eigenvalue spectrum (ESD) of WᵀW,
ρ(λ) ~ λ^-α for λ ≥ xmin. 2 ≤ α ≤ 6: well trained (near 2 best); α &lt; 2: over-trained; α &gt; 6: under-trained.</dd>
<dt>alpha_weighted</dt><dd>α · log10 λmax (α̂): weights α by the scale of the layer; its mean compares models.</dd>
<dt>D, sigma, xmin</dt><dd>Kolmogorov-Smirnov distance of the fit (small is good), standard error of α, start of the fitted tail.</dd>
<dt>num_pl_spikes</dt><dd>eigenvalues in the fitted tail (λ ≥ xmin).</dd>
<dt>log_norm, log_spectral_norm</dt><dd>log10 of the squared Frobenius norm and of the largest eigenvalue.</dd>
<dt>stable_rank, entropy</dt><dd>‖W‖²_F/‖W‖²₂, an effective rank; normalised entropy of the spectrum (1 = flat, like a random matrix).</dd>
<dt>log_alpha_norm</dt><dd>log10 Σ λ^α.</dd>
<dt>num_spikes, mp_softrank, num_traps, detX_num</dt><dd>with the Random-Matrix-Theory options: eigenvalues above the
Marchenko-Pastur bulk, bulk edge / λmax, spikes of the randomized matrix (correlation traps), the detX cut.</dd>
</dl>"""

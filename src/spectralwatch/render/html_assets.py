"""The inline stylesheet and script of the HTML report (see :mod:`spectralwatch.render.html`).

:data:`PALETTE` holds the warning colours, shared by the page, the notebook display of a report
(:mod:`spectralwatch.render.notebook`, whose stylesheet is :data:`CSS` scoped to one element by
:func:`scoped_css`) and ``Report.style()``.

The script has no dependency and touches nothing outside the page: it sorts the layer table when a
header is clicked (numbers numerically, text alphabetically, empty cells last) and filters its
rows by free text and by warning.
"""

#: the colours of the readings: text, and the background of a table row
PALETTE = {"ink": "#1d2733", "mut": "#5b6877", "line": "#dfe5ec", "bg": "#f6f8fb", "blue": "#0072B2",
           "good": "#0b7a55", "fair": "#8a6d00", "over": "#c0392b", "under": "#c26a00", "na": "#7f7f7f",
           "over_row": "#fdf1ef", "under_row": "#fef5ea", "na_row": "#f4f4f4"}

CSS = (":root { " + " ".join(f"--{k}:{v};" for k, v in PALETTE.items() if not k.endswith("_row")) + " }" + """
* { box-sizing: border-box; }
body { margin:0; font:14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color:var(--ink); background:var(--bg); }
header { background:#14304f; color:#fff; padding:18px 28px; }
header h1 { margin:0; font-size:22px; font-weight:600; }
header .sub { margin:4px 0 0; color:#c5d3e3; font-size:12px; word-break:break-all; }
main { padding:8px 28px 40px; max-width:1500px; }
h2 { font-size:17px; margin:28px 0 10px; border-bottom:1px solid var(--line); padding-bottom:4px; }
.cards { display:flex; flex-wrap:wrap; gap:12px; margin-top:16px; }
.card { background:#fff; border:1px solid var(--line); border-left:5px solid var(--blue); border-radius:6px;
        padding:10px 14px; min-width:170px; flex:1 1 170px; max-width:260px; }
.card .k { color:var(--mut); font-size:12.5px; font-weight:600; letter-spacing:.02em; }
.card .v { font-size:26px; font-weight:600; }
.card .h { color:var(--mut); font-size:11.5px; }
.card.good { border-left-color:var(--good); } .card.fair { border-left-color:var(--fair); }
.card.over { border-left-color:var(--over); } .card.under { border-left-color:var(--under); }
.reading li { margin:4px 0; }
.tag { display:inline-block; padding:0 7px; border-radius:9px; font-size:12px; background:#e8edf3; white-space:nowrap; }
.tag.good { background:#dff3ea; color:var(--good); } .tag.fair { background:#fbf1cf; color:var(--fair); }
.tag.over { background:#fbe0dc; color:var(--over); } .tag.under { background:#fde8cf; color:var(--under); }
.tag.na { background:#ececec; color:var(--na); } .tag.unreliable { background:#ececec; color:var(--na); font-style:italic; }
.model-figs { display:flex; flex-wrap:wrap; gap:10px; }
.model-figs img, .layer img { background:#fff; border:1px solid var(--line); border-radius:4px; max-width:100%; }
.controls { display:flex; gap:10px; align-items:center; margin:8px 0; }
.controls input { flex:0 1 380px; padding:6px 10px; border:1px solid #b9c4d0; border-radius:5px; font:inherit; }
.controls select { padding:5px; border:1px solid #b9c4d0; border-radius:5px; font:inherit; }
#count { color:var(--mut); font-size:12px; }
.scroll { overflow:auto; max-height:70vh; border:1px solid var(--line); border-radius:6px; background:#fff; }
table { border-collapse:collapse; width:100%; font-size:12.5px; }
th, td { padding:4px 8px; border-bottom:1px solid #eef1f5; text-align:left; white-space:nowrap; }
td.num { text-align:right; font-variant-numeric:tabular-nums; }
#layers thead th, table.layers thead th { position:sticky; top:0; background:#eef3f8; z-index:1; }
#layers thead th { cursor:pointer; user-select:none; }
#layers thead th:hover { background:#dde7f1; }
#layers thead th[aria-sort=ascending]::after { content:" \\25B2"; font-size:10px; }
#layers thead th[aria-sort=descending]::after { content:" \\25BC"; font-size:10px; }
tr.over td { background:""" + PALETTE["over_row"] + """; } tr.under td { background:""" + PALETTE["under_row"] + """; }
tr.failed td { color:var(--na); background:""" + PALETTE["na_row"] + """; }
tr.unreliable td { color:var(--na); }
tr:hover td { background:#eaf2fb; }
td a { color:var(--blue); text-decoration:none; }
.layers { display:grid; grid-template-columns:repeat(auto-fill, minmax(470px, 1fr)); gap:12px; }
figure.layer { margin:0; background:#fff; border:1px solid var(--line); border-radius:6px; padding:6px; }
figure.layer.over { border-color:var(--over); } figure.layer.under { border-color:var(--under); }
figure.layer:target { outline:3px solid var(--blue); }
figcaption { font-size:12px; color:var(--mut); word-break:break-all; }
.note { color:var(--mut); font-size:12.5px; }
table.plain { background:#fff; border:1px solid var(--line); }
dl.glossary dt { font-weight:600; margin-top:6px; } dl.glossary dd { margin:0 0 0 18px; color:#35414f; }
""")

_PAGE_SELECTORS = ("body", "header", "main", "h2", "*")


def scoped_css(scope: str) -> str:
    """:data:`CSS` for a fragment inside a page that is not ours (a notebook): every rule applies
    only under the selector ``scope``; the rules of the page itself (body, header, headings) are
    left out and the colour variables are defined on ``scope``."""
    out = []
    for rule in CSS.split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        kept = []
        for sel in (x.strip() for x in selectors.split(",")):
            if sel == ":root":
                kept.append(scope)
            elif sel and not sel.split()[0].startswith(_PAGE_SELECTORS):
                kept.append(f"{scope} {sel}")
        if kept:
            out.append(f"{', '.join(kept)} {{{body}}}")
    return "\n".join(out)

JS = """
(function () {
  "use strict";
  var table = document.getElementById("layers");
  if (!table) { return; }
  var body = table.tBodies[0];
  var heads = table.tHead.rows[0].cells;
  var state = { col: -1, asc: true };

  function key(row, i) {
    var cell = row.cells[i];
    if (cell.hasAttribute("data-v")) { return parseFloat(cell.getAttribute("data-v")); }
    var text = cell.textContent.trim();
    return text === "" ? null : text.toLowerCase();
  }

  function compare(a, b, asc) {
    if (a === null && b === null) { return 0; }
    if (a === null) { return 1; }            // empty cells last, whatever the direction
    if (b === null) { return -1; }
    var an = typeof a === "number", bn = typeof b === "number";
    var r = an && bn ? a - b : (an ? -1 : (bn ? 1 : (a < b ? -1 : (a > b ? 1 : 0))));
    return asc ? r : -r;
  }

  function sortBy(i) {
    state.asc = state.col === i ? !state.asc : true;
    state.col = i;
    var rows = Array.prototype.slice.call(body.rows);
    var keyed = rows.map(function (r, n) { return { r: r, k: key(r, i), n: n }; });
    keyed.sort(function (x, y) { return compare(x.k, y.k, state.asc) || x.n - y.n; });
    keyed.forEach(function (x) { body.appendChild(x.r); });
    for (var h = 0; h < heads.length; h++) { heads[h].removeAttribute("aria-sort"); }
    heads[i].setAttribute("aria-sort", state.asc ? "ascending" : "descending");
  }

  for (var i = 0; i < heads.length; i++) {
    heads[i].addEventListener("click", sortBy.bind(null, i));
  }

  var filter = document.getElementById("filter");
  var show = document.getElementById("show");
  var count = document.getElementById("count");

  function keep(row, text, mode) {
    var w = row.getAttribute("data-warning"), s = row.getAttribute("data-status");
    if (mode === "flagged" && !w) { return false; }
    if (mode === "failed" && s !== "failed") { return false; }
    if ((mode === "over-trained" || mode === "under-trained" || mode === "unreliable") && w !== mode) { return false; }
    return !text || row.textContent.toLowerCase().indexOf(text) >= 0;
  }

  function apply() {
    var text = filter.value.trim().toLowerCase(), mode = show.value, shown = 0;
    for (var r = 0; r < body.rows.length; r++) {
      var ok = keep(body.rows[r], text, mode);
      body.rows[r].style.display = ok ? "" : "none";
      if (ok) { shown += 1; }
    }
    count.textContent = shown + " of " + body.rows.length + " layers";
  }

  filter.addEventListener("input", apply);
  show.addEventListener("change", apply);
  apply();
})();
"""

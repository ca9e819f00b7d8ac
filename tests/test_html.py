"""The HTML report: self-contained, and working in a real browser (headless Chromium)."""

import html
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

pytest.importorskip("matplotlib")

import spectralwatch  # noqa: E402
from spectralwatch.render.html import tail_class  # noqa: E402

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_TIMEOUT_S = 120  # a cold start on a loaded 2-core CI machine takes tens of seconds


def small_model(seed=0):
    """Planted heavy tails (alpha 2.5, 3.5), a Gaussian layer (alpha > 6: under-trained)."""
    rng = np.random.default_rng(seed)
    model = {}
    for i, (n, m, a) in enumerate([(300, 150, 2.5), (280, 140, 3.5)]):
        u, _ = np.linalg.qr(rng.standard_normal((n, m)))
        v, _ = np.linalg.qr(rng.standard_normal((m, m)))
        model[f"heavy_{i}.weight"] = (u * np.sqrt(rng.pareto(a - 1, m) + 1.0)) @ v.T
    model["random.weight"] = rng.standard_normal((240, 120)) / np.sqrt(240)
    model["tiny.weight"] = np.ones((12, 10))  # a constant matrix: the power-law fit fails
    return model


@pytest.fixture(scope="module")
def report():
    return spectralwatch.analyze(small_model(), workers=1)


@pytest.fixture(scope="module")
def page(report):
    return report.to_html()


def test_self_contained(page, report):
    assert page.startswith("<!DOCTYPE html>")
    # nothing is fetched: no external src/href, a CSP that forbids any network load
    assert not re.search(r"""(src|href)\s*=\s*['"](https?:|//)""", page)
    assert "default-src 'none'" in page
    assert page.count("data:image/png;base64,") == 3 + report.num_layers  # model figures + one ESD per layer
    for name in report.details["name"]:
        assert name in page


def test_summary_reading_and_highlighting(page, report):
    assert f"{report.summary['alpha']:.3f}" in page  # the mean alpha card
    # one wording of the mean alpha, the terminal's (render/wording.py; issue 14 changed it from "well-trained range")
    from spectralwatch.render.wording import mean_alpha_sentence

    assert mean_alpha_sentence(report.summary["alpha"]) in html.unescape(page)
    assert "under-trained" in page
    assert "<tr class='under'" in page  # the Gaussian layer
    assert "<tr class='failed'" in page  # the constant layer
    assert "could not be analysed or fitted" in page


def test_tail_classes():
    assert [tail_class(a)[0] for a in (1.5, 2.5, 5.0, 7.0, float("nan"))] == ["over", "good", "fair", "under", "na"]


def test_to_html_writes_a_file(report, tmp_path):
    path = tmp_path / "r.html"
    assert report.to_html(path, figures=False) is None
    text = path.read_text(encoding="utf-8")
    assert "id='layers'" in text and "data:image" not in text


def _chromium():
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    pytest.skip("headless Chromium is not installed (Debian: apt-get install chromium; .ci/run installs it "
                "where apt is available)")


# Injected into a copy of the page: records errors from the very start, then (after the page's own
# script ran) clicks the 'alpha' header twice and uses the filters, and writes what it saw as JSON.
PROBE_HEAD = """<script>window.__errors=[];window.addEventListener('error',function(e){__errors.push(String(e.message))});
var __ce=console.error;console.error=function(){__errors.push(Array.prototype.join.call(arguments,' '));__ce.apply(console,arguments)};</script>"""
PROBE_TAIL = """<script>(function(){
var out={};try{
var t=document.getElementById('layers');var th=t.tHead.rows[0].cells;var col=-1;
for(var i=0;i<th.length;i++){if(th[i].textContent==='alpha'){col=i;}}
function column(){var v=[];for(var r=0;r<t.tBodies[0].rows.length;r++){var c=t.tBodies[0].rows[r].cells[col];
v.push(c.hasAttribute('data-v')?parseFloat(c.getAttribute('data-v')):null);}return v;}
out.before=column();th[col].click();out.asc=column();out.ariaAsc=th[col].getAttribute('aria-sort');
th[col].click();out.desc=column();
var f=document.getElementById('filter');f.value='heavy';f.dispatchEvent(new Event('input'));
out.visibleHeavy=Array.prototype.filter.call(t.tBodies[0].rows,function(r){return r.style.display!=='none'}).length;
f.value='';f.dispatchEvent(new Event('input'));var s=document.getElementById('show');s.value='flagged';
s.dispatchEvent(new Event('change'));
out.visibleFlagged=Array.prototype.filter.call(t.tBodies[0].rows,function(r){return r.style.display!=='none'}).length;
out.count=document.getElementById('count').textContent;
out.images=Array.prototype.filter.call(document.images,function(i){return i.complete&&i.naturalWidth>0}).length;
}catch(e){window.__errors.push('probe: '+e);}
out.errors=window.__errors;var pre=document.createElement('pre');pre.id='probe';pre.textContent=JSON.stringify(out);
document.body.appendChild(pre);})();</script>"""


def _run_chromium(browser, args, timeout=CHROMIUM_TIMEOUT_S):
    cmd = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--no-first-run", "--enable-logging=stderr", "--v=0", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def test_report_in_headless_chromium(page, report, tmp_path):
    browser = _chromium()
    probed = page.replace("<head>", "<head>" + PROBE_HEAD, 1).replace("</body>", PROBE_TAIL + "</body>", 1)
    probe_file = tmp_path / "probe.html"
    probe_file.write_text(probed, encoding="utf-8")
    proc = _run_chromium(browser, ["--virtual-time-budget=5000", "--dump-dom", probe_file.as_uri()])
    m = re.search(r"<pre id=\"probe\">(.*?)</pre>", proc.stdout, re.S)
    assert m, f"no probe output; chromium exit {proc.returncode}: {proc.stderr[-2000:]}"
    out = json.loads(m.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    # no error in the page (its own script, the probe) nor in the browser's console log
    assert out["errors"] == []
    console = [ln for ln in proc.stderr.splitlines() if "CONSOLE" in ln and ("Uncaught" in ln or "Error" in ln)]
    assert console == []
    # sorting: numeric ascending on the first click, descending on the second; failed fits (no value) last
    values = [v for v in out["before"] if v is not None]
    assert len(values) == report.num_layers - report.num_failed
    assert out["asc"][:len(values)] == sorted(values) and out["asc"][len(values):] == [None] * report.num_failed
    assert out["desc"][:len(values)] == sorted(values, reverse=True)
    assert out["ariaAsc"] == "ascending"
    # filters: free text, then the warning selector
    assert out["visibleHeavy"] == 2
    flagged = int((report.details["warning"] != "").sum())
    assert out["visibleFlagged"] == flagged and out["count"] == f"{flagged} of {report.num_layers} layers"
    assert out["images"] == 3 + report.num_layers  # every inline figure decodes

    # and a screenshot of the real page (kept under tmp_path; look at it when changing the layout)
    shot = tmp_path / "report.png"
    page_file = tmp_path / "report.html"
    page_file.write_text(page, encoding="utf-8")
    proc = _run_chromium(browser, ["--window-size=1400,2200", "--hide-scrollbars", f"--screenshot={shot}",
                                   page_file.as_uri()])
    assert shot.exists(), proc.stderr[-2000:]
    from PIL import Image

    img = np.asarray(Image.open(shot).convert("L"), dtype=float)
    assert img.shape == (2200, 1400) and img.std() > 20  # a rendered page, not a blank one

"""The notebook experience, in a real Jupyter kernel (nbclient): a report's rich display, its
Styler, plot_esd / fit.plot figures, and plot=True figures shown inline (native and compat APIs)."""

import base64
import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="nbformat is not installed (requirements-test.txt)")
nbclient = pytest.importorskip("nbclient", reason="nbclient is not installed (requirements-test.txt)")
pytest.importorskip("ipykernel", reason="ipykernel is not installed (requirements-test.txt)")
pytest.importorskip("matplotlib")

import spectralwatch  # noqa: E402
from spectralwatch.render.html_assets import PALETTE  # noqa: E402

CELLS = [
    # 0: a report is shown as HTML at the end of a cell
    """import numpy as np, spectralwatch
rng = np.random.default_rng(0)
model = {f"block{i}.weight": rng.standard_normal((300, 100)) for i in range(3)}
model["broken.weight"] = np.full((40, 20), np.nan)
report = spectralwatch.analyze(model)
report""",
    # 1: the coloured Styler
    "report.style()",
    # 2: one layer's ESD: matplotlib Axes, drawn inline by the kernel's backend
    "ax = report.plot_esd(1, kind='loglog')\nprint(type(ax).__name__)",
    # 3: a fit on its own
    "report.get_fit(2).plot();",
    # 4: plot=True in the native API: files written and shown under the cell
    """small = {"a.weight": rng.standard_normal((120, 60)), "b.weight": rng.standard_normal((90, 60))}
r = spectralwatch.analyze(small, plot=True, savefig=FIGS)
print(len(r.figures), all(os.path.exists(p) for p in r.figures))""",
    # 5: the same through the WeightWatcher drop-in
    """from spectralwatch import WeightWatcher
WeightWatcher(model={"c.weight": rng.standard_normal((100, 50))}).analyze(plot=True, savefig=FIGS2);""",
    # 6: scalars for a logger
    "print(sorted(report.to_scalars()))",
]


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("nb")
    src = str(Path(spectralwatch.__file__).resolve().parents[1])
    setup = (f"import os\nFIGS = {str(tmp / 'figs')!r}\nFIGS2 = {str(tmp / 'figs2')!r}")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(setup)] + [nbformat.v4.new_code_cell(c) for c in CELLS]
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")])),
           "IPYTHONDIR": str(tmp / "ipython"), "MPLCONFIGDIR": str(tmp / "mpl"), "JUPYTER_PLATFORM_DIRS": "1"}
    saved = {k: os.environ.get(k) for k in [*env, "MPLBACKEND"]}
    os.environ.update(env)
    os.environ.pop("MPLBACKEND", None)  # (another test module may have set Agg: the kernel picks its inline backend)
    try:
        client = nbclient.NotebookClient(nb, kernel_name="python3", timeout=300,
                                         resources={"metadata": {"path": str(tmp)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    return nb.cells[1:], tmp


def _outputs(cell, mime):
    return [o["data"][mime] for o in cell.outputs if "data" in o and mime in o["data"]]


def _text(cell):
    # stdout only: stderr may carry notices such as matplotlib building its font cache
    return "".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream"
                   and o.get("name") == "stdout")


def _pngs(cell):
    images = _outputs(cell, "image/png")
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    return images


def test_a_report_displays_as_cards_and_a_coloured_table(executed):
    html = _outputs(executed[0][0], "text/html")
    assert len(html) == 1
    page = html[0]
    assert page.startswith("<div class='sw-report'>") and "<style>" in page
    assert "class='cards'" in page and "mean α" in page
    assert "<tr class='failed'" in page and "weights contain 800 NaN" in page
    assert "<script" not in page and "<header" not in page and "id='layers'" not in page  # no page chrome
    assert ".sw-report .card" in page and "\nbody" not in page  # the stylesheet stays inside the fragment
    assert "Over 3 fitted layers, <span class='tag" in page  # the reading, with its caveats


def test_style_is_a_coloured_styler(executed):
    html = _outputs(executed[0][1], "text/html")
    assert len(html) == 1
    assert PALETTE["na"] in html[0] and PALETTE["na_row"] in html[0]  # the failed layer
    assert PALETTE["under"] in html[0] or PALETTE["good"] in html[0]


def test_plot_esd_and_fit_plot_are_shown_inline(executed):
    cells = executed[0]
    assert _text(cells[2]).strip() == "Axes"
    assert len(_pngs(cells[2])) == 1
    assert len(_pngs(cells[3])) == 1


def test_plot_true_shows_the_figures_it_writes(executed):
    cells, tmp = executed
    count, exist = _text(cells[4]).split()
    assert exist == "True" and int(count) == len(list((tmp / "figs").iterdir())) > 0
    assert len(_pngs(cells[4])) == int(count)
    written = sorted((tmp / "figs2").iterdir())
    assert written and len(_pngs(cells[5])) == len(written)


def test_scalars_in_the_kernel(executed):
    keys = _text(executed[0][6])
    assert "'spectralwatch/alpha'" in keys and "'spectralwatch/num_failed'" in keys

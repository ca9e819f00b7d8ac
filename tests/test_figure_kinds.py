"""Figure kinds: a small default, every kind by name, the reference's full set for plot=True, and
alpha / alpha_weighted on separate axes."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import spectralwatch  # noqa: E402
from spectralwatch.errors import InvalidParameterError  # noqa: E402
from spectralwatch.render.plots.kinds import DEFAULT_FIGURES, FIGURE_KINDS, resolve_kinds  # noqa: E402
from spectralwatch.render.plots.layer import save_figures  # noqa: E402
from spectralwatch.render.plots.model import alpha_by_layer  # noqa: E402

DOCS = Path(__file__).resolve().parents[1] / "docs" / "figures.md"


def small_model(seed=0):
    rng = np.random.default_rng(seed)
    model = {}
    for i in range(3):
        u, _ = np.linalg.qr(rng.standard_normal((240, 120)))
        lam = (rng.pareto(1.5 + i, 120) + 1.0) * (0.001 if i == 0 else 1.0)  # layer 1: lambda_max < 1
        model[f"blocks.{i}.weight"] = (u * np.sqrt(lam)).astype(np.float32)
    model["square.weight"] = rng.standard_normal((100, 100)).astype(np.float32)
    return model


@pytest.fixture(scope="module")
def report():
    return spectralwatch.analyze(small_model(), workers=1)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def names(paths):
    return {Path(p).name for p in paths}


def test_the_default_is_the_model_figures_and_one_esd_per_layer(report, tmp_path):
    written = save_figures(report, tmp_path)
    ids = list(report.details["layer_id"])
    assert names(written) == {f"ww.layer{i}.esd.png" for i in ids} | {
        "model.alpha-by-layer.png", "model.alpha-histogram.png", "model.layer-groups.png"}
    assert DEFAULT_FIGURES == ("alpha-by-layer", "alpha-histogram", "layer-groups", "esd")


def test_kinds_by_name_by_reference_file_name_and_as_a_comma_list(report, tmp_path):
    one = save_figures(report, tmp_path / "a", kinds=["ks", "alpha-histogram"])
    assert names(one) == {f"ww.layer{i}.esd4.png" for i in report.details["layer_id"]} | {
        "model.alpha-histogram.png"}
    two = save_figures(report, tmp_path / "b", kinds="esd4,alpha-histogram")
    assert names(two) == names(one)
    three = save_figures(report, tmp_path / "c", kinds="esd", layers=[1], model=False)
    assert names(three) == {"ww.layer1.esd.png"}


def test_every_kind_can_be_drawn_and_all_is_the_reference_set(tmp_path):
    rep = spectralwatch.analyze(small_model(), workers=1, mp_fit=True, randomize=True, detX=True, deltas=True,
                                rng=0)
    for name, kind in FIGURE_KINDS.items():
        written = save_figures(rep, tmp_path / name, kinds=[name], layers=[1, 4])
        files = {re.sub(r"^ww\.layer\d+\.|^model\.|\.png$", "", n) for n in names(written)}
        assert files and files <= set(kind.files), (name, files)
    every = save_figures(rep, tmp_path / "all", kinds="all", layers=[4])
    assert names(every) == {f"ww.layer4.{f}.png" for f in ("esd", "esd2", "esd3", "esd4", "esd5", "mpfit1",
                                                             "mpfit2", "randesd1", "randesd2", "detX", "deltaEs",
                                                             "level-stats")} | {
        "model.alpha-by-layer.png", "model.alpha-histogram.png", "model.layer-groups.png"}


def test_all_follows_the_analyses_the_report_holds(report):
    plain = [k.name for k in resolve_kinds("all", report.options)]
    assert plain == ["alpha-by-layer", "alpha-histogram", "layer-groups", "esd", "esd-linear", "esd-loglinear",
                     "ks", "alpha-xmin"]


def test_unknown_kinds_and_impossible_kinds_are_refused(report, tmp_path):
    with pytest.raises(InvalidParameterError, match="Unknown figure kind 'histogram'.*alpha-histogram"):
        save_figures(report, tmp_path, kinds="esd,histogram")
    with pytest.raises(InvalidParameterError, match="randomize=True"):
        save_figures(report, tmp_path, kinds=["randomized"])
    assert not list(tmp_path.iterdir())  # refused before anything is written


def test_every_kind_is_documented():
    text = DOCS.read_text()
    for name, kind in FIGURE_KINDS.items():
        assert f"`{name}`" in text, name
        for f in kind.files:
            assert f in text, f
    listed = re.findall(r"^\| `([a-z-]+)` \|", text, flags=re.M)
    assert listed == list(FIGURE_KINDS)


# ---- alpha and alpha_weighted never share an axis -------------------------------------------

def _lines_y(ax):
    return [np.asarray(line.get_ydata(), dtype=float) for line in ax.lines if len(line.get_ydata()) > 2]


def test_alpha_and_alpha_weighted_are_on_separate_axes(report):
    d = report.details
    ax = alpha_by_layer(d)
    fig = ax.figure
    assert len(fig.axes) == 2
    top, bottom = fig.axes
    assert top is ax and top.get_ylabel() == "α" and bottom.get_ylabel() == "alpha_weighted"
    assert top.get_shared_x_axes().joined(top, bottom)
    aw = d["alpha_weighted"].to_numpy(dtype=float)
    assert aw.min() < 0  # the planted layer with lambda_max < 1 has a negative alpha_weighted
    assert any(np.allclose(y, aw) for y in _lines_y(bottom))
    assert not any(np.allclose(y[:aw.size], aw) for y in _lines_y(top) if y.size == aw.size)
    lo, hi = bottom.get_ylim()
    assert lo < aw.min() and hi > aw.max()


def test_alpha_weighted_gets_a_twin_axis_when_one_axes_is_given(report):
    fig, ax = plt.subplots()
    alpha_by_layer(report.details, ax=ax)
    assert len(fig.axes) == 2
    twin = fig.axes[1]
    assert twin.get_ylabel() == "alpha_weighted" and ax.get_ylabel() == "α"
    assert twin.yaxis.get_label_position() == "right"
    alpha_by_layer(report.details, ax=plt.subplots()[1], weighted=False)
    assert len(plt.gcf().axes) == 1


def test_the_saved_alpha_by_layer_figure_has_two_panels(report, tmp_path):
    from PIL import Image

    (path,) = save_figures(report, tmp_path, kinds=["alpha-by-layer"])
    width, height = Image.open(path).size
    assert (width, height) == (640, 560)


# ---- the glyph-caching canvas of file figures ----------------------------------------------------

def _draw_text_figure(canvas_class, path):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4, 2), dpi=100)
    canvas_class(fig)
    ax = fig.add_subplot(1, 1, 1)
    ax.set_yscale("log")
    ax.plot([1, 2, 3], [1e-3, 1e-1, 10])
    ax.set_title("Layer 12: encoder.layer.3 α = 2.345 λmin = 1.2e-3")
    ax.set_ylabel("density ρ(λ) (log scale)")  # rotated text
    ax.text(0.5, 0.5, r"$\frac{1}{2}$ mathtext with a rule", transform=ax.transAxes)
    fig.savefig(path, format="png")
    from PIL import Image

    return np.asarray(Image.open(path).convert("L"), dtype=float)


def test_cached_glyphs_draw_what_matplotlib_draws(tmp_path):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from spectralwatch.render.plots import glyphs

    cls = glyphs.file_canvas_class()
    if cls is FigureCanvasAgg:
        pytest.skip("this matplotlib's Agg renderer is not the one the glyph cache was written for")
    glyphs.clear_glyph_cache()
    plain = _draw_text_figure(FigureCanvasAgg, tmp_path / "plain.png")
    cached = _draw_text_figure(cls, tmp_path / "cached.png")
    n, laid = glyphs.glyph_cache_size(), glyphs.layout_cache_size()
    again = _draw_text_figure(cls, tmp_path / "again.png")
    assert n > 20 and glyphs.glyph_cache_size() == n  # the second figure rasterised nothing new
    assert glyphs.layout_cache_size() == laid and (laid > 0) == glyphs.caches_layouts()  # nor laid out a string
    np.testing.assert_array_equal(cached, again)
    def blocks(x, k=4):  # 4 x 4 pixel averages: a glyph moved by under a pixel changes them little
        h, w = x.shape
        return x[:h // k * k, :w // k * k].reshape(h // k, k, w // k, k).mean(axis=(1, 3))

    assert np.abs(blocks(plain) - blocks(cached)).mean() < 1.5  # measured: 0.98 (plain-pixel mean: 2.6)
    ink = plain < 128
    assert abs(int(ink.sum()) - int((cached < 128).sum())) < 0.05 * ink.sum()


def test_an_unknown_renderer_gets_matplotlibs_canvas(monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    from spectralwatch.render.plots import glyphs

    monkeypatch.setattr(glyphs, "_SIGNATURE", ("self", "something", "else"))
    glyphs.file_canvas_class.cache_clear()
    try:
        assert glyphs.file_canvas_class() is FigureCanvasAgg
    finally:
        monkeypatch.undo()
        glyphs.file_canvas_class.cache_clear()
    assert glyphs.file_canvas_class() is not None


def test_failed_layers_are_left_out_of_the_figures(tmp_path):
    model = small_model()
    bad = model["blocks.1.weight"].copy()
    bad[0, 0] = np.nan
    model["blocks.1.weight"] = bad
    rep = spectralwatch.analyze(model, workers=1)
    assert rep.num_failed == 1
    written = save_figures(rep, tmp_path, kinds="esd", model=False)
    assert names(written) == {f"ww.layer{i}.esd.png" for i in (1, 3, 4)}
    with pytest.raises(KeyError, match="has no eigenvalues"):  # NotComputedError, by (id, slice_id) too
        rep.get_ESD((2, 0))

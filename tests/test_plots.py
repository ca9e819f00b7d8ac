"""Figures: every kind rendered (Agg) on synthetic and real spectra, the files analyze(plot=True) writes."""

import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

import spectralwatch  # noqa: E402
from spectralwatch.render.plots import layer as plots
from spectralwatch.render.plots import rmt as plots_rmt
from spectralwatch.tools.compare import compare, plot_alpha_curves, plot_metric_vs_accuracy  # noqa: E402
from spectralwatch.errors import InvalidParameterError  # noqa: E402

from realmodels import fetch  # noqa: E402

MIN_PNG_BYTES = 8_000  # a 640x440 figure with axes, text and data; an empty canvas is ~2 kB
MIN_PIXEL_STD = 10.0  # grey-level spread of a drawn figure; a blank image has 0


def planted_model(seed=0):
    """Small layers with planted power-law tails (alpha 2.5 and 3.5), a Gaussian one and a square one."""
    rng = np.random.default_rng(seed)
    model = {}
    for i, (n, m, a) in enumerate([(400, 200, 2.5), (360, 180, 3.5)]):
        u, _ = np.linalg.qr(rng.standard_normal((n, m)))
        v, _ = np.linalg.qr(rng.standard_normal((m, m)))
        lam = rng.pareto(a - 1, m) + 1.0  # density ~ lambda^-a
        model[f"heavy_{i}.weight"] = ((u * np.sqrt(lam)) @ v.T).astype(np.float32)
    model["random_0.weight"] = (rng.standard_normal((300, 150)) / np.sqrt(300)).astype(np.float32)
    model["square.weight"] = rng.standard_normal((120, 120)).astype(np.float32)
    return model


@pytest.fixture(scope="module")
def report():
    return spectralwatch.analyze(planted_model(), workers=1)


@pytest.fixture(scope="module")
def rmt_report():
    return spectralwatch.analyze(planted_model(), workers=1, mp_fit=True, randomize=True, detX=True, rng=0)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def assert_picture(path):
    """The file is a PNG with something drawn on it."""
    from PIL import Image

    assert path.stat().st_size > MIN_PNG_BYTES, (path, path.stat().st_size)
    grey = np.asarray(Image.open(path).convert("L"), dtype=float)
    assert grey.std() > MIN_PIXEL_STD, path


def save(ax, tmp_path, name):
    path = tmp_path / f"{name}.png"
    ax.figure.savefig(path)
    assert_picture(path)
    return path


def test_esd_loglog_draws_the_fitted_line_with_slope_minus_alpha(report, tmp_path):
    evals, fit = report.get_ESD(1), report.get_fit(1)
    ax = plots.esd_loglog(evals, fit)
    dashed = [ln for ln in ax.lines if ln.get_linestyle() == "--"]
    assert len(dashed) == 1
    x, y = dashed[0].get_data()
    slope = np.polyfit(np.log(x), np.log(y), 1)[0]
    assert slope == pytest.approx(-fit.alpha, rel=1e-9)  # the drawn law is p ~ x^-alpha exactly
    assert x[0] == pytest.approx(fit.xmin) and x[-1] == pytest.approx(fit.xmax)
    assert ax.get_xscale() == "log" and ax.get_yscale() == "log"
    assert f"{fit.alpha:.3f}" in ax.get_title()
    save(ax, tmp_path, "esd")


def test_linear_and_loglinear_esd_mark_xmin(report, tmp_path):
    evals, fit = report.get_ESD(2), report.get_fit(2)
    for fn in (plots.esd_linear, plots.esd_loglinear):
        ax = fn(evals, fit)
        xs = [ln.get_xdata()[0] for ln in ax.lines]
        target = fit.xmin if fn is plots.esd_linear else np.log10(fit.xmin)
        assert any(x == pytest.approx(target) for x in xs)
        save(ax, tmp_path, fn.__name__)


def test_ks_distance_minimum_is_the_chosen_xmin(report, tmp_path):
    fit = report.get_fit(3)
    ax = plots.ks_distance(fit)
    curve = ax.lines[0].get_ydata()
    assert np.nanmin(curve) == pytest.approx(fit.D)
    assert ax.lines[0].get_xdata()[int(np.nanargmin(curve))] == pytest.approx(fit.xmin)
    save(ax, tmp_path, "ks")


def test_alpha_vs_xmin_passes_through_the_fit(report, tmp_path):
    fit = report.get_fit(1)
    ax = plots.alpha_vs_xmin(fit)
    x, y = ax.lines[0].get_data()
    i = int(np.argmin(np.abs(x - fit.xmin)))
    assert y[i] == pytest.approx(fit.alpha)
    save(ax, tmp_path, "alpha_xmin")


def test_ks_plot_of_a_failed_fit_says_why():
    fit = spectralwatch.fit_power_law([1.0, 1.0, 1.0, 1.0])
    with pytest.raises(ValueError, match="no candidate"):
        plots.ks_distance(fit)
    ax = plots.esd_loglog([1.0, 1.0, 1.0], fit)  # a histogram, and the reason in the title
    assert "failed" in ax.get_title()


def test_model_figures(report, tmp_path):
    ax = plots.alpha_by_layer(report.details)
    assert ax.get_ylabel() == "α" and "mean α" in ax.get_title()
    # the under-trained Gaussian square layer is drawn clipped at the top, flagged in the legend
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert any("under-trained" in t for t in labels)
    save(ax, tmp_path, "by_layer")
    ax = plots.alpha_histogram(report.details)
    assert sum(bar.get_height() for bars in ax.containers for bar in bars) == report.num_layers
    save(ax, tmp_path, "hist")
    ax = plots.layer_type_breakdown(report.details)
    assert {t.get_text().split(" ")[0] for t in ax.get_yticklabels()} <= {"heavy_*", "random_*", "square"}
    save(ax, tmp_path, "groups")


def test_layer_groups_replace_block_numbers():
    import pandas as pd

    d = pd.DataFrame({"name": ["a", "b", "c"], "layer_type": ["dense"] * 3,
                      "longname": ["encoder.layer.0.attention.self.query", "encoder.layer.11.attention.self.query",
                                   "encoder.layer.3.output.dense"]})
    groups = ["encoder.layer.*.attention.self.query"] * 2 + ["encoder.layer.*.output.dense"]
    assert list(plots.layer_groups(d)) == groups


def test_rmt_figures(rmt_report, tmp_path):
    row = rmt_report.details.set_index("layer_id").loc[1]
    evals = rmt_report.get_ESD(1)
    ax = plots_rmt.mp_fit(evals, row["Q"], int(row["M"]))
    assert f"spikes = {int(row['num_spikes'])}" in ax.get_title()  # same fit as the details table
    save(ax, tmp_path, "mp")
    sq = int(rmt_report.details.loc[rmt_report.details["name"] == "square", "layer_id"].iloc[0])
    ax = plots_rmt.quarter_circle_fit(rmt_report.get_ESD(sq), 120)
    save(ax, tmp_path, "qc")
    for log in (False, True):
        ax = plots_rmt.randomized_esd(evals, rmt_report.get_ESD(1, random=True), log=log,
                                      rand_bulk_max=row["rand_bulk_max"])
        save(ax, tmp_path, f"rand{log}")
    ax = plots_rmt.detx(evals, fit=rmt_report.get_fit(1))
    assert f"detX_num = {int(row['detX_num'])}" in ax.get_title()
    save(ax, tmp_path, "detx")
    save(plots_rmt.level_spacings(evals, xmin=rmt_report.get_fit(1).xmin), tmp_path, "spacings")
    save(plots_rmt.level_statistics(evals), tmp_path, "levels")


def test_comparison_figures(tmp_path):
    models = [{k: v for k, v in planted_model(s).items() if k.startswith("heavy")} for s in range(3)]
    comp = compare(models, accuracies=[0.9, 0.8, 0.85], workers=1)
    save(plot_alpha_curves(comp), tmp_path, "curves")
    ax = plot_metric_vs_accuracy(comp, "alpha")
    assert "Kendall" in ax.get_legend().get_texts()[0].get_text()
    save(ax, tmp_path, "vs_acc")


# WeightWatcher 0.7.7's names, read from its source: save_fig(plt, NAME, plot_id, savedir) writes
# f"{savedir}/ww.layer{plot_id}.{NAME}.png"; fit_powerlaw: esd..esd5, mp_fit: mpfit1 (Q = 1 only)
# and mpfit2, plot_random_esd: randesd1/2, apply_detX: detX, apply_plot_deltaEs: deltaEs, level-stats
BASIC = {"esd", "esd2", "esd3", "esd4", "esd5"}
ALL = BASIC | {"mpfit2", "randesd1", "randesd2", "detX", "deltaEs", "level-stats"}


def _names(folder):
    return {p.name for p in folder.iterdir() if p.name.startswith("ww.layer")}


def test_analyze_plot_writes_the_reference_file_names(tmp_path):
    model = {k: v for k, v in planted_model().items() if k != "square.weight"}
    report = spectralwatch.analyze(model, workers=1, plot=True, savefig=tmp_path / "figs")
    ids = list(report.details["layer_id"])
    expected = {f"ww.layer{i}.{k}.png" for i in ids for k in BASIC}
    assert _names(tmp_path / "figs") == expected
    assert {p.name for p in report.figures} == expected | {
        "model.alpha-by-layer.png", "model.alpha-histogram.png", "model.layer-groups.png"}
    for p in report.figures:
        assert_picture(p)


def test_analyze_plot_with_every_analysis(tmp_path):
    model = {k: v for k, v in planted_model().items() if k in ("heavy_0.weight", "square.weight")}
    spectralwatch.analyze(model, workers=1, plot=True, savefig=str(tmp_path), mp_fit=True, randomize=True,
                          detX=True, deltas=True, rng=0)
    expected = {f"ww.layer{i}.{k}.png" for i in (1, 2) for k in ALL} | {"ww.layer2.mpfit1.png"}
    assert _names(tmp_path) == expected


def test_plot_options_are_validated(tmp_path, monkeypatch):
    W = np.random.default_rng(0).standard_normal((80, 40))
    # plot=True, savefig=False: WeightWatcher shows the figures without saving them; a notebook does
    # (tests/test_notebook.py), elsewhere nothing can be shown and a warning says so
    with pytest.warns(UserWarning, match="neither saved nor shown"):
        assert spectralwatch.analyze(W, plot=True, savefig=False).figures == []
    with pytest.raises(InvalidParameterError, match="'plot' parameter"):
        spectralwatch.analyze(W, plot="yes")
    monkeypatch.chdir(tmp_path)
    spectralwatch.analyze(W, plot=True, savefig=True)  # WeightWatcher's meaning: the folder ww-img
    assert (tmp_path / "ww-img" / "ww.layer0.esd.png").exists()


def test_weightwatcher_class_plot(tmp_path):
    W = np.random.default_rng(0).standard_normal((80, 40))
    spectralwatch.WeightWatcher(model={"fc.weight": W}).analyze(plot=True, savefig=str(tmp_path))
    assert (tmp_path / "ww.layer1.esd4.png").exists()


def test_unpooled_conv_slices_use_the_reference_plot_id(tmp_path):
    conv = np.random.default_rng(0).standard_normal((64, 32, 2, 1))
    spectralwatch.analyze({"conv.weight": conv}, pool=False, workers=1, plot=True, savefig=tmp_path)
    assert {"ww.layer1:0.esd.png", "ww.layer1:1.esd.png"} <= _names(tmp_path)


@pytest.mark.models
def test_figures_of_a_real_network(tmp_path):
    path = fetch("all-minilm-l6-v2")
    # an intermediate and an output dense layer (1536 x 384), with every optional analysis
    report = spectralwatch.analyze(path, layers=[10, 52], workers=1, mp_fit=True, randomize=True, detX=True,
                                   deltas=True, rng=0)
    written = plots.save_figures(report, tmp_path, kinds="all")
    kinds = ALL  # Q = 4: no quarter-circle mpfit1, as in the reference
    assert {p.name for p in written} == {f"ww.layer{i}.{k}.png" for i in (10, 52) for k in kinds} | {
        "model.alpha-by-layer.png", "model.alpha-histogram.png", "model.layer-groups.png"}
    for p in written:
        assert_picture(p)


@pytest.mark.reference
@pytest.mark.slow
def test_same_file_names_as_weightwatcher(tmp_path):
    torch = pytest.importorskip("torch")
    ww = pytest.importorskip("weightwatcher")
    rng = np.random.default_rng(0)
    sd = {"fc1.weight": torch.tensor(rng.standard_normal((120, 60)), dtype=torch.float32),
          "fc2.weight": torch.tensor(rng.standard_normal((60, 60)), dtype=torch.float32)}
    opts = dict(mp_fit=True, randomize=True, detX=True, deltas=True)
    ww.WeightWatcher(model=sd).analyze(plot=True, savefig=str(tmp_path / "ref"), **opts)
    spectralwatch.analyze(sd, plot=True, savefig=tmp_path / "sw", rng=0, workers=1, **opts)
    assert _names(tmp_path / "sw") == _names(tmp_path / "ref")

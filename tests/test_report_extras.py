"""Report.to_scalars, plot_esd, style, the notebook fragment and PowerLawFit.plot, outside a kernel."""

import math

import numpy as np
import pytest

import spectralwatch
from spectralwatch.render.plots.display import in_notebook


@pytest.fixture(scope="module")
def report():
    rng = np.random.default_rng(0)
    model = {f"l{i}.weight": rng.standard_normal((200, 80)) for i in range(4)}
    model["bad.weight"] = np.full((50, 30), np.nan)
    return spectralwatch.analyze(model)


def test_to_scalars_is_a_flat_dict_of_finite_floats(report):
    s = report.to_scalars()
    assert all(k.startswith("spectralwatch/") for k in s)
    assert all(isinstance(v, float) and math.isfinite(v) for v in s.values())
    assert s["spectralwatch/alpha"] == report.summary["alpha"]
    assert s["spectralwatch/num_layers"] == 5.0 and s["spectralwatch/num_failed"] == 1.0
    ok = report.details[report.details["status"] == "success"]
    assert s["spectralwatch/alpha_min"] == ok["alpha"].min() and s["spectralwatch/alpha_max"] == ok["alpha"].max()
    assert s["spectralwatch/num_under_trained"] == float((report.details["warning"] == "under-trained").sum())
    assert set(report.to_scalars(prefix="")) == {k.split("/", 1)[1] for k in s}
    with pytest.raises(TypeError):
        report.to_scalars(prefix=None)


def test_to_scalars_leaves_out_what_has_no_value():
    rng = np.random.default_rng(1)
    r = spectralwatch.analyze({"bad.weight": np.full((50, 30), np.nan), "ok.weight": rng.standard_normal((60, 30))},
                              layers=[1])
    s = r.to_scalars()
    assert "spectralwatch/alpha" not in s and s["spectralwatch/num_failed"] == 1.0  # the mean is NaN


def test_plot_esd_kinds_and_errors(report):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    ax = Figure().add_subplot()
    assert report.plot_esd("l1", kind="linear", ax=ax) is ax
    for kind in ("loglog", "loglinear", "ks", "alpha", "esd", "esd5"):
        assert report.plot_esd(1, kind=kind, ax=Figure().add_subplot()) is not None
    with pytest.raises(ValueError, match="Unknown kind"):
        report.plot_esd(1, kind="histogram")
    with pytest.raises(KeyError, match="its analysis failed"):
        report.plot_esd(5)
    fit_ax = report.get_fit(1).plot(ax=Figure().add_subplot())
    assert "α =" in fit_ax.get_title()


def test_fragment_limits_rows_and_style_columns(report):
    from spectralwatch.render.notebook import report_fragment

    html = report_fragment(report, max_rows=2)
    assert html.count("<tr class=") == 2 and "The first 2 of 5 layers are shown" in html
    styler = report.style(columns=["name", "alpha"])
    assert list(styler.data.columns) == ["name", "alpha"]
    assert np.isnan(styler.data.loc[4, "alpha"])  # the -1 placeholder of the failed row is blank
    assert list(report.style(columns="all").data.columns) == list(report.details.columns)
    with pytest.raises(ValueError, match="not there"):
        report.style(columns=["nope"])


def test_outside_a_kernel_plot_true_only_writes_files(tmp_path, monkeypatch):
    import spectralwatch.render.plots.display as display

    assert not in_notebook()
    shown = []
    monkeypatch.setattr(display, "show_inline", lambda figs: shown.append(list(figs)))
    r = spectralwatch.analyze(np.random.default_rng(2).standard_normal((80, 40)), plot=True, savefig=tmp_path)
    assert r.figures and not shown


def test_names_from_a_file_are_escaped_in_the_notebook_outputs():
    rng = np.random.default_rng(3)
    evil = "<img src=x onerror=alert(1)>"
    r = spectralwatch.analyze({f"{evil}.weight": rng.standard_normal((80, 40))})
    for html in (r._repr_html_(), r.style().to_html()):
        assert evil not in html and "&lt;img src=x onerror=alert(1)&gt;" in html

"""One wording of alpha in the terminal and the HTML report; small fits shown as unreliable (issue 14)."""

import numpy as np
import pytest

import spectralwatch
from spectralwatch.core.fit.quality import RELIABLE_MIN_EVALS, reliable_fit
from spectralwatch.render.text import render_table, summary_lines, summary_panel, verdict
from spectralwatch.render.wording import alpha_reading, mean_alpha_sentence


def test_bands_and_one_sentence():
    assert [alpha_reading(a).key for a in (1.5, 2.0, 3.99, 4.0, 6.0, 6.01, float("nan"), None)] == [
        "over", "good", "good", "fair", "fair", "under", "na", "na"]
    assert alpha_reading(1.5, reliable=False).key == "unreliable"
    # the terminal's verdict and the HTML's words are this one function's (4.12 read the same everywhere)
    assert verdict(4.12) == alpha_reading(4.12).text
    assert mean_alpha_sentence(4.12).startswith("mean alpha 4.12: moderately heavy tail (4 ≤ α ≤ 6)")
    assert "well-trained" not in mean_alpha_sentence(4.12) and "room to learn" not in mean_alpha_sentence(4.12)
    assert mean_alpha_sentence(4.12, unicode=False).isascii()


def test_reliable_fit_rule():
    assert reliable_fit("success", RELIABLE_MIN_EVALS) and not reliable_fit("success", RELIABLE_MIN_EVALS - 1)
    assert not reliable_fit("success", 9)  # a 3x3 depthwise kernel
    assert not reliable_fit("failed", 500) and not reliable_fit("success", float("nan"))


@pytest.fixture(scope="module")
def report():
    """A 9-eigenvalue layer whose small-n fit says over-trained (alpha 1.72), and a 150-eigenvalue one."""
    rng = np.random.default_rng(4)
    return spectralwatch.analyze({"dw.weight": rng.standard_t(1.5, (64, 9)),
                                  "fc.weight": rng.standard_normal((300, 150))}, workers=1)


def test_reference_warning_kept_and_reliability_column(report):
    d = report.details.set_index("name")
    assert d.loc["dw", "warning"] == "over-trained"  # WeightWatcher's value, unchanged
    assert d.loc["dw", "fit_reliable"] == False and d.loc["fc", "fit_reliable"] == True  # noqa: E712
    assert d["fit_reliable"].dtype == bool


def test_terminal_shows_unreliable_not_over_trained(report):
    plain = render_table(report.details, ["name", "alpha", "warning"]).splitlines()
    dw = next(line for line in plain if line.startswith("dw"))
    assert "unreliable fit" in dw and "over-trained" not in dw
    colored = render_table(report.details, ["name", "alpha", "warning"], color=True).splitlines()
    dw = next(line for line in colored if "dw" in line)
    assert dw.startswith("\x1b[2m") and "\x1b[31m" not in dw  # dim, not red
    lines = summary_lines(report)
    assert any(line.startswith("1 layer fitted on too few eigenvalues: alpha unreliable, not flagged")
               for line in lines)
    assert not any("flagged" in line and "dw" in line for line in lines)
    assert mean_alpha_sentence(report.summary["alpha"]) in summary_panel(report, title="t")


def test_html_shows_unreliable_not_over_trained(report):
    pytest.importorskip("matplotlib")
    import html

    page = html.unescape(report.to_html(figures=False))
    assert "<tr class='unreliable' data-warning='unreliable'" in page
    assert "<tr class='over'" not in page
    assert mean_alpha_sentence(report.summary["alpha"]) in page
    assert "1 layers were fitted on too few eigenvalues" in page and "0 over-trained" in page


def test_alpha_figure_draws_unreliable_fits_apart(report):
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    from spectralwatch.render.plots.model import alpha_by_layer

    labels = [t.get_text() for t in alpha_by_layer(report.details).get_legend().get_texts()]
    plt.close("all")
    assert "α, unreliable fit (1)" in labels and not any("over-trained" in t for t in labels)

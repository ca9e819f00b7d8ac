"""Terminal output that never hides: counts never cut, tables and the progress line fit the width,
descriptions wrap instead of losing their start, and a run where every layer failed says so."""

from __future__ import annotations

import io
import json
import re
import shutil

import numpy as np
import pandas as pd
import pytest

import spectralwatch
from spectralwatch.core.columns import TERMINAL_COLUMNS
from spectralwatch.render.progress import Progress, progress_line
from spectralwatch.render.text import render_table, summary_lines, summary_panel, terminal_columns

ANSI = re.compile(r"\x1b\[[0-9;]*m")


class FakeTTY(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def columns(monkeypatch):
    """Set the terminal's width as shutil reports it (COLUMNS unset, no real terminal)."""
    monkeypatch.delenv("COLUMNS", raising=False)

    def set_width(n):
        monkeypatch.setattr(shutil, "get_terminal_size", lambda fallback=(80, 24): shutil.os.terminal_size((n, 24)))

    return set_width


def flagged_model(n=40):
    """``n`` layers with long names, nearly all flagged (Cauchy entries: very heavy tails, alpha < 2)."""
    rng = np.random.default_rng(0)
    return {f"model.encoder.layers.{i}.attention.output.very_long_projection_name.weight":
            rng.standard_cauchy((100, 60)) for i in range(n)}


@pytest.fixture(scope="module")
def flagged_report():
    return spectralwatch.analyze(flagged_model(), workers=1)


# ---- the summary -------------------------------------------------------------------------------

@pytest.mark.parametrize("width", [None, 100, 80, 50])
def test_the_flagged_count_is_never_cut(flagged_report, width):
    n = int(flagged_report.details["warning"].isin(["over-trained", "under-trained"]).sum())
    assert n >= 30
    panel = summary_panel(flagged_report, title="Summary of a model with a very long name", width=width)
    lines = panel.splitlines()
    assert len({len(x) for x in lines}) == 1  # a closed box
    assert len(lines[0]) <= (width or 110)
    text = " ".join(x.strip("│ ") for x in lines)
    assert f"{n} layers flagged" in text and f"and {n - 6} more" in text
    assert "…" in text  # the long names are shortened, the count is not


def test_summary_lines_count_flagged_by_kind(flagged_report):
    line = next(x for x in summary_lines(flagged_report) if "flagged" in x)
    counts = flagged_report.details["warning"].value_counts()
    for kind, n in counts.items():
        if kind:
            assert f"{n} {kind}" in line


def test_a_run_where_every_layer_failed_is_detectable_and_says_why():
    rng = np.random.default_rng(1)
    report = spectralwatch.analyze({"a.weight": rng.standard_normal((100, 50)),
                                    "b.weight": rng.standard_normal((80, 40))}, xmax=1000, workers=1)
    assert report.all_failed and report.num_failed == 2
    assert "xmax" in report.failure_reason and "first: layer a" in report.failure_reason
    lines = summary_lines(report)
    assert lines[0] == "2 layers analysed, all 2 failed"
    assert lines[1].startswith("no summary: every layer failed (2 xmax drops too many eigenvalues")
    assert not any(x.startswith("alpha ") for x in lines)  # no NaN averages
    assert "(all failed)" in repr(report)
    assert "Every layer failed: there is no model summary" in report.to_html(figures=False)
    assert json.loads(report.to_json())["num_failed"] == 2


def test_a_partial_failure_says_how_many():
    rng = np.random.default_rng(2)
    bad = rng.standard_normal((60, 30))
    bad[0, 0] = np.nan
    report = spectralwatch.analyze({"a.weight": rng.standard_normal((100, 50)), "b.weight": bad}, workers=1)
    assert not report.all_failed and report.num_failed == 1 and report.failure_reason
    assert summary_lines(report)[0] == "2 layers analysed, 1 failed"


# ---- tables ------------------------------------------------------------------------------------

def test_long_descriptions_wrap_and_keep_their_start():
    text = ("a PyTorch model object (torch.nn.Module), walked with named_modules(), and many more words that "
            "run past the widest cell of the table")
    frame = pd.DataFrame({"name": ["torch.nn.Module"], "reads": [text], "installed": ["yes"]})
    out = render_table(frame, list(frame.columns), max_width=40)
    assert "…" not in out
    lines = out.splitlines()
    assert len(lines) > 2 and lines[1].split("  ")[1].startswith("a PyTorch model")
    words = " ".join(x[len("torch.nn.Module") + 2:].rsplit("  ", 1)[0].strip() for x in lines[1:])
    assert words == text


def test_names_are_shortened_from_the_left():
    frame = pd.DataFrame({"layer_id": [1], "name": ["encoder.layers.10.attention.self.query.projection"]})
    out = render_table(frame, ["layer_id", "name"], max_width=20)
    assert out.splitlines()[1].endswith("…" + "encoder.layers.10.attention.self.query.projection"[-19:])


@pytest.mark.parametrize("width", [120, 80, 60])
def test_a_table_fits_the_terminal_and_names_what_it_left_out(flagged_report, width):
    d = flagged_report.details
    full = render_table(d, TERMINAL_COLUMNS)
    assert max(len(x) for x in full.splitlines()) > width  # too wide without a limit
    out = render_table(d, TERMINAL_COLUMNS, width=width, color=True)
    plain = ANSI.sub("", out)
    assert max(len(x) for x in plain.splitlines()) <= width
    header = plain.splitlines()[0].split()
    assert header[:2] == ["layer_id", "name"] and "alpha" in header and "warning" in header
    note = " ".join(plain.splitlines()[len(d) + 1:])
    dropped = {c for c in TERMINAL_COLUMNS if c in d.columns and c not in header}
    listed = re.search(rf"to fit {width} columns: (.*); --wide shows all", note).group(1).split(", ")
    assert dropped and set(listed) == dropped
    assert render_table(d, TERMINAL_COLUMNS, width=width, wide=True) == full


def test_terminal_width_only_for_a_terminal(columns, monkeypatch):
    columns(72)
    assert terminal_columns(io.StringIO()) is None  # a pipe or a file: no terminal, no limit
    assert terminal_columns(FakeTTY()) == 72
    monkeypatch.setenv("COLUMNS", "101")
    assert terminal_columns(FakeTTY()) == 101


def test_emit_reports_fits_a_narrow_terminal_and_not_a_pipe(flagged_report, columns):
    from spectralwatch.cli.output import emit_reports

    columns(70)
    tty, pipe = FakeTTY(), io.StringIO()
    emit_reports([flagged_report], ["m"], "table", tty)
    emit_reports([flagged_report], ["m"], "table", pipe)
    assert max(len(x) for x in tty.getvalue().splitlines()) <= 70
    assert max(len(x) for x in pipe.getvalue().splitlines()) > 70
    wide = FakeTTY()
    emit_reports([flagged_report], ["m"], "table", wide, wide=True)
    assert wide.getvalue().splitlines()[0] == pipe.getvalue().splitlines()[0]


# ---- the progress line -------------------------------------------------------------------------

@pytest.mark.parametrize("width", [200, 80, 40, 12])
def test_progress_line_fits_the_terminal_and_never_wraps(columns, width):
    columns(width)
    stream = io.StringIO()
    names = ["model.layers.10.self_attn.q_proj" * k for k in (1, 3, 0, 1)]
    with Progress(len(names), stream=stream) as bar:
        for name in names:
            bar.update(name)
    out = stream.getvalue()
    assert out.endswith("\n") and out.count("\n") == 1
    drawn = out[:-1].split("\r")[1:]
    assert len(drawn) == len(names)
    assert all(len(x) <= width - 1 for x in drawn)
    if width >= 80:
        assert drawn[0].startswith("[") and drawn[0].endswith("q_proj")
        assert "..." in drawn[1] and drawn[1].endswith("q_proj")  # the name's end is kept
    assert "4/4" in drawn[-1]


def test_progress_line_strips_control_characters():
    line = progress_line(1, 2, 0.5, "evil\nname\x1b[2J\rend", 80)
    assert "\n" not in line and "\r" not in line and "\x1b" not in line and len(line) <= 79

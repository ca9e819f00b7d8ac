"""One bad layer never loses the others, and the report says how many failed and why."""

import json
import os
import warnings

import numpy as np
import pytest

import spectralwatch
from spectralwatch.pipeline.layer import analyze_layer, layer_geometry
from spectralwatch.options import make_options
from spectralwatch.io.sources.base import LayerRef


def _ref(loader, name="bad"):
    return LayerRef(layer_id=3, name=name, longname=name, layer_type="dense", shape=(40, 20), dtype="float32",
                    loader=loader)


@pytest.mark.parametrize("exc", [TypeError("cannot cast"), KeyError("tensor"), RuntimeError("kernel crashed"),
                                 AttributeError("no attribute")])
def test_any_exception_of_one_layer_becomes_its_failed_row(exc):
    def loader():
        raise exc

    options = make_options()
    ref = _ref(loader)
    rows = analyze_layer(ref, options, layer_geometry(ref, options))
    assert len(rows) == 1
    row = rows[0].row
    assert row["status"] == "failed" and row["message"].startswith(type(exc).__name__)


def test_keyboard_interrupt_is_not_swallowed():
    def loader():
        raise KeyboardInterrupt

    options = make_options()
    ref = _ref(loader)
    with pytest.raises(KeyboardInterrupt):
        analyze_layer(ref, options, layer_geometry(ref, options))


def _mixed_model():
    rng = np.random.default_rng(0)
    nan = rng.standard_normal((60, 30))
    nan[0, 0] = np.nan
    return {"good1.weight": rng.standard_normal((80, 40)), "nan1.weight": nan, "nan2.weight": nan.copy(),
            "zero.weight": np.zeros((50, 20)), "good2.weight": rng.standard_normal((90, 30))}


def test_report_counts_failures_by_reason_in_text_json_and_html():
    from spectralwatch.render.text import summary_lines

    report = spectralwatch.analyze(_mixed_model())
    assert report.num_failed == 3
    assert report.failures == {"NaN or Inf weights": 2, "all-zero weights": 1}
    text = "\n".join(summary_lines(report))
    assert "3 failed: 2 NaN or Inf weights, 1 all-zero weights" in text
    doc = json.loads(report.to_json())
    assert doc["failures"] == {"NaN or Inf weights": 2, "all-zero weights": 1}
    html = report.to_html()
    assert "2 NaN or Inf weights; 1 all-zero weights" in html
    good = report.details.set_index("name").loc[["good1", "good2"], "status"]
    assert list(good) == ["success", "success"]


def test_cli_prints_why_layers_failed(tmp_path, capsys):
    from spectralwatch.cli import main

    path = tmp_path / "m.npz"
    np.savez(path, **_mixed_model())
    assert main(["analyze", str(path), "--no-progress"]) == 0
    assert "3 failed: 2 NaN or Inf weights, 1 all-zero weights" in capsys.readouterr().out


def test_full_disk_cache_warns_and_keeps_every_row(tmp_path, monkeypatch):
    import errno

    import spectralwatch.io.cache as devices

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(devices.np, "savez", full)
    model = {f"l{i}.weight": np.random.default_rng(i).standard_normal((60, 30)) for i in range(3)}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = spectralwatch.analyze(model, cache_dir=tmp_path / "cache")
    assert any("No space left on device" in str(w.message) for w in caught)
    assert report.details["status"].tolist() == ["success"] * 3
    assert not list((tmp_path / "cache").glob("*.tmp.npz"))


def test_get_esd_of_a_failed_layer_says_why():
    report = spectralwatch.analyze(_mixed_model())
    with pytest.raises(KeyError, match="its analysis failed.*NaN"):
        report.get_ESD("nan1")
    with pytest.raises(KeyError, match="no analysed layer"):
        report.get_ESD("nope")

"""The command line, run in-process through main(argv)."""

import json

import numpy as np
import pytest

from spectralwatch.cli import main


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "model.npz"
    np.savez(path, **{"fc1.weight": rng.standard_normal((120, 60)), "fc2.weight": rng.standard_normal((60, 30))})
    return path


def test_analyze_prints_table_and_summary_and_writes_csv(npz, tmp_path, capsys):
    out = tmp_path / "layers.csv"
    assert main(["analyze", str(npz), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "fc1" in text and "alpha" in text and "mean alpha" in text
    assert out.read_text().splitlines()[0].startswith("layer_id,name")


def test_analyze_json_format(npz, capsys):
    assert main(["analyze", str(npz), "--format", "json", "--layers", "2"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["details"]] == ["fc2"]


def test_describe(npz, capsys):
    assert main(["describe", str(npz)]) == 0
    assert "fc2" in capsys.readouterr().out


def test_errors_are_one_line_and_exit_1(tmp_path, capsys):
    assert main(["analyze", str(tmp_path / "missing.safetensors")]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1


def test_usage_errors_exit_2(capsys):
    assert main([]) == 2
    assert main(["analyze"]) == 2
    assert main(["--version"]) == 0


def test_demo_synthetic_needs_no_network(capsys):
    assert main(["demo", "--synthetic"]) == 0
    out = capsys.readouterr().out
    assert "heavy_0" in out and "Summary" in out


def test_python_dash_m(npz):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "spectralwatch", "analyze", str(npz), "--format", "csv"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("layer_id,name")

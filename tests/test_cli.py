"""The command line, run in-process through main(argv)."""

import json
from pathlib import Path

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


def test_demo_synthetic_needs_no_network(capsys, tmp_path):
    assert main(["demo", "--synthetic", "--output", str(tmp_path / "demo")]) == 0
    out = capsys.readouterr().out
    assert "heavy_0" in out and "Summary" in out
    # the table, then where the report and the figures went
    assert f"Open {tmp_path / 'demo' / 'report.html'}" in out
    assert (tmp_path / "demo" / "report.html").stat().st_size > 50_000
    assert (tmp_path / "demo" / "figures" / "ww.layer1.esd.png").exists()


def test_python_dash_m(npz):
    import subprocess
    import sys

    proc = subprocess.run([sys.executable, "-m", "spectralwatch", "analyze", str(npz), "--format", "csv"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("layer_id,name")


# ---- every subcommand, format and exit code --------------------------------------------------

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def two_models(tmp_path):
    paths = []
    for seed in (1, 2):
        rng = np.random.default_rng(seed)
        path = tmp_path / f"m{seed}.npz"
        np.savez(path, **{"fc1.weight": rng.standard_normal((150, 70)), "fc2.weight": rng.standard_normal((90, 40)),
                          "fc3.weight": rng.standard_normal((80, 80))})
        paths.append(path)
    return paths


def report_schema():
    """The JSON schema documented in docs/report.md (the block after the schema:report marker)."""
    text = (REPO / "docs" / "report.md").read_text(encoding="utf-8")
    block = text.split("<!-- schema:report -->", 1)[1].split("```json", 1)[1].split("```", 1)[0]
    return json.loads(block)


def test_json_output_validates_against_the_documented_schema(npz, capsys):
    jsonschema = pytest.importorskip("jsonschema")
    schema = report_schema()
    assert main(["analyze", str(npz), "--format", "json", "--mp-fit", "--detX"]) == 0
    doc = json.loads(capsys.readouterr().out)
    jsonschema.validate(doc, schema)
    assert doc["num_layers"] == 2 and "num_spikes" in doc["details"][0]
    # the schema is not vacuous: a row without its status is rejected
    del doc["details"][0]["status"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(doc, schema)


def test_several_paths(two_models, capsys):
    assert main(["analyze", *map(str, two_models), "--format", "json"]) == 0
    docs = json.loads(capsys.readouterr().out)
    assert isinstance(docs, list) and len(docs) == 2
    assert main(["analyze", *map(str, two_models), "--format", "csv"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("model,layer_id,name") and len(lines) == 1 + 6
    assert main(["analyze", *map(str, two_models)]) == 0
    out = capsys.readouterr().out
    assert "== m1.npz ==" in out and "Summary of m2.npz" in out


def test_markdown_format(npz, capsys):
    assert main(["analyze", str(npz), "--format", "markdown"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("| layer_id | name |") and set(lines[1]) <= set("|-:")
    assert len(lines) == 2 + 2


def test_parquet_format(npz, tmp_path, capsysbinary, monkeypatch):
    import spectralwatch.cli.output as emit

    if emit.is_available("pyarrow") or emit.is_available("fastparquet"):
        assert main(["analyze", str(npz), "--format", "parquet"]) == 0
        assert capsysbinary.readouterr().out.startswith(b"PAR1")
        out = tmp_path / "d.parquet"
        assert main(["analyze", str(npz), "--out", str(out)]) == 0
        import pandas as pd

        assert list(pd.read_parquet(out)["name"]) == ["fc1", "fc2"]
        capsysbinary.readouterr()
    monkeypatch.setattr(emit, "is_available", lambda name: False)
    assert main(["analyze", str(npz), "--format", "parquet"]) == 1
    err = capsysbinary.readouterr().err.decode()
    assert err.startswith("error: ") and "pip install 'spectralwatch[parquet]'" in err


def test_out_format_follows_the_suffix(npz, tmp_path):
    for suffix, check in ((".json", lambda t: json.loads(t)["num_layers"] == 2),
                          (".md", lambda t: t.startswith("| layer_id")),
                          (".csv", lambda t: t.startswith("layer_id,name"))):
        path = tmp_path / f"out{suffix}"
        assert main(["analyze", str(npz), "--format", "csv", "--out", str(path)]) == 0
        assert check(path.read_text()), suffix


def test_plots_and_html(npz, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    figs, page = tmp_path / "figs", tmp_path / "r.html"
    assert main(["analyze", str(npz), "--plots", str(figs), "--html", str(page), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"into {figs}" in err and f"report {page}" in err
    # the default figure kinds: the model figures and the log-log ESD of each layer (docs/figures.md)
    assert {p.name for p in figs.iterdir()} == {f"ww.layer{i}.esd.png" for i in (1, 2)} | {
        "model.alpha-by-layer.png", "model.alpha-histogram.png", "model.layer-groups.png"}
    assert "<table id='layers'>" in page.read_text(encoding="utf-8")


def test_analysis_options_reach_analyze(npz, capsys):
    assert main(["analyze", str(npz), "--format", "json", "--fix-fingers", "clip_xmax", "--max-fingers", "3",
                 "--no-pool", "--min-evals", "50", "--xmax", "force", "--randomize", "--rng", "7"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in doc["details"]] == ["fc1"]  # fc2 has 30 eigenvalues < 50
    row = doc["details"][0]
    assert "num_fingers" in row and "rand_distance" in row


def test_color_follows_the_option(npz, capsys):
    assert main(["analyze", str(npz), "--color", "always"]) == 0
    colored = capsys.readouterr().out
    assert "\x1b[1m" in colored  # a bold header
    assert main(["analyze", str(npz), "--color", "never"]) == 0
    assert "\x1b[" not in capsys.readouterr().out


def test_describe_formats(npz, capsys):
    assert main(["describe", str(npz), "--format", "json"]) == 0
    assert [r["name"] for r in json.loads(capsys.readouterr().out)] == ["fc1", "fc2"]
    assert main(["describe", str(npz), "--format", "csv", "--min-evals", "40"]) == 0
    assert capsys.readouterr().out.splitlines()[1:] and True
    assert main(["describe", str(npz), "--layers", "7"]) == 0
    assert "no analysable layer" in capsys.readouterr().out


def test_sources(capsys):
    from spectralwatch.io.sources import available_sources

    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["name", "reads", "extensions"]
    for s in available_sources():
        assert s["name"] in out


def test_compare(two_models, tmp_path, capsys):
    assert main(["compare", *map(str, two_models), "--names", "a,b"]) == 0
    out = capsys.readouterr().out
    assert "Predicted from the weights alone" in out and "rank_alpha_weighted" in out and "by alpha " in out
    assert main(["compare", *map(str, two_models), "--accuracy", "0.9,0.8", "--format", "json",
                 "--plots", str(tmp_path / "cmp")]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert [m["accuracy"] for m in doc["models"]] == [0.9, 0.8]
    assert {f["metric"] for f in doc["fits"]} >= {"alpha", "alpha_weighted"}
    assert all(f["n"] == 2 for f in doc["fits"])
    assert (tmp_path / "cmp" / "compare.alpha-curves.png").exists()


def test_usage_errors_exit_2_with_one_line(npz, two_models, capsys):
    capsys.readouterr()
    cases = [["analyze", str(npz), "--min-evals", "-1"],          # a value analyze rejects
             ["analyze", str(npz), "--fix-fingers", "nope"],       # argparse choices
             ["analyze", str(npz), "--no-such-option"],
             ["compare", str(npz)],                                  # one model
             ["compare", *map(str, two_models), "--accuracy", "0.9"],  # one accuracy for two models
             ["analyze", str(npz), "--plots"]]                       # missing value
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert "error:" in err, argv
    assert main(["analyze", str(npz), "--min-evals", "-1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: The 'min_evals' parameter of analyze") and len(err.strip().splitlines()) == 1


def test_runtime_errors_exit_1(tmp_path, capsys):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x00\x01 not a safetensors file")
    assert main(["analyze", str(bad)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1
    assert main(["describe", str(tmp_path / "nothing.npz")]) == 1
    bad2 = tmp_path / "bad2.safetensors"
    bad2.write_bytes(bad.read_bytes())
    assert main(["compare", str(bad), str(bad2)]) == 1
    assert main(["compare", str(bad), str(bad)]) == 2  # two models need two distinct names


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(Exception):
        main(["--debug", "analyze", str(tmp_path / "missing.safetensors")])


def test_version(capsys):
    import spectralwatch

    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"spectralwatch {spectralwatch.__version__}"

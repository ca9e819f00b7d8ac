"""Unix conventions of the command line, tried the way people meet them: a real shell pipe, a real
Ctrl-C, global options after the subcommand, --quiet, short options, the 'analyse' spelling."""

import importlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from spectralwatch.cli import main

CLI = [sys.executable, "-m", "spectralwatch"]


@pytest.fixture
def npz(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "model.npz"
    np.savez(path, **{"fc1.weight": rng.standard_normal((120, 60)), "fc2.weight": rng.standard_normal((60, 30))})
    return path


@pytest.fixture(scope="module")
def many_layers(tmp_path_factory):
    """2,000 small layers: their CSV (~0.5 MB) is far more than a pipe holds, so `| head` closes it early."""
    rng = np.random.default_rng(1)
    path = tmp_path_factory.mktemp("many") / "many.npz"
    np.savez(path, **{f"block{i}.weight": rng.standard_normal((24, 16)) for i in range(2000)})
    return path


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src") + os.pathsep + env.get("PYTHONPATH", "")
    return env


@pytest.mark.skipif(shutil.which("head") is None, reason="no 'head' command")
@pytest.mark.parametrize("command", [["analyze", "--format", "csv"], ["describe", "--format", "csv"],
                                     ["analyze"]])
def test_a_closed_pipe_is_not_an_error(many_layers, command):
    cmd = " ".join([*CLI, command[0], str(many_layers), *command[1:], "--workers", "1"]
                   if command[0] == "analyze" else [*CLI, command[0], str(many_layers), *command[1:]])
    out = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -n 1"], capture_output=True, text=True,
                         timeout=600, env=_env())
    assert out.returncode == 0, out.stderr
    assert out.stderr == "", out.stderr
    assert len(out.stdout.splitlines()) == 1


def test_compare_and_sources_into_a_closed_pipe(npz, tmp_path):
    other = tmp_path / "other.npz"
    shutil.copy(npz, other)
    for cmd in (f"{' '.join(CLI)} sources", f"{' '.join(CLI)} compare {npz} {other} --format csv"):
        out = subprocess.run(["bash", "-c", f"set -o pipefail; {cmd} | head -c 1 >/dev/null"],
                             capture_output=True, text=True, timeout=300, env=_env())
        assert out.returncode == 0 and "Broken pipe" not in out.stderr, out.stderr


def test_ctrl_c_exits_130(tmp_path):
    rng = np.random.default_rng(2)
    path = tmp_path / "slow.npz"
    np.savez(path, **{f"l{i}.weight": rng.standard_normal((900, 900)) for i in range(60)})
    proc = subprocess.Popen([*CLI, "analyze", str(path), "--workers", "1"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=_env())
    time.sleep(4.0)  # well inside the ~20 s of linear algebra
    assert proc.poll() is None, "the analysis finished before it could be interrupted"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err


def test_interrupt_in_process_exits_130(npz, monkeypatch, capsys):
    cli = importlib.import_module("spectralwatch.cli.app")

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "run", interrupted)
    assert main(["analyze", str(npz)]) == 130
    assert capsys.readouterr().err.strip() == "error: interrupted"


def test_global_options_before_or_after_the_subcommand(tmp_path, capsys):
    missing = str(tmp_path / "missing.npz")
    for argv in (["--debug", "analyze", missing], ["analyze", missing, "--debug"]):
        with pytest.raises(Exception):  # --debug: the real exception, not one line
            main(argv)
    assert main(["analyze", missing, "-q"]) == 1
    assert capsys.readouterr().err.startswith("error: ")


def test_quiet_silences_notes_but_not_results_or_errors(npz, tmp_path, capsys):
    out = tmp_path / "a.csv"
    assert main(["analyze", str(npz), "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    assert main(["analyze", str(npz), "--out", str(tmp_path / "b.csv"), "--quiet"]) == 0
    captured = capsys.readouterr()
    assert captured.err == "" and "fc1" in captured.out
    assert main(["-q", "analyze", str(npz), "-f", "json"]) == 0
    assert capsys.readouterr().err == ""


def test_analyse_is_the_same_command(npz, capsys):
    assert main(["analyse", str(npz), "-f", "csv", "-j", "1"]) == 0
    british = capsys.readouterr().out
    assert main(["analyze", str(npz), "--format", "csv", "--workers", "1"]) == 0
    assert capsys.readouterr().out == british


def test_short_options(npz, tmp_path, capsys):
    assert main(["analyze", str(npz), "-l", "2", "-f", "json", "-o", str(tmp_path / "x.json")]) == 0
    assert '"fc2"' in capsys.readouterr().out and (tmp_path / "x.json").exists()


def test_every_layer_failed_exits_1_with_the_reason(npz, capsys):
    assert main(["analyze", str(npz), "--xmax", "1000", "-f", "csv"]) == 1
    err = capsys.readouterr().err
    assert "every layer of model.npz failed" in err


def test_some_layers_failed_is_said(tmp_path, capsys):
    rng = np.random.default_rng(3)
    path = tmp_path / "mixed.npz"
    bad = rng.standard_normal((40, 30))
    bad[0, 0] = np.nan
    np.savez(path, **{"good.weight": rng.standard_normal((40, 30)), "bad.weight": bad})
    assert main(["analyze", str(path), "-f", "csv"]) == 0
    assert "1 of 2 layers of mixed.npz failed" in capsys.readouterr().err


def test_demo_takes_out_like_every_command(tmp_path, capsys):
    assert main(["demo", "--synthetic", "--no-report", "--out", str(tmp_path / "d"), "-q"]) == 0
    assert "layer" in capsys.readouterr().out

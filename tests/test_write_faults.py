"""Fault injection: full disks, failing writes and out-of-memory layers cost only what they touch.

Real ENOSPC comes from Linux's /dev/full (every write fails with "No space left on device"); other
errors are raised by replacing os.replace / open with functions that raise them.
"""

import errno
import importlib
import io
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from spectralwatch import analyze
from spectralwatch.cli import main
from spectralwatch.io.journal import JournalWriter, journal_path, read_journal, write_atomic

journal_mod = importlib.import_module("spectralwatch.io.journal")
outputs_mod = importlib.import_module("spectralwatch.io.outputs")
layer_mod = importlib.import_module("spectralwatch.pipeline.layer")
executors = importlib.import_module("spectralwatch.pipeline.executors")

needs_dev_full = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux /dev/full")
N_LAYERS = 5


@pytest.fixture
def model(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "model.npz"
    np.savez(path, **{f"fc{i}.weight": rng.standard_normal((64 + 8 * i, 128)) for i in range(N_LAYERS)})
    return path


@pytest.fixture
def clean_csv(model, tmp_path, capsys):
    path = tmp_path / "clean.csv"
    assert main(["analyze", str(model), "--out", str(path), "--workers", "1"]) == 0
    capsys.readouterr()
    return path


def _full_disk_for(monkeypatch, suffix):
    """Every file written through write_atomic whose name ends with ``suffix`` goes to /dev/full."""
    real = outputs_mod.open_temp

    def open_temp(folder, name):
        if name.endswith(suffix):
            return open("/dev/full", "wb"), os.path.join(folder, f".{name}.never-created.tmp")
        return real(folder, name)

    monkeypatch.setattr(outputs_mod, "open_temp", open_temp)


def _leftovers(folder: Path):
    return [p.name for p in folder.iterdir() if p.name.endswith(".tmp")]


# ---- the final file ------------------------------------------------------------------------------

@needs_dev_full
def test_a_full_disk_when_writing_out_keeps_every_row(model, clean_csv, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    _full_disk_for(monkeypatch, ".csv")
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", "--format", "csv"]) == 1
    captured = capsys.readouterr()
    assert pd.read_csv(io.StringIO(captured.out)).equals(pd.read_csv(clean_csv))  # the table is printed
    err = captured.err.strip().splitlines()[-1]
    assert err == (f"error: could not write {out}: No space left on device; the {N_LAYERS} finished layers are "
                   f"kept in {journal_path(out)} (rerun the same command with --resume to finish writing)")
    assert not out.exists() and not _leftovers(tmp_path)
    assert len(read_journal(journal_path(out))[1]) == N_LAYERS
    monkeypatch.undo()  # space again: --resume writes the file without analysing anything
    seen = []
    real = executors.analyze_layer
    monkeypatch.setattr(executors, "analyze_layer", lambda *a: seen.append(a) or real(*a))
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert seen == [] and out.read_bytes() == clean_csv.read_bytes()
    assert not journal_path(out).exists()


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EACCES, errno.EROFS])
def test_a_failed_rename_leaves_the_old_file_whole(model, tmp_path, monkeypatch, capsys, code):
    out = tmp_path / "out.json"
    out.write_text("the previous results\n")
    why = os.strerror(code)

    def refuse(src, dst):
        raise OSError(code, why)

    monkeypatch.setattr(journal_mod.os, "replace", refuse)
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err
    assert f"error: could not write {out}: {why}; the {N_LAYERS} finished layers are kept" in err
    assert out.read_text() == "the previous results\n"  # never half-written
    assert not _leftovers(tmp_path)


def test_write_atomic_replaces_whole_files_with_the_usual_permissions(tmp_path):
    target = tmp_path / "sub" / "r.md"
    write_atomic(target, "| a |\n")
    write_atomic(target, b"| b |\n")
    assert target.read_bytes() == b"| b |\n" and not _leftovers(target.parent)
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


@needs_dev_full
def test_a_full_disk_for_the_html_report_costs_only_the_report(model, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    out, page = tmp_path / "out.csv", tmp_path / "report.html"
    _full_disk_for(monkeypatch, ".html")
    assert main(["analyze", str(model), "--out", str(out), "--html", str(page), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert "mean alpha" in captured.out and len(pd.read_csv(out)) == N_LAYERS
    assert captured.err.strip().splitlines()[-1] == \
        f"error: could not write the HTML report {page}: No space left on device"
    assert not page.exists() and not _leftovers(tmp_path) and not journal_path(out).exists()


@needs_dev_full
def test_a_disk_that_fills_while_drawing_figures(model, tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    from spectralwatch.render.plots.base import Canvas

    figs, out = tmp_path / "figs", tmp_path / "out.md"
    real, saved = Canvas.save, []

    def save(self, path):
        if len(saved) >= 3:  # the fourth figure finds the disk full
            _full_disk_for(monkeypatch, "")
            return real(self, path)
        saved.append(path)
        return real(self, path)

    monkeypatch.setattr(Canvas, "save", save)
    assert main(["analyze", str(model), "--out", str(out), "--plots", str(figs), "--no-progress"]) == 1
    captured = capsys.readouterr()
    assert f"error: could not write the figures into {figs}: No space left on device" in captured.err
    assert "fc4" in captured.out and out.read_text().startswith("| layer_id")
    assert sorted(p.name for p in figs.iterdir()) == sorted(p.name for p in saved)


# ---- the journal ---------------------------------------------------------------------------------

def _journal_fails_after(monkeypatch, k):
    """The disk fills after the journal holds k layers: the next line fails half-written."""
    real = JournalWriter._write

    def write(self, data):
        if self.count >= k:
            self._fh.write(data[:10])
            self._fh.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(self, data)

    monkeypatch.setattr(JournalWriter, "_write", write)


def test_a_disk_that_fills_during_the_run_still_gives_every_row(model, clean_csv, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    _journal_fails_after(monkeypatch, 2)
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", "--format", "csv"]) == 0
    captured = capsys.readouterr()
    assert (f"warning: could not write the journal {journal_path(out)}: No space left on device; it keeps the "
            "first 2 layers") in captured.err
    assert out.read_bytes() == clean_csv.read_bytes() and not journal_path(out).exists()
    assert captured.out == clean_csv.read_text()


def test_when_journal_and_out_both_fail_the_message_says_what_is_where(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    _journal_fails_after(monkeypatch, 2)
    monkeypatch.setattr(journal_mod.os, "replace", lambda a, b: (_ for _ in ()).throw(
        OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))))
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 1
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err == (f"error: could not write {out}: No space left on device; {journal_path(out)} keeps the first "
                   "2 layers (writing it failed: No space left on device); the other rows are only in what was "
                   "printed on stdout")
    header, layers, size = read_journal(journal_path(out))  # cut back to its last whole line
    assert [name for name, _ in layers.values()] == ["fc0", "fc1"]
    assert size == journal_path(out).stat().st_size


@needs_dev_full
def test_a_journal_that_cannot_be_created_does_not_stop_the_run(model, clean_csv, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    # the journal's first write finds the disk full (a symlink to /dev/full is refused: see test_hostile.py)
    monkeypatch.setattr(JournalWriter, "_open", lambda self, mode: open("/dev/full", "wb"))
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 0
    err = capsys.readouterr().err
    assert "warning: could not create the journal" in err and "No space left on device" in err
    assert out.read_bytes() == clean_csv.read_bytes()
    assert not journal_path(out).exists()


def test_a_missing_parquet_writer_fails_before_the_analysis(model, tmp_path, monkeypatch, capsys):
    import spectralwatch.cli.output as emit

    monkeypatch.setattr(emit, "is_available", lambda name: False)
    seen = []
    monkeypatch.setattr(executors, "analyze_layer", lambda *a: seen.append(a))
    assert main(["analyze", str(model), "--out", str(tmp_path / "x.parquet")]) == 1
    assert "pip install 'spectralwatch[parquet]'" in capsys.readouterr().err
    assert seen == [] and not journal_path(tmp_path / "x.parquet").exists()


# ---- out of memory in one layer ------------------------------------------------------------------

@pytest.mark.parametrize("where", [dict(workers=1), dict(executor="processes", workers=2), dict(workers=2)],
                         ids=["serial", "processes", "default-2"])
def test_a_memory_error_in_one_layer_costs_only_that_layer(model, monkeypatch, where):
    clean = analyze(str(model), workers=1).details
    real = layer_mod.compute_spectrum

    def spectrum(mats, *args, **kwargs):
        if mats.M == 80:  # the third layer (80 x 128)
            raise MemoryError
        return real(mats, *args, **kwargs)

    monkeypatch.setattr(layer_mod, "compute_spectrum", spectrum)  # inherited by forked workers
    details = analyze(str(model), **where).details
    assert list(details["status"]) == ["success", "success", "failed", "success", "success"]
    assert details.loc[2, "message"] == "out of memory while analysing this layer"
    keep = details["status"] == "success"
    # (the failed row has no value in the int columns, which become float columns)
    pd.testing.assert_frame_equal(details.loc[keep, clean.columns], clean.loc[keep], check_exact=True,
                                  check_dtype=False)


def test_the_command_line_reports_an_out_of_memory_layer_and_goes_on(model, tmp_path, monkeypatch, capsys):
    real = layer_mod.compute_spectrum
    monkeypatch.setattr(layer_mod, "compute_spectrum",
                        lambda mats, *a, **k: (_ for _ in ()).throw(MemoryError()) if mats.M == 64 else
                        real(mats, *a, **k))
    out = tmp_path / "out.csv"
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 0
    frame = pd.read_csv(out)
    assert list(frame["status"]) == ["failed"] + ["success"] * (N_LAYERS - 1)
    assert frame.loc[0, "message"] == "out of memory while analysing this layer"


def test_stdout_on_a_full_disk_still_writes_out(model, clean_csv, tmp_path, monkeypatch, capsys):
    class FullStream(io.StringIO):
        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("sys.stdout", FullStream())
    out = tmp_path / "out.csv"
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 1
    assert "error: could not print the results: No space left on device" in capsys.readouterr().err
    assert out.read_bytes() == clean_csv.read_bytes() and not journal_path(out).exists()


def test_an_accelerator_out_of_memory_error_costs_only_that_layer(model, monkeypatch):
    class OutOfMemoryError(RuntimeError):  # what torch raises when a GPU is full
        pass

    real = layer_mod.compute_spectrum

    def spectrum(mats, *args, **kwargs):
        if mats.M == 72:
            raise OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real(mats, *args, **kwargs)

    monkeypatch.setattr(layer_mod, "compute_spectrum", spectrum)
    details = analyze(str(model), workers=1).details
    assert list(details["status"]) == ["success", "failed", "success", "success", "success"]
    assert details.loc[1, "message"] == "out of memory on cpu while analysing this layer"

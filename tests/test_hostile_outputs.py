"""Careless commands and hostile names (docs/robustness.md, "Hostile files and careless commands"): outputs
that would destroy an input, names that act on a terminal, a spreadsheet or matplotlib, a journal edited
between two runs, an eigenvalue cache that lies.

Every crafted input is built here. Every case ends in a one-line error, a failed row with the reason, or
correct results; never a changed input.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import spectralwatch
from spectralwatch.cli import main
from spectralwatch.errors import OutputPathError
from spectralwatch.io.journal import journal_path

safetensors_numpy = pytest.importorskip("safetensors.numpy")


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _tree(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): _sha(p) for p in sorted(folder.rglob("*")) if p.is_file()}


def _weights(seed=0, names=("fc1.weight", "fc2.weight")) -> dict:
    rng = np.random.default_rng(seed)
    return {name: rng.standard_normal((48 + 8 * k, 32)).astype(np.float32) for k, name in enumerate(names)}


@pytest.fixture
def model(tmp_path) -> Path:
    folder = tmp_path / "model"
    folder.mkdir()
    path = folder / "model.safetensors"
    safetensors_numpy.save_file(_weights(), str(path))
    return path


def _one_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and len(err.splitlines()) == 1, err
    return err


# ---- outputs that would destroy an input -----------------------------------------------------------

@pytest.mark.parametrize("option", ["--out", "--html"])
def test_an_output_equal_to_the_model_file_is_refused(model, option, capsys):
    before = _sha(model)
    assert main(["analyze", str(model), option, str(model), "--no-progress"]) == 1
    assert "is an input file" in _one_error(capsys)
    assert _sha(model) == before and not journal_path(model).exists()


def test_compare_out_equal_to_a_model_is_refused(model, tmp_path, capsys):
    other = tmp_path / "other.safetensors"
    safetensors_numpy.save_file(_weights(1), str(other))
    before = _sha(other)
    assert main(["compare", str(model), str(other), "--out", str(other), "--no-progress"]) == 1
    assert "is an input file" in _one_error(capsys)
    assert _sha(other) == before


def test_outputs_inside_the_model_folder_are_refused(model, tmp_path, capsys):
    folder = model.parent
    before = _tree(folder)
    for args in (["--out", str(folder / "report.csv")], ["--plots", str(folder / "figs")], ["--plots", str(folder)],
                 ["--html", str(folder / "r.html")]):
        assert main(["analyze", str(folder), *args, "--no-progress"]) == 1
        assert "input folder" in _one_error(capsys)
    assert _tree(folder) == before


def test_an_output_through_a_symlink_to_the_model_is_refused(model, tmp_path, capsys):
    link = tmp_path / "innocent.csv"
    link.symlink_to(model)
    before = _sha(model)
    assert main(["analyze", str(model), "--out", str(link), "--no-progress"]) == 1
    _one_error(capsys)
    assert link.is_symlink() and _sha(model) == before


def test_outputs_onto_symlinks_devices_and_fifos_are_refused(model, tmp_path, capsys):
    target = tmp_path / "target.txt"
    target.write_text("keep me")
    link = tmp_path / "link.csv"
    link.symlink_to(target)
    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    for out in (link, fifo, Path("/dev/null")):  # (a FIFO would block the write: refused before opening it)
        assert main(["analyze", str(model), "--out", str(out), "--no-progress"]) == 1
        err = _one_error(capsys)
        assert "symbolic link" in err or "FIFO" in err or "device" in err
    assert link.is_symlink() and target.read_text() == "keep me"
    assert Path("/dev/null").is_char_device()


def test_a_journal_that_is_a_symlink_is_refused(model, tmp_path, capsys):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    out = tmp_path / "out.csv"
    journal_path(out).symlink_to(victim)
    assert main(["analyze", str(model), "--out", str(out), "--no-progress"]) == 1
    assert "journal" in _one_error(capsys)
    assert victim.read_text() == "keep me" and not out.exists()


def test_a_plots_folder_that_is_a_file_or_a_symlink_is_refused(model, tmp_path, capsys):
    afile = tmp_path / "afile"
    afile.write_text("x")
    link = tmp_path / "linked"
    link.symlink_to(model.parent)
    for target in (afile, link):
        assert main(["analyze", str(model), "--plots", str(target), "--no-progress"]) == 1
        _one_error(capsys)
    assert afile.read_text() == "x" and sorted(p.name for p in model.parent.iterdir()) == ["model.safetensors"]


def test_the_python_api_refuses_the_same_paths_and_writes_whole_files(model, tmp_path):
    report = spectralwatch.analyze(model, workers=1)
    assert any(os.path.samefile(p, model) for p in report.inputs if os.path.exists(p))
    before = _sha(model)
    with pytest.raises(OutputPathError, match="input file"):
        report.to_csv(model)
    folder_report = spectralwatch.analyze(model.parent, workers=1)  # a folder model: nothing goes inside it
    with pytest.raises(OutputPathError, match="input folder"):
        folder_report.to_json(model.parent / "r.json")
    (tmp_path / "beside").mkdir()
    report.to_json(model.parent / "beside.json")  # beside a model file is fine
    (model.parent / "beside.json").unlink()
    link = tmp_path / "r.html"
    link.symlink_to(tmp_path / "elsewhere.html")
    with pytest.raises(OutputPathError, match="symbolic link"):
        report.to_html(link)
    assert _sha(model) == before and not (tmp_path / "elsewhere.html").exists()
    out = tmp_path / "r.csv"
    report.to_csv(out)
    assert out.read_text() == report.to_csv()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    buf = io.StringIO()
    report.to_csv(buf)  # an open file is written to directly
    assert buf.getvalue() == report.to_csv()
    with pytest.raises(OutputPathError, match="input folder"):
        spectralwatch.analyze(model.parent, plot=True, savefig=model.parent / "figs", workers=1)
    assert sorted(p.name for p in model.parent.iterdir()) == ["model.safetensors"]


# ---- names that act on whoever reads them ---------------------------------------------------------

_EVIL = {
    "ansi": "fc\x1b[2J\x1b]0;pwned\x07",
    "newline": "fc\n|  99 | forged row",
    "bidi": "fc\u202eexe.txt",
    "formula": "=HYPERLINK(\"http://x\")",
    "mathtext": "$\\foo{bar}$",
    "pipe": "a|b",
}


@pytest.fixture
def evil_model(tmp_path) -> Path:
    rng = np.random.default_rng(5)
    names = [f"{v}.weight" for v in _EVIL.values()]
    path = tmp_path / "evil.safetensors"
    safetensors_numpy.save_file({n: rng.standard_normal((40 + 4 * k, 24)).astype(np.float32)
                                 for k, n in enumerate(names)}, str(path))
    return path


def _raw_controls(text: str) -> list:
    return [ch for ch in text if (ord(ch) < 32 and ch != "\n") or 0x7f <= ord(ch) < 0xa0 or ch == "\u202e"]


def test_names_reach_the_terminal_escaped(evil_model, capsys):
    assert main(["analyze", str(evil_model), "--no-progress", "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert not _raw_controls(out)
    assert "\\x1b[2J" in out and "\\u202e" in out and "\\n" in out
    table = out.split("\n\n")[0].splitlines()
    assert len(table) == 1 + len(_EVIL)  # the newline in a name forged no row
    for fmt in ("markdown", "table"):
        assert main(["describe", str(evil_model), "--format", fmt]) == 0
        text = capsys.readouterr().out
        assert not _raw_controls(text)
        rows = [line for line in text.splitlines() if line.strip()]
        assert len(rows) == len(_EVIL) + (2 if fmt == "markdown" else 1)
    assert main(["analyze", str(evil_model), "--format", "markdown", "--no-progress"]) == 0
    md = capsys.readouterr().out
    assert "a\\|b" in md and all(line.count(" | ") == md.splitlines()[0].count(" | ") for line in md.splitlines()[2:])


def test_error_messages_and_warnings_are_escaped(tmp_path, capsys):
    bad = tmp_path / "x\x1b[31mred\x07.safetensors"
    bad.write_bytes(b"\x00" * 4)
    assert main(["analyze", str(bad)]) == 1
    err = _one_error(capsys)
    assert "\x1b" not in err and "\x07" not in err and "\\x1b[31m" in err


def test_mathtext_in_names_cannot_break_figures_or_html(evil_model, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    figs, html = tmp_path / "figs", tmp_path / "r.html"
    assert main(["analyze", str(evil_model), "--plots", str(figs), "--html", str(html), "--no-progress"]) == 0
    capsys.readouterr()
    assert len(list(figs.glob("ww.layer*.esd.png"))) == len(_EVIL)
    report = spectralwatch.analyze(evil_model, workers=1)
    text = report.to_html()  # draws every figure, titles holding the names
    assert "$\\foo{bar}$" in text and text.count("data:image/png") >= len(_EVIL)


def test_html_escapes_markup_in_names(tmp_path):
    path = tmp_path / "m.safetensors"
    safetensors_numpy.save_file({"<img src=x onerror=alert(1)>.weight": np.eye(30, 20, dtype=np.float32) +
                                 np.random.default_rng(0).standard_normal((30, 20)).astype(np.float32)}, str(path))
    text = spectralwatch.analyze(path, workers=1).to_html(figures=False)
    assert "<img src=x" not in text and "&lt;img src=x onerror=alert(1)&gt;" in text


def test_csv_cells_cannot_be_formulas_and_numbers_are_untouched(evil_model, tmp_path, capsys):
    report = spectralwatch.analyze(evil_model, workers=1)
    for text in (report.to_csv(), _cli_csv(evil_model, capsys), _cli_out(evil_model, tmp_path, capsys)):
        back = pd.read_csv(io.StringIO(text))
        names = list(back["name"])
        assert "'=HYPERLINK(\"http://x\")" in names
        assert all(not str(n).startswith(("=", "+", "-", "@")) for n in names)
        assert not _raw_controls(text.replace("\r\n", "\n"))
        np.testing.assert_allclose(back["alpha"].to_numpy(), report.details["alpha"].to_numpy(), rtol=1e-15)
        assert back["layer_id"].tolist() == report.details["layer_id"].tolist()
    assert main(["describe", str(evil_model), "--format", "csv"]) == 0
    assert "'=HYPERLINK" in capsys.readouterr().out


def _cli_csv(path, capsys) -> str:
    assert main(["analyze", str(path), "--format", "csv", "--no-progress"]) == 0
    return capsys.readouterr().out


def _cli_out(path, tmp_path, capsys) -> str:
    out = tmp_path / "o.csv"
    assert main(["analyze", str(path), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    return out.read_text()


def test_a_negative_number_stored_as_text_is_neutralised_but_numeric_columns_are_not():
    from spectralwatch.render.safe_text import csv_cell, csv_frame

    frame = pd.DataFrame({"name": ["-1+2", "@x", "\tcmd", "ok", "+3"], "alpha": [-1.5, 2.0, 3.0, -4.0, 5.0]})
    safe = csv_frame(frame)
    assert safe["name"].tolist() == ["'-1+2", "'@x", "'\\tcmd", "ok", "'+3"]
    assert safe["alpha"].tolist() == [-1.5, 2.0, 3.0, -4.0, 5.0]
    assert csv_cell(-3) == -3 and csv_frame(frame[["alpha"]]) is not None


# ---- the journal, checked ------------------------------------------------------------------------------

def _interrupted_journal(model, tmp_path, monkeypatch, capsys) -> Path:
    """A journal holding the first layer of an interrupted run (Ctrl-C after one layer)."""
    from spectralwatch.io.journal import JournalWriter

    real = JournalWriter.add

    def add(self, *args, **kwargs):
        real(self, *args, **kwargs)
        raise KeyboardInterrupt

    monkeypatch.setattr(JournalWriter, "add", add)
    out = tmp_path / "out.csv"
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", "--no-progress"]) == 130  # Ctrl-C
    monkeypatch.setattr(JournalWriter, "add", real)
    capsys.readouterr()
    return out


def _edit_line(journal: Path, edit, resign: bool = False) -> None:
    """Edit the first layer line; ``resign``: recompute its digest (someone who knows the scheme)."""
    from spectralwatch.io import journal as journal_mod

    lines = journal.read_bytes().split(b"\n")
    doc = json.loads(lines[1])
    edit(doc)
    if resign:
        doc["sum"] = journal_mod._digest(journal_mod._key(lines[0]), doc)
    lines[1] = json.dumps(doc, separators=(",", ":")).encode()
    journal.write_bytes(b"\n".join(lines))


def _flip_digit(doc) -> None:
    """The first decimal of a row's alpha, changed (a change of the value, not of its last rounding digit)."""
    text = json.dumps(doc["rows"][0]["alpha"])
    digit = text.index(".") + 1
    flipped = text[:digit] + str((int(text[digit]) + 1) % 10) + text[digit + 1:]
    doc["rows"][0]["alpha"] = json.loads(flipped)


_EDITS = [
    ("a flipped digit", _flip_digit, "digest"),
    ("a forged status", lambda d: d["rows"][0].update(status="failed"), "digest"),
    ("model -1", lambda d: d.update(model=-1), "model index"),
    ("model 7", lambda d: d.update(model=7), "model index"),
    ("a layer id as text", lambda d: d.update(layer_id="1"), "layer_id"),
    ("a status that is not one", lambda d: d["rows"][0].update(status="\x1b[2Jhacked"), "status"),
    ("a tagged value of an unknown kind", lambda d: d["rows"][0].update(alpha={"$eval": "1"}), "unknown tagged"),
    ("a dtype that is not a number", lambda d: d["rows"][0].update(alpha={"$np": "V100000000", "v": 1}),
     "unknown tagged"),
    ("a row of another layer", lambda d: d["rows"][0].update(layer_id=99), "differs"),
    ("a private column", lambda d: d["rows"][0].update(_evals=[1, 2]), "column name"),
]


@pytest.mark.parametrize("resign", [False, True], ids=["edited", "edited-and-re-digested"])
@pytest.mark.parametrize("label, edit, reason", _EDITS, ids=[e[0] for e in _EDITS])
def test_a_damaged_or_edited_journal_is_a_one_line_error(model, tmp_path, monkeypatch, capsys, label, edit, reason,
                                                         resign):
    out = _interrupted_journal(model, tmp_path, monkeypatch, capsys)
    journal = journal_path(out)
    _edit_line(journal, edit, resign)
    before = journal.read_bytes()
    code = main(["analyze", str(model), "--out", str(out), "--resume", "--no-progress"])
    if resign and label in ("a flipped digit", "a forged status"):
        # a valid digest over plausible values is indistinguishable from a real row (docs/robustness.md):
        # the journal protects against damage and careless edits, not against a forger
        assert code == 0
        return
    err = _one_error(capsys)
    assert code == 1, label  # never 2, the usage code
    assert "line 2" in err and "index out of range" not in err
    assert reason in err if resign else (reason in err or "digest" in err)
    assert "\x1b" not in err
    assert journal.read_bytes() == before and not out.exists()


def test_a_journal_with_a_damaged_header_or_a_duplicated_line(model, tmp_path, monkeypatch, capsys):
    out = _interrupted_journal(model, tmp_path, monkeypatch, capsys)
    journal = journal_path(out)
    good = journal.read_bytes()
    lines = good.split(b"\n")
    journal.write_bytes(b"\n".join([lines[0], lines[1], lines[1], b""]))
    assert main(["analyze", str(model), "--out", str(out), "--resume", "--no-progress"]) == 1
    assert "already on an earlier line" in _one_error(capsys)
    header = json.loads(lines[0])
    header["models"] = "everything"
    journal.write_bytes(json.dumps(header).encode() + b"\n" + b"\n".join(lines[1:]))
    assert main(["analyze", str(model), "--out", str(out), "--resume", "--no-progress"]) == 1
    assert "damaged header" in _one_error(capsys)
    journal.write_bytes(good)  # intact: resumes
    assert main(["analyze", str(model), "--out", str(out), "--resume", "--no-progress"]) == 0


# ---- the eigenvalue cache, checked ---------------------------------------------------------------

def _entries(cache: Path) -> list:
    return sorted(p for p in cache.iterdir() if re.fullmatch(r"[0-9a-f]{40}\.npz", p.name))


def _rewrite(entry: Path, evals, route="gram") -> None:
    os.unlink(entry)
    np.savez(entry, evals=np.asarray(evals), route=np.array(route))


@pytest.fixture
def cached(tmp_path):
    rng = np.random.default_rng(7)
    model = {"fc1.weight": rng.standard_normal((300, 200)), "fc2.weight": rng.standard_normal((120, 60))}
    cache = tmp_path / "cache"
    clean = spectralwatch.analyze(model, cache_dir=cache, workers=1).details
    return model, cache, clean


def _lies(entry: Path, evals: np.ndarray) -> dict:
    return {
        "planted eigenvalues (alpha changed)": lambda: _rewrite(entry, evals ** 1.3),
        "3 eigenvalues for 200": lambda: _rewrite(entry, evals[:, -3:]),
        "scaled by 2 (trace wrong)": lambda: _rewrite(entry, evals * 2),
        "same trace, flattened top": lambda: _rewrite(entry, np.full_like(evals, evals.mean())),
        "a NaN": lambda: _rewrite(entry, np.where(np.arange(evals.size).reshape(evals.shape) == 5, np.nan, evals)),
        "negative": lambda: _rewrite(entry, evals - evals.max()),
        "unsorted": lambda: _rewrite(entry, evals[:, ::-1]),
        "a route with an escape sequence": lambda: _rewrite(entry, evals, "gram\x1b[2J"),
        "float32": lambda: _rewrite(entry, evals.astype(np.float32)),
        "not a zip": lambda: entry.write_bytes(b"garbage"),
    }


@pytest.mark.parametrize("lie", list(_lies(Path("x"), np.ones((1, 3)))))
def test_a_cache_entry_that_lies_is_recomputed_with_a_warning(cached, lie):
    model, cache, clean = cached
    entry = next(e for e in _entries(cache) if np.load(e)["evals"].shape == (1, 200))
    evals = np.load(entry)["evals"]
    _lies(entry, evals)[lie]()
    with pytest.warns(RuntimeWarning, match="was not used"):
        again = spectralwatch.analyze(model, cache_dir=cache, workers=1).details
    pd.testing.assert_series_equal(again["alpha"], clean["alpha"], check_exact=True)
    assert (again["spectrum_route"] != "gram\x1b[2J+cache").all()
    np.testing.assert_array_equal(np.load(entry)["evals"], evals)  # rewritten with the true spectrum


def test_cache_entries_that_are_links_fifos_or_bombs_are_not_read(cached):
    model, cache, clean = cached
    big, small = sorted(_entries(cache), key=lambda e: -e.stat().st_size)
    os.unlink(big)
    os.mkfifo(big)  # opening it would block forever
    os.unlink(small)
    secret = cache.parent / "secret.npz"
    np.savez(secret, evals=np.ones((1, 60)), route=np.array("gram"))
    small.symlink_to(secret)
    with pytest.warns(RuntimeWarning, match="not a regular file"):
        again = spectralwatch.analyze(model, cache_dir=cache, workers=1).details
    pd.testing.assert_series_equal(again["alpha"], clean["alpha"], check_exact=True)
    bomb = _entries(cache)[0]
    buf = io.BytesIO()
    import zipfile

    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("evals.npy", b"\x93NUMPY" + b"\0" * (50 << 20))
        zf.writestr("route.npy", b"")
    bomb.write_bytes(buf.getvalue())  # 50 KB that inflate to 50 MB
    with pytest.warns(RuntimeWarning, match="(more|larger) than an entry"):
        spectralwatch.analyze(model, cache_dir=cache, workers=1)


def test_the_cache_key_holds_the_version_and_the_folder_is_capped(monkeypatch, tmp_path):
    from spectralwatch.core.matrices import layer_matrices
    from spectralwatch.io import cache as cache_mod

    mats = layer_matrices(np.random.default_rng(1).standard_normal((30, 20)), "dense")
    key = cache_mod.cache_key(mats, "auto", "cpu")
    monkeypatch.setattr("spectralwatch._version.__version__", "999.0")
    assert cache_mod.cache_key(mats, "auto", "cpu") != key
    folder = tmp_path / "c"
    spectralwatch.analyze({f"l{i}.weight": np.random.default_rng(i).standard_normal((80, 40)) for i in range(6)},
                          cache_dir=folder, workers=1)
    sizes = [e.stat().st_size for e in _entries(folder)]
    assert len(sizes) == 6
    removed = cache_mod.enforce_cap(folder, 2 * max(sizes))
    assert removed >= 4 and sum(e.stat().st_size for e in _entries(folder)) <= 2 * max(sizes)


def test_cache_info_and_clear_touch_only_entries(cached, capsys):
    model, cache, _ = cached
    (cache / "notes.txt").write_text("mine")
    (cache / ("0" * 40)).write_text("not an entry name")
    assert main(["cache", "info", str(cache)]) == 0
    text = capsys.readouterr().out
    assert "entries    2" in text and str(cache.resolve()) in text
    assert main(["cache", "clear", str(cache)]) == 0
    assert "removed 2 cache entries" in capsys.readouterr().out
    assert sorted(p.name for p in cache.iterdir()) == sorted(["notes.txt", "0" * 40, "CACHEDIR.TAG"])
    assert main(["cache", "info", str(cache / "missing")]) == 1
    _one_error(capsys)


def test_warnings_on_the_command_line_are_escaped(cached):
    import subprocess
    import sys

    model, cache, _ = cached
    path = cache.parent / "m.npz"
    np.savez(path, **model)
    evil = cache.parent / "cache\x1b[2J"
    assert main(["analyze", str(path), "--cache-dir", str(evil), "--no-progress", "--format", "json"]) == 0
    _entries(evil)[0].write_bytes(b"garbage")  # its warning names the entry, in a folder with an escape
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(spectralwatch.__file__).parents[1]),
                                                       os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-m", "spectralwatch", "analyze", str(path), "--cache-dir", str(evil),
                           "--no-progress", "--format", "json"], capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0 and "was not used" in proc.stderr
    assert "\x1b" not in proc.stderr and "\\x1b[2J" in proc.stderr

"""Incremental output and --resume: the journal of finished layers beside --out FILE (docs/cli.md)."""

import hashlib
import importlib
import json
import math

import numpy as np
import pandas as pd
import pytest

from spectralwatch import analyze
from spectralwatch.cli import main
from spectralwatch.errors import InvalidParameterError
from spectralwatch.io.journal import JournalWriter, decode_row, encode_row, journal_path, read_journal

executors = importlib.import_module("spectralwatch.pipeline.executors")

N_LAYERS = 5


def _save_model(path, seed=0, layers=N_LAYERS):
    rng = np.random.default_rng(seed)
    np.savez(path, **{f"fc{i}.weight": rng.standard_normal((64 + 8 * i, 128)) for i in range(layers)})
    return path


@pytest.fixture
def model(tmp_path):
    return _save_model(tmp_path / "model.npz")


@pytest.fixture
def calls(monkeypatch):
    """Names of the layers analysed in this process (the serial executor)."""
    seen = []
    real = executors.analyze_layer

    def spy(ref, options, geometry=None):
        seen.append(ref.name)
        return real(ref, options, geometry)

    monkeypatch.setattr(executors, "analyze_layer", spy)
    return seen


def _interrupt_after(monkeypatch, k):
    """Make the run stop (like Ctrl-C) right after the k-th layer is in the journal."""
    real = JournalWriter.add
    count = [0]

    def add(self, *args, **kwargs):
        real(self, *args, **kwargs)
        count[0] += 1
        if count[0] == k:
            raise KeyboardInterrupt

    monkeypatch.setattr(JournalWriter, "add", add)
    return lambda: monkeypatch.setattr(JournalWriter, "add", real)


def _journal_lines(out):
    return journal_path(out).read_text(encoding="utf-8").splitlines()


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---- the journal's rows ----------------------------------------------------------------------

def test_rows_round_trip_exactly_through_the_journal():
    row = {"layer_id": 3, "name": "fc.ü", "alpha": 0.1 + 0.2, "nan": math.nan, "inf": math.inf, "ninf": -math.inf,
           "neg_zero": -0.0, "tiny": 5e-324, "big": 2 ** 70, "none": None, "ok": True, "f32": np.float32(0.1),
           "i64": np.int64(-7), "b": np.bool_(False), "nan32": np.float32("nan"), "shape": (3, 4),
           "items": [1.5, math.nan], "_rand_evals": np.arange(3.0)}
    text = json.dumps(encode_row(row), allow_nan=False)  # strict JSON: no NaN / Infinity tokens
    back = decode_row(json.loads(text))
    assert "_rand_evals" not in back  # private payloads of optional analyses are not kept
    assert list(back) == [k for k in row if not k.startswith("_")]
    for key, value in back.items():
        want = row[key]
        assert type(value) is type(want), key
        if key in ("nan", "nan32"):
            assert value != value
        elif key == "items":
            assert value[0] == 1.5 and value[1] != value[1]
        else:
            assert value == want, key
    assert math.copysign(1.0, back["neg_zero"]) == -1.0
    assert back["f32"].dtype == np.float32 and back["f32"] == np.float32(0.1)


def test_a_value_the_journal_cannot_hold_is_refused():
    with pytest.raises(TypeError, match="cannot be kept in the journal"):
        encode_row({"layer_id": 1, "obj": object()})


# ---- the library hook --------------------------------------------------------------------------

def test_on_result_gets_every_layer_as_it_finishes(model):
    got = []
    report = analyze(str(model), on_result=lambda layer_id, rows: got.append((layer_id, rows)), workers=1)
    assert [lid for lid, _ in got] == list(report.details["layer_id"])
    assert all(len(rows) == 1 and rows[0]["layer_id"] == lid for lid, rows in got)


@pytest.mark.parametrize("pool", [True, False])
def test_done_layers_are_not_recomputed_and_the_table_is_identical(tmp_path, calls, pool):
    path = tmp_path / "conv.npz"
    rng = np.random.default_rng(4)
    np.savez(path, **{"a.weight": rng.standard_normal((96, 128)), "conv.weight": rng.standard_normal((16, 8, 3, 3)),
                      "b.weight": rng.standard_normal((80, 128)), "c.weight": rng.standard_normal((72, 128))})
    got = {}
    clean = analyze(str(path), pool=pool, workers=1,
                    on_result=lambda lid, rows: got.setdefault(lid, [decode_row(encode_row(r)) for r in rows]))
    ids = list(got)
    if not pool:
        assert len(got[ids[1]]) == 9  # one row per kernel position of the conv
    done = {lid: got[lid] for lid in (ids[0], ids[1], ids[3])}  # finished out of order: any subset
    calls.clear()
    resumed = analyze(str(path), pool=pool, workers=1, done=done)
    assert calls == ["b"]
    pd.testing.assert_frame_equal(resumed.details, clean.details, check_exact=True)
    assert resumed.summary == clean.summary
    with pytest.raises(KeyError):
        resumed.get_ESD(ids[0])  # eigenvalues of a done layer are not available
    assert np.array_equal(resumed.get_ESD(ids[2]), clean.get_ESD(ids[2]))


def test_done_is_checked(model):
    rows = {}
    analyze(str(model), workers=1, on_result=lambda lid, r: rows.setdefault(lid, r))
    with pytest.raises(InvalidParameterError, match="not one of the layers"):
        analyze(str(model), layers=[2, 3], done={1: rows[1]})
    with pytest.raises(InvalidParameterError, match="must carry its layer_id and its name"):
        analyze(str(model), done={1: rows[2]})
    with pytest.raises(InvalidParameterError, match="intra"):
        analyze(str(model), intra=True, done={1: rows[1]})
    with pytest.raises(InvalidParameterError, match="mapping"):
        analyze(str(model), done=[1, 2])


# ---- the command line ----------------------------------------------------------------------------

def test_out_keeps_a_journal_while_running_and_removes_it_at_the_end(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "layers.csv"
    seen = []
    real = JournalWriter.add

    def add(self, *args, **kwargs):
        real(self, *args, **kwargs)
        seen.append(len(_journal_lines(out)))  # on disk (flushed) as soon as the layer is done

    monkeypatch.setattr(JournalWriter, "add", add)
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 0
    assert seen == [2, 3, 4, 5, 6]  # the header, then one line per finished layer
    assert not journal_path(out).exists()
    assert len(pd.read_csv(out)) == N_LAYERS


@pytest.mark.parametrize("suffix", [".csv", ".json", ".md", ".txt", ".parquet"])
def test_an_interrupted_run_resumes_to_the_same_file(model, tmp_path, monkeypatch, capsys, calls, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    clean, out = tmp_path / f"clean{suffix}", tmp_path / f"out{suffix}"
    assert main(["analyze", str(model), "--out", str(clean), "--workers", "1"]) == 0
    restore = _interrupt_after(monkeypatch, 2)
    calls.clear()
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 130  # interrupted (Ctrl-C)
    err = capsys.readouterr().err
    assert "error: interrupted; the 2 finished layers are kept in" in err and "--resume" in err
    assert calls == ["fc0", "fc1"] and not out.exists()
    lines = _journal_lines(out)
    assert len(lines) == 1 + 2 and [json.loads(x)["name"] for x in lines[1:]] == ["fc0", "fc1"]
    restore()
    calls.clear()
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert calls == ["fc2", "fc3", "fc4"]  # the finished layers are not analysed again
    assert "2 finished layers are taken from it" in capsys.readouterr().err
    if suffix == ".parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(clean), check_exact=True)
    else:
        assert out.read_bytes() == clean.read_bytes()
    assert not journal_path(out).exists()


def test_resume_gives_the_same_stdout_and_works_with_a_process_pool(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    assert main(["analyze", str(model), "--format", "csv", "--workers", "1"]) == 0
    clean = capsys.readouterr().out
    restore = _interrupt_after(monkeypatch, 3)
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 130  # interrupted (Ctrl-C)
    restore()
    capsys.readouterr()
    assert main(["analyze", str(model), "--out", str(out), "--format", "csv", "--workers", "2", "--resume"]) == 0
    assert capsys.readouterr().out == clean
    assert pd.read_csv(out).equals(pd.read_csv(__import__("io").StringIO(clean)))


def test_a_line_cut_short_by_a_killed_run_is_dropped(model, tmp_path, monkeypatch, capsys, calls):
    out, clean = tmp_path / "out.csv", tmp_path / "clean.csv"
    assert main(["analyze", str(model), "--out", str(clean), "--workers", "1"]) == 0
    restore = _interrupt_after(monkeypatch, 3)
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1"]) == 130  # interrupted (Ctrl-C)
    restore()
    journal = journal_path(out)
    text = journal.read_bytes()
    last = text[:-1].rfind(b"\n") + 1
    journal.write_bytes(text[:last + 40])  # the third layer's line, cut in the middle of its write
    header, layers, size = read_journal(journal)
    assert len(layers) == 2 and size == last
    calls.clear()
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert calls == ["fc2", "fc3", "fc4"]
    assert out.read_bytes() == clean.read_bytes()


def test_several_models_resume_in_one_journal(tmp_path, monkeypatch, capsys, calls):
    a, b = _save_model(tmp_path / "a.npz", 1), _save_model(tmp_path / "b.npz", 2, layers=3)
    out, clean = tmp_path / "out.csv", tmp_path / "clean.csv"
    assert main(["analyze", str(a), str(b), "--out", str(clean), "--workers", "1"]) == 0
    restore = _interrupt_after(monkeypatch, N_LAYERS + 1)  # in the second model
    assert main(["analyze", str(a), str(b), "--out", str(out), "--workers", "1"]) == 130  # interrupted (Ctrl-C)
    restore()
    calls.clear()
    assert main(["analyze", str(a), str(b), "--out", str(out), "--workers", "1", "--resume"]) == 0
    assert calls == ["fc1", "fc2"]
    assert out.read_bytes() == clean.read_bytes()
    # another list of models is another run
    restore = _interrupt_after(monkeypatch, 1)
    assert main(["analyze", str(a), str(b), "--out", str(out), "--workers", "1"]) == 130  # interrupted (Ctrl-C)
    restore()
    capsys.readouterr()
    assert main(["analyze", str(b), str(a), "--out", str(out), "--workers", "1", "--resume"]) == 1
    assert "models " in capsys.readouterr().err


def _interrupted(model, out, monkeypatch, capsys, *extra):
    restore = _interrupt_after(monkeypatch, 2)
    assert main(["analyze", str(model), "--out", str(out), "--workers", "1", *extra]) == 130  # interrupted (Ctrl-C)
    restore()
    capsys.readouterr()
    return journal_path(out).read_bytes()


def test_resume_refuses_other_options(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    before = _interrupted(model, out, monkeypatch, capsys)
    assert main(["analyze", str(model), "--out", str(out), "--resume", "--min-evals", "70"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: cannot resume") and len(err.splitlines()) == 1
    assert "option min_evals 8 -> 70" in err and f"Remove {journal_path(out)}" in err
    # options that change no row (where figures go, the eigenvalue cache) do not count
    cache = tmp_path / "cache"
    assert main(["analyze", str(model), "--out", str(out), "--resume", "--cache-dir", str(cache),
                 "--no-progress"]) == 0
    assert before and not journal_path(out).exists()


def test_resume_refuses_a_changed_model(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    before = _interrupted(model, out, monkeypatch, capsys)
    _save_model(model, seed=9)  # retrained: same names and shapes, other weights
    assert main(["analyze", str(model), "--out", str(out), "--resume"]) == 1
    err = capsys.readouterr().err
    assert f"model {model.resolve()} changed" in err and "Remove" in err
    assert journal_path(out).read_bytes() == before  # the journal is left as it was


def test_an_unfinished_journal_is_not_overwritten_without_resume(model, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.csv"
    before = _interrupted(model, out, monkeypatch, capsys)
    assert main(["analyze", str(model), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "holds 2 finished layers of an earlier run" in err and "--resume" in err
    assert journal_path(out).read_bytes() == before


def test_resume_without_a_journal_runs_with_a_note(model, tmp_path, capsys):
    out = tmp_path / "out.csv"
    assert main(["analyze", str(model), "--out", str(out), "--resume"]) == 0
    assert "there is no journal" in capsys.readouterr().err
    assert len(pd.read_csv(out)) == N_LAYERS


def test_a_journal_with_no_layer_is_replaced(model, tmp_path, capsys):
    out = tmp_path / "out.csv"
    journal_path(out).write_bytes(b'{"journal": "spectralwa')  # the header was being written
    assert main(["analyze", str(model), "--out", str(out)]) == 0
    assert not journal_path(out).exists()


def test_resume_usage_errors(model, tmp_path, capsys):
    assert main(["analyze", str(model), "--resume"]) == 2
    assert "--resume needs --out FILE" in capsys.readouterr().err
    assert main(["analyze", str(model), "--resume", "--out", str(tmp_path / "o.csv"), "--intra"]) == 2
    assert "not available with --intra" in capsys.readouterr().err


def test_resumed_layers_have_no_figures(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    model = _save_model(tmp_path / "small.npz", layers=3)
    out, figs = tmp_path / "out.csv", tmp_path / "figs"
    _interrupted(model, out, monkeypatch, capsys)
    assert main(["analyze", str(model), "--out", str(out), "--resume", "--plots", str(figs), "--no-progress"]) == 0
    assert "the figures leave out the 2 layers taken from the journal" in capsys.readouterr().err
    layers = {p.name.split(".")[1] for p in figs.glob("ww.layer*.png")}
    assert layers == {"layer3"}
    assert (figs / "model.alpha-by-layer.png").exists()  # the model figures use every row


def test_every_command_leaves_the_inputs_byte_identical(tmp_path, monkeypatch, capsys):
    pytest.importorskip("matplotlib")
    model = _save_model(tmp_path / "in.npz", layers=3)
    from safetensors.numpy import save_file

    folder = tmp_path / "folder"
    folder.mkdir()
    rng = np.random.default_rng(3)
    save_file({f"h.{i}.weight": rng.standard_normal((64, 96 + 16 * i)).astype(np.float32) for i in range(3)},
              str(folder / "model.safetensors"))
    inputs = [model, folder / "model.safetensors"]
    before = [_sha(p) for p in inputs]
    inside = folder / "results.csv"  # an output inside the model's folder is refused (docs/robustness.md)
    assert main(["analyze", str(folder), "--out", str(inside), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip()
    assert "inside the input folder" in err and len(err.splitlines()) == 1
    assert not inside.exists() and not journal_path(inside).exists()
    out = tmp_path / "results.csv"
    _interrupted(folder, out, monkeypatch, capsys)
    assert main(["analyze", str(folder), "--out", str(out), "--resume", "--no-progress"]) == 0
    assert main(["analyze", str(model), "--out", str(tmp_path / "o.json"), "--plots", str(tmp_path / "f"),
                 "--html", str(tmp_path / "r.html"), "--no-progress"]) == 0
    assert main(["describe", str(model)]) == 0
    assert main(["compare", str(model), str(folder / "model.safetensors"), "--out", str(tmp_path / "c.csv"),
                 "--no-progress"]) == 0
    assert [_sha(p) for p in inputs] == before

"""No pickle is executed by default; ``trust_pickle=True`` / ``--trust-pickle`` is the explicit opt-in.

A checkpoint or ``.npy`` file that needs unpickling is refused with ``UnsafeFileError`` saying why and
naming the opt-in; with the opt-in it is read, after a warning that code from the file may run. A
pickle whose ``__reduce__`` would write a marker file proves the point: the marker never appears
unless the caller opted in.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import spectralwatch
from spectralwatch.cli import main
from spectralwatch.errors import CorruptFileError, InvalidParameterError, UnsafeFileError
from spectralwatch.io.sources import open_source

torch = pytest.importorskip("torch")


class TrainingMeta:
    """A custom picklable class, as training scripts put in their checkpoints."""

    def __init__(self, epoch: int = 3):
        self.epoch = epoch


class WritesMarker:
    """Unpickling this runs ``Path(marker).write_text('ran')``: what a malicious pickle could do."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return Path.write_text, (self.marker, "ran")


def _w(seed: int, *shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _assert_refusal(exc: BaseException, path) -> None:
    msg = str(exc)
    assert str(path) in msg
    assert "never executes code" in msg and "trust_pickle=True" in msg and "--trust-pickle" in msg
    assert "EXECUTES" in msg


def _trusted_warnings(record, path) -> list:
    return [w for w in record if issubclass(w.category, UserWarning) and str(path) in str(w.message)
            and "Arbitrary code" in str(w.message)]


@pytest.fixture
def checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    torch.save({"w": torch.from_numpy(_w(0, 16, 24)), "meta": TrainingMeta()}, path)
    return path


def test_a_checkpoint_needing_pickle_is_refused_by_default(checkpoint):
    for call in (lambda: open_source(checkpoint), lambda: spectralwatch.analyze(checkpoint),
                 lambda: spectralwatch.describe(checkpoint)):
        with pytest.raises(UnsafeFileError) as info:
            call()
        _assert_refusal(info.value, checkpoint)
        assert "TrainingMeta" in str(info.value)


def test_a_checkpoint_needing_pickle_is_read_with_the_opt_in_after_one_warning(checkpoint):
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        report = spectralwatch.analyze(checkpoint, trust_pickle=True)
    assert len(_trusted_warnings(record, checkpoint)) == 1
    details = report.details
    assert list(details["name"]) == ["w"] and list(details["status"]) == ["success"]
    expected = spectralwatch.analyze({"w": _w(0, 16, 24)}).details
    np.testing.assert_allclose(details["alpha"], expected["alpha"], rtol=1e-10)
    with pytest.warns(UserWarning, match="Arbitrary code"):
        assert list(spectralwatch.describe(checkpoint, trust_pickle=True)["name"]) == ["w"]


def test_a_safe_file_gives_no_warning_even_with_the_opt_in(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"fc.weight": torch.from_numpy(_w(1, 16, 24))}, path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        assert list(spectralwatch.describe(path, trust_pickle=True)["name"]) == ["fc"]


def test_a_pickle_that_runs_code_never_runs_without_the_opt_in(tmp_path):
    marker = tmp_path / "marker.txt"
    pt, npy, npz = tmp_path / "evil.pt", tmp_path / "evil.npy", tmp_path / "evil.npz"
    torch.save({"w": torch.from_numpy(_w(2, 16, 24)), "payload": WritesMarker(marker)}, pt)
    np.save(npy, np.array(WritesMarker(marker), dtype=object), allow_pickle=True)
    np.savez(npz, **{"fc.weight": _w(3, 16, 24), "payload": np.array([WritesMarker(marker)], dtype=object)})
    for path in (pt, npy):
        with pytest.raises(UnsafeFileError) as info:
            spectralwatch.analyze(path)
        _assert_refusal(info.value, path)
        assert not marker.exists()
    report = spectralwatch.analyze(npz)  # the pickled member is left out, the array is analysed
    assert list(report.details["name"]) == ["fc"] and not marker.exists()
    with pytest.warns(UserWarning, match="Arbitrary code"):
        spectralwatch.describe(pt, trust_pickle=True)
    assert marker.read_text() == "ran"  # the opt-in really unpickles: this is why it is off by default


def test_npy_pickles_are_refused_and_read_with_the_opt_in(tmp_path):
    saved_dict = tmp_path / "state.npy"
    np.save(saved_dict, np.array({"fc1.weight": _w(4, 16, 24), "fc2.weight": _w(5, 24, 16)}, dtype=object),
            allow_pickle=True)
    objects = tmp_path / "objects.npy"
    np.save(objects, _w(6, 16, 24).astype(object), allow_pickle=True)
    for path in (saved_dict, objects):
        with pytest.raises(UnsafeFileError) as info:
            spectralwatch.describe(path)
        _assert_refusal(info.value, path)
    with pytest.warns(UserWarning, match="Arbitrary code"):
        d = spectralwatch.analyze(saved_dict, trust_pickle=True).details
    assert list(d["name"]) == ["fc1", "fc2"] and list(d["layer_id"]) == [1, 2] and set(d["status"]) == {"success"}
    with pytest.warns(UserWarning, match="Arbitrary code"):
        d = spectralwatch.analyze(objects, trust_pickle=True).details
    expected = spectralwatch.analyze(_w(6, 16, 24)).details
    assert list(d["name"]) == ["W"] and list(d["layer_id"]) == [0]
    np.testing.assert_allclose(d["alpha"], expected["alpha"], rtol=1e-10)
    plain = tmp_path / "plain.npy"  # a numeric .npy is one layer, read without any opt-in
    np.save(plain, _w(6, 16, 24))
    np.testing.assert_allclose(spectralwatch.analyze(plain).details["alpha"], expected["alpha"], rtol=1e-10)


def test_the_flag_travels_to_worker_processes_with_the_lazy_loaders(tmp_path):
    path = tmp_path / "mixed.npz"
    layers = {f"l{k}.weight": _w(10 + k, 24, 16) for k in range(4)}
    np.savez(path, **{"l0.weight": layers["l0.weight"].astype(object)},
             **{k: v for k, v in layers.items() if k != "l0.weight"})
    assert [r.name for r in open_source(path).layers()] == ["l1", "l2", "l3"]  # default: pickled member left out
    with pytest.warns(UserWarning, match="Arbitrary code"):
        report = spectralwatch.analyze(path, trust_pickle=True, executor="processes", workers=2)
    details = report.details.set_index("name")
    assert list(details.index) == ["l0", "l1", "l2", "l3"] and set(details["status"]) == {"success"}
    expected = spectralwatch.analyze(layers).details.set_index("name")
    np.testing.assert_allclose(details["alpha"], expected["alpha"], rtol=1e-10)


def test_the_base_model_is_covered_by_the_same_rule(tmp_path, checkpoint):
    model = tmp_path / "model.pt"
    torch.save({"w": torch.from_numpy(_w(0, 16, 24) + 0.5 * _w(7, 16, 24))}, model)
    with pytest.raises(UnsafeFileError):
        spectralwatch.analyze(model, base_model=checkpoint)
    with pytest.warns(UserWarning, match="Arbitrary code"):
        details = spectralwatch.analyze(model, base_model=checkpoint, trust_pickle=True).details
    assert list(details["status"]) == ["success"]


def test_a_trusted_pickle_that_cannot_be_unpickled_is_a_clear_error(tmp_path, monkeypatch):
    module = tmp_path / "gone_module.py"
    module.write_text("class Gone:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import gone_module

    path = tmp_path / "gone.pt"
    torch.save({"w": torch.from_numpy(_w(8, 16, 24)), "x": gone_module.Gone()}, path)
    monkeypatch.delitem(sys.modules, "gone_module")
    module.unlink()
    with pytest.warns(UserWarning, match="Arbitrary code"), pytest.raises(CorruptFileError) as info:
        open_source(path, trust_pickle=True)
    assert str(path) in str(info.value) and "gone_module" in str(info.value)


def test_trust_pickle_must_be_a_bool(checkpoint):
    for bad in ("yes", 1, None):
        with pytest.raises(InvalidParameterError, match="trust_pickle"):
            spectralwatch.analyze(checkpoint, trust_pickle=bad)
    with pytest.raises(InvalidParameterError, match="trust_pickle"):
        open_source(checkpoint, trust_pickle="yes")


def test_command_line_opt_in(checkpoint, capsys):
    assert main(["analyze", str(checkpoint), "--format", "csv", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--trust-pickle" in err and str(checkpoint) in err
    with pytest.warns(UserWarning, match="Arbitrary code"):
        assert main(["analyze", str(checkpoint), "--format", "csv", "--no-progress", "--trust-pickle"]) == 0
    out = capsys.readouterr().out
    assert "success" in out and out.splitlines()[0].startswith("layer_id")

"""Reader plugins: a distribution installed into a temporary site folder declares a reader in the
``spectralwatch.sources`` entry-point group; spectralwatch then reads its files like its own."""

import importlib
import sys
import textwrap

import numpy as np
import pytest
from scipy.io import savemat

import spectralwatch
from spectralwatch.errors import UnknownFormatError
from spectralwatch.io.sources import available_sources, open_source, plugin_sources

# The worked example of docs/integrations.md, as the plugin's module (kept identical to the docs by
# test_docs_plugin_example_is_this_plugin below).
PLUGIN = textwrap.dedent('''\
    """A spectralwatch reader for MATLAB .mat files: every 2-D numeric variable is a dense layer."""
    import functools

    import numpy as np
    from scipy.io import loadmat, whosmat

    from spectralwatch.io.sources import BaseSource, LayerRef

    NUMERIC = {"double", "single", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64"}


    class MatFileSource(BaseSource):
        name = "matlab"
        reads = "a MATLAB .mat file (v4 to v7.2): every 2-D numeric variable is a dense layer"
        extensions = (".mat",)
        module = "scipy"
        format = "matlab"

        def __init__(self, path, *, start_id=None):
            self.path = str(path)
            self.start_id = 1 if start_id is None else start_id
            self.description = f"{self.path} (MATLAB)"

        def layers(self):
            matrices = [(name, shape, kind) for name, shape, kind in whosmat(self.path)
                        if len(shape) == 2 and kind in NUMERIC]
            for layer_id, (name, shape, kind) in enumerate(matrices, start=self.start_id):
                yield LayerRef(layer_id=layer_id, name=name, longname=name, layer_type="dense",
                               shape=tuple(shape), dtype=kind, loader=functools.partial(self.load, name))

        def load(self, name):
            return np.asarray(loadmat(self.path, variable_names=[name])[name], dtype=np.float64)
    ''')


@pytest.fixture
def installed_plugin(tmp_path, monkeypatch):
    """The plugin as pip would install it: its module and a dist-info folder with entry_points.txt."""
    site = tmp_path / "site"
    (site / "sw_matlab").mkdir(parents=True)
    (site / "sw_matlab" / "__init__.py").write_text(PLUGIN)
    info = site / "sw_matlab-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sw-matlab\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[spectralwatch.sources]\nmatlab = sw_matlab:MatFileSource\n")
    monkeypatch.syspath_prepend(str(site))
    importlib.invalidate_caches()
    plugin_sources(refresh=True)
    yield site
    monkeypatch.undo()
    sys.modules.pop("sw_matlab", None)
    plugin_sources(refresh=True)


def _mat(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"W1": rng.standard_normal((120, 60)), "W2": rng.standard_normal((80, 60)), "note": "text",
              "b": rng.standard_normal((1, 5, 2))}
    path = tmp_path / "model.mat"
    savemat(path, arrays)
    return path, arrays


def test_without_the_plugin_a_mat_file_is_unknown(tmp_path):
    path, _ = _mat(tmp_path)
    with pytest.raises(UnknownFormatError, match="unknown extension"):
        spectralwatch.analyze(path)


def test_an_installed_plugin_reads_its_files(tmp_path, installed_plugin):
    path, arrays = _mat(tmp_path)
    source = open_source(path)
    assert type(source).__name__ == "MatFileSource" and source.format == "matlab"
    report = spectralwatch.analyze(path)
    assert list(report.details["name"]) == ["W1", "W2"]
    same = spectralwatch.analyze({"W1": arrays["W1"], "W2": arrays["W2"]})
    cols = ["layer_id", "N", "M", "alpha", "D", "log_norm", "stable_rank"]
    assert report.details[cols].equals(same.details[cols])  # the same numbers as the built-in reader
    listed = {s["name"]: s for s in available_sources()}["matlab"]
    assert listed["plugin"] == "matlab = sw_matlab:MatFileSource" and listed["extensions"] == [".mat"]
    assert listed["installed"]
    # processes ship its layers to workers like any other source's
    procs = spectralwatch.analyze(path, executor="processes", workers=2)
    assert procs.details[cols].equals(report.details[cols])


def test_built_in_readers_come_first(tmp_path, installed_plugin):
    rng = np.random.default_rng(1)
    np.savez(tmp_path / "m.npz", a=rng.standard_normal((20, 10)))
    assert type(open_source(tmp_path / "m.npz")).__name__ == "NpzFileSource"


def test_a_broken_plugin_is_skipped_with_a_warning(tmp_path, installed_plugin):
    info = installed_plugin / "sw_matlab-0.1.dist-info"
    (info / "entry_points.txt").write_text("[spectralwatch.sources]\nbroken = sw_missing_module:Reader\n"
                                           "matlab = sw_matlab:MatFileSource\nnot_a_reader = sw_matlab:NUMERIC\n")
    with pytest.warns(RuntimeWarning) as caught:
        readers = plugin_sources(refresh=True)
    text = " ".join(str(w.message) for w in caught)
    assert "'broken'" in text and "sw-matlab" in text and "ModuleNotFoundError" in text
    assert "'not_a_reader'" in text and "can_open(obj) and layers()" in text
    assert [ep.name for ep, _ in readers] == ["matlab"]
    path, _ = _mat(tmp_path)
    assert len(spectralwatch.analyze(path).details) == 2


def test_docs_plugin_example_is_this_plugin():
    from pathlib import Path

    docs = (Path(__file__).resolve().parents[1] / "docs" / "integrations.md").read_text()
    assert PLUGIN.strip() in docs

"""Test tiers: the default run is the fast tier; the heavy tiers are marked here and run by .ci/run.

Markers (pyproject.toml): ``reference`` (WeightWatcher 0.7.7 run side by side), ``models`` (real
networks downloaded once from PyPI wheels), ``formats`` (Keras, ONNX, GGUF, JAX, PEFT readers on files
built in the tests), ``dask``, ``fuzz``, ``integrations`` (real Lightning / Keras / Trainer training
runs and a Jupyter kernel), ``slow``. A test gets its tier marker from its file (:data:`TIER_FILES`)
or from what its code (and its fixtures' code) calls; and a check after every test fails one that ran
the reference or fetched a real network without the marker, so the fast tier never does either.
"""

from __future__ import annotations

import inspect

import pytest

import realmodels
import reference

#: test files whose every test belongs to a tier
TIER_FILES = {
    "test_fuzz.py": "fuzz",
    "test_formats.py": "formats",
    "test_gguf.py": "formats",
    "test_lora.py": "formats",
    "test_parity.py": "reference",
    "test_callbacks.py": "integrations",
    "test_notebook.py": "integrations",
}
_REFERENCE_WORDS = ("run_reference", "import_reference", "requires_reference", "skip_unless_reference",
                    "make_watcher", "weightwatcher")
_MODEL_WORDS = ("fetch(", "fetch_or_raise(", "load_real(")


def _sources(item) -> str:
    """The code of the test function and of every fixture it uses (directly or through others)."""
    texts = []
    funcs = [getattr(item, "function", None)]
    info = getattr(item, "_fixtureinfo", None)
    for name in getattr(info, "names_closure", ()):
        for fixturedef in (info.name2fixturedefs.get(name) or ()):
            funcs.append(fixturedef.func)
    for func in funcs:
        try:
            texts.append(inspect.getsource(func))
        except (OSError, TypeError):
            pass
    return "\n".join(texts)


def pytest_collection_modifyitems(config, items):
    for item in items:
        tier = TIER_FILES.get(item.path.name)
        if tier:
            item.add_marker(tier)
        code = _sources(item)
        if any(word in code for word in _REFERENCE_WORDS):
            item.add_marker("reference")
        if any(word in code for word in _MODEL_WORDS):
            item.add_marker("models")


@pytest.fixture(autouse=True)
def _tier_check(request):
    """Fail a test that ran the reference or fetched a real network without its tier marker."""
    reference.USED.clear()
    realmodels.USED.clear()
    yield
    marks = {m.name for m in request.node.iter_markers()}
    if reference.USED and "reference" not in marks:
        pytest.fail("this test runs WeightWatcher 0.7.7 but is not marked 'reference' (tests/conftest.py)")
    if realmodels.USED and "models" not in marks:
        pytest.fail(f"this test fetches {realmodels.USED} but is not marked 'models' (tests/conftest.py)")

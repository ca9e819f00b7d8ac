"""Run the reference implementation, WeightWatcher 0.7.7, side by side with spectralwatch.

WeightWatcher is a test-only optional dependency: we only *run* it. Everything here is quiet
(its prints, warnings and log records are swallowed) and never hands it an object we still need,
because it modifies torch modules it is given (it sets a ``longname`` attribute on every submodule).
"""

from __future__ import annotations

import contextlib
import copy
import importlib.util
import io
import logging
import os
import warnings

__all__ = ["REFERENCE_VERSION", "SKIP_REASON", "skip_reason", "reference_available", "requires_reference",
           "skip_unless_reference", "import_reference", "run_reference", "run_reference_summary", "quiet"]

REFERENCE_VERSION = "0.7.7"
SKIP_REASON = (f"weightwatcher {REFERENCE_VERSION} is not installed: pip install weightwatcher=={REFERENCE_VERSION} "
               "to run the parity tests")

_available = None


#: set when a test runs the reference (conftest.py checks its marker)
USED: list = []


def _installed_version():
    try:
        from importlib.metadata import PackageNotFoundError, version
    except ImportError:  # pragma: no cover
        return None
    try:
        return version("weightwatcher")
    except PackageNotFoundError:
        return None


def reference_available() -> bool:
    """True when weightwatcher==0.7.7 is installed and importable (checked once, without importing it)."""
    global _available
    if _available is None:
        if os.environ.get("SPECTRALWATCH_REFERENCE_DISABLE"):  # to check the skip path
            _available = False
            return False
        _available = importlib.util.find_spec("weightwatcher") is not None and _installed_version() == REFERENCE_VERSION
    return _available


def skip_reason() -> str:
    """Why the parity tests skip (the installed version is named when it is the wrong one)."""
    found = _installed_version()
    if found and found != REFERENCE_VERSION and not os.environ.get("SPECTRALWATCH_REFERENCE_DISABLE"):
        return (f"weightwatcher {found} is installed, the parity tests need {REFERENCE_VERSION}: "
                f"pip install weightwatcher=={REFERENCE_VERSION} to run them")
    return SKIP_REASON


def _marker():
    import pytest

    return pytest.mark.skipif(not reference_available(), reason=skip_reason())


#: ``@requires_reference`` on a test, or ``pytestmark = [requires_reference]`` (None where pytest is missing,
#: e.g. in the benchmark script)
requires_reference = _marker() if importlib.util.find_spec("pytest") else None


def skip_unless_reference():
    """Call inside a test or fixture: skips it when the reference is missing."""
    import pytest

    if not reference_available():
        pytest.skip(skip_reason())


@contextlib.contextmanager
def quiet():
    """Silence stdout, stderr, Python warnings and all logging (the reference is chatty)."""
    sink = io.StringIO()
    prev_disable = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
            warnings.simplefilter("ignore")
            yield sink
    finally:
        logging.disable(prev_disable)


def import_reference():
    """Import weightwatcher quietly (its import prints; it also configures logging)."""
    USED.append(True)  # the tier check in conftest.py: a test that runs the reference is marked `reference`
    with quiet():
        import weightwatcher

    return weightwatcher


def _safe_copy(model):
    """A copy the reference may modify: deep copy of a torch module, shallow copy of a dict."""
    try:
        import torch
    except ImportError:  # pragma: no cover
        torch = None
    if torch is not None and isinstance(model, torch.nn.Module):
        return copy.deepcopy(model)
    if isinstance(model, dict):
        return dict(model)  # the reference does not write into tensors of a state dict
    return model


def make_watcher(model):
    ww = import_reference()
    with quiet():
        return ww.WeightWatcher(model=_safe_copy(model))


def run_reference(model, **kwargs):
    """``weightwatcher.WeightWatcher(model=copy).analyze(**kwargs)``, silenced; returns the details DataFrame.

    ``model``: a torch module (deep-copied first) or a state dict of tensors (load files with
    :func:`realmodels.load_state_dict` first: the reference cannot read a path).
    """
    return run_reference_summary(model, **kwargs)[0]


def run_reference_summary(model, **kwargs):
    """Like :func:`run_reference`, returns ``(details, summary dict)``."""
    ww = import_reference()
    with quiet():
        watcher = ww.WeightWatcher(model=_safe_copy(model))
        details = watcher.analyze(**kwargs)
        summary = watcher.get_summary(details)
    return details, dict(summary)

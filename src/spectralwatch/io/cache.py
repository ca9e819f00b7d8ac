"""The on-disk eigenvalue cache (``cache_dir=``): a layer's eigenvalues kept under a hash of its content.

Each entry is ``<key>.npz`` holding ``evals`` and ``route``; the key hashes the matrices' content
(scaled stack, float64 bits) and what shapes the spectrum (the eigenvalue route and the device),
so re-running with other fit options costs only the reading and hashing of the weights. Entries are
written atomically (a temporary file, then a rename); a failed write only warns.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from ..core.matrices import LayerMatrices
from ..core.spectrum import Spectrum

__all__ = ["cache_key", "cache_path", "load_entry", "store_entry"]


def cache_key(mats: LayerMatrices, method: str, device: str) -> str:
    """Hash of the matrices' content (scaled stack, float64 bits) and of what shapes the spectrum."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((mats.stack.shape, mats.eval_scale, method, device.split(":")[0])).encode())
    h.update(memoryview(np.ascontiguousarray(mats.stack)).cast("B"))
    return h.hexdigest()


def cache_path(cache_dir, mats: LayerMatrices, method: str, device: str) -> Path:
    """Where the entry of these matrices lives in ``cache_dir``."""
    return Path(cache_dir) / f"{cache_key(mats, method, device)}.npz"


def load_entry(path: Path) -> Spectrum | None:
    """The cached spectrum at ``path``; None on a miss or an unreadable entry (then recomputed)."""
    try:
        with np.load(path, allow_pickle=False) as hit:
            evals = hit["evals"]
            return Spectrum(evals=evals, svals=np.sqrt(evals), route=str(hit["route"]) + "+cache")
    except (OSError, KeyError, ValueError):
        return None


def store_entry(path: Path, spec: Spectrum) -> None:
    """Write a cache entry atomically; a failed write (full disk, read-only folder) only warns:
    the spectrum is computed, the layer's row does not depend on the cache."""
    tmp = path.with_name(f"{path.stem}.{os.getpid()}.{threading.get_ident()}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(tmp, evals=spec.evals, route=np.array(spec.route))
        os.replace(tmp, path)  # atomic: concurrent workers never read a half-written entry
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        warnings.warn(f"could not write the eigenvalue cache entry {path}: {exc.strerror or exc}; the analysis "
                      "goes on without caching this layer", RuntimeWarning, stacklevel=2)

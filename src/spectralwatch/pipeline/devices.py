"""Eigenvalues on an accelerator (CUDA, Apple MPS) through torch, and the on-disk eigenvalue cache.

``device='cpu'`` (the default) uses numpy/LAPACK. ``device='cuda'`` (``'cuda:1'``, ...) forms the
Gram matrices and calls the symmetric eigensolver on the GPU in float64, a layer's slices in one
batch; the small eigenvalues that the Gram route cannot resolve are then recomputed on the CPU
with the SVD, exactly as on the CPU route, so the rank columns stay right. ``'mps'`` has no
float64: it computes in float32 (the alphas then differ from the float64 reference, see
docs/performance.md). When the asked device is not available the analysis runs on the CPU and
a ``RuntimeWarning`` says so.

The cache (``cache_dir=``) stores each layer's eigenvalues under a hash of the tensor's content
and of the options that shape the spectrum, so re-running with other fit options costs only the
reading and hashing of the weights.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import warnings
from pathlib import Path

import numpy as np

from ..errors import InvalidParameterError
from ..core.matrices import LayerMatrices
from ..core.spectrum import Spectrum, _needs_svd, _svd_evals, layer_spectrum

__all__ = ["resolve_device", "compute_spectrum", "torch_eigenvalues", "cache_key"]


def resolve_device(device) -> str:
    """Validate ``device``; return the device to use ('cpu' after a warned fallback)."""
    if device is None or device == "cpu":
        return "cpu"
    if not isinstance(device, str) or not (device == "mps" or device.split(":")[0] == "cuda"):
        raise InvalidParameterError(
            f"The 'device' parameter of analyze must be 'cpu', 'cuda', 'cuda:N' or 'mps'. Got {device!r}.")
    try:
        import torch
    except ImportError:
        warnings.warn(f"device={device!r} needs torch (pip install 'spectralwatch[torch]'), which is not "
                      "installed; computing on the CPU.", RuntimeWarning, stacklevel=3)
        return "cpu"
    ok = torch.backends.mps.is_available() if device == "mps" else torch.cuda.is_available()
    if device.startswith("cuda:") and ok:
        ok = int(device.split(":")[1]) < torch.cuda.device_count()
    if not ok:
        warnings.warn(f"device={device!r} is not available on this machine; computing on the CPU.",
                      RuntimeWarning, stacklevel=3)
        return "cpu"
    return device


def torch_eigenvalues(stack: np.ndarray, device) -> np.ndarray:
    """Eigenvalues of ``W_i^T W_i`` for a stack ``(k, N, M)``, computed by torch on ``device``.

    float64 everywhere but on MPS (float32). Returns a numpy array ``(k, M)``, ascending.
    """
    import torch

    dtype = torch.float32 if str(device).startswith("mps") else torch.float64
    t = torch.from_numpy(np.ascontiguousarray(stack)).to(device=device, dtype=dtype)
    gram = torch.matmul(t.transpose(1, 2), t)
    del t
    evals = torch.linalg.eigvalsh(gram)
    return evals.to("cpu", dtype=torch.float64).numpy()


def _device_spectrum(mats: LayerMatrices, device: str, method: str, thresholds: tuple) -> Spectrum:
    evals = torch_eigenvalues(mats.stack, device)
    route = f"gram-{device.split(':')[0]}"
    if method == "auto":
        scaled = tuple(t / mats.eval_scale for t in thresholds)
        redo = [i for i in range(mats.rf) if _needs_svd(evals[i], mats.N, scaled)]
        for i in redo:
            evals[i] = _svd_evals(mats.stack[i])
        if redo:
            route += "+svd"
    np.maximum(evals, 0.0, out=evals)
    if mats.eval_scale != 1.0:
        evals = evals * mats.eval_scale
    return Spectrum(evals=evals, svals=np.sqrt(evals), route=route)


def cache_key(mats: LayerMatrices, method: str, device: str) -> str:
    """Hash of the matrices' content (scaled stack, float64 bits) and of what shapes the spectrum."""
    h = hashlib.blake2b(digest_size=20)
    h.update(repr((mats.stack.shape, mats.eval_scale, method, device.split(":")[0])).encode())
    h.update(memoryview(np.ascontiguousarray(mats.stack)).cast("B"))
    return h.hexdigest()


def compute_spectrum(mats: LayerMatrices, options, thresholds: tuple) -> Spectrum:
    """The layer's spectrum on ``options.device``, through the cache when ``options.cache_dir`` is set."""
    device = getattr(options, "device", "cpu") or "cpu"
    method = options.svd_method
    cache_dir = getattr(options, "cache_dir", None)
    path = None
    if cache_dir is not None:
        path = Path(cache_dir) / f"{cache_key(mats, method, device)}.npz"
        try:
            with np.load(path, allow_pickle=False) as hit:
                evals = hit["evals"]
                return Spectrum(evals=evals, svals=np.sqrt(evals), route=str(hit["route"]) + "+cache")
        except (OSError, KeyError, ValueError):
            pass  # a miss, or an unreadable entry: recompute and overwrite
    if device == "cpu":
        spec = layer_spectrum(mats, method=method, thresholds=thresholds)
    else:
        spec = _device_spectrum(mats, device, method, thresholds)
    if path is not None:
        _store(path, spec)
    return spec


def _store(path: Path, spec: Spectrum) -> None:
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

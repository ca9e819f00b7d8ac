"""Where a layer's eigenvalues are computed: the CPU, an accelerator, or the on-disk cache.

``device='cpu'`` (the default) uses numpy/LAPACK (:func:`spectralwatch.core.spectrum.layer_spectrum`);
``'cuda'``, ``'cuda:N'`` and ``'mps'`` go through torch
(:func:`spectralwatch.core.spectrum.device_spectrum`). When the asked device is not available the
analysis runs on the CPU and a ``RuntimeWarning`` says so. ``cache_dir=`` keeps each layer's
eigenvalues on disk (:mod:`spectralwatch.io.cache`).
"""

from __future__ import annotations

import warnings

from ..core.matrices import LayerMatrices
from ..core.spectrum import Spectrum, device_spectrum, layer_spectrum
from ..errors import InvalidParameterError
from ..io.cache import cache_path, load_entry, store_entry

__all__ = ["resolve_device", "compute_spectrum"]


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


def compute_spectrum(mats: LayerMatrices, options, thresholds: tuple) -> Spectrum:
    """The layer's spectrum on ``options.device``, through the cache when ``options.cache_dir`` is set."""
    device = getattr(options, "device", "cpu") or "cpu"
    method = options.svd_method
    cache_dir = getattr(options, "cache_dir", None)
    path = None
    if cache_dir is not None:
        path = cache_path(cache_dir, mats, method, device)
        hit = load_entry(path)
        if hit is not None:
            return hit
    if device == "cpu":
        spec = layer_spectrum(mats, method=method, thresholds=thresholds)
    else:
        spec = device_spectrum(mats, device, method, thresholds)
    if path is not None:
        store_entry(path, spec)
    return spec

"""Where a layer's eigenvalues are computed: the CPU, an accelerator, or the on-disk cache.

``device='cpu'`` (the default) uses numpy/LAPACK (:func:`spectralwatch.core.spectrum.layer_spectrum`);
``'cuda'``, ``'cuda:N'`` and ``'mps'`` go through torch
(:func:`spectralwatch.core.spectrum.device_spectrum`). When the asked device is not available the
analysis runs on the CPU and a ``RuntimeWarning`` says so. ``cache_dir=`` keeps each layer's
eigenvalues on disk (:mod:`spectralwatch.io.cache`): every entry is checked against the layer's
weights before it is used, and the folder is kept under ``cache_max_bytes``.
"""

from __future__ import annotations

import warnings

from ..core.matrices import LayerMatrices
from ..core.spectrum import Spectrum, device_spectrum, layer_spectrum
from ..options import OPTIONS, SpectrumConfig, bad_value
from ..options.constraints import Rejected
from ..io.cache import cache_path, load_entry, store_entry

__all__ = ["resolve_device", "compute_spectrum"]


def resolve_device(device) -> str:
    """The device to use for a valid ``device`` option: itself when available, else 'cpu' after a
    ``RuntimeWarning`` (a device name that is not valid raises InvalidParameterError)."""
    try:
        device = OPTIONS["device"].constraint.check(device)
    except Rejected:
        raise bad_value("device", "analyze", OPTIONS["device"].constraint.text, device) from None
    if device == "cpu":
        return "cpu"
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


def compute_spectrum(mats: LayerMatrices, config: SpectrumConfig, thresholds: tuple) -> Spectrum:
    """The layer's spectrum on ``config.device``, through the cache when ``config.cache_dir`` is set."""
    device, method, cache_dir = config.device, config.svd_method, config.cache_dir
    path = None
    if cache_dir is not None:
        path = cache_path(cache_dir, mats, method, device)
        hit = load_entry(path, mats)  # checked against the matrices (io/cache.py); a bad entry is recomputed
        if hit is not None:
            return hit
    if device == "cpu":
        spec = layer_spectrum(mats, method=method, thresholds=thresholds)
    else:
        spec = device_spectrum(mats, device, method, thresholds)
    if path is not None:
        max_bytes = config.cache_max_bytes
        store_entry(path, spec, max_bytes)
    return spec

"""One layer through the pipeline: tensor -> matrices -> spectrum -> fit -> metrics -> row(s).

This module only wires the pure stages together and turns failures into rows; the maths lives in
:mod:`~spectralwatch.matrices`, :mod:`~spectralwatch.spectrum`, :mod:`~spectralwatch.fit` and
:mod:`~spectralwatch.metrics`. A failure in one layer (bad values, a failed fit, even a
``MemoryError``) becomes that layer's ``status='failed'`` row with the reason in ``message``; it
never stops the analysis of the other layers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .analyses import LayerContext, extra_columns
from ..core.fit.powerlaw import PowerLawFit, fit_checked
from ..core.fit.quality import reliable_fit
from .stats_columns import fit_kwargs
from ..core.matrices import LayerMatrices, NonFiniteWeightsError, layer_matrices, matrix_geometry
from ..core.metrics import alpha_metrics, spectral_metrics
from ..core.precision import storage_eps, storage_noise_bound
from ..options import FitConfig, Options
from ..io.sources.base import ANALYSABLE_TYPES, LayerRef
from .spectra import compute_spectrum

__all__ = ["LayerResult", "analyze_layer", "failed_result", "skip_reason", "layer_geometry"]

#: the layer's threshold on eigenvalues that enter the power-law fit (WeightWatcher: 1e-5)
FIT_THRESHOLD = 1e-5


@dataclass
class LayerResult:
    """The outcome of one analysed matrix group (a layer, or one conv slice when unpooled)."""

    row: dict
    evals: np.ndarray | None = None
    fit: PowerLawFit | None = field(default=None, repr=False)


def layer_geometry(ref: LayerRef, options: Options) -> dict:
    """Identity and shape columns of a layer, known before loading it."""
    select = options.select
    N, M, rf = matrix_geometry(ref.layer_type, ref.shape, groups=ref.groups, grouped_conv=select.grouped_conv)
    num_evals = M * rf if select.pool else M
    if ref.rank:  # a low-rank product (LoRA): only its r non-zero eigenvalues are computed
        num_evals = min(num_evals, ref.rank)
    return {
        "layer_id": ref.layer_id, "name": ref.name, "longname": ref.longname,
        "layer_type": ref.layer_type, "N": N, "M": M, "Q": N / M if M else -1.0, "rf": rf,
        "num_evals": num_evals, "dtype": ref.dtype, "quant": ref.quant,
    }


def skip_reason(ref: LayerRef, geometry: dict, options: Options) -> tuple[str, str]:
    """``(rule, reason)`` why a candidate layer is not analysed; ``('', '')`` when it is.

    The rules are WeightWatcher's: analysable type, the ``layers`` filter, ``min_evals`` /
    ``max_evals`` on the number of eigenvalues, ``max_N`` on the long side.
    """
    if ref.skip:
        return "source", ref.skip
    if ref.layer_type not in ANALYSABLE_TYPES:
        return "type", f"layer type '{ref.layer_type}' has no weight matrix to analyse"
    select = options.select
    if not select.layers.keeps(ref.layer_id, ref.name, ref.longname, ref.layer_type):
        return "layers", "not selected by the layers option"
    if geometry["M"] == 0:
        return "shape", f"tensor of shape {tuple(ref.shape)} has no matrix"
    n = geometry["num_evals"]
    if select.min_evals and n < select.min_evals:
        return "min_evals", f"{n} eigenvalues < min_evals={select.min_evals}"
    if select.max_evals and n > select.max_evals:
        return "max_evals", f"{n} eigenvalues > max_evals={select.max_evals}"
    if select.max_N and geometry["N"] > select.max_N:
        return "max_N", f"N={geometry['N']} > max_N={select.max_N}"
    return "", ""


_FIT_NAN = {"alpha": -1.0, "xmin": -1.0, "xmax": -1.0, "D": -1.0, "sigma": -1.0, "num_pl_spikes": -1,
            "n_tail": 0}


def _failed_row(base: dict, message: str, has_esd: bool = False) -> dict:
    row = dict(base)
    row.update(has_esd=has_esd, status="failed", warning="", fit_reliable=False, message=message)
    return row


def _fit_columns(fit: PowerLawFit, config: FitConfig) -> dict:
    cols = {"alpha": fit.alpha, "xmin": fit.xmin, "xmax": fit.xmax, "D": fit.D, "sigma": fit.sigma,
            "num_pl_spikes": fit.num_pl_spikes, "n_tail": fit.n_tail, "fit_method": fit.method}
    if config.fix_fingers == "clip_xmax":
        cols.update(num_fingers=fit.num_fingers, raw_alpha=fit.raw_alpha)
    return cols


def spectrum_rows(base: dict, mats: LayerMatrices, options: Options) -> list[LayerResult]:
    spectrum, fitting = options.spectrum, options.fitting
    spec = compute_spectrum(mats, spectrum, (spectrum.tolerance, FIT_THRESHOLD))
    pooled = options.matrices.pool or mats.rf == 1
    groups = [(None, spec.evals, spec.svals, mats.stack)] if pooled else [
        (i, spec.evals[i:i + 1], spec.svals[i:i + 1], mats.stack[i:i + 1]) for i in range(mats.rf)]
    # the rank at the stored precision (core/precision.py): the rounding-noise bound of each matrix
    eps, _ = storage_eps(base.get("dtype", ""), base.get("quant", ""))
    noise = storage_noise_bound(mats.stack, eps, mats.eval_scale)
    results = []
    for slice_id, ev, sv, stack in groups:
        row = dict(base)
        if not options.matrices.pool:
            row["slice_id"] = 0 if slice_id is None else slice_id
        evals = np.sort(ev.ravel())
        tol = noise if slice_id is None else noise[slice_id:slice_id + 1]
        metrics = spectral_metrics(evals, sv, mats.N, tolerance=spectrum.tolerance, storage_tol=tol)
        row.update(has_esd=True, **metrics.as_dict())
        if metrics.lambda_max <= 0:
            row.update(_FIT_NAN, status="failed", warning="", fit_reliable=False, alpha_weighted=np.nan,
                       log_alpha_norm=np.nan,
                       message="all eigenvalues are zero (all-zero weights)")
            results.append(LayerResult(row, evals, None))
            continue
        fit = fit_checked(evals, xmax=fitting.xmax, fix_fingers=fitting.fix_fingers,
                          xmin_max=fitting.xmin_max, max_fingers=fitting.max_fingers,
                          finger_thresh=fitting.finger_thresh, thresh=FIT_THRESHOLD, ties="reference",
                          **fit_kwargs(fitting))
        row.update(_fit_columns(fit, fitting))
        row.update(alpha_metrics(evals, fit.alpha if fit.status == "success" else -1.0))
        row.update(status=fit.status, warning=fit.warning, message=fit.message, spectrum_route=spec.route)
        if fitting.fit == "truncated_power_law":
            from ..core.fit.tpl_columns import tpl_columns

            row.update(tpl_columns(evals, fit, fitting))
        row["fit_reliable"] = reliable_fit(row["status"], evals.size)
        ctx = LayerContext(stack=stack, eval_scale=mats.eval_scale, evals=evals, fit=fit, row=dict(row),
                           options=options.analyses, layer_id=base["layer_id"], slice_id=slice_id or 0,
                           weights=not (options.matrices.inverse or base.get("Xflag")))
        row.update(extra_columns(ctx))
        results.append(LayerResult(row, evals, fit))
    return results


def failed_result(geometry: dict, message: str) -> LayerResult:
    """A ``status='failed'`` result for a layer that could not be analysed at all."""
    return LayerResult(_failed_row(geometry, message))


def analyze_layer(ref: LayerRef, options: Options, geometry: dict | None = None) -> list[LayerResult]:
    """Analyse one layer; never raises (``KeyboardInterrupt`` aside): any error becomes the layer's
    ``status='failed'`` row, with the exception's type and text in ``message``."""
    base = geometry if geometry is not None else layer_geometry(ref, options)
    try:
        weights = ref.load()
        matrices = options.matrices
        mats = layer_matrices(weights, ref.layer_type, conv2d_norm=matrices.conv2d_norm, pooled=matrices.pool,
                              groups=ref.groups, grouped_conv=matrices.grouped_conv)
        del weights
        if matrices.inverse:  # analyse the pseudo-inverse: eigenvalues 1/lambda (core/cross_layer.py)
            from ..core.cross_layer import inverse_matrices

            mats = inverse_matrices(mats)
        return spectrum_rows(base, mats, options)
    except NonFiniteWeightsError as exc:
        return [LayerResult(_failed_row(base, str(exc)))]
    except MemoryError:
        return [LayerResult(_failed_row(base, "out of memory while analysing this layer"))]
    except RuntimeError as exc:
        if _device_out_of_memory(exc):
            return [LayerResult(_failed_row(base, f"out of memory on {options.spectrum.device} while analysing this layer"))]
        return [LayerResult(_failed_row(base, f"{type(exc).__name__}: {exc}"))]
    except Exception as exc:  # noqa: BLE001 - anything else (a damaged tensor in a file, an odd dtype,
        # a bug): this layer's row says what happened, the other layers are still analysed
        return [LayerResult(_failed_row(base, f"{type(exc).__name__}: {exc}"))]


def _device_out_of_memory(exc: RuntimeError) -> bool:
    """torch's out-of-memory error of an accelerator (``torch.OutOfMemoryError``, a RuntimeError),
    recognised without importing torch."""
    return type(exc).__name__ == "OutOfMemoryError" or "out of memory" in str(exc).lower()

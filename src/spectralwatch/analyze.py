"""Orchestration: open the source, select layers, run each through the pipeline, build the Report.

No maths here: see :mod:`spectralwatch.layer` for one layer's pipeline. Layers are loaded one at
a time and released as soon as their eigenvalues exist, so the driver never holds the model's
weights (for lazy sources: safetensors files and folders, ``.npz``).
"""

from __future__ import annotations

from collections import Counter

from ._progress import Progress
from .errors import NoLayersError
from .layer import analyze_layer, layer_geometry, skip_reason
from .options import Options, make_options
from .report import Report
from .sources import open_source

__all__ = ["analyze", "describe"]


def _select(model, options: Options):
    """Open ``model`` and split its candidate layers into (to analyse, skipped)."""
    source = open_source(model, start_id=options.start_ids)
    chosen, skipped = [], []
    for ref in source.layers():
        geometry = layer_geometry(ref, options)
        rule, reason = skip_reason(ref, geometry, options)
        if rule:
            skipped.append({"layer_id": ref.layer_id, "name": ref.name, "layer_type": ref.layer_type,
                            "shape": tuple(ref.shape), "rule": rule, "reason": reason})
        else:
            chosen.append((ref, geometry))
    return source, chosen, skipped


def _no_layers_message(source, skipped) -> str:
    where = getattr(source, "description", "") or getattr(source, "format", "the model")
    if not skipped:
        return f"No layer with weights was found in {where}."
    rules = Counter(s["rule"] for s in skipped)
    listed = "; ".join(f"{n} by {rule}" for rule, n in rules.most_common())
    return (f"No layer of {where} can be analysed with these options ({len(skipped)} candidate layers "
            f"skipped: {listed}). Check the 'layers', 'min_evals', 'max_evals' and 'max_N' options.")


def analyze(model, *, layers=None, min_evals=8, max_evals=15000, max_N=50000, pool=True,
            conv2d_norm=True, start_ids=None, fit="PL", xmax=None, fix_fingers=None, xmin_max=None,
            max_fingers=10, finger_thresh=1.0, tolerance=1e-6, svd_method="auto", rng=None, progress=False,
            **reference_options) -> Report:
    """Analyse the weight matrices of a model and return a :class:`~spectralwatch.report.Report`.

    Parameters
    ----------
    model : object or path
        A ``torch.nn.Module``, a state dict (mapping of names to tensors or arrays), a numpy
        array, or a path (str / Path) to a ``.safetensors``, ``.pt``/``.pth``/``.bin``, ``.npz``
        file or a folder of (sharded) safetensors.
    layers : int, str or list, optional
        Layer ids to keep (negative ids: to drop), layer types (``'dense'``, ``'conv2d'``...), or
        names (``'-name'`` to drop). Several kinds combine with AND.
    min_evals, max_evals : int
        Skip layers with fewer / more eigenvalues (``M * rf`` pooled, ``M`` unpooled).
    max_N : int
        Skip layers whose long side exceeds it (the vocabulary embedding of an LLM).
    pool : bool
        Pool the eigenvalues of all kernel positions of a conv layer into one ESD (default), or
        give one row per kernel position (``slice_id`` column).
    conv2d_norm : bool
        Scale conv2d eigenvalues by 1/2 (pooled) or rf/2 (unpooled), like WeightWatcher.
    start_ids : int, optional
        First layer id (default: 0 for torch modules, 1 for state dicts and files).
    fit : {'PL'}
        Power-law fit of the ESD tail (``'TPL'`` arrives with the truncated power law).
    xmax : None, 'force' or int
        An int k drops the k largest eigenvalues before fitting.
    fix_fingers : {None, 'xmin_peak', 'clip_xmax'}
        Guard against spurious large alphas from finite-size outliers; see
        :func:`spectralwatch.fit.fit_power_law`.
    xmin_max, max_fingers, finger_thresh :
        Parameters of ``fix_fingers``.
    tolerance : float
        ``weak_rank_loss`` counts eigenvalues below it.
    svd_method : {'auto', 'gram', 'svd'}
        Eigenvalue route, see :func:`spectralwatch.spectrum.layer_spectrum`. WeightWatcher's
        ``'fast'`` / ``'accurate'`` mean ``'auto'``.
    rng : None, int or numpy.random.Generator
        Seed of every random step (randomized ESDs, bootstraps). Each layer derives its own
        generator from it and its id, so results do not depend on execution order.
    progress : bool
        Draw a progress line on stderr.
    **reference_options
        Other WeightWatcher ``analyze()`` keywords. Those this version does not implement raise
        :class:`~spectralwatch.errors.NotYetSupportedError` unless given their "off" value.

    Raises
    ------
    UnknownFormatError, ModelFileNotFoundError, CorruptFileError, UnsafeFileError
        When the model cannot be opened.
    NoLayersError
        When no layer can be analysed with these options.
    InvalidParameterError
        For an option with a bad value.
    """
    options = make_options("analyze", layers=layers, min_evals=min_evals, max_evals=max_evals, max_N=max_N,
                           pool=pool, conv2d_norm=conv2d_norm, start_ids=start_ids, fit=fit, xmax=xmax,
                           fix_fingers=fix_fingers, xmin_max=xmin_max, max_fingers=max_fingers,
                           finger_thresh=finger_thresh, tolerance=tolerance, svd_method=svd_method, rng=rng,
                           **reference_options)
    return run(model, options, progress=progress)


def run(model, options: Options, *, progress=False) -> Report:
    """Analyse ``model`` with already validated ``options``."""
    source, chosen, skipped = _select(model, options)
    if not chosen:
        raise NoLayersError(_no_layers_message(source, skipped))
    rows, evals, fits = [], {}, {}
    with Progress(len(chosen), enabled=bool(progress)) as bar:
        for ref, geometry in chosen:
            for result in analyze_layer(ref, options, geometry):
                key = (result.row["layer_id"], result.row.get("slice_id", 0))
                rows.append(result.row)
                if result.evals is not None:
                    evals[key] = result.evals
                if result.fit is not None:
                    fits[key] = result.fit
            bar.update(ref.longname or ref.name)
    return Report(rows, evals, fits, skipped, options, source=getattr(source, "description", ""))


def describe(model, *, layers=None, min_evals=8, max_evals=15000, max_N=50000, pool=True, start_ids=None,
             conv2d_norm=True, **reference_options):
    """The layers ``analyze`` would analyse, without computing anything (nothing is loaded).

    Returns a pandas DataFrame with ``layer_id, name, longname, layer_type, N, M, Q, rf,
    num_evals`` (predicted) and ``dtype``; an empty frame when no layer qualifies.
    """
    import pandas as pd

    options = make_options("describe", layers=layers, min_evals=min_evals, max_evals=max_evals, max_N=max_N,
                           pool=pool, start_ids=start_ids, conv2d_norm=conv2d_norm, **reference_options)
    _, chosen, _ = _select(model, options)
    cols = ["layer_id", "name", "longname", "layer_type", "N", "M", "Q", "rf", "num_evals", "dtype"]
    return pd.DataFrame([g for _, g in chosen], columns=cols)


def esd(model, layer, *, pool=True, conv2d_norm=True, start_ids=None, svd_method="auto"):
    """Sorted eigenvalues of one layer (by id or name), computed without fitting anything."""
    import numpy as np

    from .matrices import layer_matrices
    from .spectrum import layer_spectrum

    options = make_options("get_ESD", layers=[layer], min_evals=0, max_evals=None, max_N=None, pool=pool,
                           conv2d_norm=conv2d_norm, start_ids=start_ids, svd_method=svd_method)
    _, chosen, skipped = _select(model, options)
    if not chosen:
        reasons = [s["reason"] for s in skipped if s["rule"] != "layers"]
        why = f": {reasons[0]}" if reasons else ""
        raise KeyError(f"no analysable layer {layer!r} in this model{why}")
    ref, _ = chosen[0]
    mats = layer_matrices(ref.load(), ref.layer_type, conv2d_norm=conv2d_norm, pooled=pool)
    return np.sort(layer_spectrum(mats, method=options.svd_method).evals.ravel())

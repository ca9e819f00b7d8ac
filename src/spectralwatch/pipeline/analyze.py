"""Orchestration: open the source, select layers, run each through the pipeline, build the Report.

No maths here: see :mod:`spectralwatch.layer` for one layer's pipeline. Layers are loaded one at
a time and released as soon as their eigenvalues exist, so the driver never holds the model's
weights (for lazy sources: safetensors files and folders, ``.npz``).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from ..render.progress import Progress
from ..errors import InvalidParameterError, NoLayersError
from .executors import run_layers
from .layer import layer_geometry, skip_reason
from ..options.options import Options, make_options
from ..results.report import Report
from ..io.sources import open_model

__all__ = ["analyze", "describe"]


def select_layers(model, options: Options):
    """Open ``model`` and split its candidate layers into (to analyse, skipped)."""
    source = open_model(model, start_id=options.start_ids, base_model=options.base_model, peft=options.peft,
                        split_fused=options.split_fused, trust_pickle=options.trust_pickle)
    chosen, skipped = [], []
    for ref in source.layers():
        geometry = layer_geometry(ref, options)
        rule, reason = skip_reason(ref, geometry, options)
        if rule:
            skipped.append({"layer_id": ref.layer_id, "name": ref.name, "layer_type": ref.layer_type,
                            "shape": tuple(ref.shape), "rule": rule, "reason": reason, "geometry": geometry})
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
            workers=None, executor=None, on_result=None, done=None, **reference_options) -> Report:
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
    fit : {'PL', 'TPL', 'E_TPL'}
        Power-law fit of the ESD tail; ``'TPL'``: truncated power law (adds ``Lambda``) on the
        tail the power-law scan chose; ``'E_TPL'``: the same with ``fix_fingers='xmin_peak'``.
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
    mp_fit : bool
        Marchenko-Pastur fit of the bulk: columns ``sigma_mp``, ``num_spikes``, ``mp_softrank``,
        ``W_scale``, ``bulk_max``, ``bulk_min`` and the training ``phase`` (docs/rmt.md).
    mp_fit_method : {'quantile', 'ww'}
        How sigma is fitted: quantile least squares (default) or WeightWatcher 0.7.7's density fit.
    randomize : bool
        Compare with the spectrum of the element-wise shuffled matrices (``max_rand_eval``,
        ``rand_distance``, ``num_traps``, ``rand_*`` ...); traps in ``Report.get_traps(layer)``.
    detX, ERG : bool
        The detX / ERG condition: ``detX_num``, ``detX_val``, ``num_ERG_spikes``, ``ERG_gap``.
    progress : bool
        Draw a progress line on stderr (layer count, current layer, elapsed time and ETA).
    workers : int, optional
        Layers analysed side by side. ``None`` (default): one per core, in threads of this process
        (the eigensolver runs without the GIL), largest layers first; ``1``: one after the other.
        Results are bit-identical whatever the number and kind of workers.
    executor : None, 'serial', 'threads', 'processes', distributed.Client or 'dask://host:port'
        Where layers run (see :mod:`spectralwatch.executors`). ``None`` picks threads (or, on a
        numpy whose LAPACK cannot be called without the GIL, a process pool when the linear algebra
        pays for it). ``'processes'``: a local process pool, which survives a worker killed by the
        out-of-memory killer. With Dask, each worker reads its own tensors from file-backed models
        (paths must be visible to the workers).
    device : {'cpu', 'cuda', 'cuda:N', 'mps'}
        Where eigenvalues are computed (see :mod:`spectralwatch.pipeline.spectra`); an unavailable device
        falls back to the CPU with a ``RuntimeWarning``.
    cache_dir : str or path, optional
        Folder of an on-disk eigenvalue cache keyed by tensor content: a re-run with other fit
        options or plots skips the linear algebra.
    plot : bool
        Write the figures of every layer (and of the model) as PNG files into ``savefig``, under
        WeightWatcher's file names (see :func:`spectralwatch.plots.save_figures`); never shown.
    savefig : str, path or True
        Folder of the figures (default ``'ww-img'``, also what ``True`` means).
    deltas : bool
        With ``plot=True``, also the eigenvalue-spacing figures (``deltaEs``, ``level-stats``).
    bootstrap : int
        Fit statistics (docs/statistics.md; all off by default). ``N`` bootstrap replicates of the
        tail: a percentile confidence interval of alpha (``alpha_ci_low``, ``alpha_ci_high``, at
        ``ci_level``, default 0.9) and ``xmin_stability``. ``sigma`` is alpha's asymptotic standard
        error (Clauset, Shalizi & Newman, SIAM Review 2009, eq. 3.2).
    gof_samples : int
        ``N`` synthetic samples of the semi-parametric goodness-of-fit p-value ``gof_p``
        (Clauset et al. 2009, section 4.1).
    compare_tails : bool
        Likelihood-ratio tests of the power law against the lognormal, exponential, stretched
        exponential and truncated power law (Vuong's statistic; nested test for the truncated power
        law; Clauset et al. 2009, section 5): ``lr_<law>``, ``lr_<law>_z``, ``lr_<law>_p``, ``best_tail``.
    xmin_method : {'ks', 'peak', 'hill', 'fixed'}
        ``'ks'``: the Kolmogorov-Smirnov scan (Clauset et al. 2009; the reference, default).
        ``'peak'``: WeightWatcher's ``xmin_peak`` window (= ``fix_fingers='xmin_peak'``). ``'hill'``:
        ``xmin`` at the median eigenvalue, alpha the Hill / maximum-likelihood estimate on the top
        half (``PL_Alpha_Hill`` of TempBalance, Zhou et al., NeurIPS 2023; AlphaPruning, Lu et al.,
        NeurIPS 2024). ``'fixed'``: ``xmin=`` the given value (``xmin=`` alone implies it).
    xmin_range : (low, high)
        Bound the KS scan to ``low <= xmin <= high``.
    farms : bool
        FARMS (Hu et al., "Eigenspectrum analysis of neural networks without aspect ratio bias",
        ICML 2025): alpha of the averaged ESD of sub-matrices of aspect ratio ``farms_q`` (default
        1): ``farms_alpha``, ``farms_xmin``, ``farms_D``, ``farms_n_tail``, ``farms_windows``.
    fit_quality : bool
        The ``fit_quality`` column (implied by the options above): ``few_tail`` (under 16 tail
        eigenvalues), ``lognormal`` (a lognormal fits the tail significantly better),
        ``unstable_xmin`` (most bootstrap replicates move xmin); ``''`` when none applies.
    exclude_flagged : bool
        Leave flagged layers out of the summary, which then also holds ``num_averaged`` and
        ``num_flagged``. By default the summary averages every successful layer, as
        WeightWatcher does (``Report.num_averaged`` says how many).
    on_result : callable, optional
        ``on_result(layer_id, rows)`` is called as each layer is finished, with the layer's row
        dicts (several with ``pool=False``; they may hold private ``_...`` entries of optional
        analyses, which the details table leaves out). An exception it raises stops the analysis.
        The command line keeps its journal of finished layers with it (docs/cli.md).
    done : mapping, optional
        ``{layer_id: [row, ...]}``: rows of layers already analysed, e.g. by an interrupted run
        (those ``on_result`` was given). These layers are not analysed again; their rows take
        their place in the table, which is then identical to that of an uninterrupted run. Their
        eigenvalues and fits are not available (``get_ESD``, ``get_fit``, figures). Every id must be
        one of the layers these options select, and the rows must carry its ``layer_id`` and
        ``name``; not with ``intra`` or ``stacked``.
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
    return run(model, options, progress=progress, workers=workers, executor=executor, on_result=on_result,
               done=done)


def run(model, options: Options, *, progress=False, workers=None, executor=None, on_result=None,
        done=None) -> Report:
    """Analyse ``model`` with already validated ``options``.

    ``on_result(layer_id, rows)`` is called after each finished layer; the layers of ``done``
    (``{layer_id: [row, ...]}``) are not analysed, their rows are used (see :func:`analyze`).
    """
    source, chosen, skipped = select_layers(model, options)
    if not chosen:
        raise NoLayersError(_no_layers_message(source, skipped))
    done = _done_rows(done, chosen, options)
    if options.base_model is not None:  # already read by the driver: never shipped to workers
        options = dataclasses.replace(options, base_model=None)
    todo = [task for task in chosen if task[0].layer_id not in done]
    computed, evals, fits = [], {}, {}
    with Progress(len(todo), enabled=bool(progress)) as bar:
        if options.intra or options.stacked:  # another walk over the layers (see cross_layer.py)
            from .cross_layer import variant_walk

            walk = variant_walk(chosen, options, skipped)
        else:
            walk = run_layers(todo, options, executor=executor, workers=workers)
        for ref, results in walk:
            for result in results:
                key = (result.row["layer_id"], result.row.get("slice_id", 0))
                if result.evals is not None:
                    evals[key] = result.evals
                if result.fit is not None:
                    fits[key] = result.fit
            computed.append([result.row for result in results])
            if on_result is not None and results:
                on_result(ref.layer_id, computed[-1])
            bar.update(ref.longname or ref.name)
    if done:  # the executors yield in task order: put the done layers back in their places
        fresh = iter(computed)
        computed = [done[ref.layer_id] if ref.layer_id in done else next(fresh) for ref, _ in chosen]
    rows = [row for layer_rows in computed for row in layer_rows]
    report = Report(rows, evals, fits, skipped, options, source=getattr(source, "description", ""))
    if options.plot:
        from ..render.plots.layer import save_figures

        report.figures = save_figures(report, options.savefig)
    return report


def _done_rows(done, chosen: list, options: Options) -> dict:
    """Validate ``done`` into ``{layer_id: [row copies]}`` (see :func:`analyze`)."""
    if done is None or (hasattr(done, "__len__") and not len(done)):
        return {}
    if options.intra or options.stacked:
        raise InvalidParameterError("The 'done' parameter of analyze cannot be used with intra=True or "
                                    "stacked=True (their rows are not made layer by layer).")
    try:
        items = list(done.items())
    except (AttributeError, TypeError):
        raise InvalidParameterError(f"The 'done' parameter of analyze must be a mapping "
                                    f"{{layer_id: [row, ...]}}. Got {type(done).__name__}.") from None
    names = {ref.layer_id: ref.name for ref, _ in chosen}
    out = {}
    for layer_id, rows in items:
        if layer_id not in names:
            raise InvalidParameterError(f"The 'done' parameter of analyze holds rows of layer {layer_id!r}, "
                                        "which is not one of the layers these options select.")
        rows = [dict(row) for row in rows]
        if not rows or any(r.get("layer_id") != layer_id or r.get("name") != names[layer_id] for r in rows):
            raise InvalidParameterError(f"The 'done' rows of layer {layer_id!r} must carry its layer_id and its "
                                        f"name {names[layer_id]!r}.")
        out[layer_id] = rows
    return out


def describe(model, *, layers=None, min_evals=8, max_evals=15000, max_N=50000, pool=True, start_ids=None,
             conv2d_norm=True, skipped=False, **reference_options):
    """The layers ``analyze`` would analyse, without computing anything (nothing is loaded).

    Returns a pandas DataFrame with ``layer_id, name, longname, layer_type, N, M, Q, rf,
    num_evals`` (predicted), ``dtype`` and ``quant``; an empty frame when no layer qualifies.
    With ``skipped=True`` every candidate is listed, with ``analysed`` (bool) and ``reason`` (why
    a layer is not analysed: its type, a source's limit, the options), sorted by id.
    """
    import pandas as pd

    if not isinstance(skipped, bool):
        raise InvalidParameterError(f"The 'skipped' parameter of describe must be True or False. Got {skipped!r}.")
    options = make_options("describe", layers=layers, min_evals=min_evals, max_evals=max_evals, max_N=max_N,
                           pool=pool, start_ids=start_ids, conv2d_norm=conv2d_norm, **reference_options)
    _, chosen, dropped = select_layers(model, options)
    cols = ["layer_id", "name", "longname", "layer_type", "N", "M", "Q", "rf", "num_evals", "dtype", "quant"]
    if not skipped:
        return pd.DataFrame([g for _, g in chosen], columns=cols)
    rows = [dict(g, analysed=True, reason="") for _, g in chosen]
    rows += [dict(s["geometry"], analysed=False, reason=f"{s['rule']}: {s['reason']}") for s in dropped]
    rows.sort(key=lambda r: (r["layer_id"] < 0, r["layer_id"]))
    return pd.DataFrame(rows, columns=cols + ["analysed", "reason"])


def esd(model, layer, *, pool=True, conv2d_norm=True, start_ids=None, svd_method="auto", random=False, rng=None):
    """Sorted eigenvalues of one layer (by id or name), computed without fitting anything.

    ``random=True``: the eigenvalues of its element-wise shuffled matrices (see
    :func:`spectralwatch.rmt.shuffled_replicas`), drawn from the layer's generator derived from
    ``rng`` (the same shuffles as ``analyze(randomize=True, rng=rng)``).
    """
    import numpy as np

    from ..core.matrices import layer_matrices
    from ..core.spectrum import layer_spectrum

    options = make_options("get_ESD", layers=[layer], min_evals=0, max_evals=None, max_N=None, pool=pool,
                           conv2d_norm=conv2d_norm, start_ids=start_ids, svd_method=svd_method, rng=rng)
    _, chosen, skipped = select_layers(model, options)
    if not chosen:
        reasons = [s["reason"] for s in skipped if s["rule"] != "layers"]
        why = f": {reasons[0]}" if reasons else ""
        raise KeyError(f"no analysable layer {layer!r} in this model{why}")
    ref, _ = chosen[0]
    mats = layer_matrices(ref.load(), ref.layer_type, conv2d_norm=conv2d_norm, pooled=pool, groups=ref.groups,
                          grouped_conv=options.grouped_conv)
    from ..core.spectrum import one_blas_thread

    with one_blas_thread():  # as analyze() computes it: the same bits
        if random:
            from ..core.rng import layer_rng
            from ..core.rmt import shuffled_replicas

            draws = shuffled_replicas(mats.stack, layer_rng(options.rng, ref.layer_id), eval_scale=mats.eval_scale)
            return np.sort(np.concatenate(draws))
        return np.sort(layer_spectrum(mats, method=options.svd_method).evals.ravel())

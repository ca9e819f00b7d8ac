"""Orchestration: open the source, select layers, run each through the pipeline, build the Report.

No maths here: see :mod:`spectralwatch.pipeline.layer` for one layer's pipeline. Layers are loaded
one at a time and released as soon as their eigenvalues exist, so the driver never holds the
model's weights (for lazy sources: safetensors files and folders, ``.npz``).

The public functions validate their keywords once, against the option table
(:mod:`spectralwatch.options.schema`): their defaults are read from it and the options part of
their docstrings is written from it.
"""

from __future__ import annotations

import os
import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.matrices import layer_matrices
from ..core.rmt import shuffled_replicas
from ..core.rng import layer_rng
from ..core.spectrum import layer_spectrum, one_blas_thread
from ..errors import InvalidParameterError, LayerNotFoundError, NoLayersError
from ..io.sources import DEFAULT_MAX_WORK_RATIO, input_paths, open_model
from ..options import DEFAULTS, Options, defaults_of, document_options, keyword_values, suggest_keywords, validate
from ..render.plots.layer import save_figures
from ..render.progress import Progress
from ..results.report import Report
from .cross_layer import variant_walk
from .executors import run_layers
from .layer import layer_geometry, skip_reason
from .spectra import resolve_device

__all__ = ["analyze", "iter_analyze", "describe", "run", "select_layers", "LayerOutcome", "esd"]

D = DEFAULTS
DD = defaults_of("describe")
DE = defaults_of("get_ESD")


def select_layers(model, options: Options):
    """Open ``model`` and split its candidate layers into (to analyse, skipped)."""
    read = options.read
    source = open_model(model, start_id=read.start_ids, base_model=read.base_model, peft=read.peft,
                        split_fused=read.split_fused, trust_pickle=read.trust_pickle,
                        revision=read.revision, max_work_ratio=read.max_work_ratio)
    chosen, skipped = [], []
    for position, ref in enumerate(source.layers()):  # network order (docs/formats.md, "Layer order")
        geometry = layer_geometry(ref, options)
        rule, reason = skip_reason(ref, geometry, options)
        if rule:
            skipped.append({"layer_id": ref.layer_id, "name": ref.name, "layer_type": ref.layer_type,
                            "shape": tuple(ref.shape), "rule": rule, "reason": reason, "geometry": geometry,
                            "position": position})
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


@suggest_keywords
@document_options("analyze")
def analyze(model, *,
        layers: Any = D.layers, min_evals: int | None = D.min_evals, max_evals: int | None = D.max_evals,
        max_N: int | None = D.max_N, pool: bool = D.pool, conv2d_norm: bool = D.conv2d_norm,
        start_ids: int | None = D.start_ids, grouped_conv: str = D.grouped_conv, split_fused: bool = D.split_fused,
        peft: bool | str = D.peft, base_model: Any = D.base_model, trust_pickle: bool = D.trust_pickle,
        max_work_ratio: float | None = D.max_work_ratio, revision: str | None = D.revision,
        svd_method: str = D.svd_method, tolerance: float = D.tolerance, device: str = D.device,
        cache_dir: str | os.PathLike | None = D.cache_dir, cache_max_bytes: int | None = D.cache_max_bytes,
        fit: str = D.fit, xmax: int | str | None = D.xmax, fix_fingers: str | None = D.fix_fingers,
        xmin_max: float | None = D.xmin_max, max_fingers: int = D.max_fingers,
        finger_thresh: float = D.finger_thresh, xmin_method: str | None = D.xmin_method, xmin: float | None = D.xmin,
        xmin_range: tuple | None = D.xmin_range, rng: Any = D.rng, mp_fit: bool = D.mp_fit,
        mp_fit_method: str = D.mp_fit_method, randomize: bool = D.randomize, detX: bool = D.detX,
        vectors: bool = D.vectors, bootstrap: int = D.bootstrap, ci_level: float = D.ci_level,
        gof_samples: int = D.gof_samples, compare_tails: bool = D.compare_tails, farms: bool = D.farms,
        farms_q: float = D.farms_q, fit_quality: bool = D.fit_quality, exclude_flagged: bool = D.exclude_flagged,
        inverse: bool = D.inverse, intra: bool = D.intra, sparsify: bool = D.sparsify, stacked: bool = D.stacked,
        plot: bool = D.plot, savefig: str | os.PathLike | bool | None = D.savefig, deltas: bool = D.deltas,
        progress: bool = D.progress, workers: int | None = D.workers, executor: Any = D.executor,
        on_result: Callable | None = D.on_result, done: Mapping | None = D.done) -> Report:
    """Analyse the weight matrices of a model and return a :class:`~spectralwatch.results.report.Report`.

    Parameters
    ----------
    model : object or path
        A ``torch.nn.Module``, a state dict (mapping of names to tensors or arrays), a numpy
        array, or a path (str / Path) to a ``.safetensors``, ``.pt``/``.pth``/``.bin``, ``.npz``,
        ``.onnx``, ``.gguf``, ``.keras``/``.h5`` file or a folder of (sharded) weights.
    {options}

    Returns
    -------
    Report
        ``details`` (one row per analysed layer), ``summary`` (model means), ``skipped``, and
        per-layer eigenvalues and fits (``get_ESD``, ``get_fit``).

    Raises
    ------
    UnknownFormatError, ModelFileNotFoundError, CorruptFileError, UnsafeFileError
        When the model cannot be opened.
    NoLayersError
        When no layer can be analysed with these options.
    InvalidParameterError
        For an option with a bad value (before anything is read or computed).
    """
    values = validate("analyze", keyword_values("analyze", locals()))
    return run(model, Options.from_values(values), progress=values["progress"], workers=values["workers"],
               executor=values["executor"], on_result=values["on_result"], done=values["done"])


@dataclass(frozen=True)
class LayerOutcome:
    """One analysed layer, as :func:`iter_analyze` yields it.

    Attributes
    ----------
    layer_id, name, longname : the layer's identity
    rows : list of dict
        Its rows of the details table (one, or one per kernel position with ``pool=False``).
    evals : dict
        ``{slice_id: sorted eigenvalues}`` (empty for a failed layer or a resumed one).
    fits : dict
        ``{slice_id: PowerLawFit}``.
    """

    layer_id: int
    name: str
    longname: str
    rows: list = field(repr=False)
    evals: dict = field(default_factory=dict, repr=False)
    fits: dict = field(default_factory=dict, repr=False)

    @property
    def status(self) -> str:
        """'success' when every row succeeded, else 'failed'."""
        return "success" if all(r.get("status") == "success" for r in self.rows) else "failed"


@suggest_keywords
@document_options("iter_analyze")
def iter_analyze(model, *,
        layers: Any = D.layers, min_evals: int | None = D.min_evals, max_evals: int | None = D.max_evals,
        max_N: int | None = D.max_N, pool: bool = D.pool, conv2d_norm: bool = D.conv2d_norm,
        start_ids: int | None = D.start_ids, grouped_conv: str = D.grouped_conv, split_fused: bool = D.split_fused,
        peft: bool | str = D.peft, base_model: Any = D.base_model, trust_pickle: bool = D.trust_pickle,
        max_work_ratio: float | None = D.max_work_ratio, revision: str | None = D.revision,
        svd_method: str = D.svd_method, tolerance: float = D.tolerance, device: str = D.device,
        cache_dir: str | os.PathLike | None = D.cache_dir, cache_max_bytes: int | None = D.cache_max_bytes,
        fit: str = D.fit, xmax: int | str | None = D.xmax, fix_fingers: str | None = D.fix_fingers,
        xmin_max: float | None = D.xmin_max, max_fingers: int = D.max_fingers,
        finger_thresh: float = D.finger_thresh, xmin_method: str | None = D.xmin_method, xmin: float | None = D.xmin,
        xmin_range: tuple | None = D.xmin_range, rng: Any = D.rng, mp_fit: bool = D.mp_fit,
        mp_fit_method: str = D.mp_fit_method, randomize: bool = D.randomize, detX: bool = D.detX,
        vectors: bool = D.vectors, bootstrap: int = D.bootstrap, ci_level: float = D.ci_level,
        gof_samples: int = D.gof_samples, compare_tails: bool = D.compare_tails, farms: bool = D.farms,
        farms_q: float = D.farms_q, fit_quality: bool = D.fit_quality, exclude_flagged: bool = D.exclude_flagged,
        inverse: bool = D.inverse, intra: bool = D.intra, sparsify: bool = D.sparsify, stacked: bool = D.stacked,
        plot: bool = D.plot, savefig: str | os.PathLike | bool | None = D.savefig, deltas: bool = D.deltas,
        progress: bool = D.progress, workers: int | None = D.workers, executor: Any = D.executor,
        done: Mapping | None = D.done) -> Iterator[LayerOutcome]:
    """Analyse a model layer by layer: a generator of :class:`LayerOutcome` as layers finish.

    Same options as :func:`analyze` (validated when the generator is created, before any layer is
    read). Layers are yielded in model order, each as soon as it and the layers before it are done
    (workers analyse layers side by side, largest first). Closing the generator early stops the
    analysis. ``intra`` / ``stacked`` (rows made from several layers) are yielded as they come.

    Parameters
    ----------
    model : object or path
        Anything :func:`analyze` accepts.
    {options}

    Examples
    --------
    >>> import numpy as np, spectralwatch
    >>> W = {"a.weight": np.random.default_rng(0).standard_normal((60, 40))}
    >>> [o.name for o in spectralwatch.iter_analyze(W)]
    ['a']
    """
    values = validate("iter_analyze", keyword_values("iter_analyze", locals()))
    options = Options.from_values(values)
    return _iterate(model, options, progress=values["progress"], workers=values["workers"],
                    executor=values["executor"], done=values["done"])


def _iterate(model, options, **run_kw) -> Iterator[LayerOutcome]:
    walk = _walk(model, options, **run_kw)
    next(walk)  # opens the model and selects layers now: errors are raised at the call
    yield from walk


def _prepare(model, options: Options, done):
    """Open and select; resolve the device; check ``done``. Returns (source, chosen, skipped, options, done)."""
    if options.spectrum.device != "cpu":
        device = resolve_device(options.spectrum.device)
        if device != options.spectrum.device:
            options = options.replace(device=device)
    source, chosen, skipped = select_layers(model, options)
    if not chosen:
        raise NoLayersError(_no_layers_message(source, skipped))
    done = _done_rows(done, chosen, options)
    if options.base_model is not None:  # already read by the driver: never shipped to workers
        options = options.replace(base_model=None)
    if options.analyses.compare_tails:
        _preload_tail_laws()
    return source, chosen, skipped, options, done


def _preload_tail_laws() -> None:
    """Import the tail-law modules (and scipy's) in the driver, before a process pool forks:
    forked workers inherit them instead of each importing scipy.optimize again."""
    import scipy.optimize  # noqa: F401

    from ..core.fit import comparison, laws, uncertainty  # noqa: F401


def _walk(model, options: Options, *, progress=False, workers=None, executor=None, done=None, state=None):
    """Yield None once the model is open (errors raised there), then a :class:`LayerOutcome` per layer.

    ``state`` (a dict), when given, receives ``source``, ``skipped`` and ``options``.
    """
    base_model = options.base_model
    source, chosen, skipped, options, done = _prepare(model, options, done)
    if state is not None:  # (inputs: the paths read, which no output may replace, io/outputs.py)
        state.update(source=source, skipped=skipped, options=options,
                     inputs=tuple(input_paths(model, source, base_model)))
    yield None
    todo = [task for task in chosen if task[0].layer_id not in done]
    if options.walk.intra or options.walk.stacked:  # another walk over the layers (see cross_layer.py)
        walk = variant_walk(chosen, options, skipped)
    else:
        walk = run_layers(todo, options, executor=executor, workers=workers)
    fresh = {}
    order = [ref.layer_id for ref, _ in chosen]
    position = 0
    with Progress(len(todo), enabled=bool(progress)) as bar:
        for ref, results in walk:
            bar.update(ref.longname or ref.name)
            outcome = _outcome(ref, results)
            if done:  # put the resumed layers back in their places, in model order
                fresh[ref.layer_id] = outcome  # (no intra / stacked here: validation refuses done with them)
                while position < len(order) and (order[position] in done or order[position] in fresh):
                    lid = order[position]
                    yield fresh.pop(lid) if lid in fresh else _resumed(chosen[position][0], done[lid])
                    position += 1
            elif outcome.rows or not (options.walk.intra or options.walk.stacked):
                yield outcome
    while done and position < len(order):  # resumed layers after the last computed one
        yield _resumed(chosen[position][0], done[order[position]])
        position += 1


def _outcome(ref, results) -> LayerOutcome:
    """The rows of one walk step; its identity is that of its rows (the stacked matrix's row is
    layer 0, yielded with the last layer read)."""
    evals, fits = {}, {}
    for result in results:
        key = result.row.get("slice_id", 0)
        if result.evals is not None:
            evals[key] = result.evals
        if result.fit is not None:
            fits[key] = result.fit
    rows = [r.row for r in results]
    first = rows[0] if rows else {"layer_id": ref.layer_id, "name": ref.name, "longname": ref.longname}
    return LayerOutcome(first["layer_id"], first["name"], first.get("longname", first["name"]), rows, evals, fits)


def _resumed(ref, rows) -> LayerOutcome:
    return LayerOutcome(ref.layer_id, ref.name, ref.longname, rows)


def run(model, options: Options, *, progress=False, workers=None, executor=None, on_result=None,
        done=None) -> Report:
    """Analyse ``model`` with already validated ``options`` (see :func:`analyze`).

    ``on_result(layer_id, rows)`` is called after each layer analysed here (not for the resumed
    layers of ``done``, whose rows take their places in the table).
    """
    state: dict = {}
    walk = _walk(model, options, progress=progress, workers=workers, executor=executor, done=done, state=state)
    next(walk)
    done_ids = set(done or ())
    rows, evals, fits = [], {}, {}
    for outcome in walk:
        for slice_id, ev in outcome.evals.items():
            evals[(outcome.layer_id, slice_id)] = ev
        for slice_id, fit in outcome.fits.items():
            fits[(outcome.layer_id, slice_id)] = fit
        if on_result is not None and outcome.rows and outcome.layer_id not in done_ids:
            on_result(outcome.layer_id, outcome.rows)
        rows.extend(outcome.rows)
    options = state["options"]
    report = Report(rows, evals, fits, state["skipped"], options, source=getattr(state["source"], "description", ""),
                    notes=getattr(state["source"], "notes", ()))
    report.inputs = state["inputs"]
    if options.figures.plot:
        _plot(report, options.figures.savefig)
    return report


def _plot(report: Report, savefig) -> None:
    """``plot=True``: write the figures into ``savefig``; inside a Jupyter kernel also show them
    under the cell (as WeightWatcher does), from a temporary folder when there is no ``savefig``."""
    from ..render.plots.display import in_notebook, show_inline

    if savefig:
        report.figures = save_figures(report, savefig, kinds="all")
        if in_notebook():
            show_inline(report.figures)
    elif in_notebook():
        import tempfile

        with tempfile.TemporaryDirectory(prefix="spectralwatch-figures-") as tmp:
            show_inline(save_figures(report, tmp, kinds="all"))
    else:
        warnings.warn("plot=True with savefig=False outside a notebook: the figures are neither saved nor "
                      "shown (give savefig a folder to write them)", UserWarning, stacklevel=4)


def _done_rows(done, chosen: list, options: Options) -> dict:
    """Validate ``done`` into ``{layer_id: [row copies]}`` (see :func:`analyze`)."""
    if done is None or (hasattr(done, "__len__") and not len(done)):
        return {}
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


@suggest_keywords
@document_options("describe")
def describe(model, *,
        layers: Any = DD.layers, min_evals: int | None = DD.min_evals, max_evals: int | None = DD.max_evals,
        max_N: int | None = DD.max_N, pool: bool = DD.pool, conv2d_norm: bool = DD.conv2d_norm,
        start_ids: int | None = DD.start_ids, grouped_conv: str = DD.grouped_conv,
        split_fused: bool = DD.split_fused, peft: bool | str = DD.peft, base_model: Any = DD.base_model,
        trust_pickle: bool = DD.trust_pickle, max_work_ratio: float | None = DD.max_work_ratio,
        revision: str | None = DD.revision, skipped: bool = DD.skipped):
    """The layers ``analyze`` would analyse, without computing anything (nothing is loaded).

    Parameters
    ----------
    model : object or path
        Anything :func:`analyze` accepts.
    {options}

    Returns
    -------
    pandas.DataFrame
        ``layer_id, name, longname, layer_type, N, M, Q, rf, num_evals`` (predicted), ``dtype``
        and ``quant``; an empty frame when no layer qualifies. With ``skipped=True`` every
        candidate, with ``analysed`` and ``reason``. Rows are in network order, the order of
        ``analyze``'s rows (docs/formats.md, "Layer order"); ``.attrs['notes']`` holds what the
        reader left out of the input (a checkpoint folder's trainer state...).
    """
    values = validate("describe", keyword_values("describe", locals()))
    import pandas as pd

    options = Options.from_values(values)
    source, chosen, dropped = select_layers(model, options)
    cols = ["layer_id", "name", "longname", "layer_type", "N", "M", "Q", "rf", "num_evals", "dtype", "quant"]
    if not values["skipped"]:
        frame = pd.DataFrame([g for _, g in chosen], columns=cols)
    else:
        # chosen and dropped split the source's listing: merge them back in its (network) order
        taken = {s["position"] for s in dropped}
        free = (p for p in range(len(chosen) + len(dropped)) if p not in taken)
        rows = [(next(free), dict(g, analysed=True, reason="")) for _, g in chosen]
        rows += [(s["position"], dict(s["geometry"], analysed=False, reason=f"{s['rule']}: {s['reason']}"))
                 for s in dropped]
        rows.sort(key=lambda r: r[0])
        frame = pd.DataFrame([r for _, r in rows], columns=cols + ["analysed", "reason"])
    frame.attrs["notes"] = list(getattr(source, "notes", ()))
    return frame


@suggest_keywords
def esd(model, layer, *,
        pool: bool = DE.pool, conv2d_norm: bool = DE.conv2d_norm, start_ids: int | None = DE.start_ids,
        svd_method: str = DE.svd_method, rng: Any = DE.rng, random: bool = False) -> np.ndarray:
    """Sorted eigenvalues of one layer (by id or name), computed without fitting anything.

    ``random=True``: the eigenvalues of its element-wise shuffled matrices (see
    :func:`spectralwatch.core.rmt.shuffled_replicas`), drawn from the layer's generator derived
    from ``rng`` (the same shuffles as ``analyze(randomize=True, rng=rng)``).
    """
    values = validate("get_ESD", keyword_values("get_ESD", locals()))
    if not isinstance(random, bool):
        raise InvalidParameterError(f"The 'random' parameter of get_ESD must be True or False. Got {random!r}.")
    values.update(layers=[layer], min_evals=0, max_evals=None, max_N=None)
    options = Options.from_values(validate("analyze", values, func="get_ESD"))
    _, chosen, skipped = select_layers(model, options)
    if not chosen:
        reasons = [s["reason"] for s in skipped if s["rule"] != "layers"]
        why = f": {reasons[0]}" if reasons else ""
        raise LayerNotFoundError(f"no analysable layer {layer!r} in this model{why}")
    ref, _ = chosen[0]
    m = options.matrices
    mats = layer_matrices(ref.load(), ref.layer_type, conv2d_norm=m.conv2d_norm, pooled=m.pool, groups=ref.groups,
                          grouped_conv=m.grouped_conv)
    with one_blas_thread():  # as analyze() computes it: the same bits
        if random:
            draws = shuffled_replicas(mats.stack, layer_rng(options.analyses.rng, ref.layer_id),
                                      eval_scale=mats.eval_scale)
            return np.sort(np.concatenate(draws))
        return np.sort(layer_spectrum(mats, method=options.spectrum.svd_method).evals.ravel())

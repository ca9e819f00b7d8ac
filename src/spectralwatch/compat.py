"""``WeightWatcher``: a drop-in for the class of WeightWatcher 0.7.7.

Same constructor and method names, same keyword names, same details columns, so that existing
scripts keep working after ``from spectralwatch import WeightWatcher``. Differences from the
reference are listed in the README ("Where spectralwatch differs").
"""

from __future__ import annotations

import warnings

from .errors import InvalidParameterError, NoLayersError, NotYetSupportedError
from .options import WW_KEYWORDS, Options, validate
from .pipeline.analyze import describe as _describe
from .pipeline.analyze import esd as _esd
from .pipeline.analyze import run as _run
from .results.report import summarize

__all__ = ["WeightWatcher", "translate_ww_keywords"]


class WeightWatcher:
    """WeightWatcher-compatible front end over :func:`spectralwatch.analyze`.

    Parameters
    ----------
    model : object or path, optional
        Anything :func:`spectralwatch.analyze` accepts; can also be given to each method.
    framework : str, optional
        Accepted for compatibility; the format is always detected from the model.
    base_model : optional
        A base model: every ``analyze`` / ``describe`` then looks at ``W - W_base`` per matched
        layer (or, with ``peft``, at the adapter applied to it), unless given ``base_model=``.
    log_level : optional
        Accepted for compatibility (spectralwatch does not configure logging).
    """

    def __init__(self, model=None, framework=None, base_model=None, log_level=None):
        self.base_model = base_model
        self.model = model
        self.framework = framework
        self.details = None
        self.report = None

    def _model(self, model):
        model = self.model if model is None else model
        if model is None:
            raise InvalidParameterError("No model given: pass model=... to WeightWatcher(...) or to this method.")
        self.model = model
        return model

    def analyze(self, model=None, layers=None, **options):
        """Analyse the model; returns the details DataFrame (``self.report`` keeps the full Report).

        Accepts WeightWatcher 0.7.7's keywords; ``mp_fit_method`` defaults to ``'ww'`` (the reference's procedure). A model with no analysable layer gives an empty
        DataFrame and a ``UserWarning`` that says why (the reference logs "No layers found").
        """
        model = self._model(model)
        if self.base_model is not None:
            options.setdefault("base_model", self.base_model)
        # the drop-in reproduces the reference's numbers: its Marchenko-Pastur fitting procedure
        options.setdefault("mp_fit_method", "ww")
        values = validate("analyze", dict(translate_ww_keywords(options, "analyze"), layers=layers))
        run_kw = {k: values[k] for k in ("progress", "workers", "executor", "on_result", "done")}
        try:
            self.report = _run(model, Options.from_values(values), **run_kw)
        except NoLayersError as exc:
            import pandas as pd

            warnings.warn(str(exc), UserWarning, stacklevel=2)
            self.report = None
            self.details = pd.DataFrame()
            return self.details
        # the reference lists its layers in id order; spectralwatch's report is in network order
        self.details = self.report.details.sort_values("layer_id", kind="stable").reset_index(drop=True)
        return self.details

    def describe(self, model=None, layers=None, **options):
        """The layers that would be analysed (no eigenvalues computed)."""
        if self.base_model is not None:
            options.setdefault("base_model", self.base_model)
        options = translate_ww_keywords(options, "describe")
        options.pop("savefig", None)  # where figures would go: nothing to describe
        frame = _describe(self._model(model), layers=layers, **options)
        return frame.sort_values("layer_id", kind="stable").reset_index(drop=True)  # the reference's order

    def get_details(self):
        """The details DataFrame of the last ``analyze()``."""
        return self.details

    def get_summary(self, details=None) -> dict:
        """Model-level means (WeightWatcher's keys) of ``details`` or of the last ``analyze()``."""
        return summarize(self.details if details is None else details)

    def get_ESD(self, model=None, layer=None, random=False, params=None, rng=None):
        """Sorted eigenvalues of one layer, by id or name.

        ``random=True``: the eigenvalues of the element-wise shuffled matrices (5 shuffles pooled
        below 100 eigenvalues, like the reference), seeded by ``rng`` (or ``params['rng']``).
        """
        if layer is None:
            raise InvalidParameterError("get_ESD needs layer= (a layer id or name).")
        params = dict(params or {})
        keep = {k: params[k] for k in ("pool", "conv2d_norm", "start_ids") if k in params}
        if random:
            keep.update(random=True, rng=params.get("rng", rng))
        return _esd(self._model(model), layer, **keep)

    # ---- model comparison and editing (spectralwatch.distances / spectralwatch.editing) --------
    def distances(self, model_1, model_2, method="raw", layers=None, start_ids=0, pool=True, channels=None):
        """``(avg_dW, avg_db, details)`` per layer, like the reference (see :func:`spectralwatch.distances`)."""
        from .tools.distances import distances as _distances

        if channels is not None:
            raise NotYetSupportedError("The 'channels' option of distances (overriding the conv channel "
                                       "layout) is not available in this version of spectralwatch.")
        return _distances(model_1, model_2, method=method, layers=layers or None, start_ids=start_ids or None,
                          pool=pool).as_tuple()

    def SVDSmoothing(self, model=None, percent=0.8, pool=True, layers=None, method="detX", fit="PL", plot=False,
                     start_ids=0, svd_method="fast", **kwargs):
        """A smoothed **copy** of the model (the reference edits it in place); see :func:`spectralwatch.svd_smoothing`.

        ``plot`` and ``svd_method`` are accepted for compatibility (the SVD is always exact).
        Extra keywords: ``out``, ``inplace``, ``rng``, ``mp_fit_method``. Returns the new model
        (the written path for a file or folder model), which also becomes ``self.model``.
        """
        from .tools.editing import svd_smoothing

        _check_svd_method(svd_method)
        result = svd_smoothing(self._model(model), percent=percent, method=method, layers=layers or None,
                               pool=pool, start_ids=start_ids or None, fit=fit, **kwargs)
        self.model = result.model if result.model is not None else result.path
        return self.model

    def SVDSharpness(self, model=None, pool=True, layers=None, plot=False, start_ids=0, **kwargs):
        """A sharpened **copy** of the model (correlation traps removed); see :func:`spectralwatch.svd_sharpness`.

        Extra keywords: ``out``, ``inplace``, ``rng``, ``mp_fit_method``. Returns the new model
        (the written path for a file or folder model), which also becomes ``self.model``.
        """
        from .tools.editing import svd_sharpness

        result = svd_sharpness(self._model(model), layers=layers or None, pool=pool, start_ids=start_ids or None,
                               **kwargs)
        self.model = result.model if result.model is not None else result.path
        return self.model


def _check_svd_method(value) -> None:
    if value not in ("fast", "accurate", "auto", "gram", "svd"):
        from .errors import InvalidParameterError

        raise InvalidParameterError(f"The 'svd_method' parameter of SVDSmoothing must be 'fast' or 'accurate'. "
                                    f"Got {value!r}.")


def translate_ww_keywords(options: dict, func: str) -> dict:
    """WeightWatcher 0.7.7's keywords as spectralwatch options (see ``spectralwatch.options.WW_KEYWORDS``).

    ``ERG`` is ``detX``; ``ww2x=True`` is ``pool=False``. Keywords whose capability is not in this
    version raise :class:`~spectralwatch.errors.NotYetSupportedError` unless given their "off"
    value; ``min_size`` / ``max_size`` name their replacements.
    """
    out, aliases = {}, {}
    for key, value in options.items():
        ww = WW_KEYWORDS.get(key)
        if ww is None:
            out[key] = value
            continue
        if ww.status == "alias":
            if not (value is None or isinstance(value, bool)):
                raise InvalidParameterError(f"The '{key}' parameter of {func} must be True or False. Got {value!r}.")
            if value:
                aliases[key] = ww
            continue
        if any(value is off or (isinstance(off, str) and value == off) for off in ww.off):
            continue
        if ww.status == "replaced":
            raise InvalidParameterError(f"The '{key}' parameter of {func} is not used: {ww.advice}.")
        if ww.status == "refused":
            raise InvalidParameterError(f"The '{key}' parameter of {func} must be {ww.advice}. Got {value!r}.")
        raise NotYetSupportedError(f"The '{key}' option of {func} ({ww.what}) is not available in this version of "
                                   f"spectralwatch; call {func} without it (or with {key}={ww.off[0]!r}).")
    for ww in aliases.values():  # ERG=True turns detX on; ww2x=True turns pool off
        out[ww.maps_to] = ww.value(True)
    return out

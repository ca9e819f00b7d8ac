"""``WeightWatcher``: a drop-in for the class of WeightWatcher 0.7.7.

Same constructor and method names, same keyword names, same details columns, so that existing
scripts keep working after ``from spectralwatch import WeightWatcher``. Differences from the
reference are listed in the README ("Where spectralwatch differs").
"""

from __future__ import annotations

import warnings

from .analyze import describe as _describe
from .analyze import esd as _esd
from .analyze import run as _run
from .errors import NoLayersError, NotYetSupportedError
from .options import make_options
from .report import summarize

__all__ = ["WeightWatcher"]


class WeightWatcher:
    """WeightWatcher-compatible front end over :func:`spectralwatch.analyze`.

    Parameters
    ----------
    model : object or path, optional
        Anything :func:`spectralwatch.analyze` accepts; can also be given to each method.
    framework : str, optional
        Accepted for compatibility; the format is always detected from the model.
    base_model : optional
        Not available in this version (raises if given).
    log_level : optional
        Accepted for compatibility (spectralwatch does not configure logging).
    """

    def __init__(self, model=None, framework=None, base_model=None, log_level=None):
        if base_model is not None:
            raise NotYetSupportedError("The 'base_model' option of WeightWatcher (delta analysis) is not "
                                       "available in this version of spectralwatch.")
        self.model = model
        self.framework = framework
        self.details = None
        self.report = None

    def _model(self, model):
        model = self.model if model is None else model
        if model is None:
            raise ValueError("No model given: pass model=... to WeightWatcher(...) or to this method.")
        self.model = model
        return model

    def analyze(self, model=None, layers=None, **options):
        """Analyse the model; returns the details DataFrame (``self.report`` keeps the full Report).

        Accepts WeightWatcher 0.7.7's keywords. A model with no analysable layer gives an empty
        DataFrame and a ``UserWarning`` that says why (the reference logs "No layers found").
        """
        model = self._model(model)
        progress = options.pop("progress", False)
        opts = make_options("analyze", layers=layers, **options)
        try:
            self.report = _run(model, opts, progress=progress)
        except NoLayersError as exc:
            import pandas as pd

            warnings.warn(str(exc), UserWarning, stacklevel=2)
            self.report = None
            self.details = pd.DataFrame()
            return self.details
        self.details = self.report.details
        return self.details

    def describe(self, model=None, layers=None, **options):
        """The layers that would be analysed (no eigenvalues computed)."""
        return _describe(self._model(model), layers=layers, **options)

    def get_details(self):
        """The details DataFrame of the last ``analyze()``."""
        return self.details

    def get_summary(self, details=None) -> dict:
        """Model-level means (WeightWatcher's keys) of ``details`` or of the last ``analyze()``."""
        return summarize(self.details if details is None else details)

    def get_ESD(self, model=None, layer=None, random=False, params=None):
        """Sorted eigenvalues of one layer, by id or name."""
        if random:
            raise NotYetSupportedError("get_ESD(random=True) (randomized ESDs) is not available in this "
                                       "version of spectralwatch.")
        if layer is None:
            raise ValueError("get_ESD needs layer= (a layer id or name).")
        params = dict(params or {})
        keep = {k: params[k] for k in ("pool", "conv2d_norm", "start_ids") if k in params}
        return _esd(self._model(model), layer, **keep)

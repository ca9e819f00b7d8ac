"""Report: the per-layer details table, the model summary, the eigenvalues, and exports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

__all__ = ["Report", "SUMMARY_METRICS", "summarize"]

#: model-level means, WeightWatcher's ``get_summary()`` keys (``mp_softrank`` when present)
SUMMARY_METRICS = ("log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm",
                   "stable_rank", "mp_softrank")

# column order of the details table: identity, spectrum, fit, outcome, then anything else
_ORDER = ("layer_id", "name", "longname", "layer_type", "slice_id", "dtype", "N", "M", "Q", "rf",
          "num_evals", "has_esd", "lambda_max", "sv_max", "sv_min", "norm", "log_norm", "spectral_norm",
          "log_spectral_norm", "stable_rank", "matrix_rank", "rank_loss", "weak_rank_loss", "entropy",
          "alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes", "n_tail", "num_fingers", "raw_alpha",
          "alpha_weighted", "log_alpha_norm", "fit_method", "spectrum_route", "status", "warning", "message")


def summarize(details) -> dict:
    """Mean of each summary metric over the layers whose analysis succeeded.

    Failed layers are left out (WeightWatcher averages their ``-1`` placeholders in).
    """
    summary = {}
    if details is None or len(details) == 0:
        return summary
    ok = details[details["status"] == "success"] if "status" in details else details
    for metric in SUMMARY_METRICS:
        if metric in details.columns:
            summary[metric] = float(ok[metric].astype(float).mean()) if len(ok) else math.nan
    return summary


class Report:
    """The result of :func:`spectralwatch.analyze`.

    Attributes
    ----------
    details : pandas.DataFrame
        One row per analysed layer (per slice with ``pool=False``), WeightWatcher's column names
        plus ``dtype``, ``n_tail``, ``fit_method``, ``spectrum_route`` and ``message``.
    summary : dict
        Model-level means of :data:`SUMMARY_METRICS` over successfully analysed layers.
    skipped : pandas.DataFrame
        Candidate layers that were not analysed, with the reason.
    source : str
        What was analysed (format and path).
    """

    def __init__(self, rows: list, evals: dict, fits: dict, skipped: list, options, source: str = ""):
        import pandas as pd

        cols = [c for c in _ORDER if any(c in r for r in rows)]
        cols += sorted({c for r in rows for c in r} - set(cols))
        self.details = pd.DataFrame(rows, columns=cols)
        self.skipped = pd.DataFrame(skipped, columns=["layer_id", "name", "layer_type", "shape", "rule", "reason"])
        self.summary = summarize(self.details)
        self.options = options
        self.source = source
        self._evals = evals
        self._fits = fits

    # ---- counts -------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Rows in the details table."""
        return len(self.details)

    @property
    def num_failed(self) -> int:
        return int((self.details["status"] == "failed").sum()) if len(self.details) else 0

    # ---- per-layer data -----------------------------------------------------------------
    def _key(self, layer) -> tuple:
        keys = list(self._evals)
        if isinstance(layer, tuple) and layer in self._evals:
            return layer
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            match = [k for k in keys if k[0] == int(layer)]
        elif isinstance(layer, str):
            ids = self.details.loc[(self.details["name"] == layer) | (self.details["longname"] == layer), "layer_id"]
            match = [k for k in keys if k[0] in set(ids)]
        else:
            raise TypeError(f"layer must be a layer id (int) or a layer name (str); got {layer!r}")
        if not match:
            raise KeyError(f"no analysed layer {layer!r} in this report (see report.details and report.skipped)")
        return match[0]

    def get_ESD(self, layer) -> np.ndarray:
        """Sorted eigenvalues of a layer (by id or name; ``(id, slice_id)`` for unpooled slices)."""
        return self._evals[self._key(layer)]

    def get_fit(self, layer):
        """The :class:`~spectralwatch.fit.PowerLawFit` of a layer (None when no fit was made)."""
        return self._fits.get(self._key(layer))

    # ---- export -------------------------------------------------------------------------
    def to_csv(self, path=None, **kwargs):
        """Details as CSV: returned as a string when ``path`` is None, else written to ``path``."""
        return self.details.to_csv(path, index=False, **kwargs)

    def to_json(self, path=None) -> str | None:
        """Details, summary and skipped layers as one JSON document."""
        doc = {
            "source": self.source,
            "summary": self.summary,
            "num_layers": self.num_layers,
            "num_failed": self.num_failed,
            "details": json.loads(self.details.to_json(orient="records")),
            "skipped": json.loads(self.skipped.to_json(orient="records")),
        }
        text = json.dumps(doc, indent=2)
        if path is None:
            return text
        Path(path).write_text(text)
        return None

    def __repr__(self) -> str:
        head = f"<spectralwatch Report: {self.num_layers} layers"
        if self.num_failed:
            head += f" ({self.num_failed} failed)"
        if len(self.skipped):
            head += f", {len(self.skipped)} skipped"
        parts = ", ".join(f"{k}={v:.4g}" for k, v in self.summary.items())
        return head + (f"; {parts}" if parts else "") + ">"

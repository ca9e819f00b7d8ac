"""Report: the per-layer details table, the model summary, the eigenvalues, and exports."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from ..core.columns import DETAILS_ORDER, SUMMARY_METRICS
from ..errors import InvalidParameterError, LayerNotFoundError, NotComputedError

__all__ = ["Report", "SUMMARY_METRICS", "summarize"]

def _averaged(details, exclude_flagged: bool = False):
    """The rows the summary averages: successful ones (and unflagged ones, when asked)."""
    ok = details[details["status"] == "success"] if "status" in details else details
    if exclude_flagged and "fit_quality" in ok:
        ok = ok[ok["fit_quality"].fillna("") == ""]
    return ok


def summarize(details, *, exclude_flagged: bool = False) -> dict:
    """Mean of each summary metric over the layers whose analysis succeeded.

    Failed layers are left out (WeightWatcher averages their ``-1`` placeholders in). With
    ``exclude_flagged=True`` the layers with a non-empty ``fit_quality`` are left out too, and the
    summary also holds ``num_averaged`` and ``num_flagged`` (docs/statistics.md); by default its
    keys are WeightWatcher's.
    """
    summary = {}
    if details is None or len(details) == 0:
        return summary
    ok = _averaged(details, exclude_flagged)
    for metric in SUMMARY_METRICS:
        if metric in details.columns:
            summary[metric] = float(ok[metric].astype(float).mean()) if len(ok) else math.nan
    if exclude_flagged:
        summary["num_averaged"] = len(ok)
        summary["num_flagged"] = len(_averaged(details)) - len(ok)
    return summary


def _split_payloads(rows: list) -> dict:
    """Move the non-column entries of optional analyses (keys starting with ``_``) out of the rows.

    Returns ``{(layer_id, slice_id): {key: value}}``; the rows are modified in place.
    """
    payloads = {}
    for row in rows:
        private = [k for k in row if k.startswith("_")]
        if private:
            payloads[(row["layer_id"], row.get("slice_id", 0))] = {k: row.pop(k) for k in private}
    return payloads


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
    notes : list of str
        What the reader left out of the input and why (e.g. the trainer state files of a checkpoint
        folder); empty when nothing was.

    The rows are in network order (the order of the layers in the model; see docs/formats.md,
    "Layer order"): for a model whose ids follow WeightWatcher's numbering of names stored
    alphabetically, ``layer_id`` is then not monotone down the table.
    """

    def __init__(self, rows: list, evals: dict, fits: dict, skipped: list, options, source: str = "",
                 notes=()):
        import pandas as pd

        self._payloads = _split_payloads(rows)
        cols = [c for c in DETAILS_ORDER if any(c in r for r in rows)]
        cols += sorted({c for r in rows for c in r} - set(cols))
        self.details = pd.DataFrame(rows, columns=cols)
        self.skipped = pd.DataFrame(skipped, columns=["layer_id", "name", "layer_type", "shape", "rule", "reason"])
        self.summary = summarize(self.details, exclude_flagged=options.summary.exclude_flagged)
        self.options = options
        self.source = source
        self.notes = [str(n) for n in notes]
        self._evals = evals
        self._fits = fits
        self.figures: list = []  # paths of the figure files written by analyze(plot=True)

    # ---- counts -------------------------------------------------------------------------
    @property
    def num_layers(self) -> int:
        """Rows in the details table."""
        return len(self.details)

    @property
    def num_failed(self) -> int:
        return int((self.details["status"] == "failed").sum()) if len(self.details) else 0

    @property
    def all_failed(self) -> bool:
        """True when every row failed: the summary then holds no number (NaN means), and
        :func:`failure_reason` says why. The command line exits with status 1 on such a run."""
        return self.num_layers > 0 and self.num_failed == self.num_layers

    @property
    def failure_reason(self) -> str:
        """Why the layers failed, in one line: the failure classes and the first row's message
        (``''`` when no layer failed)."""
        if not self.num_failed:
            return ""
        counts = self.failures
        failed = self.details[self.details["status"] == "failed"]
        first = str(failed.iloc[0].get("message") or "") if len(failed) else ""
        classes = ", ".join(f"{n} {cls}" for cls, n in counts.items())
        return classes + (f"; first: layer {failed.iloc[0]['name']}: {first}" if first else "")

    @property
    def failures(self) -> dict:
        """Why layers failed: ``{reason class: number of failed rows}`` (see :mod:`spectralwatch.failures`)."""
        from .failures import failure_summary

        return failure_summary(self.details)

    # ---- per-layer data -----------------------------------------------------------------
    def _key(self, layer) -> tuple:
        keys = list(self._evals)
        if isinstance(layer, tuple) and layer in self._evals:
            return layer
        if (isinstance(layer, tuple) and len(layer) == 2
                and all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in layer)):
            match = []  # an (id, slice_id) key without eigenvalues: said below, by its layer id
        elif isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            match = [k for k in keys if k[0] == int(layer)]
        elif isinstance(layer, str):
            ids = self.details.loc[(self.details["name"] == layer) | (self.details["longname"] == layer), "layer_id"]
            match = [k for k in keys if k[0] in set(ids)]
        else:
            raise InvalidParameterError(f"The 'layer' parameter must be a layer id (int) or a layer name (str). Got {layer!r}.")
        if not match:
            rows = self.details
            if isinstance(layer, (int, np.integer, tuple)):
                hit = rows[rows["layer_id"] == int(layer[0] if isinstance(layer, tuple) else layer)]
            else:
                hit = rows[(rows["name"] == layer) | (rows["longname"] == layer)]
            if len(hit):
                why = str(hit.iloc[0].get("message") or "")
                raise NotComputedError(f"layer {layer!r} has no eigenvalues in this report: its analysis failed"
                               + (f" ({why})" if why else "") + " or its row was resumed from a journal")
            raise LayerNotFoundError(f"no analysed layer {layer!r} in this report (see report.details and report.skipped)")
        return match[0]

    def get_ESD(self, layer, random: bool = False) -> np.ndarray:
        """Sorted eigenvalues of a layer (by id or name; ``(id, slice_id)`` for unpooled slices).

        ``random=True``: the eigenvalues of the element-wise shuffled matrices (all replicas), kept
        by ``analyze(randomize=True)``.
        """
        key = self._key(layer)
        return self._payload(key, "_rand_evals", "randomize=True") if random else self._evals[key]

    def get_traps(self, layer) -> tuple:
        """The correlation traps of a layer: :class:`~spectralwatch.rmt.CorrelationTrap` s, largest first.

        Spikes of the randomized spectrum (eigenvalue, distance and ratio to its MP edge); empty
        when there is none. Needs ``analyze(randomize=True)``.
        """
        return self._payload(self._key(layer), "_traps", "randomize=True")

    def _payload(self, key, name, option):
        payload = self._payloads.get(key, {})
        if name not in payload:
            raise NotComputedError(f"layer {key[0]} has no {name.lstrip('_')}: analyze with {option}")
        return payload[name]

    @property
    def num_averaged(self) -> int:
        """How many layers the summary averaged (successful, and unflagged with ``exclude_flagged``)."""
        if not len(self.details):
            return 0
        return len(_averaged(self.details, self.options.summary.exclude_flagged))

    def get_statistics(self, layer) -> dict:
        """The fit statistics of a layer: ``{'bootstrap': AlphaBootstrap, 'gof': GoodnessOfFit,
        'comparison': TailComparison}`` (those that were asked for; None for a failed fit)."""
        return self._payload(self._key(layer), "_stats", "bootstrap=N, gof_samples=N or compare_tails=True")

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
            "summary": {k: (v if v == v else None) for k, v in self.summary.items()},  # NaN is not JSON
            "num_layers": self.num_layers,
            "num_failed": self.num_failed,
            "failures": self.failures,
            "notes": list(self.notes),
            "details": json.loads(self.details.to_json(orient="records")),
            "skipped": json.loads(self.skipped.to_json(orient="records")),
        }
        text = json.dumps(doc, indent=2)
        if path is None:
            return text
        Path(path).write_text(text)
        return None

    def to_html(self, path=None, **kwargs):
        """A self-contained HTML report (see :func:`spectralwatch.html.report_html`).

        Returned as a string when ``path`` is None, else written to ``path``.
        """
        from ..render.html import report_html

        text = report_html(self, **kwargs)
        if path is None:
            return text
        Path(path).write_text(text, encoding="utf-8")
        return None

    def __repr__(self) -> str:
        head = f"<spectralwatch Report: {self.num_layers} layers"
        if self.all_failed:
            head += " (all failed)"
        elif self.num_failed:
            head += f" ({self.num_failed} failed)"
        if len(self.skipped):
            head += f", {len(self.skipped)} skipped"
        if "fit_quality" in self.details:  # the statistics options are on: say what the means cover
            head += f", {self.num_averaged} averaged"
        parts = ", ".join(f"{k}={v:.4g}" for k, v in self.summary.items())
        return head + (f"; {parts}" if parts else "") + ">"

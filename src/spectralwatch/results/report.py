"""Report: the per-layer details table, the model summary, the eigenvalues, and exports."""

from __future__ import annotations

import json
import math

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
    inputs : tuple
        The paths that were read (the model's files or folder, a base model...): the exports
        (:meth:`to_csv`, :meth:`to_json`, :meth:`to_html`, figures) refuse to write over them or into
        them (:mod:`spectralwatch.io.outputs`).
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
        self.inputs: tuple = ()  # paths read to make this report (set by analyze): never written over

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
            raise InvalidParameterError(f"The 'layer' parameter must be a layer id (int), a layer name (str) or "
                                        f"(layer_id, slice_id). Got {layer!r}.")
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
    def _write(self, path, text: str, what: str) -> None:
        """``text`` to ``path``: a path is checked against :attr:`inputs` and written atomically; an open
        file object (anything with ``write``) is written to directly."""
        if hasattr(path, "write"):
            path.write(text)
            return
        from ..io.outputs import write_atomic

        write_atomic(path, text, self.inputs, what=what)

    def to_csv(self, path=None, **kwargs):
        """Details as CSV: returned as a string when ``path`` is None, else written to ``path``.

        Text cells that a spreadsheet would evaluate as a formula (starting with ``=``, ``+``, ``-``, ``@``,
        a tab or a carriage return) are prefixed with ``'``, and control characters are visible-escaped
        (:func:`spectralwatch.render.safe_text.csv_cell`); numeric columns are written as they are. A path
        that is one of the report's :attr:`inputs`, lies inside an input folder, or is a symlink or
        anything but a regular file is refused (:class:`~spectralwatch.errors.OutputPathError`); the file
        appears whole (written beside it, then renamed). ``kwargs`` go to ``pandas.DataFrame.to_csv``.
        """
        from ..render.safe_text import csv_frame

        text = csv_frame(self.details).to_csv(None, index=False, **kwargs)
        if path is None:
            return text
        self._write(path, text, "CSV file")
        return None

    def to_json(self, path=None) -> str | None:
        """Details, summary and skipped layers as one JSON document (a path is checked and written like
        :meth:`to_csv`; names keep their exact text, JSON escapes control characters itself)."""
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
        self._write(path, text, "JSON file")
        return None

    def to_html(self, path=None, **kwargs):
        """A self-contained HTML report (see :func:`spectralwatch.html.report_html`).

        Returned as a string when ``path`` is None, else written to ``path`` (checked and written like
        :meth:`to_csv`).
        """
        from ..render.html import report_html

        text = report_html(self, **kwargs)
        if path is None:
            return text
        self._write(path, text, "HTML report")
        return None

    # ---- notebooks and loggers ------------------------------------------------------------
    def _repr_html_(self) -> str:
        """What Jupyter shows: summary cards, the reading in words, the coloured layer table
        (see :func:`spectralwatch.render.notebook.report_fragment`)."""
        from ..render.notebook import report_fragment

        return report_fragment(self)

    def style(self, columns=None):
        """The details table as a pandas Styler, coloured as on the terminal.

        Over-trained rows (alpha < 2) red, under-trained (alpha > 6) amber, failed grey, an alpha
        in [2, 6] green; the fit columns of failed rows blank. ``columns``: which to show (default:
        those of the HTML report's table; ``'all'``). See
        :func:`spectralwatch.render.notebook.styled_details`.
        """
        from ..render.notebook import styled_details

        return styled_details(self.details, columns)

    def plot_esd(self, layer, kind: str = "loglog", ax=None):
        """Draw one figure of a layer and return its matplotlib Axes (shown inline in a notebook).

        Parameters
        ----------
        layer : int, str or (int, int)
            A layer id, a layer name, or ``(layer_id, slice_id)`` for an unpooled slice.
        kind : str
            ``'loglog'`` (the ESD on log-log axes with the fitted power law), ``'linear'``,
            ``'loglinear'``, ``'ks'`` (the KS distance of each candidate xmin), ``'alpha'`` (alpha
            of each candidate xmin), or WeightWatcher's file names of these ``'esd'``, ``'esd2'``
            ... ``'esd5'``; with the optional analyses, also ``'mpfit1'``, ``'mpfit2'``,
            ``'randesd1'``, ``'randesd2'``, ``'detX'`` ... (those ``analyze(plot=True)`` writes).
        ax : matplotlib Axes, optional
            Where to draw (default: a new figure, which a notebook shows under the cell).

        Raises
        ------
        KeyError
            No eigenvalues of this layer in the report (not analysed, failed, or resumed).
        ValueError
            An unknown ``kind``, or one that does not apply to this layer.
        """
        from ..render.plots.base import new_axes
        from ..render.plots.layer import layer_title
        from ..render.plots.rmt import drawers

        kinds = {"loglog": "esd", "linear": "esd2", "loglinear": "esd3", "ks": "esd4", "alpha": "esd5"}
        key = self._key(layer)
        evals, fit = self._evals[key], self._fits.get(key)
        rows = self.details[self.details["layer_id"] == key[0]]
        if "slice_id" in rows and len(rows) > 1:
            rows = rows[rows["slice_id"] == key[1]]
        row = rows.iloc[0].to_dict()
        extra = drawers(self)
        name = kinds.get(kind, kind)
        if name not in set(kinds.values()) | set(extra):
            raise ValueError(f"Unknown kind {kind!r} of plot_esd: one of {sorted(kinds) + sorted(extra)} "
                             "(or WeightWatcher's 'esd' ... 'esd5').")
        ax = new_axes(ax)
        title = layer_title(row)
        if name in extra:
            drawn = extra[name](ax, row, evals, fit, title)
        else:
            from ..render.plots.layer import draw_layer_figure

            drawn = draw_layer_figure(name, ax, evals, fit, title)
        if not drawn:
            raise ValueError(f"The {kind!r} figure does not apply to layer {layer!r} (no power-law scan, or "
                             "not a square matrix for 'mpfit1').")
        return ax

    def to_scalars(self, prefix: str = "spectralwatch/") -> dict:
        """The report as a flat ``{name: float}`` that any experiment logger accepts.

        Keys (each preceded by ``prefix``):

        * the summary means of :attr:`summary` (``alpha``, ``alpha_weighted``, ``log_norm``,
          ``log_alpha_norm``, ``log_spectral_norm``, ``stable_rank``, and ``mp_softrank``, ``num_averaged``,
          ``num_flagged`` when the report has them);
        * ``alpha_min``, ``alpha_max``: the extreme alphas of the successfully fitted layers;
        * ``num_layers`` (rows of the details table), ``num_failed``, ``num_skipped``,
          ``num_over_trained`` (alpha < 2), ``num_under_trained`` (alpha > 6), and
          ``num_fit_flagged`` (a non-empty ``fit_quality``, when the statistics options are on).

        A value that does not exist (no layer fitted: the means are NaN) is left out rather than
        given as NaN, which some loggers reject.
        """
        if not isinstance(prefix, str):
            raise TypeError(f"prefix must be a str; got {prefix!r}")
        d = self.details
        out = {k: float(v) for k, v in self.summary.items()}
        ok = d[d["status"] == "success"] if "status" in d else d
        alpha = ok["alpha"].to_numpy(dtype=float) if "alpha" in ok else np.empty(0)
        alpha = alpha[np.isfinite(alpha)]
        if alpha.size:
            out["alpha_min"], out["alpha_max"] = float(alpha.min()), float(alpha.max())
        warning = d["warning"] if "warning" in d else None
        out.update(num_layers=float(self.num_layers), num_failed=float(self.num_failed),
                   num_skipped=float(len(self.skipped)),
                   num_over_trained=float((warning == "over-trained").sum()) if warning is not None else 0.0,
                   num_under_trained=float((warning == "under-trained").sum()) if warning is not None else 0.0)
        if "fit_quality" in d:
            out["num_fit_flagged"] = float((d["fit_quality"].fillna("") != "").sum())
        return {f"{prefix}{k}": v for k, v in out.items() if math.isfinite(v)}

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

"""What every training callback shares: when to analyse, the analysis, its history and the alpha alarm.

:class:`SpectralMonitor` knows nothing of any framework: a callback asks it whether an epoch or a
step is due, hands it the live model, and gets back the scalars to log. The analysis reads each
weight tensor into a new numpy array on the CPU (``detach``, copy off the device), one layer at a
time: it never writes to the model, its gradients, its optimizer state or its training mode, and
it runs while the training step waits, so it costs the training exactly the analysis time
(``benchmarks/bench_callbacks.py`` measures it).

The alarm follows the Heavy-Tailed Self-Regularization reading (Martin & Mahoney, JMLR 22 (2021)):
layers whose alpha falls below 2 are in the very-heavy-tailed regime associated with over-fitting,
so a mean alpha below 2 is a signal to stop training.
"""

from __future__ import annotations

import math
import numbers
import time
import warnings

from ..errors import InvalidParameterError, NoLayersError
from ..options import make_options
from ..pipeline.analyze import run
from ..pipeline.executors import resolve_executor

__all__ = ["SpectralMonitor", "LowAlphaWarning", "ON_LOW_ALPHA"]

#: what to do when the mean alpha falls below the threshold
ON_LOW_ALPHA = ("warn", "stop", "ignore")


class LowAlphaWarning(UserWarning):
    """The mean alpha of the model fell below the threshold (2 by default): a sign of over-fitting."""


def _count(name: str, value, owner: str):
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise InvalidParameterError(f"The '{name}' parameter of {owner} must be an int >= 1 or None. Got {value!r}.")
    return int(value)


class SpectralMonitor:
    """Schedule, run and record the analyses of a model during training.

    Parameters
    ----------
    every_n_epochs, every_n_steps : int, optional
        Analyse after every N-th finished epoch, or every N-th optimizer step; one of the two
        (default: every epoch).
    layers : optional
        Which layers, as in :func:`spectralwatch.analyze`.
    workers, executor : optional
        Where the layers run, as in :func:`spectralwatch.analyze`.
    alpha_threshold : float
        The mean alpha under which ``on_low_alpha`` applies (default 2).
    on_low_alpha : {'warn', 'stop', 'ignore'}
        ``'warn'``: a :class:`LowAlphaWarning` each time the mean alpha falls below the threshold
        (after having been above it); ``'stop'``: the warning, and the callback stops training.
    prefix : str
        Prefix of the logged scalar names (see :meth:`spectralwatch.Report.to_scalars`).
    at_start : bool
        Also analyse the model before the first training step (step 0): a baseline.
    keep_reports : bool
        Keep every :class:`~spectralwatch.Report` in :attr:`reports` (default: only the last one,
        :attr:`last_report`: reports hold every layer's eigenvalues).
    owner : str
        The callback's name, for error messages.
    **analyze_options
        Any other option of :func:`spectralwatch.analyze` (``min_evals``, ``fit``, ``mp_fit``...),
        validated now.
    """

    def __init__(self, *, every_n_epochs=None, every_n_steps=None, layers=None, workers=None, executor=None,
                 alpha_threshold: float = 2.0, on_low_alpha: str = "warn", prefix: str = "spectralwatch/",
                 at_start: bool = False, keep_reports: bool = False, owner: str = "SpectralWatchCallback",
                 **analyze_options):
        self.every_n_epochs = _count("every_n_epochs", every_n_epochs, owner)
        self.every_n_steps = _count("every_n_steps", every_n_steps, owner)
        if self.every_n_epochs and self.every_n_steps:
            raise InvalidParameterError(f"Give {owner} every_n_epochs or every_n_steps, not both.")
        if not (self.every_n_epochs or self.every_n_steps):
            self.every_n_epochs = 1
        if on_low_alpha not in ON_LOW_ALPHA:
            raise InvalidParameterError(f"The 'on_low_alpha' parameter of {owner} must be one of "
                                        f"{', '.join(map(repr, ON_LOW_ALPHA))}. Got {on_low_alpha!r}.")
        if isinstance(alpha_threshold, bool) or not isinstance(alpha_threshold, numbers.Real) \
                or not math.isfinite(alpha_threshold):
            raise InvalidParameterError(f"The 'alpha_threshold' parameter of {owner} must be a finite number. "
                                        f"Got {alpha_threshold!r}.")
        if not isinstance(prefix, str):
            raise InvalidParameterError(f"The 'prefix' parameter of {owner} must be a str. Got {prefix!r}.")
        for name, value in (("at_start", at_start), ("keep_reports", keep_reports)):
            if not isinstance(value, bool):
                raise InvalidParameterError(f"The '{name}' parameter of {owner} must be True or False. Got {value!r}.")
        for name in ("plot", "progress", "on_result", "done"):
            if analyze_options.get(name):
                raise InvalidParameterError(f"The '{name}' option of analyze cannot be used in {owner}.")
            analyze_options.pop(name, None)
        resolve_executor(executor, workers)  # validated now, not at the first analysis
        self.options = make_options("analyze", layers=layers, **analyze_options)
        self.workers, self.executor = workers, executor
        self.alpha_threshold, self.on_low_alpha = float(alpha_threshold), on_low_alpha
        self.prefix, self.at_start, self.keep_reports, self.owner = prefix, at_start, keep_reports, owner
        self.records: list = []
        self.reports: list = []
        self.last_report = None
        self.disabled = ""  # why analyses stopped (no analysable layer), '' while they run
        self._below = False
        self._last_step = None

    # ---- schedule ------------------------------------------------------------------------
    def step_due(self, step: int) -> bool:
        """Whether optimizer step ``step`` (counted from 1) is due; each step at most once."""
        if not self.every_n_steps or self.disabled or step <= 0 or step == self._last_step:
            return False
        return step % self.every_n_steps == 0

    def epoch_due(self, epochs_done: int) -> bool:
        """Whether the end of the ``epochs_done``-th epoch (counted from 1) is due."""
        return bool(self.every_n_epochs) and not self.disabled and epochs_done > 0 \
            and epochs_done % self.every_n_epochs == 0

    # ---- analysis ------------------------------------------------------------------------
    def analyze(self, model, *, step: int, epoch) -> dict | None:
        """Analyse ``model`` now; returns the prefixed scalars to log (None once disabled).

        A model with no analysable layer disables the monitor with a ``RuntimeWarning`` that says
        why, instead of stopping the training.
        """
        if self.disabled:
            return None
        self._last_step = step
        start = time.perf_counter()
        try:
            report = run(model, self.options, workers=self.workers, executor=self.executor)
        except NoLayersError as exc:
            self.disabled = str(exc)
            warnings.warn(f"{self.owner} stops analysing: {exc}", RuntimeWarning, stacklevel=3)
            return None
        seconds = time.perf_counter() - start
        self.last_report = report
        if self.keep_reports:
            self.reports.append(report)
        self.records.append({"step": int(step), "epoch": epoch, "seconds": seconds, **report.to_scalars(prefix="")})
        return report.to_scalars(prefix=self.prefix)

    @property
    def mean_alpha(self) -> float:
        """The mean alpha of the last analysis (NaN before any, or when no layer was fitted)."""
        if not self.records:
            return math.nan
        return float(self.records[-1].get("alpha", math.nan))

    def should_stop(self) -> bool:
        """Apply ``on_low_alpha`` to the last analysis: True when training should stop."""
        alpha = self.mean_alpha
        below = math.isfinite(alpha) and alpha < self.alpha_threshold
        crossed, self._below = below and not self._below, below
        if not below or self.on_low_alpha == "ignore":
            return False
        stop = self.on_low_alpha == "stop"
        if crossed or stop:
            last = self.records[-1]
            warnings.warn(
                f"{self.owner}: the mean alpha of the model is {alpha:.3f} at step {last['step']}, below "
                f"{self.alpha_threshold:g}: its layers are in the very-heavy-tailed regime associated with "
                f"over-fitting (HTSR, Martin & Mahoney 2021)" + ("; stopping training." if stop else "."),
                LowAlphaWarning, stacklevel=3)
        return stop

    @property
    def history(self):
        """One row per analysis: ``step``, ``epoch``, ``seconds`` (its wall time) and the scalars of
        :meth:`spectralwatch.Report.to_scalars` without prefix (``alpha``, ``alpha_weighted``...)."""
        import pandas as pd

        return pd.DataFrame(self.records)

"""A Keras 3 callback that analyses the model during ``model.fit`` (any Keras backend).

>>> from spectralwatch.integrations.keras import SpectralWatchCallback   # doctest: +SKIP
>>> model.fit(x, y, epochs=10, callbacks=[SpectralWatchCallback(), keras.callbacks.CSVLogger("log.csv")])  # doctest: +SKIP

The ``spectralwatch/<metric>`` scalars are added to the ``logs`` of the epoch (or batch) at which
the model was analysed, so ``model.fit``'s returned ``History`` and the callbacks after this one in
the list (``CSVLogger``, ``TensorBoard``...) receive them: put it before them. With
``every_n_epochs > 1`` the History lists of these keys have one entry per analysis, not per epoch
(the ``history`` DataFrame of the callback says which epoch each belongs to).
"""

from __future__ import annotations

from ..errors import MissingDependencyError
from .monitor import LowAlphaWarning, SpectralMonitor

__all__ = ["SpectralWatchCallback", "LowAlphaWarning"]

try:
    import keras
except ImportError as exc:
    raise MissingDependencyError("spectralwatch.integrations.keras needs Keras 3: pip install 'spectralwatch[keras]'"
                                 ) from exc


class SpectralWatchCallback(keras.callbacks.Callback):
    """Analyse the model during ``model.fit``.

    Parameters
    ----------
    every_n_epochs, every_n_steps : int, optional
        Analyse after every N-th epoch (default 1) or every N-th training batch (counted from the
        start of ``fit``).
    layers, workers, executor, alpha_threshold, on_low_alpha, prefix, at_start, keep_reports,
    **analyze_options :
        See :class:`spectralwatch.integrations.monitor.SpectralMonitor`. ``on_low_alpha='stop'``
        sets ``model.stop_training``.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per analysis (``step``, ``epoch``: 0-based index of the epoch, ``seconds``, the
        metrics).
    last_report : spectralwatch.Report or None
    monitor : SpectralMonitor
    """

    def __init__(self, every_n_epochs=None, every_n_steps=None, *, layers=None, workers=None, executor=None,
                 alpha_threshold: float = 2.0, on_low_alpha: str = "warn", prefix: str = "spectralwatch/",
                 at_start: bool = False, keep_reports: bool = False, **analyze_options):
        super().__init__()
        self.monitor = SpectralMonitor(every_n_epochs=every_n_epochs, every_n_steps=every_n_steps, layers=layers,
                                       workers=workers, executor=executor, alpha_threshold=alpha_threshold,
                                       on_low_alpha=on_low_alpha, prefix=prefix, at_start=at_start,
                                       keep_reports=keep_reports, owner="SpectralWatchCallback", **analyze_options)
        self._step = 0
        self._epoch = 0

    @property
    def history(self):
        return self.monitor.history

    @property
    def last_report(self):
        return self.monitor.last_report

    def on_train_begin(self, logs=None):
        self._step = 0
        if self.monitor.at_start:
            self._analyze(None)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._step += 1
        if self.monitor.step_due(self._step):
            self._analyze(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._epoch = epoch
        if self.monitor.epoch_due(epoch + 1):
            self._analyze(logs)

    def _analyze(self, logs) -> None:
        scalars = self.monitor.analyze(self.model, step=self._step, epoch=self._epoch)
        if scalars and logs is not None:
            logs.update(scalars)
        if self.monitor.should_stop():
            self.model.stop_training = True

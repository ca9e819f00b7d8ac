"""A Hugging Face ``Trainer`` callback that analyses the model during training.

>>> from spectralwatch.integrations.transformers import SpectralWatchCallback   # doctest: +SKIP
>>> trainer = Trainer(model=model, args=args, train_dataset=data)                 # doctest: +SKIP
>>> watch = SpectralWatchCallback(every_n_steps=100).attach(trainer)              # doctest: +SKIP
>>> trainer.train(); watch.history                                                # doctest: +SKIP

A ``TrainerCallback`` is not given the trainer, and the reporting callbacks (TensorBoard,
Weights & Biases, MLflow, CSV...) come before the user's in the trainer's list, so they would see
nothing a callback adds to the logs. :meth:`SpectralWatchCallback.attach` adds the callback to the
trainer and keeps a reference to it: each analysis is then sent through ``trainer.log``, which
gives the ``spectralwatch/<metric>`` scalars to every reporting integration and to
``trainer.state.log_history``. A callback passed with ``Trainer(callbacks=[...])`` and not attached
still appends its scalars to ``state.log_history`` (saved in ``trainer_state.json``), and warns
once that the reporting integrations do not receive them.

In multi-process training each process analyses its replica of the model; a sharded model (FSDP,
DeepSpeed ZeRO-3) is not supported.
"""

from __future__ import annotations

import warnings

from ..errors import MissingDependencyError
from .monitor import LowAlphaWarning, SpectralMonitor

__all__ = ["SpectralWatchCallback", "LowAlphaWarning"]

try:
    from transformers import TrainerCallback
except ImportError as exc:
    raise MissingDependencyError("spectralwatch.integrations.transformers needs the transformers package: "
                                 "pip install transformers") from exc


class SpectralWatchCallback(TrainerCallback):
    """Analyse the model during ``Trainer.train()``.

    Parameters
    ----------
    every_n_epochs, every_n_steps : int, optional
        Analyse after every N-th epoch (default 1) or every N-th optimizer step
        (``state.global_step``).
    layers, workers, executor, alpha_threshold, on_low_alpha, prefix, at_start, keep_reports,
    **analyze_options :
        See :class:`spectralwatch.integrations.monitor.SpectralMonitor`. ``on_low_alpha='stop'``
        sets ``control.should_training_stop``.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per analysis (``step``, ``epoch``: ``state.epoch``, fractional, ``seconds``, the
        metrics).
    last_report : spectralwatch.Report or None
    monitor : SpectralMonitor
    """

    def __init__(self, every_n_epochs=None, every_n_steps=None, *, layers=None, workers=None, executor=None,
                 alpha_threshold: float = 2.0, on_low_alpha: str = "warn", prefix: str = "spectralwatch/",
                 at_start: bool = False, keep_reports: bool = False, **analyze_options):
        self.monitor = SpectralMonitor(every_n_epochs=every_n_epochs, every_n_steps=every_n_steps, layers=layers,
                                       workers=workers, executor=executor, alpha_threshold=alpha_threshold,
                                       on_low_alpha=on_low_alpha, prefix=prefix, at_start=at_start,
                                       keep_reports=keep_reports, owner="SpectralWatchCallback", **analyze_options)
        self.trainer = None
        self._warned = False

    def attach(self, trainer):
        """Add this callback to ``trainer`` (if not there yet) and log through it; returns self."""
        if not hasattr(trainer, "log") or not hasattr(trainer, "callback_handler"):
            raise TypeError(f"attach() takes a transformers.Trainer; got {type(trainer).__name__}.")
        if self not in trainer.callback_handler.callbacks:
            trainer.add_callback(self)
        self.trainer = trainer
        return self

    @property
    def history(self):
        return self.monitor.history

    @property
    def last_report(self):
        return self.monitor.last_report

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if self.monitor.at_start:
            self._analyze(model, state, control)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        if self.monitor.step_due(state.global_step):
            self._analyze(model, state, control)

    def on_epoch_end(self, args, state, control, model=None, **kwargs):
        if self.monitor.epoch_due(round(state.epoch or 0)):
            self._analyze(model, state, control)

    def _analyze(self, model, state, control) -> None:
        if model is None:  # pragma: no cover - the Trainer always passes it
            return
        scalars = self.monitor.analyze(model, step=state.global_step, epoch=state.epoch)
        if scalars:
            self._emit(scalars, state, control)
        if self.monitor.should_stop():
            control.should_training_stop = True

    def _emit(self, scalars: dict, state, control) -> None:
        if self.trainer is not None:
            # trainer.log -> every callback's on_log, which also resets the flags the trainer set for
            # this step (its own loss log, evaluation, saving): keep them
            flags = {k: getattr(control, k) for k in ("should_log", "should_evaluate", "should_save",
                                                     "should_training_stop", "should_epoch_stop")}
            self.trainer.log(dict(scalars))
            for k, v in flags.items():
                setattr(control, k, v)
            return
        state.log_history.append({**scalars, "epoch": state.epoch, "step": state.global_step})
        if not self._warned:
            self._warned = True
            warnings.warn("SpectralWatchCallback is not attached to its Trainer: its scalars are in "
                          "trainer.state.log_history and the callback's history, but the reporting integrations "
                          "(TensorBoard, W&B, MLflow...) do not receive them. Use "
                          "SpectralWatchCallback(...).attach(trainer).", UserWarning, stacklevel=3)

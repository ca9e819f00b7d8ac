"""A Lightning callback that analyses the model during training (``pip install lightning``).

>>> from spectralwatch.integrations.lightning import SpectralWatchCallback   # doctest: +SKIP
>>> trainer = lightning.Trainer(callbacks=[SpectralWatchCallback(every_n_epochs=1)])   # doctest: +SKIP

The scalars ``spectralwatch/<metric>`` go through ``LightningModule.log_dict``, so every logger of
the trainer (TensorBoard, CSV, Weights & Biases, MLflow...) receives them, and they are in
``trainer.callback_metrics``: Lightning's own ``EarlyStopping`` or ``ModelCheckpoint`` can monitor
``spectralwatch/alpha``. The baseline of ``at_start=True`` is sent to the loggers directly
(Lightning does not allow ``log`` before the first step). The history is saved in checkpoints.

The callback derives from ``lightning.pytorch.Callback`` when the ``lightning`` package is
installed, else from ``pytorch_lightning.Callback``; a ``pytorch_lightning.Trainer`` with both
installed takes :class:`spectralwatch.integrations.pytorch_lightning.SpectralWatchCallback`.
In multi-process training (DDP) each process analyses its replica of the model (all equal); a
sharded model (FSDP, DeepSpeed) is not supported.
"""

from __future__ import annotations

from ..errors import MissingDependencyError
from .monitor import LowAlphaWarning, SpectralMonitor

__all__ = ["SpectralWatchCallback", "LightningCallbackMixin", "LowAlphaWarning"]


def _base():
    try:
        from lightning.pytorch import Callback
    except ImportError:
        try:
            from pytorch_lightning import Callback
        except ImportError as exc:
            raise MissingDependencyError(
                "spectralwatch.integrations.lightning needs Lightning, which is not installed. Install it with: "
                "pip install lightning") from exc
    return Callback


class LightningCallbackMixin:
    """The behaviour of the Lightning callbacks (either package's ``Callback`` is the other base).

    Parameters
    ----------
    every_n_epochs, every_n_steps : int, optional
        Analyse after every N-th epoch (default 1) or every N-th optimizer step
        (``trainer.global_step``).
    layers, workers, executor, alpha_threshold, on_low_alpha, prefix, at_start, keep_reports,
    **analyze_options :
        See :class:`spectralwatch.integrations.monitor.SpectralMonitor`. ``on_low_alpha='stop'``
        sets ``trainer.should_stop``.

    Attributes
    ----------
    history : pandas.DataFrame
        One row per analysis (``step``, ``epoch``: ``trainer.current_epoch``, ``seconds``, the metrics).
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
                                       keep_reports=keep_reports, owner=type(self).__name__, **analyze_options)

    @property
    def history(self):
        return self.monitor.history

    @property
    def last_report(self):
        return self.monitor.last_report

    def on_train_start(self, trainer, pl_module):
        if not self.monitor.at_start:
            return
        scalars = self.monitor.analyze(pl_module, step=trainer.global_step, epoch=trainer.current_epoch)
        if scalars:
            for logger in trainer.loggers:
                logger.log_metrics(scalars, step=trainer.global_step)
        self._stop_if_asked(trainer)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if not self.monitor.step_due(step):
            return
        scalars = self.monitor.analyze(pl_module, step=step, epoch=trainer.current_epoch)
        if scalars:
            pl_module.log_dict(scalars, on_step=True, on_epoch=False, prog_bar=False, logger=True)
        self._stop_if_asked(trainer)

    def on_train_epoch_end(self, trainer, pl_module):
        if not self.monitor.epoch_due(trainer.current_epoch + 1):
            return
        scalars = self.monitor.analyze(pl_module, step=trainer.global_step, epoch=trainer.current_epoch)
        if scalars:
            pl_module.log_dict(scalars, on_step=False, on_epoch=True, prog_bar=False, logger=True)
        self._stop_if_asked(trainer)

    def _stop_if_asked(self, trainer) -> None:
        if self.monitor.should_stop():
            trainer.should_stop = True

    def state_dict(self) -> dict:
        """The history, saved in Lightning checkpoints."""
        return {"records": list(self.monitor.records)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.monitor.records = list(state_dict.get("records", []))


class SpectralWatchCallback(LightningCallbackMixin, _base()):
    __doc__ = LightningCallbackMixin.__doc__

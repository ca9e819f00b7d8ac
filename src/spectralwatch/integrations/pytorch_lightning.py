"""The Lightning callback for the ``pytorch_lightning`` package (``pip install pytorch-lightning``).

Same as :class:`spectralwatch.integrations.lightning.SpectralWatchCallback`, deriving from
``pytorch_lightning.Callback``: a ``pytorch_lightning.Trainer`` accepts only its own callbacks.
"""

from __future__ import annotations

from ..errors import MissingDependencyError
from .lightning import LightningCallbackMixin
from .monitor import LowAlphaWarning

__all__ = ["SpectralWatchCallback", "LowAlphaWarning"]

try:
    from pytorch_lightning import Callback as _Callback
except ImportError as exc:
    raise MissingDependencyError("spectralwatch.integrations.pytorch_lightning needs the pytorch_lightning "
                                 "package: pip install pytorch-lightning") from exc


class SpectralWatchCallback(LightningCallbackMixin, _Callback):
    __doc__ = LightningCallbackMixin.__doc__

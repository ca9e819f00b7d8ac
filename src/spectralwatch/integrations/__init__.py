"""spectralwatch inside training loops: callbacks for Lightning, Hugging Face ``Trainer`` and Keras 3.

Each callback analyses the live model every N epochs or steps, keeps a ``history`` DataFrame (one
row per analysis), logs ``spectralwatch/<metric>`` scalars through the framework's own logger and
can warn, or stop training, when the mean alpha falls below 2 (see :mod:`.monitor`). Import the
module of your framework; importing this package imports no framework:

* :class:`spectralwatch.integrations.lightning.SpectralWatchCallback` (``lightning``, else
  ``pytorch_lightning``; :mod:`spectralwatch.integrations.pytorch_lightning` for the latter);
* :class:`spectralwatch.integrations.transformers.SpectralWatchCallback`;
* :class:`spectralwatch.integrations.keras.SpectralWatchCallback`.
"""

__all__: list = []

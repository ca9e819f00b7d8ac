"""spectralwatch: how well is a neural network trained? Answered from its weights alone.

Heavy-Tailed Self-Regularization (HTSR) diagnostics of Martin & Mahoney: per layer, the
eigenvalue spectrum of ``W^T W``, a power-law fit of its tail (alpha), norm and rank metrics,
averaged into model-quality scores. ``import spectralwatch`` imports no deep-learning framework
and no plotting library.

>>> import numpy as np, spectralwatch
>>> W = np.random.default_rng(0).standard_normal((400, 100))
>>> report = spectralwatch.analyze(W)
>>> int(report.details.loc[0, "num_evals"])
100
"""

from ._version import __version__
from .compat import WeightWatcher
from .core.fit.powerlaw import PowerLawFit, fit_power_law
from .errors import (
    CorruptFileError,
    InvalidParameterError,
    LayerNotFoundError,
    MissingDependencyError,
    ModelMismatchError,
    ModelFileNotFoundError,
    NoLayersError,
    NotComputedError,
    NotYetSupportedError,
    SeveralModelsError,
    SpectralWatchError,
    UnknownFormatError,
    UnsafeFileError,
)
from .pipeline.analyze import LayerOutcome, analyze, describe, iter_analyze
from .results.report import Report
from .tools.compare import Comparison, compare
from .tools.distances import ModelDistances, distances
from .tools.editing import EditResult, svd_sharpness, svd_smoothing

from .core.fit.powerlaw import set_fit_drawer
from .render.plots.layer import fit_figure

set_fit_drawer(fit_figure)  # PowerLawFit.plot (core/ cannot import the renderer itself)
del set_fit_drawer, fit_figure

__all__ = [
    "analyze",
    "iter_analyze",
    "describe",
    "compare",
    "fit_power_law",
    "PowerLawFit",
    "Report",
    "LayerOutcome",
    "Comparison",
    "WeightWatcher",
    "distances",
    "ModelDistances",
    "svd_smoothing",
    "svd_sharpness",
    "EditResult",
    "SpectralWatchError",
    "InvalidParameterError",
    "MissingDependencyError",
    "UnknownFormatError",
    "CorruptFileError",
    "ModelFileNotFoundError",
    "UnsafeFileError",
    "NoLayersError",
    "NotYetSupportedError",
    "LayerNotFoundError",
    "NotComputedError",
    "ModelMismatchError",
    "SeveralModelsError",
    "__version__",
]

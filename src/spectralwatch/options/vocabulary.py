"""The words options are made of: layer types, grouped-convolution treatments, tail laws.

These names are shared by the option schema (which validates them), the readers (which label
layers with them) and the maths (which branches on them), so they live here, below all three.
"""

from __future__ import annotations

__all__ = ["LAYER_TYPES", "ANALYSABLE_TYPES", "CONV_TYPES", "GROUPED_CONV", "MP_FIT_METHODS", "XMIN_METHODS",
           "FIX_FINGERS", "SVD_METHODS", "FITS", "DISTRIBUTIONS", "TIES", "BOOTSTRAP_METHODS"]

#: every value the ``layer_type`` column can take
LAYER_TYPES = ("dense", "conv1d", "conv2d", "embedding", "conv3d", "conv_transpose", "lstm", "gru", "rnn",
               "lora", "norm", "unknown")
#: the layer types that carry a weight matrix to analyse
ANALYSABLE_TYPES = ("dense", "conv1d", "conv2d", "embedding", "conv3d", "conv_transpose", "lstm", "gru", "rnn",
                    "lora")
#: the layer types whose tensor is sliced into one matrix per kernel position
CONV_TYPES = ("conv1d", "conv2d", "conv3d", "conv_transpose")
#: how a grouped convolution becomes matrices: WeightWatcher's slicing, or one block per group
GROUPED_CONV = ("reference", "block")
#: how the Marchenko-Pastur sigma is fitted: quantile least squares, or WeightWatcher 0.7.7's density fit
MP_FIT_METHODS = ("quantile", "ww")
#: how ``xmin`` is chosen (``fix_fingers='xmin_peak'`` is WeightWatcher's peak window)
XMIN_METHODS = ("ks", "hill", "fixed")
#: WeightWatcher's guards against finite-size outliers ("fingers")
FIX_FINGERS = ("xmin_peak", "clip_xmax")
#: the eigenvalue routes (WeightWatcher's 'fast' and 'accurate' both mean 'auto')
SVD_METHODS = ("auto", "gram", "svd")
#: the tail laws of ``analyze(fit=...)``, by WeightWatcher's names, and what each means here
FITS = {"PL": "power_law", "TPL": "truncated_power_law", "E_TPL": "truncated_power_law"}
#: the laws ``fit_power_law(distribution=...)`` fits to the tail
DISTRIBUTIONS = ("power_law", "truncated_power_law", "lognormal", "exponential", "stretched_exponential")
#: how tied values are handled by the KS scan: every sorted position a candidate (WeightWatcher), or
#: one candidate and one step of the empirical CDF per distinct value (Clauset et al.)
TIES = ("reference", "merge")
#: the bootstrap intervals of alpha
BOOTSTRAP_METHODS = ("auto", "percentile", "parametric")

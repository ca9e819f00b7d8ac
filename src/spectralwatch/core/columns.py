"""The names of the columns of a report, in one place: which exist, in what order, which are shown.

The details table keeps WeightWatcher 0.7.7's column names; this module says how they are ordered
(:data:`DETAILS_ORDER`), which ones the model summary averages (:data:`SUMMARY_METRICS`), which
hold no value when the power-law fit failed (:data:`FIT_COLUMNS`), and which the terminal and
the HTML report show by default (:data:`TERMINAL_COLUMNS`, :data:`HTML_COLUMNS`).
"""

from __future__ import annotations

__all__ = ["SUMMARY_METRICS", "DETAILS_ORDER", "FIT_COLUMNS", "TERMINAL_COLUMNS", "HTML_COLUMNS"]

#: model-level means, WeightWatcher's ``get_summary()`` keys (``mp_softrank`` when present)
SUMMARY_METRICS = ("log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm",
                   "stable_rank", "mp_softrank")

#: column order of the details table: identity, spectrum, fit, outcome, then anything else
DETAILS_ORDER = ("layer_id", "name", "longname", "layer_type", "slice_id", "dtype", "quant", "N", "M", "Q",
                 "rf", "num_evals", "has_esd", "lambda_max", "sv_max", "sv_min", "norm", "log_norm",
                 "spectral_norm", "log_spectral_norm", "stable_rank", "matrix_rank", "rank_loss",
                 "numerical_rank", "numerical_rank_loss", "weak_rank_loss", "entropy", "alpha", "xmin", "xmax",
                 "D", "sigma", "num_pl_spikes", "n_tail", "num_fingers", "raw_alpha", "alpha_weighted",
                 "log_alpha_norm", "fit_method", "fit_reliable", "spectrum_route", "status", "warning", "message")

#: columns without a value when the power-law fit failed (WeightWatcher writes -1 there)
FIT_COLUMNS = frozenset({"alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes", "alpha_weighted",
                         "log_alpha_norm", "n_tail", "raw_alpha", "num_fingers"})

#: the columns of the command line's table (those present in the report)
TERMINAL_COLUMNS = ("layer_id", "name", "layer_type", "N", "M", "rf", "alpha", "alpha_weighted", "D",
                    "log_norm", "log_spectral_norm", "stable_rank", "num_spikes", "mp_softrank", "num_traps",
                    "detX_num", "phase", "status", "warning")

#: the columns of the HTML report's layer table (those present; optional analyses add theirs)
HTML_COLUMNS = ("layer_id", "name", "layer_type", "N", "M", "num_evals", "alpha", "alpha_weighted", "D",
                "sigma", "xmin", "num_pl_spikes", "log_norm", "log_spectral_norm", "stable_rank", "entropy",
                "log_alpha_norm", "num_spikes", "mp_softrank", "num_traps", "rand_distance", "detX_num",
                "phase", "phase_note", "status", "warning", "message")

"""The option table: every option of every public entry point, declared once.

Each :class:`Option` says its name, its default, the :mod:`constraint <.constraints>` its values
must meet, the pipeline stages that use it, whether it changes the numbers of a row (then it is
part of the fingerprint of the journal and of the eigenvalue cache), its command-line flag and
help, and which public functions take it. Everything else is derived from this table:

* the keyword defaults of :func:`spectralwatch.analyze` and the other entry points, which read
  them from :data:`DEFAULTS` (a default is written here and nowhere else), and the options table
  of their docstrings (:func:`numpydoc_table`);
* validation, once, at each public entry (:func:`spectralwatch.options.validate.validate`): the
  per-option constraints, then the :data:`RULES` that relate options to each other;
* the frozen per-stage configurations a stage receives (:mod:`spectralwatch.options.configs`);
* every command-line flag (``min_evals`` -> ``--min-evals``; booleans as ``--x/--no-x``);
* the fingerprint of the options that change results.

WeightWatcher 0.7.7's spellings that are not options of their own here (``ERG``, ``ww2x``,
``glorot_fix``, ...) are listed in :data:`WW_KEYWORDS`; the drop-in ``WeightWatcher`` class
accepts them.
"""

from __future__ import annotations

import difflib
import math
import numbers
import functools
import inspect
import textwrap
from dataclasses import dataclass, field, make_dataclass
from typing import Any

from .constraints import (
    Anything,
    Rejected,
    Bool,
    CallableOrNone,
    Choice,
    Constraint,
    Count,
    Custom,
    Device,
    Executor,
    Folder,
    Int,
    MappingOrNone,
    Path,
    Range,
    Real,
    Seed,
    Xmax,
)
from .layer_filter import LayerFilter
from .vocabulary import BOOTSTRAP_METHODS, DISTRIBUTIONS, FIX_FINGERS, GROUPED_CONV, MP_FIT_METHODS, SVD_METHODS, TIES

__all__ = ["Option", "OPTIONS", "ENTRIES", "DEFAULTS", "STAGES", "GROUPS", "WW_KEYWORDS", "options_of",
           "defaults_of", "keyword_values", "numpydoc_table", "document_options", "suggest_keywords", "unknown_keyword_message", "option"]

#: the stages of the pipeline, in order (an option names those that read it)
STAGES = ("read", "select", "matrices", "spectrum", "fit", "analyses", "walk", "summary", "figures", "run")

#: the groups of the command line's help, in order
GROUPS = {
    "selection": "which layers (and how they are read)",
    "spectrum": "how eigenvalues are computed",
    "fit": "the power-law fit of the tail",
    "statistics": "fit statistics (uncertainty, goodness of fit, other laws)",
    "rmt": "random-matrix theory",
    "variants": "what is analysed instead of each layer",
    "figures": "figures",
    "run": "how the analysis runs",
}


@dataclass(frozen=True)
class Option:
    """One option.

    Attributes
    ----------
    name : str
        The keyword (``min_evals``); the flag is ``--min-evals``.
    default : object
        The default value, as the user would write it (before normalisation).
    constraint : Constraint
        What values are accepted, in words and as a check.
    kind : str
        The type line of the docstring table (``'int'``, ``"{'PL', 'TPL', 'E_TPL'}"``).
    help : str
        One or two sentences: the docstring entry and the flag's help.
    stages : tuple of str
        The pipeline stages that read it (:data:`STAGES`), hence the stage configurations it is in.
    group : str
        Its section of the command line's help (:data:`GROUPS`).
    results : bool
        Whether it can change the numbers of a row (then it is in the fingerprint).
    flag : bool
        Whether the command line has a flag for it.
    short : str or None
        A one-letter flag (``'-l'``).
    metavar : str or None
        The flag's placeholder (default: the constraint's).
    cli_help : str
        The flag's help when it differs from ``help`` (e.g. a shorter text).
    """

    name: str
    default: Any
    constraint: Constraint
    kind: str
    help: str
    stages: tuple = ()
    group: str = "run"
    results: bool = True
    flag: bool = True
    short: str | None = None
    metavar: str | None = None
    cli_help: str = ""

    @property
    def flag_name(self) -> str:
        return "--" + self.name.replace("_", "-")


def _layers_check(value):
    return LayerFilter.parse(value)


def _revision_check(value):
    if value is None or (isinstance(value, str) and value.strip() and "\x00" not in value):
        return value
    raise Rejected()


def _fix_fingers_check(value):
    if value is None or value is False:
        return None
    if isinstance(value, str) and value in FIX_FINGERS:
        return value
    raise Rejected()


def _xmin_rule_check(value):
    """``fit_power_law(xmin=...)``: a rule name or a number."""
    if value is None or (isinstance(value, str) and value in ("ks", "hill", "peak")):
        return value
    if isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise Rejected()


def _peft_parse(text: str):
    return {"true": True, "false": False, "yes": True, "no": False}.get(text.lower(), text)


_FIT_VALUES = Choice(("PL", "TPL", "E_TPL"), aliases={"power_law": "PL", "truncated_power_law": "TPL"})

# ------------------------------------------------------------------------------------------------
# the options of the analysis, in the order of analyze()'s signature
# ------------------------------------------------------------------------------------------------
_ANALYSIS = (
    # which layers
    Option("layers", None, Custom(_layers_check, "a list of layer ids, layer type names or layer names",
                                  parse=LayerFilter.parse_cli, metavar="IDS"),
           "int, str or list",
           "Layer ids to keep (negative ids: to drop), layer types ('dense', 'conv2d', ...) or names ('-name' to "
           "drop). Several kinds combine with AND.", ("select",), "selection", short="-l",
           cli_help="comma-separated layer ids (negative: exclude), types (dense, conv2d...) or names "
                    "('-name' to exclude)"),
    Option("min_evals", 8, Int(0, allow_none=True, quiet_none=True), "int",
           "Skip layers with fewer eigenvalues (``M * rf`` pooled, ``M`` unpooled).", ("select",), "selection"),
    Option("max_evals", 15000, Int(0, allow_none=True, zero_is_none=True, none_means="no limit"), "int or None",
           "Skip layers with more eigenvalues (None or 0: no limit).", ("select",), "selection"),
    Option("max_N", 50000, Int(0, allow_none=True, zero_is_none=True, none_means="no limit"), "int or None",
           "Skip layers whose long side exceeds it, such as the vocabulary embedding of an LLM (None or 0: no "
           "limit).", ("select",), "selection"),
    Option("pool", True, Bool(), "bool",
           "Pool the eigenvalues of all kernel positions of a convolution into one ESD (default), or give one "
           "row per kernel position (``slice_id`` column).", ("select", "matrices"), "selection"),
    Option("conv2d_norm", True, Bool(), "bool",
           "Scale conv2d eigenvalues by 1/2 (pooled) or rf/2 (unpooled), like WeightWatcher.",
           ("matrices", "walk"), "selection"),
    Option("start_ids", None, Int(0, allow_none=True, zero_is_none=True), "int, optional",
           "First layer id (default: 0 for torch modules, 1 for state dicts and files).", ("read",), "selection",
           metavar="ID"),
    Option("grouped_conv", "reference", Choice(GROUPED_CONV), "{'reference', 'block'}",
           "Grouped convolutions: WeightWatcher's slicing ('reference') or one block per group ('block', pooled "
           "spectra only).", ("select", "matrices"), "selection"),
    Option("split_fused", False, Bool(), "bool",
           "Split fused QKV / gate-up projections that the model's config describes.", ("read",), "selection"),
    Option("peft", False, Choice((False, True, "with_base"), text="False, True or 'with_base'"),
           "{False, True, 'with_base'}",
           "LoRA / PEFT adapters: analyse the update B·A of each adapted layer (True) or W + B·A ('with_base', "
           "with ``base_model``).", ("read",), "selection", metavar="true|false|with_base"),
    Option("base_model", None, Anything(), "model or path, optional",
           "A model to subtract: analyse W - W_base per matched layer (with ``peft``: the model the adapter "
           "applies to).", ("read",), "selection"),
    Option("trust_pickle", False, Bool(none_is_false=False), "bool",
           "Let the readers unpickle checkpoints that need it, which EXECUTES code from the file: only for files "
           "you trust. By default such files are refused.", ("read",), "selection", results=False),
    Option("max_work_ratio", 64.0, Real(0.0, allow_none=True), "float or None",
           "Refuse a tensor, or a file, asking for more than this many times its stored tensor bytes of work "
           "(decoded values, listed tensors, header parsing) plus 1 MiB per tensor / 64 MiB per file: a "
           "tensor over budget gets a failed row, a file of shared blocks or huge headers is refused. None or "
           "0: no limit, for files you trust.", ("read",), "selection", metavar="X"),
    Option("revision", None, Custom(_revision_check, "None or a str (a branch, tag or commit hash)",
                                    parse=str, metavar="REV"), "str, optional",
           "The revision of a Hugging Face Hub model (``hf://org/name``): a branch, tag or commit hash.",
           ("read",), "selection"),
    # how eigenvalues are computed
    Option("svd_method", "auto", Choice(SVD_METHODS, aliases={"fast": "auto", "accurate": "auto"}),
           "{'auto', 'gram', 'svd'}",
           "Eigenvalue route: the Gram matrix with an SVD check of the smallest eigenvalues ('auto'), the Gram "
           "matrix only, or the SVD. WeightWatcher's 'fast' and 'accurate' mean 'auto'.", ("spectrum",),
           "spectrum"),
    Option("tolerance", 1e-6, Real(0.0, open_low=True), "float",
           "``weak_rank_loss`` counts eigenvalues below it.", ("spectrum",), "spectrum"),
    Option("device", "cpu", Device(), "{'cpu', 'cuda', 'cuda:N', 'mps'}",
           "Where eigenvalues are computed; an unavailable device falls back to the CPU with a RuntimeWarning. "
           "'mps' computes in float32.", ("spectrum",), "spectrum"),
    Option("cache_dir", None, Path(), "str or path, optional",
           "Folder of an on-disk eigenvalue cache keyed by tensor content: a re-run with other fit options or "
           "figures skips the linear algebra.", ("spectrum",), "spectrum", results=False, metavar="DIR"),
    Option("cache_max_bytes", 2 ** 31, Int(0, allow_none=True, none_means="no cap"), "int or None",
           "Cap of the eigenvalue cache folder in bytes (default 2 GiB); the least recently used entries go "
           "first.", ("spectrum",), "spectrum", results=False, metavar="BYTES"),
    # the fit
    Option("fit", "PL", _FIT_VALUES, "{'PL', 'TPL', 'E_TPL'}",
           "Law fitted to the ESD tail: 'PL' the power law; 'TPL' the truncated power law (adds ``Lambda``); "
           "'E_TPL' the same with ``fix_fingers='xmin_peak'``.", ("fit",), "fit", metavar="LAW"),
    Option("xmax", None, Xmax(), "None, 'force' or int",
           "An int k drops the k largest eigenvalues before fitting; 'force' fits up to the largest.", ("fit",),
           "fit"),
    Option("fix_fingers", None, Custom(_fix_fingers_check, "None (or False), 'xmin_peak' or 'clip_xmax'"),
           "{None, 'xmin_peak', 'clip_xmax'}",
           "Guard against spurious large alphas from finite-size outliers: search xmin near the peak of the ESD "
           "('xmin_peak') or refit without the largest eigenvalues ('clip_xmax').", ("fit",), "fit"),
    Option("xmin_max", None, Real(0.0, open_low=True, allow_none=True), "float, optional",
           "Upper end of the xmin search of 'xmin_peak' (default: 1.5 times the peak).", ("fit",), "fit"),
    Option("max_fingers", 10, Int(0), "int",
           "'clip_xmax' tries removing up to this many of the largest eigenvalues.", ("fit",), "fit"),
    Option("finger_thresh", 1.0, Real(0.0), "float",
           "Drop of alpha that makes 'clip_xmax' cut.", ("fit",), "fit"),
    Option("xmin_method", None, Choice((None, "ks", "hill", "fixed", "peak"), text=(
        "one of 'ks', 'hill', 'fixed' (or None: 'fixed' when xmin is given, else 'ks')")),
           "{'ks', 'hill', 'fixed'}, optional",
           "How xmin is chosen: the Kolmogorov-Smirnov scan ('ks', the reference); the median eigenvalue with the "
           "Hill estimate on the top half ('hill', TempBalance's PL_Alpha_Hill); ``xmin=`` ('fixed'). "
           "'peak' is a deprecated spelling of ``fix_fingers='xmin_peak'``.", ("fit", "analyses"), "statistics"),
    Option("xmin", None, Real(0.0, open_low=True, allow_none=True), "float, optional",
           "A fixed xmin (implies ``xmin_method='fixed'``).", ("fit", "analyses"), "statistics"),
    Option("xmin_range", None, Range(), "(low, high), optional",
           "Bound the KS scan to low <= xmin <= high.", ("fit", "analyses"), "statistics"),
    # randomness
    Option("rng", None, Seed(), "None, int or numpy.random.Generator",
           "Seed of every random step (randomized ESDs, bootstraps, sparse masks). Each layer derives its own "
           "generator from it and its id, so results do not depend on execution order.", ("analyses", "walk"),
           "run", metavar="SEED"),
    # random-matrix theory
    Option("mp_fit", False, Bool(), "bool",
           "Marchenko-Pastur fit of the bulk: ``sigma_mp``, ``num_spikes``, ``mp_softrank``, ``W_scale``, "
           "``bulk_max``, ``bulk_min`` and the training ``phase``.", ("analyses",), "rmt"),
    Option("mp_fit_method", "quantile", Choice(MP_FIT_METHODS), "{'quantile', 'ww'}",
           "How the Marchenko-Pastur sigma is fitted: quantile least squares, or WeightWatcher 0.7.7's density "
           "fit.", ("analyses",), "rmt", metavar="METHOD"),
    Option("randomize", False, Bool(), "bool",
           "Compare with the spectrum of the element-wise shuffled matrices: ``max_rand_eval``, "
           "``rand_distance``, ``num_traps`` (correlation traps), ``rand_*``.", ("analyses",), "rmt"),
    Option("detX", False, Bool(), "bool",
           "The detX / ERG condition: ``detX_num``, ``detX_val``, ``num_ERG_spikes``, ``ERG_gap`` "
           "(WeightWatcher's ``ERG=True`` means the same).", ("analyses",), "rmt"),
    Option("vectors", False, Bool(), "bool",
           "Eigenvector localisation metrics of the tail and the bulk (12 columns).", ("analyses",), "rmt"),
    # fit statistics
    Option("bootstrap", 0, Count(), "int",
           "Bootstrap replicates of the tail: a percentile confidence interval of alpha (``alpha_ci_low``, "
           "``alpha_ci_high``) and ``xmin_stability``.", ("analyses",), "statistics"),
    Option("ci_level", 0.9, Real(0.0, 1.0, open_low=True, open_high=True, text="a number between 0 and 1"),
           "float", "Coverage of the bootstrap interval.", ("analyses",), "statistics"),
    Option("gof_samples", 0, Count(), "int",
           "Synthetic samples of the semi-parametric goodness-of-fit p-value ``gof_p`` (Clauset, Shalizi & "
           "Newman, SIAM Review 2009, section 4.1).", ("analyses",), "statistics"),
    Option("compare_tails", False, Bool(), "bool",
           "Likelihood-ratio tests of the power law against the lognormal, exponential, stretched exponential "
           "and truncated power law (``lr_*``, ``best_tail``).", ("analyses",), "statistics"),
    Option("farms", False, Bool(), "bool",
           "FARMS alpha (Hu et al., ICML 2025): the averaged ESD of sub-matrices of one aspect ratio "
           "(``farms_alpha``, ...).", ("analyses",), "statistics"),
    Option("farms_q", 1.0, Real(1.0, text="a number >= 1 (rows / columns of the sub-matrices)"), "float",
           "Aspect ratio of the FARMS sub-matrices.", ("analyses",), "statistics", metavar="Q"),
    Option("fit_quality", False, Bool(), "bool",
           "The ``fit_quality`` flags (few tail eigenvalues, a better lognormal, an unstable xmin); implied by "
           "the statistics options above.", ("analyses",), "statistics"),
    Option("exclude_flagged", False, Bool(), "bool",
           "Leave flagged layers out of the summary, which then also holds ``num_averaged`` and "
           "``num_flagged``.", ("summary",), "statistics"),
    # what is analysed instead of each layer
    Option("inverse", False, Bool(), "bool", "Analyse each matrix's pseudo-inverse: eigenvalues 1/lambda.",
           ("matrices",), "variants"),
    Option("intra", False, Bool(), "bool", "ESDs of the products of consecutive layers (one row per pair).",
           ("walk",), "variants"),
    Option("sparsify", True, Bool(none_is_false=False), "bool",
           "With ``intra``: through a random sparse 0/1 mask between the layers.", ("walk",), "variants"),
    Option("stacked", False, Bool(), "bool", "All layers standardised and stacked into one matrix (one row).",
           ("walk",), "variants"),
    # figures
    Option("plot", False, Bool(), "bool",
           "Write the figures of every layer and of the model as PNG files into ``savefig``, under "
           "WeightWatcher's file names; in a Jupyter notebook also show them under the cell (with "
           "``savefig=False``: only show them).", ("figures",), "figures", results=False, flag=False),
    Option("savefig", "ww-img", Folder(), "str, path or bool",
           "Folder of the figures (True: 'ww-img').", ("figures",), "figures", results=False, flag=False),
    Option("deltas", False, Bool(), "bool",
           "With the figures: also the eigenvalue-spacing figures (``deltaEs``, ``level-stats``).", ("figures",),
           "figures", results=False),
)

# ------------------------------------------------------------------------------------------------
# how the analysis runs (not part of the results)
# ------------------------------------------------------------------------------------------------
_RUN = (
    Option("progress", False, Bool(), "bool",
           "Draw a progress line on stderr (layer count, current layer, elapsed time and ETA).", ("run",), "run",
           results=False, flag=False),
    Option("workers", None, Int(1, allow_none=True, none_means="one per core"), "int, optional",
           "Layers analysed side by side: None, one per core (threads of this process, largest layers first); "
           "1, one after the other. Results are bit-identical whatever the number and kind of workers.",
           ("run",), "run", results=False, short="-j"),
    Option("executor", None, Executor(), "None, str, distributed.Client or concurrent.futures.Executor",
           "Where layers run: None or 'threads' (this process), 'serial', 'processes' (a local process pool, "
           "which survives a worker killed by the out-of-memory killer), a Dask scheduler address "
           "'dask://host:port' or ``distributed.Client`` (workers read their own tensors from file-backed "
           "models), or any ``concurrent.futures.Executor``.", ("run",), "run", results=False,
           cli_help="threads of this process (default), worker processes, or serial"),
)
_CALLBACKS = (
    Option("on_result", None, CallableOrNone(), "callable, optional",
           "``on_result(layer_id, rows)`` is called as each layer is finished, with the layer's row dicts. An "
           "exception it raises stops the analysis.", ("run",), "run", results=False, flag=False),
    Option("done", None, MappingOrNone(), "mapping, optional",
           "``{layer_id: [row, ...]}``: rows of layers already analysed (by an interrupted run); these layers "
           "are not analysed again and their rows take their place in the table. Not with ``intra`` or "
           "``stacked``.", ("run",), "run", results=False, flag=False),
)

#: every option of the analysis, by name
OPTIONS: dict = {o.name: o for o in _ANALYSIS + _RUN + _CALLBACKS}


def option(name: str) -> Option:
    """The :class:`Option` of an analysis keyword."""
    return OPTIONS[name]


def _pick(*names) -> tuple:
    return tuple(OPTIONS[n] for n in names)


_SELECTION = ("layers", "min_evals", "max_evals", "max_N", "pool", "conv2d_norm", "start_ids", "grouped_conv",
              "split_fused", "peft", "base_model", "trust_pickle", "max_work_ratio", "revision")

# options of the other entry points that are not analysis options
_OWN = {
    "describe": (Option("skipped", False, Bool(), "bool",
                        "List every candidate layer, with ``analysed`` (bool) and ``reason`` (why a layer is not "
                        "analysed), sorted by id.", (), "selection", results=False),),
    "distances": (Option("method", "raw", Choice(("raw", "euclidean", "cka")), "{'raw', 'euclidean', 'cka'}",
                         "'raw': the distance of the whole tensors; 'euclidean' and 'cka' per matrix.", (),
                         "selection"),),
    "svd_smoothing": (
        Option("percent", 0.8, Real(-1.0, 1.0), "float in [-1, 1]",
               "Fraction of the eigenvalues to keep with ``method='svd'`` (negative: fraction of the largest to "
               "remove).", (), "selection"),
        Option("method", "detX", Choice(("detX", "svd", "alpha_min", "rmt")), "{'detX', 'svd', 'alpha_min', 'rmt'}",
               "How many components each layer keeps: the detX cut, ``percent`` of them, the power-law tail, or "
               "those above the Marchenko-Pastur bulk.", (), "selection"),
        Option("fit", "PL", _FIT_VALUES, "{'PL', 'TPL', 'E_TPL'}",
               "With 'alpha_min': the fit whose tail is kept ('E_TPL' uses the xmin_peak rule).", (), "fit"),
        Option("mp_fit_method", "quantile", Choice(MP_FIT_METHODS), "{'quantile', 'ww'}",
               "Sigma fit of the Marchenko-Pastur law ('rmt').", (), "rmt"),
        Option("out", None, Path(), "path, optional",
               "Write the edited model to this new file (a folder for a folder model); required for path inputs "
               "unless ``inplace=True``.", (), "selection"),
        Option("inplace", False, Bool(), "bool",
               "Modify the given object (or overwrite the given file or folder) instead of a copy.", (),
               "selection"),
    ),
}
_OWN["fit_power_law"] = (
    Option("xmin", None, Custom(_xmin_rule_check, "None, 'ks', 'hill' or a finite number > 0"),
           "None, 'ks', 'hill' or float",
           "How the lower cut-off is chosen: None or 'ks', the Kolmogorov-Smirnov scan of Clauset, Shalizi & "
           "Newman (SIAM Review 2009) over every candidate; 'hill', the median value with the Hill estimate on "
           "the top half (TempBalance's PL_Alpha_Hill); a number, that xmin, fixed. ('peak' is a deprecated "
           "spelling of fix_fingers='xmin_peak'.)", (), "statistics"),
    OPTIONS["xmin_range"], OPTIONS["xmax"],
    Option("distribution", "power_law", Choice(DISTRIBUTIONS), "str",
           "'power_law', or a law fitted by maximum likelihood to the tail with its own KS choice of xmin, kept "
           "in PowerLawFit.tail: 'truncated_power_law', 'lognormal', 'exponential', 'stretched_exponential'.",
           (), "statistics"),
    OPTIONS["rng"],
    Option("bootstrap", 0, Count(), "int", "Replicates of a bootstrap confidence interval of alpha "
           "(PowerLawFit.ci); 0: none.", (), "statistics"),
    Option("gof_samples", 0, Count(), "int", "Synthetic samples of the goodness-of-fit p-value (PowerLawFit.gof); "
           "0: none.", (), "statistics"),
    OPTIONS["ci_level"],
    Option("ci_method", "auto", Choice(BOOTSTRAP_METHODS), "{'auto', 'percentile', 'parametric'}",
           "The bootstrap interval: percentile, parametric (synthetic tails of the fitted law), or 'auto' "
           "(parametric below 300 tail values, where the percentile interval covers too little).", (),
           "statistics"),
    Option("ties", "merge", Choice(TIES), "{'merge', 'reference'}",
           "'merge': tied values form one candidate and one step of the empirical CDF (Clauset et al., the "
           "powerlaw package); 'reference': every sorted position is a candidate (WeightWatcher).", (),
           "statistics"),
    OPTIONS["fix_fingers"], OPTIONS["xmin_max"], OPTIONS["max_fingers"], OPTIONS["finger_thresh"],
    Option("thresh", None, Real(0.0, allow_none=True, text="None (relative to the largest value) or a finite "
                                                       "number >= 0"), "float or None",
           "Only values above it are fitted; None: 1e-12 times the largest value, so that the fit of c * evals "
           "is that of evals for any c > 0 (analyze uses WeightWatcher's absolute 1e-5 on eigenvalues).", (),
           "statistics"),
)
_OWN["svd_sharpness"] = tuple(o for o in _OWN["svd_smoothing"] if o.name in ("mp_fit_method", "out", "inplace"))
_ALL_ANALYSIS = tuple(o.name for o in _ANALYSIS)

#: the options each public entry point takes, in its signature's order
ENTRIES: dict = {
    "analyze": _ANALYSIS + _RUN + _CALLBACKS,
    "iter_analyze": _ANALYSIS + _RUN + _pick("done"),
    "describe": _pick(*_SELECTION) + _OWN["describe"],
    "compare": tuple(o for o in _ANALYSIS if o.name not in ("plot", "savefig")) + _RUN,
    "distances": _OWN["distances"] + _pick("layers", "pool", "start_ids", "min_evals", "max_evals", "max_N"),
    "svd_smoothing": _OWN["svd_smoothing"][:3] + _pick("layers", "min_evals", "max_evals", "max_N", "pool",
                                                       "start_ids") + _OWN["svd_smoothing"][3:4] + _pick("rng")
    + _OWN["svd_smoothing"][4:],
    "svd_sharpness": _pick("layers", "min_evals", "max_evals", "max_N", "pool", "start_ids") + _OWN["svd_sharpness"][:1]
    + _pick("rng") + _OWN["svd_sharpness"][1:],
    "get_ESD": _pick("pool", "conv2d_norm", "start_ids", "svd_method", "rng"),
    "fit_power_law": _OWN["fit_power_law"],
}


def options_of(entry: str) -> tuple:
    """The :class:`Option` s of a public entry point, in signature order."""
    return ENTRIES[entry]


def keyword_values(entry: str, local: dict) -> dict:
    """The values of ``entry``'s options among a function's ``locals()`` (its keyword parameters)."""
    return {o.name: local[o.name] for o in options_of(entry)}


def defaults_of(entry: str):
    """The defaults of an entry point's options as a frozen object with one attribute per option
    (what the entry points' signatures read: ``min_evals=DEFAULTS.min_evals``)."""
    opts = options_of(entry)
    cls = make_dataclass(f"{entry}_defaults", [(o.name, Any, field(default=o.default)) for o in opts], frozen=True)
    return cls()


#: the defaults of the analysis options (``analyze``'s keywords)
DEFAULTS = defaults_of("analyze")


def document_options(entry: str, skip=()):
    """A decorator that writes the options of ``entry`` (from this table) into the docstring of the
    function, where it says ``{options}`` (numpydoc ``Parameters`` entries)."""
    def decorate(func):
        table = "\n".join(("    " + line) if line else line for line in numpydoc_table(entry, skip).split("\n"))
        func.__doc__ = func.__doc__.replace("    {options}", table)
        return func
    return decorate


def suggest_keywords(func):
    """A decorator: a keyword the function does not take raises the usual ``TypeError``, with the
    closest option's name, or, for WeightWatcher 0.7.7's own spellings, what to use instead.

    The wrapped function keeps its explicit signature (``inspect.signature``, ``help``).
    """
    params = inspect.signature(func).parameters

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        for key in kwargs:
            if key not in params:
                raise TypeError(unknown_keyword_message(func.__name__, key, list(params)))
        return func(*args, **kwargs)

    return wrapper


def unknown_keyword_message(func: str, key: str, names: list) -> str:
    """``func() got an unexpected keyword argument 'key'.`` with a hint."""
    text = f"{func}() got an unexpected keyword argument '{key}'."
    ww = WW_KEYWORDS.get(key)
    if ww is not None:
        instead = f" spectralwatch's option is '{ww.maps_to}'." if ww.maps_to else ""
        return (f"{text} It is a WeightWatcher 0.7.7 keyword ({ww.what}), which the drop-in "
                f"spectralwatch.WeightWatcher class accepts.{instead}")
    close = difflib.get_close_matches(key, names, n=1)
    return text + (f" Did you mean '{close[0]}'?" if close else "")


def numpydoc_table(entry: str, skip=()) -> str:
    """The ``Parameters`` entries of an entry point's options, from the table (numpydoc style)."""
    lines = []
    for o in options_of(entry):
        if o.name in skip:
            continue
        default = "" if o.default is None or o.kind.endswith("optional") else f", default {o.default!r}"
        lines.append(f"{o.name} : {o.kind}{default}")
        lines.extend(textwrap.wrap(o.help, width=92, initial_indent="    ", subsequent_indent="    ",
                                   break_on_hyphens=False))
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------
# WeightWatcher's spellings, accepted by the drop-in WeightWatcher class
# ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class WWKeyword:
    """A WeightWatcher 0.7.7 keyword that is not an option of its own here.

    ``maps_to``: the option it sets (with ``value(v)``), or None when it has no effect here;
    ``off``: values that mean "off" (always accepted); ``what``: what it does in the reference.
    """

    name: str
    maps_to: str | None
    what: str
    off: tuple = (False, None)
    status: str = "alias"  # 'alias', 'not_yet' (NotYetSupportedError), 'replaced' / 'refused' (InvalidParameterError)
    advice: str = ""

    def value(self, v):
        if self.name == "ww2x":
            return not v
        return v


#: WeightWatcher 0.7.7 keywords accepted by the WeightWatcher class, and what each becomes
WW_KEYWORDS: dict = {k.name: k for k in (
    WWKeyword("ERG", "detX", "the detX / ERG condition (an alias of detX)"),
    WWKeyword("ww2x", "pool", "WeightWatcher 2.x's unpooled conv slices (ww2x=True is pool=False)"),
    WWKeyword("glorot_fix", None, "Glorot normalisation (a no-op in WeightWatcher 0.7.7)", status="not_yet"),
    WWKeyword("conv2d_fft", None, "FFT of conv2d kernels", status="not_yet"),
    WWKeyword("fft", None, "FFT of weight matrices", status="not_yet"),
    WWKeyword("channels", None, "overriding the conv channel layout", off=(None,), status="not_yet"),
    WWKeyword("min_size", None, "the smallest layer size", off=(None,), status="replaced",
              advice="use min_evals instead"),
    WWKeyword("max_size", None, "the largest layer size", off=(None,), status="replaced",
              advice="use max_evals instead"),
    WWKeyword("pl_package", None, "the power-law fitting package", off=("ww", "WW"), status="refused",
              advice="'ww' (spectralwatch has its own fitter; the third-party 'powerlaw' package is never used)"),
)}

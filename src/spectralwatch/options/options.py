"""Analysis options: one validated, immutable object, with WeightWatcher's keyword names.

Every option is checked when ``analyze()`` is called, with one message format that names the
parameter, the allowed values and the bad value. WeightWatcher options whose capability is not in
this version raise :class:`~spectralwatch.errors.NotYetSupportedError` naming them instead of
being silently ignored.
"""

from __future__ import annotations

import difflib
import numbers
import os
from dataclasses import dataclass, field

from ..errors import InvalidParameterError, NotYetSupportedError
from ..pipeline.stats_columns import STATS_KEYS, stats_options
from ..io.sources.base import ANALYSABLE_TYPES

__all__ = ["Options", "make_options", "LayerFilter"]

FIT_NAMES = {"PL": "power_law", "power_law": "power_law", "TPL": "truncated_power_law",
             "truncated_power_law": "truncated_power_law", "E_TPL": "truncated_power_law"}
FIX_FINGERS = (None, "xmin_peak", "clip_xmax")
SVD_METHODS = {"auto": "auto", "gram": "gram", "svd": "svd", "fast": "auto", "accurate": "auto"}

# WeightWatcher options that are accepted only at their "off" value in this version:
# option -> (off values, what it does)
_NOT_YET = {
    "glorot_fix": ((False, None), "Glorot normalisation (a no-op in WeightWatcher 0.7.7)"),
    "conv2d_fft": ((False, None), "FFT of conv2d kernels"),
    "fft": ((False, None), "FFT of weight matrices"),
    "channels": ((None,), "overriding the conv channel layout"),
}
# accepted for compatibility, no effect on results
_INERT: set = set()
_REPLACED = {
    "min_size": "use min_evals instead",
    "max_size": "use max_evals instead",
}


def _bad(name: str, func: str, allowed: str, value) -> InvalidParameterError:
    return InvalidParameterError(f"The '{name}' parameter of {func} must be {allowed}. Got {value!r}.")


def _int(name, value, func, minimum=0, allow_none=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        extra = " or None" if allow_none else ""
        raise _bad(name, func, f"an int >= {minimum}{extra}", value)
    return int(value)


def _float(name, value, func, allow_none=False, positive=False):
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or (positive and not value > 0):
        cond = "a positive number" if positive else "a number"
        raise _bad(name, func, cond + (" or None" if allow_none else ""), value)
    return float(value)


@dataclass(frozen=True)
class LayerFilter:
    """Which layers to keep (WeightWatcher's ``layers=[...]``), combined with AND.

    ``ids``: keep these ids; ``exclude_ids``: drop these (given as negative ids);
    ``types``: keep these layer types; ``names`` / ``exclude_names`` match the short name or the
    long name (names to drop are given with a leading ``'-'``).
    """

    ids: frozenset = frozenset()
    exclude_ids: frozenset = frozenset()
    types: frozenset = frozenset()
    names: frozenset = frozenset()
    exclude_names: frozenset = frozenset()

    @classmethod
    def parse(cls, layers, func="analyze") -> "LayerFilter":
        if layers is None:
            return cls()
        if isinstance(layers, (str, numbers.Integral)):
            layers = [layers]
        try:
            items = list(layers)
        except TypeError:
            raise _bad("layers", func, "a list of layer ids, layer type names or layer names", layers) from None
        ints = [int(x) for x in items if isinstance(x, numbers.Integral) and not isinstance(x, bool)]
        strs = [x for x in items if isinstance(x, str)]
        if len(ints) + len(strs) != len(items):
            raise _bad("layers", func, "a list of ints (ids) and strs (types or names)", layers)
        if any(i < 0 for i in ints) and any(i >= 0 for i in ints):
            raise _bad("layers", func, "either ids to keep (>= 0) or ids to exclude (< 0), not both", layers)
        types = {s for s in strs if s in ANALYSABLE_TYPES}
        names = [s for s in strs if s not in types]
        drop = [s[1:] for s in names if s.startswith("-")]
        keep = [s for s in names if not s.startswith("-")]
        if drop and keep:
            raise _bad("layers", func, "either names to keep or names to exclude ('-name'), not both", layers)
        return cls(ids=frozenset(i for i in ints if i >= 0), exclude_ids=frozenset(-i for i in ints if i < 0),
                   types=frozenset(types), names=frozenset(keep), exclude_names=frozenset(drop))

    def keeps(self, layer_id: int, name: str, longname: str, layer_type: str) -> bool:
        if self.ids and layer_id not in self.ids:
            return False
        if layer_id in self.exclude_ids:
            return False
        if self.types and layer_type not in self.types:
            return False
        if self.names and name not in self.names and longname not in self.names:
            return False
        if name in self.exclude_names or longname in self.exclude_names:
            return False
        return True


@dataclass(frozen=True)
class Options:
    """Validated options of one analysis (see :func:`spectralwatch.analyze` for their meaning)."""

    layers: LayerFilter = field(default_factory=LayerFilter)
    min_evals: int = 8
    max_evals: int | None = 15000
    max_N: int | None = 50000
    pool: bool = True
    conv2d_norm: bool = True
    start_ids: int | None = None
    fit: str = "power_law"
    xmax: object = None
    fix_fingers: str | None = None
    xmin_max: float | None = None
    max_fingers: int = 10
    finger_thresh: float = 1.0
    tolerance: float = 1e-6
    svd_method: str = "auto"
    rng: object = None
    mp_fit: bool = False
    mp_fit_method: str = "quantile"
    randomize: bool = False
    detX: bool = False
    device: str = "cpu"
    cache_dir: str | None = None
    plot: bool = False
    savefig: str | None = "ww-img"
    deltas: bool = False
    vectors: bool = False
    intra: bool = False
    sparsify: bool = True
    stacked: bool = False
    inverse: bool = False
    grouped_conv: str = "reference"
    split_fused: bool = False
    peft: object = False
    base_model: object = field(default=None, repr=False, compare=False)
    # fit statistics (spectralwatch.layer_stats, docs/statistics.md)
    bootstrap: int = 0
    ci_level: float = 0.9
    gof_samples: int = 0
    compare_tails: bool = False
    xmin_method: str = "ks"
    xmin: float | None = None
    xmin_range: tuple | None = None
    farms: bool = False
    farms_q: float = 1.0
    fit_quality: bool = False
    exclude_flagged: bool = False
    # untrusted input (docs/formats.md, "Trusted legacy pickles")
    trust_pickle: bool = False


def _check_reference_options(extra: dict, func: str) -> None:
    for key, value in extra.items():
        if key in _INERT:
            continue
        if key in _REPLACED:
            raise InvalidParameterError(f"The '{key}' parameter of {func} is not used: {_REPLACED[key]}.")
        if key in _NOT_YET:
            offs, what = _NOT_YET[key]
            if not any(value is off for off in offs):
                raise NotYetSupportedError(
                    f"The '{key}' option of {func} ({what}) is not available in this version of "
                    f"spectralwatch; call {func} without it (or with {key}={offs[0]!r})."
                )
            continue
        known = sorted(set(_NOT_YET) | _INERT | set(_REPLACED) | set(Options.__dataclass_fields__))
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise TypeError(f"{func}() got an unexpected keyword argument '{key}'.{hint}")


def make_options(func: str = "analyze", *, layers=None, min_evals=8, max_evals=15000, max_N=50000,
                 pool=True, conv2d_norm=True, start_ids=None, fit="PL", xmax=None, fix_fingers=None,
                 xmin_max=None, max_fingers=10, finger_thresh=1.0, tolerance=1e-6, svd_method="auto",
                 ww2x=False, pl_package="ww", rng=None,
                 mp_fit=False, mp_fit_method="quantile", randomize=False, detX=False, ERG=False,
                 device="cpu", cache_dir=None, plot=False, savefig="ww-img", deltas=False,
                 vectors=False, intra=False, sparsify=True,
                 stacked=False, inverse=False, grouped_conv="reference", split_fused=False, peft=False,
                 base_model=None, trust_pickle=False, **reference_options) -> Options:
    """Validate keyword options (WeightWatcher names) into an :class:`Options`.

    ``trust_pickle=True`` lets the file readers unpickle checkpoints that need it, which EXECUTES
    code from the file (docs/formats.md, "Trusted legacy pickles"); by default such files are refused.
    """
    stats_kw = {k: reference_options.pop(k) for k in STATS_KEYS if k in reference_options}
    _check_reference_options(reference_options, func)
    if ww2x:  # WeightWatcher's deprecated alias of pool=False
        pool = False
    if pl_package not in ("ww", "WW"):
        raise _bad("pl_package", func, "'ww' (spectralwatch has its own fitter; the third-party "
                   "'powerlaw' package is never used)", pl_package)
    if fit not in FIT_NAMES:
        raise _bad("fit", func, "one of 'PL', 'power_law', 'TPL', 'truncated_power_law', 'E_TPL'", fit)
    if fix_fingers is False:
        fix_fingers = None
    if fit == "E_TPL":  # WeightWatcher: E_TPL is the truncated power law with the xmin_peak rule
        if fix_fingers == "clip_xmax":
            raise _bad("fix_fingers", func, "None or 'xmin_peak' with fit='E_TPL'", fix_fingers)
        fix_fingers = "xmin_peak"
    stats, fix_fingers = stats_options(func, fix_fingers=fix_fingers, **stats_kw)
    if fix_fingers not in FIX_FINGERS:
        raise _bad("fix_fingers", func, "one of None, 'xmin_peak', 'clip_xmax'", fix_fingers)
    if not (xmax is None or xmax == "force" or (isinstance(xmax, numbers.Integral) and not isinstance(xmax, bool))):
        raise _bad("xmax", func, "None, 'force' or an int (number of top eigenvalues to drop)", xmax)
    if svd_method not in SVD_METHODS:
        raise _bad("svd_method", func, "one of " + ", ".join(repr(m) for m in SVD_METHODS), svd_method)
    for name, value in (("pool", pool), ("conv2d_norm", conv2d_norm)):
        if not isinstance(value, bool):
            raise _bad(name, func, "True or False", value)
    start = _int("start_ids", start_ids, func, minimum=0, allow_none=True)
    if not isinstance(trust_pickle, bool):
        raise _bad("trust_pickle", func, "True or False (True executes pickled code from the model file)",
                   trust_pickle)
    return Options(
        layers=LayerFilter.parse(layers, func),
        min_evals=_int("min_evals", 0 if min_evals is None else min_evals, func),
        max_evals=_int("max_evals", max_evals, func, allow_none=True) or None,
        max_N=_int("max_N", max_N, func, allow_none=True) or None,
        pool=pool, conv2d_norm=conv2d_norm,
        start_ids=start or None,  # WeightWatcher: 0 means "the format's default"
        fit=FIT_NAMES[fit], xmax=xmax if xmax is None or xmax == "force" else int(xmax),
        fix_fingers=fix_fingers,
        xmin_max=_float("xmin_max", xmin_max, func, allow_none=True, positive=True),
        max_fingers=_int("max_fingers", max_fingers, func, minimum=1),
        finger_thresh=_float("finger_thresh", finger_thresh, func),
        tolerance=_float("tolerance", tolerance, func, positive=True),
        svd_method=SVD_METHODS[svd_method],
        rng=_rng(rng, func),
        **_rmt_options(func, mp_fit=mp_fit, mp_fit_method=mp_fit_method, randomize=randomize, detX=detX,
                       ERG=ERG),
        device=_device(device),
        cache_dir=_cache_dir(cache_dir, func),
        **_plot_options(func, plot=plot, savefig=savefig, deltas=deltas),
        **_format_options(func, grouped_conv=grouped_conv, split_fused=split_fused, peft=peft,
                          base_model=base_model, pool=pool),
        **_variant_options(func, vectors=vectors, intra=intra, sparsify=sparsify, stacked=stacked,
                           inverse=inverse),
        **stats,
        trust_pickle=trust_pickle,
    )


def _rng(rng, func):
    """``rng``: None, an int seed >= 0, or a ``numpy.random.Generator``."""
    import numpy as np

    if rng is None or isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool) and rng >= 0:
        return int(rng)
    raise _bad("rng", func, "None, an int >= 0 or a numpy.random.Generator", rng)


def _variant_options(func, **flags) -> dict:
    """``vectors``, ``intra``, ``sparsify``, ``stacked``, ``inverse``: booleans (None means False).

    ``intra`` and ``stacked`` each replace the per-layer walk by another one; they cannot be combined.
    """
    out = {}
    for name, value in flags.items():
        if value is None and name != "sparsify":
            value = False
        if not isinstance(value, bool):
            raise _bad(name, func, "True or False", value)
        out[name] = value
    if out["intra"] and out["stacked"]:
        raise _bad("stacked", func, "False when intra=True (each replaces the layer-by-layer analysis)", True)
    return out


def _format_options(func, *, grouped_conv, split_fused, peft, base_model, pool) -> dict:
    """Layer-reading options beyond the reference (see docs/formats.md).

    ``grouped_conv``: 'reference' (default, WeightWatcher's slicing) or 'block' (per-group
    blocks, pooled spectra only); ``split_fused``: split fused QKV / gate-up projections the
    model's config describes; ``peft``: False, True or 'with_base' (LoRA adapters);
    ``base_model``: a model to subtract (or, with ``peft``, the model the adapter applies to).
    """
    from ..core.matrices import GROUPED_CONV

    if grouped_conv not in GROUPED_CONV:
        raise _bad("grouped_conv", func, "one of " + ", ".join(repr(g) for g in GROUPED_CONV), grouped_conv)
    if grouped_conv == "block" and not pool:
        raise _bad("grouped_conv", func, "'reference' when pool=False (the 'block' treatment pools the "
                   "blocks of every kernel position)", grouped_conv)
    if not isinstance(split_fused, bool):
        raise _bad("split_fused", func, "True or False", split_fused)
    if peft is None:
        peft = False
    if not (peft is False or peft is True or peft == "with_base"):
        raise _bad("peft", func, "False, True or 'with_base'", peft)
    return {"grouped_conv": grouped_conv, "split_fused": split_fused, "peft": peft, "base_model": base_model}


def _plot_options(func, *, plot, savefig, deltas) -> dict:
    """``plot``, ``deltas``: booleans; ``savefig``: the figure folder (WeightWatcher: True = 'ww-img').

    spectralwatch writes figures to files and never shows them, so ``plot=True`` needs a folder.
    """
    flags = {}
    for name, value in (("plot", plot), ("deltas", deltas)):
        if value is None:
            value = False
        if not isinstance(value, bool):
            raise _bad(name, func, "True or False", value)
        flags[name] = value
    if savefig is True:
        savefig = "ww-img"
    if isinstance(savefig, os.PathLike):
        savefig = os.fspath(savefig)
    if not (savefig is None or savefig is False or (isinstance(savefig, str) and savefig)):
        raise _bad("savefig", func, "a folder (str or path), True (the folder 'ww-img') or False", savefig)
    if flags["plot"] and not savefig:
        raise _bad("savefig", func, "a folder (str or path) or True when plot=True: spectralwatch writes "
                   "figures to files and never shows them (draw one yourself with spectralwatch.plots)", savefig)
    return dict(flags, savefig=savefig or None)


def _device(device):
    from ..pipeline.spectra import resolve_device

    return resolve_device(device)


def _cache_dir(cache_dir, func):
    import os

    if cache_dir is None:
        return None
    if not isinstance(cache_dir, (str, os.PathLike)):
        raise _bad("cache_dir", func, "None or a folder path", cache_dir)
    return os.fspath(cache_dir)


def _rmt_options(func, *, mp_fit, mp_fit_method, randomize, detX, ERG) -> dict:
    """``mp_fit``, ``randomize``, ``detX`` (``ERG`` is its alias): booleans (None means False);
    ``mp_fit_method``: 'quantile' (default) or 'ww' (WeightWatcher 0.7.7's density fit), see docs/rmt.md.
    """
    out = {}
    for name, value in (("mp_fit", mp_fit), ("randomize", randomize), ("detX", detX), ("ERG", ERG)):
        value = False if value is None else value
        if not isinstance(value, bool):
            raise _bad(name, func, "True or False", value)
        out[name] = value
    if mp_fit_method not in ("quantile", "ww"):
        raise _bad("mp_fit_method", func, "one of 'quantile', 'ww'", mp_fit_method)
    erg = out.pop("ERG")
    out["detX"] = out["detX"] or erg
    return dict(out, mp_fit_method=mp_fit_method)

"""Validation, once, at each public entry point: per-option constraints, then the rules that
relate options to each other.

:func:`validate` is called by :func:`spectralwatch.analyze` and the other public functions (and
the command line) before any work is done; the functions they call internally receive frozen,
already valid configurations (:mod:`spectralwatch.options.configs`) and never check again.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping

from ..errors import InvalidParameterError
from .constraints import Rejected
from .schema import options_of, unknown_keyword_message
from .vocabulary import FITS

__all__ = ["validate", "bad_value", "RULES"]


def bad_value(name: str, func: str, allowed: str, value) -> InvalidParameterError:
    """The one error message of a bad option value."""
    return InvalidParameterError(f"The '{name}' parameter of {func} must be {allowed}. Got {value!r}.")


def validate(entry: str, values: Mapping, *, func: str | None = None) -> dict:
    """Check ``values`` (keyword -> value) against the options of ``entry``.

    Missing options take their defaults. Returns every option of the entry, normalised (e.g.
    ``fit='E_TPL'`` becomes ``fit='truncated_power_law', fix_fingers='xmin_peak'``).

    Raises
    ------
    InvalidParameterError
        A value that the option does not accept, or a combination the rules forbid; the message
        names the parameter, ``func`` (default: ``entry``), what is allowed and the value.
    TypeError
        A keyword that is not an option of ``entry`` (with the closest option's name).
    """
    func = func or entry
    opts = options_of(entry)
    names = [o.name for o in opts]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise TypeError(unknown_keyword_message(func, unknown[0], names))
    out = {}
    for o in opts:
        value = values.get(o.name, o.default)
        try:
            out[o.name] = o.constraint.check(value)
        except Rejected as exc:
            raise bad_value(o.name, func, exc.allowed or o.constraint.text, value) from None
    for rule in RULES:
        rule(out, func)
    return out


# ---- the rules between options (each applies when the entry has the options it reads) ----------

def _fit_law(v: dict, func: str) -> None:
    """``fit='E_TPL'`` is the truncated power law with the ``xmin_peak`` rule; names become the
    internal ones ('power_law', 'truncated_power_law')."""
    if "fit" not in v or "fix_fingers" not in v:
        return
    if v["fit"] == "E_TPL":
        if v["fix_fingers"] not in (None, "xmin_peak"):
            raise bad_value("fix_fingers", func, "None or 'xmin_peak' with fit='E_TPL'", v["fix_fingers"])
        v["fix_fingers"] = "xmin_peak"
    v["fit"] = FITS[v["fit"]]


def _xmin_rule(v: dict, func: str) -> None:
    """``xmin_method``, ``xmin``, ``xmin_range`` and ``fix_fingers`` agree."""
    if "xmin_method" not in v:
        return
    method, xmin = v["xmin_method"], v["xmin"]
    if method == "peak":
        warnings.warn("xmin_method='peak' is deprecated: it is fix_fingers='xmin_peak' (WeightWatcher's name), "
                      "which spectralwatch keeps as the one spelling", FutureWarning, stacklevel=5)
        if v["fix_fingers"] not in (None, "xmin_peak"):
            raise bad_value("fix_fingers", func, "None or 'xmin_peak' with xmin_method='peak'", v["fix_fingers"])
        v["fix_fingers"], method = "xmin_peak", "ks"
    if method is None:
        method = "fixed" if xmin is not None else "ks"
    if method == "fixed" and xmin is None:
        raise bad_value("xmin", func, "a finite number > 0 with xmin_method='fixed'", xmin)
    if method != "fixed" and xmin is not None:
        raise bad_value("xmin", func, f"None unless xmin_method='fixed' (it is {method!r})", xmin)
    if v["xmin_range"] is not None and method != "ks":
        raise bad_value("xmin_range", func, f"None unless xmin_method='ks' (it is {method!r})", v["xmin_range"])
    if (method != "ks" or v["xmin_range"] is not None) and v["fix_fingers"] is not None:
        raise bad_value("fix_fingers", func, "None with xmin_method='hill' or 'fixed' or an xmin_range",
                        v["fix_fingers"])
    v["xmin_method"] = method


def _fit_quality(v: dict, func: str) -> None:
    """The statistics options imply the ``fit_quality`` flags."""
    if "fit_quality" in v:
        v["fit_quality"] = v["fit_quality"] or v["exclude_flagged"] or bool(
            v["bootstrap"] or v["gof_samples"] or v["compare_tails"])


def _one_walk(v: dict, func: str) -> None:
    """``intra`` and ``stacked`` each replace the layer-by-layer walk: one at a time."""
    if v.get("intra") and v.get("stacked"):
        raise bad_value("stacked", func, "False when intra=True (each replaces the layer-by-layer analysis)", True)
    if v.get("done") and (v.get("intra") or v.get("stacked")):
        raise InvalidParameterError(f"The 'done' parameter of {func} cannot be used with intra=True or "
                                    "stacked=True (their rows are not made layer by layer).")


def _block_pools(v: dict, func: str) -> None:
    """``grouped_conv='block'`` pools the blocks of every kernel position."""
    if v.get("grouped_conv") == "block" and "pool" in v and not v["pool"]:
        raise bad_value("grouped_conv", func, "'reference' when pool=False (the 'block' treatment pools the "
                        "blocks of every kernel position)", "block")


def _fitter_xmin(v: dict, func: str) -> None:
    """``fit_power_law``: ``xmin``, ``xmin_range`` and ``fix_fingers`` agree ('ks' is None, 'peak' is
    the deprecated spelling of ``fix_fingers='xmin_peak'``)."""
    if "ties" not in v:  # only fit_power_law has it
        return
    if v["xmin"] == "ks":
        v["xmin"] = None
    if v["xmin"] == "peak":
        warnings.warn("xmin='peak' is deprecated: it is fix_fingers='xmin_peak' (WeightWatcher's name), which "
                      "spectralwatch keeps as the one spelling", FutureWarning, stacklevel=5)
        if v["fix_fingers"] not in (None, "xmin_peak"):
            raise bad_value("fix_fingers", func, "None or 'xmin_peak' with xmin='peak'", v["fix_fingers"])
        v["xmin"], v["fix_fingers"] = None, "xmin_peak"
    if v["xmin_range"] is not None and v["xmin"] is not None:
        raise bad_value("xmin_range", func, "None unless xmin is None or 'ks' (it bounds the KS scan)",
                        v["xmin_range"])
    if (v["xmin"] is not None or v["xmin_range"] is not None) and v["fix_fingers"] is not None:
        raise bad_value("fix_fingers", func, "None when xmin or xmin_range is given", v["fix_fingers"])


#: the rules, in the order they apply
RULES = (_fit_law, _xmin_rule, _fitter_xmin, _fit_quality, _one_walk, _block_pools)

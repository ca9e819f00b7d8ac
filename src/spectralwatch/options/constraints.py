"""Constraints of option values: each checks and normalises one value, says in words what it
accepts, and tells the command line how to parse it.

A constraint never raises :class:`~spectralwatch.errors.InvalidParameterError` itself: it raises
:class:`Rejected`, and :func:`spectralwatch.options.validate.validate` turns that into the one
message format of the package, which names the parameter, the function, what is allowed and the
value it got (``The 'min_evals' parameter of analyze must be an int >= 0. Got -1.``).
"""

from __future__ import annotations

import argparse
import math
import numbers
import os
import warnings
from typing import Any, Callable

__all__ = ["Rejected", "Constraint", "Bool", "Int", "Real", "Count", "Choice", "Xmax", "Range", "Path",
           "Seed", "Device", "Folder", "Executor", "Anything", "CallableOrNone", "MappingOrNone", "Custom",
           "parse_literal"]


class Rejected(Exception):
    """A value a constraint does not accept; ``allowed`` (optional) overrides the constraint's text."""

    def __init__(self, allowed: str | None = None):
        super().__init__(allowed or "")
        self.allowed = allowed


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def parse_literal(text: str):
    """A command-line word as a value: true/false/none, an int, a float, else the text itself."""
    low = text.strip().lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


class Constraint:
    """What values an option accepts.

    Attributes
    ----------
    text : str
        The allowed values in words, completing "must be ..." (``'an int >= 0'``).
    """

    text = "a valid value"
    #: the argparse ``metavar`` when the option's own is not given
    metavar = "VALUE"

    def check(self, value):
        """Return the normalised value, or raise :class:`Rejected`."""
        raise NotImplementedError  # every concrete constraint defines it

    def parse(self, text: str):
        """A command-line word as a value of this option (checked afterwards by :meth:`check`)."""
        return parse_literal(text)

    def cli(self) -> dict:
        """argparse keywords of the option's flag (``type``, ``choices``, ``action``, ``metavar``)."""
        return {"type": self.parse, "metavar": self.metavar}


class Bool(Constraint):
    """True or False (numpy booleans too); ``None`` means False where WeightWatcher allows it."""

    text = "True or False"

    def __init__(self, none_is_false: bool = True):
        self.none_is_false = none_is_false

    def check(self, value):
        if value is None and self.none_is_false:
            return False
        if isinstance(value, bool) or type(value).__name__ == "bool_":
            return bool(value)
        raise Rejected()

    def cli(self) -> dict:
        return {"action": argparse.BooleanOptionalAction}


class Int(Constraint):
    """An int within bounds; optionally None (with ``zero_is_none``, 0 also means None)."""

    metavar = "N"

    def __init__(self, minimum: int = 0, *, allow_none: bool = False, zero_is_none: bool = False,
                 none_means: str = "", quiet_none: bool = False):
        self.minimum, self.allow_none, self.zero_is_none = minimum, allow_none, zero_is_none
        said = allow_none and not quiet_none  # quiet_none: None accepted, not advertised (a WeightWatcher habit)
        self.text = f"an int >= {minimum}" + (f" or None ({none_means})" if said and none_means else
                                              " or None" if said else "")

    def check(self, value):
        if value is None and self.allow_none:
            return None
        if not _is_int(value) or value < self.minimum:
            raise Rejected()
        value = int(value)
        return None if (self.zero_is_none and value == 0) else value

    def parse(self, text: str):
        value = parse_literal(text)
        return value


class Real(Constraint):
    """A finite real number within bounds (``low``/``high`` inclusive unless ``open_low``/``open_high``)."""

    metavar = "X"

    def __init__(self, low: float | None = None, high: float | None = None, *, open_low: bool = False,
                 open_high: bool = False, allow_none: bool = False, text: str | None = None):
        self.low, self.high, self.open_low, self.open_high, self.allow_none = low, high, open_low, open_high, allow_none
        if text is None:
            if low is not None and high is not None:
                text = f"a number in {'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
            elif low is not None:
                text = f"a finite number {'>' if open_low else '>='} {low:g}"
            elif high is not None:
                text = f"a finite number {'<' if open_high else '<='} {high:g}"
            else:
                text = "a finite number"
        self.text = text + (" or None" if allow_none else "")

    def check(self, value):
        if value is None and self.allow_none:
            return None
        if not _is_real(value) or not math.isfinite(value):
            raise Rejected()
        value = float(value)
        if self.low is not None and (value < self.low or (self.open_low and value == self.low)):
            raise Rejected()
        if self.high is not None and (value > self.high or (self.open_high and value == self.high)):
            raise Rejected()
        return value


class Count(Constraint):
    """0 (off) or an int >= 2: a number of random replicates (one replicate has no spread)."""

    text = "0 (off) or an int >= 2"
    metavar = "N"

    def check(self, value):
        if value is None or value is False:
            return 0
        if not _is_int(value) or value < 0 or value == 1:
            raise Rejected()
        return int(value)


class Choice(Constraint):
    """One of a fixed set of values.

    ``aliases`` maps other accepted spellings to a value; ``deprecated`` maps spellings that are
    still accepted, with a ``FutureWarning`` naming the canonical way, to ``(value, advice)``.
    """

    metavar = None

    def __init__(self, values: tuple, *, aliases: dict | None = None, deprecated: dict | None = None,
                 text: str | None = None):
        self.values = tuple(values)
        self.aliases = dict(aliases or {})
        self.deprecated = dict(deprecated or {})
        self.text = text or "one of " + ", ".join(repr(v) for v in self.values)

    def check(self, value):
        for v in self.values:
            if value is v or (type(value) is type(v) and value == v):
                return v
        if isinstance(value, str) and value in self.aliases:
            return self.aliases[value]
        if isinstance(value, str) and value in self.deprecated:
            canonical, advice = self.deprecated[value]
            warnings.warn(f"{value!r} is deprecated: {advice}", FutureWarning, stacklevel=5)
            return canonical
        raise Rejected()

    def cli(self) -> dict:
        words = [v for v in self.values if isinstance(v, str)] + [a for a in self.aliases]
        if all(isinstance(v, str) for v in self.values):
            return {"choices": words + list(self.deprecated)}
        return {"type": self.parse, "metavar": "|".join(str(v).lower() if v is not None else "none"
                                                         for v in self.values)}


class Xmax(Constraint):
    """WeightWatcher's ``xmax``: None, ``'force'`` or an int k (drop the k largest eigenvalues)."""

    text = "None, 'force' or an int"
    metavar = "K|force"

    def check(self, value):
        if value is None or value == "force":
            return value
        if _is_int(value):
            return int(value)
        raise Rejected()


class Range(Constraint):
    """A pair ``(low, high)`` of numbers >= 0 (either may be None: unbounded) with low <= high."""

    text = "a pair (low, high) of numbers >= 0 (or None) with low <= high"
    metavar = "LOW,HIGH"

    def check(self, value):
        if value is None:
            return None
        ok = isinstance(value, (tuple, list)) and len(value) == 2 and all(
            v is None or (_is_real(v) and v >= 0 and not math.isnan(v)) for v in value)
        if not ok or (None not in value and value[0] > value[1]):
            raise Rejected()
        return (0.0 if value[0] is None else float(value[0]), math.inf if value[1] is None else float(value[1]))

    def parse(self, text: str):
        parts = [p.strip() for p in text.split(",")]
        return tuple(parse_literal(p) if p else None for p in parts)


class Path(Constraint):
    """A folder or file path (str or ``os.PathLike``), or None."""

    text = "None or a path"
    metavar = "PATH"

    def check(self, value):
        if value is None:
            return None
        if isinstance(value, (str, os.PathLike)) and os.fspath(value):
            return os.fspath(value)
        raise Rejected()

    def parse(self, text: str):
        return text


class Folder(Path):
    """WeightWatcher's ``savefig``: a folder, True (the folder ``'ww-img'``) or False/None (no files)."""

    text = "a folder (str or path), True (the folder 'ww-img') or False"

    def check(self, value):
        if value is True:
            return "ww-img"
        if value is None or value is False:
            return None
        return super().check(value)


class Seed(Constraint):
    """None, an int seed >= 0 or a ``numpy.random.Generator``."""

    text = "None, an int >= 0 or a numpy.random.Generator"
    metavar = "SEED"

    def check(self, value):
        if value is None or type(value).__name__ == "Generator":
            return value
        if _is_int(value) and value >= 0:
            return int(value)
        raise Rejected()


class Device(Constraint):
    """Where eigenvalues are computed: 'cpu', 'cuda', 'cuda:N' or 'mps' (availability is checked
    when the analysis starts; an unavailable device falls back to the CPU with a warning)."""

    text = "'cpu', 'cuda', 'cuda:N' or 'mps'"
    metavar = "DEVICE"

    def check(self, value):
        if value is None:
            return "cpu"
        if isinstance(value, str) and (value in ("cpu", "cuda", "mps") or (
                value.startswith("cuda:") and value[5:].isdigit())):
            return value
        raise Rejected()

    def parse(self, text: str):
        return text


class Executor(Constraint):
    """Where layers run: None (threads, one per core), 'serial', 'threads', 'processes', a Dask
    scheduler address ('dask://host:port', 'tcp://...'), a ``distributed.Client``, or any
    ``concurrent.futures.Executor``."""

    text = ("None, 'serial', 'threads', 'processes', a Dask scheduler address 'dask://host:port', a "
            "distributed.Client or a concurrent.futures.Executor")
    metavar = "EXECUTOR"
    ADDRESS_PREFIXES = ("dask://", "tcp://", "tls://", "inproc://")

    def check(self, value):
        if value is None or value in ("auto", "serial", "threads", "processes"):
            return None if value == "auto" else value
        if isinstance(value, str) and value.startswith(self.ADDRESS_PREFIXES):
            return value
        if not isinstance(value, str) and callable(getattr(value, "submit", None)):
            return value
        raise Rejected()

    def cli(self) -> dict:
        return {"choices": ["threads", "processes", "serial"]}


class Anything(Constraint):
    """Any value (checked later by what uses it, e.g. a model given as ``base_model``)."""

    text = "any value"
    metavar = "PATH"

    def check(self, value):
        return value

    def parse(self, text: str):
        return text


class CallableOrNone(Constraint):
    text = "None or a callable"

    def check(self, value):
        if value is None or callable(value):
            return value
        raise Rejected()


class MappingOrNone(Constraint):
    text = "None or a mapping {layer_id: [row, ...]}"

    def check(self, value):
        if value is None or hasattr(value, "items"):
            return value
        raise Rejected()


class Custom(Constraint):
    """A constraint written as a function ``check(value) -> value`` raising :class:`Rejected`."""

    def __init__(self, check: Callable[[Any], Any], text: str, *, parse: Callable[[str], Any] | None = None,
                 metavar: str = "VALUE"):
        self._check, self.text, self._parse, self.metavar = check, text, parse, metavar

    def check(self, value):
        return self._check(value)

    def parse(self, text: str):
        return self._parse(text) if self._parse is not None else parse_literal(text)

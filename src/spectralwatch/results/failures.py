"""Why layers failed, counted: the reasons of the ``status='failed'`` rows, grouped by class.

A failed row's ``message`` says exactly what went wrong with that layer ("weights contain 3 NaN
and 0 Inf values"); a summary wants the kinds of failure and how many layers each cost ("NaN or
Inf weights: 3"). :func:`failure_summary` maps every message to a short reason class and counts
them; :func:`failure_text` writes that as one line. Pure functions of the details table.
"""

from __future__ import annotations

import re

from ..render.text import failure_line

__all__ = ["failure_summary", "failure_text", "reason_class", "REASON_CLASSES"]

#: (pattern searched in the message, reason class), first match wins; the messages are those of
#: the matrix stage (matrices.py), the layer driver (layer.py), the fitter (fit.py) and the executors
REASON_CLASSES = (
    (r"weights contain \d+ NaN and \d+ Inf|NaN or Inf values", "NaN or Inf weights"),
    (r"eigenvalues overflow float64", "eigenvalues overflow float64"),
    (r"eigenvalues underflow float64", "eigenvalues underflow float64"),
    (r"all eigenvalues are zero", "all-zero weights"),
    (r"only \d+ eigenvalues? above", "fewer than 2 eigenvalues above the fit threshold"),
    (r"eigenvalues are equal|not all equal", "all tail eigenvalues equal"),
    (r"candidate xmin", "no xmin candidate"),
    (r"xmax=\d+ would drop", "xmax drops too many eigenvalues"),
    (r"non-finite value", "non-finite eigenvalues"),
    (r"complex weights", "complex weights"),
    (r"are not numbers", "non-numeric weights"),
    (r"worker process died", "worker process died"),
    (r"out of memory|MemoryError", "out of memory"),
    (r"lost on the Dask cluster", "lost on the Dask cluster"),
    (r"CorruptFileError|corrupted|truncated", "corrupted file"),
)
_COMPILED = tuple((re.compile(p), c) for p, c in REASON_CLASSES)
_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Warning)):")


def reason_class(message) -> str:
    """The short reason class of one failure message (``'unknown'`` for an empty one).

    A message no pattern of :data:`REASON_CLASSES` knows is classed by the exception it names
    (``'LinAlgError: ...'`` -> ``'LinAlgError'``), else by its text up to the first ``:`` or
    ``;`` (at most 60 characters).
    """
    text = "" if message is None or message != message else str(message).strip()  # None, NaN
    if not text:
        return "unknown"
    for pattern, cls in _COMPILED:
        if pattern.search(text):
            return cls
    named = _EXCEPTION.match(text)
    if named:
        return named.group(1).rsplit(".", 1)[-1]
    head = re.split(r"[:;]", text, maxsplit=1)[0].strip()
    return head[:57] + "..." if len(head) > 60 else head


def _failed_messages(details) -> list:
    if details is None:
        return []
    if hasattr(details, "to_dict"):  # a DataFrame
        if "status" not in getattr(details, "columns", ()):
            return []
        rows = details.to_dict("records")
    else:
        rows = list(details)
    return [row.get("message", "") for row in rows if row.get("status") == "failed"]


def failure_summary(details) -> dict:
    """``{reason class: number of failed rows}``, most frequent first (ties: first seen first).

    Parameters
    ----------
    details : pandas.DataFrame or iterable of dict
        A details table (``Report.details``) or its rows; only the ``status`` and ``message``
        columns are read. Empty when no row failed.
    """
    counts: dict = {}
    for message in _failed_messages(details):
        cls = reason_class(message)
        counts[cls] = counts.get(cls, 0) + 1
    order = {cls: i for i, cls in enumerate(counts)}
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], order[kv[0]])))


def failure_text(details) -> str:
    """One line such as ``'3 failed: 2 NaN or Inf weights, 1 all-zero weights'``; ``''`` if none failed."""
    return failure_line(failure_summary(details))

r"""The words for an alpha, in one place: the terminal, the HTML report and the docs say the same.

The bands are those of Heavy-Tailed Self-Regularization (Martin & Mahoney, "Implicit
self-regularization in deep neural networks", JMLR 22 (2021) 1-73; WeightWatcher's ``warning``):
below 2 a very heavy tail (the over-training warning), 2 to 6 the range of trained layers (2-4
heavy, 4-6 moderately heavy), above 6 a tail close to that of a random matrix (the under-training
warning). They are heuristics read off the spectrum, not measurements of accuracy: the wording
says what the tail looks like and what HTSR reads into it, nothing more. A fit on too few
eigenvalues is said to be unreliable, whatever its alpha (:func:`fit_reliable`).

Every reading has a ``key`` that is also its CSS class in the HTML report and picks its colour
in the terminal: ``over``, ``good``, ``fair``, ``under``, ``unreliable``, ``na``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..core.fit.quality import RELIABLE_MIN_EVALS, reliable_fit

__all__ = ["AlphaReading", "alpha_reading", "mean_alpha_sentence", "fit_reliable", "TERMINAL_STYLE",
           "UNRELIABLE_WHY"]

#: why a fit is unreliable, in words (core/fit/quality.py: reliable_fit)
UNRELIABLE_WHY = f"fewer than {RELIABLE_MIN_EVALS} eigenvalues in the layer"

#: terminal colour of each reading
TERMINAL_STYLE = {"over": "red", "good": "green", "fair": "yellow", "under": "yellow", "unreliable": "dim",
                  "na": "dim"}


@dataclass(frozen=True)
class AlphaReading:
    """How one alpha (a layer's, or a model's mean) reads.

    Attributes
    ----------
    key : str
        ``'over'``, ``'good'``, ``'fair'``, ``'under'``, ``'unreliable'`` or ``'na'``.
    label : str
        The tail in a few words, with its band (``'moderately heavy tail (4 ≤ α ≤ 6)'``).
    meaning : str
        What HTSR reads into it.
    """

    key: str
    label: str
    meaning: str

    @property
    def text(self) -> str:
        """``label: meaning``."""
        return f"{self.label}: {self.meaning}" if self.meaning else self.label


def alpha_reading(alpha, *, reliable: bool = True) -> AlphaReading:
    """The reading of ``alpha`` (None or NaN: no fit; ``reliable=False``: too few eigenvalues)."""
    try:
        alpha = float(alpha)
    except (TypeError, ValueError):
        return AlphaReading("na", "no fit", "")
    if not math.isfinite(alpha) or alpha <= 0:
        return AlphaReading("na", "no fit", "")
    if not reliable:
        return AlphaReading("unreliable", "unreliable fit",
                            f"too few eigenvalues in the tail to read alpha {alpha:.2f} (not an over- or "
                            "under-training signal)")
    if alpha < 2.0:
        return AlphaReading("over", "very heavy tail (α < 2)",
                            "HTSR's over-training warning (the layer may have memorised)")
    if alpha < 4.0:
        return AlphaReading("good", "heavy tail (2 ≤ α < 4)", "where HTSR places well-trained layers")
    if alpha <= 6.0:
        return AlphaReading("fair", "moderately heavy tail (4 ≤ α ≤ 6)",
                            "inside HTSR's range for trained layers (2-6), towards its random end")
    return AlphaReading("under", "light tail (α > 6)",
                        "close to a random matrix: HTSR's under-training warning")


def mean_alpha_sentence(alpha: float, *, unicode: bool = True) -> str:
    """The one sentence on a model's mean alpha, for the terminal, the HTML report and the docs."""
    text = f"mean alpha {alpha:.2f}: {alpha_reading(alpha).text}"
    return text if unicode else text.replace("α", "alpha").replace("≤", "<=")


def fit_reliable(row) -> bool:
    """Whether a layer's alpha can be read: its ``fit_reliable`` column, or (for a row without it)
    :func:`~spectralwatch.core.fit.quality.reliable_fit` of its status and ``num_evals``."""
    value = row.get("fit_reliable")
    if value is not None and value == value:
        return bool(value)
    return reliable_fit(row.get("status", ""), row.get("num_evals"))

r"""The 5+1 phases of training of a layer, read from its spectrum (beyond WeightWatcher 0.7.7).

Martin & Mahoney ("Implicit self-regularization in deep neural networks: evidence from random
matrix theory and implications for learning", JMLR 22(165), 2021, section 5 and Table 3) describe
how the ESD of a weight matrix evolves during training: **random-like** (a Marchenko-Pastur bulk,
nothing outside), **bleeding-out** (a little eigenmass leaks just past the bulk edge),
**bulk+spikes** (a random-like bulk plus a few eigenvalues well separated from it),
**bulk-decay** (the bulk loses its sharp edge and decays into a weak tail), **heavy-tailed**
(a power-law tail with exponent alpha <= 4), plus **rank-collapse** (much of the spectrum at 0).

The paper describes the phases by eye; :func:`classify_phase` makes one operational rule of it,
from the Marchenko-Pastur fit (:mod:`spectralwatch.rmt`), the power-law alpha and the rank loss,
applied in this order (the first that matches wins). Spectra of fewer than ``PHASE_MIN_EVALS``
(50) eigenvalues get no label (``''``): without a bulk of some size the MP picture, its edge and
its Tracy-Widom margin are noise (a depthwise convolution's 9 "eigenvalues", say).

1. ``rank-collapse``: at least ``RANK_COLLAPSE_FRACTION`` (10%) of the eigenvalues are
   numerically zero (``rank_loss / num_evals``). A random matrix has none: the MP law has no
   mass at 0 for Q > 1, and a vanishing one at Q = 1.
2. ``random-like``: no spike (no eigenvalue above the bulk edge plus the Tracy-Widom margin).
3. ``bulk+spikes``: the spikes are *separated* from the bulk: the gap between the smallest spike
   and the largest bulk eigenvalue is at least ``SEPARATION`` (25%) of the bulk edge
   :math:`\lambda^+`. (In a continuous tail the smallest spikes sit right above the bulk.)
4. ``heavy-tailed``: not separated, and the power-law fit succeeded with
   ``alpha <= HEAVY_TAILED_ALPHA`` (4: the paper's upper limit of the moderately heavy-tailed
   universality class).
5. ``bleeding-out``: not separated, alpha > 4, and the eigenvalues leak only *just* past the edge:
   ``lambda_max <= BLEEDING_RATIO * lambda^+`` (2), i.e. ``mp_softrank >= 0.5``.
6. ``bulk-decay``: otherwise: a continuous, weakly heavy-tailed (alpha > 4) decay of the bulk
   reaching more than twice the MP edge.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PHASES", "Phase", "classify_phase", "PHASE_MIN_EVALS", "RANK_COLLAPSE_FRACTION", "SEPARATION",
           "HEAVY_TAILED_ALPHA", "BLEEDING_RATIO"]

PHASES = ("random-like", "bleeding-out", "bulk+spikes", "bulk-decay", "heavy-tailed", "rank-collapse")
#: fewest eigenvalues for which a phase is given
PHASE_MIN_EVALS = 50
#: fraction of numerically-zero eigenvalues from which a layer is rank-collapsed
RANK_COLLAPSE_FRACTION = 0.10
#: smallest gap (as a fraction of the bulk edge) between the bulk and its spikes for bulk+spikes
SEPARATION = 0.25
#: power-law exponent at or below which a (non-separated) tail is heavy-tailed
HEAVY_TAILED_ALPHA = 4.0
#: largest lambda_max / lambda^+ of a bleeding-out spectrum (beyond: bulk-decay)
BLEEDING_RATIO = 2.0


@dataclass(frozen=True)
class Phase:
    r"""The phase of a layer and the quantities the rule used.

    Attributes
    ----------
    label : str
        One of :data:`PHASES`, or ``''`` for fewer than ``min_evals`` eigenvalues or when no
        Marchenko-Pastur fit was possible.
    reason : str
        The rule that fired, in words.
    num_spikes : int
    spike_fraction : float
        ``num_spikes / num_evals``.
    gap : float
        Smallest spike minus largest bulk eigenvalue, as a fraction of the bulk edge
        :math:`\lambda^+` (NaN without spikes).
    zero_fraction : float
        ``rank_loss / num_evals``.
    """

    label: str
    reason: str
    num_spikes: int
    spike_fraction: float
    gap: float
    zero_fraction: float


def classify_phase(evals, mp, *, alpha: float = float("nan"), rank_loss: int = 0,
                   min_evals: int = PHASE_MIN_EVALS) -> Phase:
    """Phase of training of one layer (rule in the module docstring).

    Parameters
    ----------
    evals : array_like
        The layer's eigenvalues (any order).
    mp : MPFit
        Its Marchenko-Pastur fit (:func:`spectralwatch.rmt.fit_marchenko_pastur`).
    alpha : float
        Power-law exponent of the tail; NaN (or <= 0) when the fit failed.
    rank_loss : int
        Numerically-zero singular values (the ``rank_loss`` column).
    min_evals : int
        Fewest eigenvalues for a label.

    Examples
    --------
    >>> from spectralwatch.rmt import fit_marchenko_pastur
    >>> W = np.random.default_rng(0).standard_normal((800, 200))
    >>> ev = np.linalg.eigvalsh(W.T @ W)
    >>> classify_phase(ev, fit_marchenko_pastur(ev, 4.0, 200)).label
    'random-like'
    """
    x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    n = max(x.size, 1)
    zero_fraction = float(rank_loss) / n
    k = int(mp.num_spikes)
    frac = max(k, 0) / n
    gap = float("nan")
    if mp.status != "success":
        return Phase("", f"no Marchenko-Pastur fit: {mp.message}", k, frac, gap, zero_fraction)
    if x.size < min_evals:
        return Phase("", f"{x.size} eigenvalues < {min_evals}: too few for a phase", k, frac, gap, zero_fraction)
    if k > 0 and k < x.size:
        gap = float((x[x.size - k] - x[x.size - k - 1]) / mp.bulk_max)

    def phase(label, reason):
        return Phase(label, reason, k, frac, gap, zero_fraction)

    if zero_fraction >= RANK_COLLAPSE_FRACTION:
        return phase("rank-collapse", f"{100 * zero_fraction:.0f}% of the eigenvalues are zero")
    if k == 0:
        return phase("random-like", "no eigenvalue beyond the Marchenko-Pastur edge")
    if gap >= SEPARATION:
        return phase("bulk+spikes", f"{k} spike(s) separated from the bulk by {gap:.2f} x the MP edge")
    if alpha > 0 and alpha <= HEAVY_TAILED_ALPHA:
        return phase("heavy-tailed", f"power-law tail with alpha={alpha:.2f} <= {HEAVY_TAILED_ALPHA:g}")
    if mp.mp_softrank >= 1.0 / BLEEDING_RATIO:
        return phase("bleeding-out", f"{k} eigenvalue(s) leak just past the edge "
                     f"(lambda_max = {1 / mp.mp_softrank:.2f} x the MP edge)")
    return phase("bulk-decay", f"{k} eigenvalues decay past the edge, up to {1 / mp.mp_softrank:.1f} x it")

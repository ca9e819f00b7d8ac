r"""The 5+1 phases of training of a layer, read from its spectrum (beyond WeightWatcher 0.7.7).

Martin & Mahoney ("Implicit self-regularization in deep neural networks: evidence from random
matrix theory and implications for learning", JMLR 22(165), 2021, section 5, Table 3) describe
how the ESD of a weight matrix evolves during training, and tie each shape to a random-matrix
model (their Table 1):

* **random-like**: a Marchenko-Pastur (MP) bulk whose largest eigenvalue sits at the edge with
  Tracy-Widom (TW) fluctuations;
* **bleeding-out**: still a random-like bulk, with eigenmass leaking *just* above the edge;
* **bulk+spikes**: a random-like bulk plus a few eigenvalues *well* above it (the spiked-covariance
  model: the edge stays TW, the spikes separate);
* **bulk-decay**: the bulk's edge decays into a tail of eigenmass above it (the finite-size
  "MP + power-law tail" of the weakly heavy-tailed class), not yet heavy;
* **heavy-tailed**: better described by heavy-tailed than by Gaussian random-matrix theory: entries
  whose tail exponent ``mu`` is below 4 (the moderately and very heavy-tailed universality
  classes), or an ESD whose power-law tail has exponent ``alpha <= 4`` and reaches far beyond the
  bulk (no good bulk edge, ``lambda_max >> lambda+``);
* **rank-collapse**: much of the spectrum at zero.

:func:`classify_phase` turns that into one rule, built and checked against the labelled synthetic
benchmark of ``benchmarks/phases`` (generators of each phase in float32 and float64, six shapes
from 200 x 100 to 1000 x 500; tuned on seeds 0-11, the confusion matrix of the held-out seeds
100-119 is in docs/rmt.md). The first rule that matches wins:

1. fewer than ``PHASE_MIN_EVALS`` (50) eigenvalues, or no fit possible: no label (``''``);
2. ``rank-collapse``: at least ``RANK_COLLAPSE_FRACTION`` (10%) of the eigenvalues are zero at the
   stored precision (``numerical_rank_loss / num_evals``, :mod:`spectralwatch.core.precision`);
3. ``heavy-tailed``: the matrix's entries have a tail index :math:`\hat\mu < 4`
   (``HEAVY_TAILED_MU``; Hill's estimator on the largest 1/400 of the ``|W_ij|``,
   :func:`entry_tail_index`, used from 20000 non-zero entries on);
4. ``random-like``: no eigenvalue is a spike of the Tracy-Widom test at false-positive rate
   ``PHASE_FPR`` (1%; :func:`spectralwatch.core.tracy_widom.tracy_widom_spikes`, the zero
   eigenvalues left out);
5. ``bleeding-out``: every spike lies below ``BLEEDING_REACH`` (1.4) times the fitted edge
   :math:`\lambda^+`;
6. ``bulk+spikes``: at most ``SPIKE_NEAR_MAX`` (3) spikes lie just above the edge (below 1.4
   :math:`\lambda^+`) and the bulk under the spikes is MP-shaped: its top decile exceeds the MP
   law fitted to its lowest 80% by at most ``EDGE_EXCESS_MAX`` (10%) on average;
7. ``heavy-tailed``: a power-law tail (fit succeeded) with ``alpha <= HEAVY_TAILED_ALPHA`` (4)
   that reaches ``HEAVY_REACH`` (3) times the edge;
8. ``bulk-decay``: otherwise (a continuum of eigenvalues above the edge: the bulk decays).

Where the label can mislead, :attr:`Phase.note` says why (too few eigenvalues or entries, a
feature near a threshold, the largest eigenvalue near the TW threshold); the ``phase_note`` column
carries it and the terminal and HTML reports show it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["PHASES", "Phase", "classify_phase", "entry_tail_index", "PHASE_MIN_EVALS", "RANK_COLLAPSE_FRACTION",
           "PHASE_FPR", "HEAVY_TAILED_MU", "HEAVY_TAILED_ALPHA", "BLEEDING_REACH", "SPIKE_NEAR_MAX",
           "EDGE_EXCESS_MAX", "HEAVY_REACH", "TAIL_FRACTION", "MIN_TAIL_ORDER"]

PHASES = ("random-like", "bleeding-out", "bulk+spikes", "bulk-decay", "heavy-tailed", "rank-collapse")
#: fewest eigenvalues for which a phase is given
PHASE_MIN_EVALS = 50
#: fraction of numerically-zero eigenvalues (at the stored precision) from which a layer is rank-collapsed
RANK_COLLAPSE_FRACTION = 0.10
#: false-positive rate of the Tracy-Widom spike test (a pure-noise matrix is not random-like this often)
PHASE_FPR = 0.01
#: entries' tail index below which a matrix is in a heavy-tailed universality class (M&M Table 1)
HEAVY_TAILED_MU = 4.0
#: power-law exponent at or below which a far-reaching tail is heavy-tailed
HEAVY_TAILED_ALPHA = 4.0
#: spikes all below this multiple of the bulk edge: bleeding-out ("just above the edge")
BLEEDING_REACH = 1.4
#: most spikes just above the edge (below BLEEDING_REACH x edge) that bulk+spikes allows
SPIKE_NEAR_MAX = 3
#: largest mean excess of the bulk's top decile over the MP law of its lowest 80% for an MP-shaped bulk
EDGE_EXCESS_MAX = 0.10
#: a tail with alpha <= 4 is heavy-tailed when lambda_max reaches this multiple of the edge
HEAVY_REACH = 3.0
#: fraction of the non-zero entries in the Hill estimate of their tail index
TAIL_FRACTION = 1.0 / 400.0
#: fewest order statistics (hence 20000 non-zero entries) for the entries' tail index
MIN_TAIL_ORDER = 50
_CHUNK = 1 << 22  # entries scanned at a time for their largest values (32 MB of float64)


@dataclass(frozen=True)
class Phase:
    r"""The phase of a layer and the quantities the rule used.

    Attributes
    ----------
    label : str
        One of :data:`PHASES`, or ``''`` (too few eigenvalues, no fit possible).
    reason : str
        The rule that fired, in words.
    num_spikes : int
        Spikes of the Tracy-Widom test (``tw_spikes``); -1 when it could not run.
    spike_fraction : float
        ``num_spikes / num_evals``.
    gap : float
        Smallest spike minus the largest eigenvalue below it, over the edge (NaN without spikes).
    zero_fraction : float
        ``rank_loss / num_evals`` (the numerically-zero fraction the rule used).
    reach : float
        :math:`\lambda_{max} / \lambda^+` (the fitted edge of the TW test).
    edge_excess : float
        Mean relative excess of the bulk's top decile over the MP law fitted to its lowest 80%.
    tail_index : float
        The entries' tail index :math:`\hat\mu` used (NaN when not available).
    pvalue : float
        TW p-value of the largest eigenvalue (``tw_pvalue``).
    note : str
        Why the label may mislead, ``''`` when nothing is known to.
    """

    label: str
    reason: str
    num_spikes: int
    spike_fraction: float
    gap: float
    zero_fraction: float
    reach: float = float("nan")
    edge_excess: float = float("nan")
    tail_index: float = float("nan")
    pvalue: float = float("nan")
    note: str = field(default="")


def entry_tail_index(stack) -> float:
    r"""Hill's estimate of the tail index :math:`\mu` of a matrix's entries, :math:`P(|W_{ij}| > t) \sim t^{-\mu}`.

    :math:`\hat\mu = 1 / \left(\frac1k \sum_{i \le k} \ln(x_{(i)} / x_{(k+1)})\right)` on the
    ``k = n / 400`` largest of the ``n`` non-zero ``|W_ij|`` (Hill, Ann. Statist. 3, 1975). Under a
    light tail the estimate grows with ``n / k``: about ``ln(n / k) = 6`` for Laplace entries and
    10-12 for Gaussian ones, which keeps them clear of the boundary 4; Pareto and Student-t entries
    get their exponent (within about ``mu / sqrt(k)``). NaN below ``MIN_TAIL_ORDER * 400`` non-zero
    entries; ``inf`` when the largest entries are all equal (no tail). The entries are scanned in
    chunks: no copy of the matrix is made.
    """
    a = np.asarray(stack)
    flat = a.reshape(-1)
    n = int(np.count_nonzero(flat))
    k = int(n * TAIL_FRACTION)
    if k < MIN_TAIL_ORDER:
        return float("nan")
    best = np.empty(0)
    for start in range(0, flat.size, _CHUNK):
        chunk = np.abs(flat[start:start + _CHUNK]).astype(np.float64, copy=False)
        if chunk.size > k + 1:
            chunk = np.partition(chunk, chunk.size - k - 1)[-(k + 1):]
        best = np.concatenate([best, chunk])
        if best.size > k + 1:
            best = np.partition(best, best.size - k - 1)[-(k + 1):]
    best = np.sort(best)
    if not best[0] > 0:
        return float("nan")
    mean_log = float(np.mean(np.log(best[1:] / best[0])))
    return float("inf") if mean_log == 0.0 else 1.0 / mean_log


def _edge_excess(x: np.ndarray, k: int, Q: float) -> float:
    """Mean of ``lambda_i / (c q_i) - 1`` over the bulk's top decile, ``c`` fitted on the lowest 80%."""
    from .rmt import marchenko_pastur_ppf

    n = x.size
    q = marchenko_pastur_ppf((np.arange(n) + 0.5) / n, Q)
    low = max(int(0.8 * n), 2)
    c = float(np.dot(q[:low], x[:low]) / np.dot(q[:low], q[:low]))
    top = slice(max(min(int(0.9 * n), n - k - 2), 0), max(n - k, 1))
    if not c > 0:
        return float("nan")
    return float(np.mean(x[top] / (c * q[top])) - 1.0)


def _near(value: float, bound: float, rel: float) -> bool:
    return bool(np.isfinite(value) and abs(value - bound) <= rel * bound)


def classify_phase(evals, mp, *, alpha: float = float("nan"), rank_loss: int = 0,
                   tail_index: float = float("nan"), min_evals: int = PHASE_MIN_EVALS,
                   fpr: float = PHASE_FPR) -> Phase:
    """Phase of training of one layer (the rule is in the module docstring).

    Parameters
    ----------
    evals : array_like
        The layer's eigenvalues (any order), all of its ``rf`` matrices pooled.
    mp : MPFit
        Its Marchenko-Pastur fit (:func:`spectralwatch.core.rmt.fit_marchenko_pastur`): gives the
        shape (``mp.Q``, ``mp.M``); a failed fit gives no label.
    alpha : float
        Power-law exponent of the tail; NaN (or <= 0) when the fit failed.
    rank_loss : int
        Eigenvalues that are zero at the stored precision (the ``numerical_rank_loss`` column).
    tail_index : float
        The entries' tail index (:func:`entry_tail_index`); NaN when unknown.
    min_evals : int
        Fewest eigenvalues for a label.
    fpr : float
        False-positive rate of the Tracy-Widom spike test.

    Examples
    --------
    >>> from spectralwatch.core.rmt import fit_marchenko_pastur
    >>> W = np.random.default_rng(0).standard_normal((800, 200))
    >>> ev = np.linalg.eigvalsh(W.T @ W)
    >>> classify_phase(ev, fit_marchenko_pastur(ev, 4.0, 200)).label
    'random-like'
    """
    from .tracy_widom import tracy_widom_spikes

    x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    n = max(x.size, 1)
    zeros = int(min(max(int(rank_loss), 0), x.size))
    zero_fraction = zeros / n
    nan = float("nan")
    if mp.status != "success":
        return Phase("", f"no Marchenko-Pastur fit: {mp.message}", -1, nan, nan, zero_fraction)
    M = int(mp.M)
    rf = max(x.size // max(M, 1), 1)
    N = mp.Q * M
    notes = []
    live = x[zeros:]
    M_live = M - zeros / rf
    tw = tracy_widom_spikes(live, N, M_live, rf=rf, fpr=fpr)  # its columns also below min_evals
    k = max(tw.num, 0)
    reach = float(live[-1] / tw.edge) if tw.num >= 0 else nan
    gap = float((live[live.size - k] - live[live.size - k - 1]) / tw.edge) if 0 < k < live.size else nan

    def phase(label: str, reason: str) -> Phase:
        return Phase(label, reason, tw.num, k / n, gap, zero_fraction, reach, excess, tail_index,
                     tw.pvalue, "; ".join(notes))

    excess = nan
    if x.size < min_evals:
        notes.append(f"only {x.size} eigenvalues: too few for a phase")
        return phase("", f"{x.size} eigenvalues < {min_evals}: too few for a phase")
    if tw.num >= 0:
        excess = _edge_excess(live, k, max(N / M_live, 1.0))
    if x.size < 2 * PHASE_MIN_EVALS:
        notes.append(f"only {x.size} eigenvalues: weak spikes and short tails are often missed")

    if zero_fraction >= RANK_COLLAPSE_FRACTION:
        if zero_fraction < 1.5 * RANK_COLLAPSE_FRACTION:
            notes.append(f"{100 * zero_fraction:.0f}% zero eigenvalues: near the rank-collapse limit "
                         f"{100 * RANK_COLLAPSE_FRACTION:.0f}%")
        return phase("rank-collapse", f"{100 * zero_fraction:.0f}% of the eigenvalues are zero at the stored "
                                      "precision")
    if zero_fraction >= 0.5 * RANK_COLLAPSE_FRACTION:
        notes.append(f"{100 * zero_fraction:.0f}% zero eigenvalues: near the rank-collapse limit")
    if tw.num < 0:
        return phase("", "no Tracy-Widom fit of the bulk possible")
    if np.isnan(tail_index):
        notes.append("entries' tail index not read (fewer than 20000 non-zero entries, or not the weights)")
    elif _near(tail_index, HEAVY_TAILED_MU, 0.125):
        notes.append(f"entries' tail index {tail_index:.2f} near the heavy-tailed limit {HEAVY_TAILED_MU:g}")
    if tail_index < HEAVY_TAILED_MU:
        if k == 0:
            notes.append("heavy-tailed by its entries only: the spectrum shows no spike at this size")
        return phase("heavy-tailed", f"entries with tail index {tail_index:.2f} < {HEAVY_TAILED_MU:g} "
                                     "(heavy-tailed universality class)")
    if k == 0:
        if tw.pvalue < 5 * fpr:
            notes.append(f"largest eigenvalue near the Tracy-Widom threshold (p = {tw.pvalue:.3f})")
        return phase("random-like", f"no eigenvalue beyond the Tracy-Widom edge (p = {tw.pvalue:.2g})")
    if k == 1 and tw.pvalue > fpr / 5:
        notes.append(f"one spike, near the Tracy-Widom threshold (p = {tw.pvalue:.4f})")
    far = int(np.count_nonzero(live > BLEEDING_REACH * tw.edge))
    if _near(reach, BLEEDING_REACH, 0.1):
        notes.append(f"lambda_max = {reach:.2f} x the edge, near the bleeding-out limit {BLEEDING_REACH:g}")
    if far == 0:
        return phase("bleeding-out", f"{k} eigenvalue(s) just past the edge (lambda_max = {reach:.2f} x it)")
    near = k - far
    if near <= SPIKE_NEAR_MAX and excess <= EDGE_EXCESS_MAX:
        if _near(excess, EDGE_EXCESS_MAX, 0.2):
            notes.append(f"the bulk's top exceeds the MP law by {100 * excess:.0f}%, near the limit "
                         f"{100 * EDGE_EXCESS_MAX:.0f}%")
        return phase("bulk+spikes", f"{far} spike(s) well above an MP bulk (up to {reach:.1f} x its edge)")
    heavy = 0 < alpha <= HEAVY_TAILED_ALPHA
    if heavy and _near(reach, HEAVY_REACH, 0.15):
        notes.append(f"lambda_max = {reach:.1f} x the edge, near the heavy-tailed reach {HEAVY_REACH:g}")
    if 0 < alpha and reach >= HEAVY_REACH and _near(alpha, HEAVY_TAILED_ALPHA, 0.1):
        notes.append(f"alpha = {alpha:.2f} near {HEAVY_TAILED_ALPHA:g}")
    if heavy and reach >= HEAVY_REACH:
        return phase("heavy-tailed", f"power-law tail with alpha = {alpha:.2f} <= {HEAVY_TAILED_ALPHA:g} "
                                     f"reaching {reach:.1f} x the edge")
    return phase("bulk-decay", f"{k} eigenvalues decay past the edge, up to {reach:.1f} x it")

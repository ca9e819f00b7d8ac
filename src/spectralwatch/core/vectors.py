r"""Eigenvector localisation: how spread out the eigenvectors of ``W^T W`` are (``vectors=True``).

For each eigenvector :math:`v` (unit norm, length :math:`M`) of every matrix of a layer, three
numbers (Martin & Mahoney, "Implicit self-regularization in deep neural networks: evidence from
random matrix theory and implications for learning", JMLR 22 (2021) 1-73, section on
eigenvector localisation; the ratios follow Bell & Dean, "Atomic vibrations in vitreous
silica", Discuss. Faraday Soc. 50 (1970), and the localisation literature cited there):

* the *vector entropy* :math:`H(v) = -\sum_b p_b \ln p_b`, the Shannon entropy of a 100-bin
  histogram of :math:`a_i = |v_i| - \overline{|v|}`: with :math:`h_b` the histogram density
  (counts / (M x bin width)), :math:`p_b = (h_b + \epsilon) / \sum_c (h_c + \epsilon)`,
  :math:`\epsilon = 10^{-10}` (WeightWatcher 0.7.7's ``discrete_entropy``). Bins span
  :math:`[\min a, \max a]` exactly as :func:`numpy.histogram` places them;
* the *localisation ratio* :math:`\|v\|_1 / \|v\|_\infty`, from 1 (a single non-zero entry)
  to :math:`M` (all entries equal in size);
* the *participation ratio* :math:`\|v\|_2 / \|v\|_4`, from 1 (localised) to :math:`M^{1/4}`
  (fully delocalised); a Gaussian random unit vector gives about :math:`(M/3)^{1/4}`.

The eigenvectors are split into the *tail* (the ``num_pl_spikes`` largest eigenvalues, those
``>= xmin`` of the power-law fit) and the *bulk* (the rest); the mean and the (population)
variance of each quantity over each part give the 12 columns of WeightWatcher 0.7.7:
``{bulk,tail}_{mean,var}_{vec_entropy,loc_ratio,part_ratio}``. Heavy-tailed, well-trained layers
tend to have more localised tail vectors than bulk vectors.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["EigenvectorMetrics", "eigenvector_metrics", "localization_ratio", "participation_ratio",
           "vector_entropy", "localisation_columns", "vector_columns", "VECTOR_COLUMNS"]

#: bins of the vector-entropy histogram (WeightWatcher: 100)
ENTROPY_BINS = 100
#: regulariser added to the histogram density before normalising (WeightWatcher: 1e-10)
ENTROPY_EPSILON = 1e-10
_NAMES = ("vec_entropy", "loc_ratio", "part_ratio")
#: the 12 columns, in WeightWatcher's order
VECTOR_COLUMNS = tuple(f"{part}_{stat}_{name}" for name in _NAMES
                       for part, stat in (("bulk", "mean"), ("bulk", "var"), ("tail", "mean"), ("tail", "var")))
_COLUMN_CHUNK = 512  # eigenvectors per block of the vectorised histogram (bounds temporary memory)


def _as_columns(vectors) -> np.ndarray:
    V = np.asarray(vectors, dtype=np.float64)
    if V.ndim == 1:
        V = V[:, None]
    if V.ndim != 2 or V.shape[0] == 0:
        raise ValueError("vectors must be a non-empty 1-D vector or a 2-D array of column vectors; "
                         f"got shape {V.shape}")
    return V


def localization_ratio(vectors) -> np.ndarray:
    r"""``||v||_1 / ||v||_inf`` of each column of ``vectors`` (or of one vector)."""
    A = np.abs(_as_columns(vectors))
    return A.sum(axis=0) / A.max(axis=0)


def participation_ratio(vectors) -> np.ndarray:
    r"""``||v||_2 / ||v||_4`` of each column of ``vectors`` (or of one vector)."""
    V = _as_columns(vectors)
    sq = V * V
    return np.sqrt(sq.sum(axis=0)) / np.sqrt(np.sqrt((sq * sq).sum(axis=0)))


def _histogram_counts(A: np.ndarray, bins: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-column ``numpy.histogram(a, bins)`` counts and bin widths, vectorised over columns.

    Bin edges are ``numpy.linspace(lo, hi, bins + 1)`` of each column's range (widened by
    +-0.5 when the column is constant); a value belongs to bin ``b`` when
    ``edge[b] <= a < edge[b+1]``, the last bin also holding ``hi``.
    """
    n, k = A.shape
    lo, hi = A.min(axis=0), A.max(axis=0)
    flat = lo == hi
    lo = np.where(flat, lo - 0.5, lo)
    hi = np.where(flat, hi + 0.5, hi)
    step = (hi - lo) / bins
    edges = np.arange(bins + 1, dtype=np.float64)[:, None] * step + lo  # what linspace computes
    edges[-1] = hi
    idx = np.floor((A - lo) / step).astype(np.intp)
    np.clip(idx, 0, bins - 1, out=idx)
    cols = np.arange(k)
    idx -= A < edges[idx, cols]  # the same one-step corrections numpy applies at the edges
    idx += (A >= edges[idx + 1, cols]) & (idx != bins - 1)
    counts = np.bincount((idx + cols * bins).ravel(), minlength=bins * k).reshape(k, bins)
    return counts, step


def vector_entropy(vectors, bins: int = ENTROPY_BINS) -> np.ndarray:
    r"""Discrete entropy of each column: ``-sum p ln p`` over a ``bins``-bin histogram of ``|v| - mean|v|``.

    See the module docstring for the exact definition (WeightWatcher 0.7.7's ``discrete_entropy``).
    """
    V = _as_columns(vectors)
    out = np.empty(V.shape[1])
    for start in range(0, V.shape[1], _COLUMN_CHUNK):
        A = np.abs(V[:, start:start + _COLUMN_CHUNK])
        A = A - A.mean(axis=0)
        counts, width = _histogram_counts(A, bins)
        density = counts / (A.shape[0] * width[:, None]) + ENTROPY_EPSILON
        p = density / density.sum(axis=1, keepdims=True)
        out[start:start + A.shape[1]] = -np.sum(p * np.log(p), axis=1)
    return out


@dataclass(frozen=True, eq=False)
class EigenvectorMetrics:
    """Localisation of every eigenvector of a layer, sorted by ascending eigenvalue.

    Attributes
    ----------
    evals : ndarray
        Eigenvalues (pooled over the layer's matrices, times ``eval_scale``), ascending.
    vec_entropy, loc_ratio, part_ratio : ndarray
        The three quantities of the matching eigenvectors.
    """

    evals: np.ndarray
    vec_entropy: np.ndarray
    loc_ratio: np.ndarray
    part_ratio: np.ndarray

    def split(self, n_tail: int) -> dict:
        """The 12 columns for a tail made of the ``n_tail`` largest eigenvalues.

        An empty part (no tail, or no bulk) gives NaN for its columns.
        """
        n = len(self.evals)
        n_tail = min(max(int(n_tail), 0), n)
        cols = {}
        for name in _NAMES:
            data = getattr(self, name)
            parts = {"bulk": data[:n - n_tail], "tail": data[n - n_tail:]}
            for part in ("bulk", "tail"):
                x = parts[part]
                cols[f"{part}_mean_{name}"] = float(np.mean(x)) if x.size else float("nan")
                cols[f"{part}_var_{name}"] = float(np.var(x)) if x.size else float("nan")
        return {c: cols[c] for c in VECTOR_COLUMNS}


def eigenvector_metrics(stack: np.ndarray, eval_scale: float = 1.0) -> EigenvectorMetrics:
    """Eigenvectors of ``W^T W`` for every matrix of ``stack`` and their localisation.

    Parameters
    ----------
    stack : ndarray, shape (k, N, M) or (N, M)
        The matrices; each gives ``min(N, M)`` eigenvectors, those of the Gram matrix on its short
        side (``W W^T`` for a square matrix, whose rows are the layer's outputs).
    eval_scale : float
        Factor applied to the eigenvalues (the layer's ``conv2d_norm`` scaling); the vectors are
        unaffected.
    """
    stack = np.asarray(stack, dtype=np.float64)
    if stack.ndim == 2:
        stack = stack[None]
    evals, ent, loc, part = [], [], [], []
    for W in stack:
        # the Gram matrix on the short side; a square matrix uses W W^T (its left singular vectors,
        # over the rows), as WeightWatcher 0.7.7 does
        G = W.T @ W if W.shape[0] > W.shape[1] else W @ W.T
        lam, V = np.linalg.eigh(G)
        evals.append(np.maximum(lam, 0.0) * eval_scale)
        ent.append(vector_entropy(V))
        loc.append(localization_ratio(V))
        part.append(participation_ratio(V))
    evals = np.concatenate(evals)
    order = np.argsort(evals, kind="stable")
    return EigenvectorMetrics(evals=evals[order], vec_entropy=np.concatenate(ent)[order],
                              loc_ratio=np.concatenate(loc)[order], part_ratio=np.concatenate(part)[order])


def localisation_columns(metrics: EigenvectorMetrics, evals: np.ndarray, fit) -> dict:
    """The 12 columns, with the tail defined by the power-law fit of ``evals``.

    The tail holds as many eigenvectors as ``evals`` has eigenvalues ``>= fit.xmin`` (counted on
    the ESD the fit saw, so an eigenvalue equal to ``xmin`` is in the tail whatever rounding the
    eigenvector solver adds). Without a successful fit there is no tail: the tail columns are NaN
    and the bulk columns describe every eigenvector.
    """
    ok = fit is not None and getattr(fit, "status", "failed") == "success" and fit.xmin > 0
    n_tail = int(np.count_nonzero(np.asarray(evals) >= fit.xmin)) if ok else 0
    return metrics.split(n_tail)


def vector_columns(ctx) -> dict:
    """``vectors=True`` columns of one layer (see :class:`spectralwatch.extras.LayerContext`)."""
    metrics = eigenvector_metrics(ctx.stack, ctx.eval_scale)
    return localisation_columns(metrics, ctx.evals, ctx.fit)

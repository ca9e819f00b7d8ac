r"""Each tail law's own lower cut-off: the Kolmogorov-Smirnov scan over ``xmin`` for the other laws.

Clauset, Shalizi & Newman (SIAM Review 51 (2009), section 3.3) choose ``xmin`` as the candidate
whose tail is closest, in KS distance, to the law fitted on it. :mod:`~spectralwatch.core.fit.ks_scan`
does that for the power law; here it is done for the truncated power law, the exponential, the
lognormal and the stretched exponential, each with its own maximum-likelihood fit at every
candidate (what the ``powerlaw`` package does with ``xmin_distribution``, and what WeightWatcher
0.7.7 asks of it with ``fit='TPL'``). Taking the power law's ``xmin`` for another law is biased:
a truncated power law with alpha 1.5 and Lambda 0.05 on ``[1, inf)`` looks like a power law only far
out, where the power-law scan puts ``xmin``, and the truncated law fitted there has alpha 1.8 and
Lambda 0.037 at any sample size (docs/statistics.md has the table).

For candidate :math:`x_i` with tail :math:`x_i \le \dots \le x_{n-1}` (:math:`t = n - i` values)
and fitted CDF :math:`F_i`, :math:`D_i = \max_{0 \le k < t} |F_i(x_{i+k}) - k/t|` (the convention of
the power-law scan; with merged ties only the first of equal values is a point of the empirical
CDF). The scan returns the first candidate of smallest :math:`D_i`, refitted by the law's own
one-sample fitter (:func:`~spectralwatch.core.fit.laws.fit_tail`) so that the result is exactly that
fit at that ``xmin``.

Two search strategies, by the cost of a fit:

* truncated power law and exponential: every candidate is fitted (the exponential in closed form;
  the truncated power law by a projected Newton iteration run on all candidates at once,
  :func:`_tpl_fit_many`), and the minimum is found exactly with lower bounds of each :math:`D_i`
  from sampled tail positions, as in the power-law scan;
* lognormal and stretched exponential (fits that iterate one candidate at a time): a grid of
  :data:`GRID_CANDIDATES` candidates, refined around the :data:`GRID_REFINE` best down to single
  positions. Exact when there are at most :data:`GRID_CANDIDATES` candidates; otherwise the
  minimum may be missed when :math:`D_i` has a narrow rival minimum between grid points.

Imports scipy (through :mod:`~spectralwatch.core.fit.laws`): loaded only when a law other than the
power law is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

from .ks_scan import log_values, tail_sums
from .laws import fit_tail
from .special import tpl_log_norm
from .truncated import TPL_ALPHA_RANGE

__all__ = ["LawScan", "scan_law", "law_D", "LAW_MIN_TAIL", "GRID_CANDIDATES", "GRID_REFINE"]

# smallest tail a two-parameter law is fitted on when choosing xmin (a shorter tail can be matched
# by two free parameters whatever its law): the small-sample rule of the power-law scan, 8, plus
# its two parameters
LAW_MIN_TAIL = 10
# lognormal / stretched exponential: candidates of the first grid, and best grid points refined
GRID_CANDIDATES = 64
GRID_REFINE = 3
# lower bounds of D from this many sampled tail positions, coarse to fine (then a dense window
# around the largest sampled term), before exact evaluation
LAW_BOUND_LEVELS = (16, 64)
# candidates (then x4 each round) evaluated exactly per round, smallest bound first
LAW_SEED = 4
# terms of one block of CDF evaluations (the incomplete gamma function of the truncated power law
# runs element-wise: blocks bound the temporaries)
LAW_BLOCK = 1 << 16
_SLACK = 1e-12  # as ks_scan.SLACK: bound and exact terms are rounded differently

_VECTOR_LAWS = ("truncated_power_law", "exponential")


@dataclass(frozen=True, repr=False)
class LawScan:
    """The outcome of :func:`scan_law`.

    Attributes
    ----------
    law : str
    index : int
        Position of the chosen ``xmin`` in the sorted data (-1 when no fit).
    xmin : float
    fit : TailFit or TruncatedPowerLawFit
        The law's maximum-likelihood fit on ``data >= xmin`` (its ``success`` says if it worked).
    D : float
        KS distance of that fit on its tail.
    Ds : numpy.ndarray
        ``D`` of every candidate position (NaN where not a candidate, or proved unable to win, or
        not on the grid).
    message : str
    """

    law: str
    index: int
    xmin: float
    fit: object
    D: float
    Ds: np.ndarray
    message: str = ""

    def __repr__(self) -> str:
        return f"LawScan({self.law!r}, xmin={self.xmin:.4g}, D={self.D:.4f}, fit={self.fit!r})"


def _candidates(x: np.ndarray, window, merge: bool) -> np.ndarray:
    """Candidate positions: tails of at least LAW_MIN_TAIL values, not constant, in the window."""
    n = x.size
    ok = np.zeros(n, dtype=bool)
    ok[: max(n - LAW_MIN_TAIL + 1, 0)] = True
    ok &= x < x[-1]
    if window is not None:
        ok &= (x >= window[0]) & (x <= window[1])
    if merge:
        first = np.ones(n, dtype=bool)
        first[1:] = x[1:] != x[:-1]
        ok &= first
    return np.flatnonzero(ok)


def scan_law(data, law: str, *, window=None, merge: bool = False) -> LawScan:
    """Choose ``xmin`` for ``law`` by its own KS scan and fit it there (see the module docstring).

    Parameters
    ----------
    data : numpy.ndarray
        Sorted positive sample (a power-law fit's ``data``).
    law : {'truncated_power_law', 'exponential', 'lognormal', 'stretched_exponential'}
    window : (float, float), optional
        Only candidates ``lo <= xmin <= hi`` (``xmin_peak``, ``xmin_range``).
    merge : bool
        Tied values are one candidate and one step of the empirical CDF.

    Returns
    -------
    LawScan
        With fewer than :data:`LAW_MIN_TAIL` values (or no candidate in the window) the whole
        sample (or the window's first value) is the tail, and ``message`` says so.
    """
    x = np.asarray(data, dtype=np.float64)
    n = x.size
    Ds = np.full(max(n - 1, 0), np.nan)
    idx = _candidates(x, window, merge)
    message = ""
    if idx.size == 0:
        pool = np.flatnonzero(x[:-1] < x[-1]) if n >= 2 else np.empty(0, dtype=np.intp)
        if window is not None:
            pool = pool[(x[pool] >= window[0]) & (x[pool] <= window[1])]
        if pool.size == 0:
            return _failed(law, n, "no candidate xmin with a non-constant tail" +
                           ("" if window is None else f" between {window[0]:g} and {window[1]:g}"))
        idx = pool[:1]
        message = f"tail of {n - int(idx[0])} values (fewer than {LAW_MIN_TAIL}): xmin is its smallest value"
    if law in _VECTOR_LAWS:
        best = _scan_all(x, law, idx, merge, Ds)
    else:
        best = _scan_grid(x, law, idx, merge, Ds)
    fit = fit_tail(x[best:], float(x[best]), law)
    D = law_D(fit, x[best:], merge) if fit.success else math.nan
    Ds[best] = D if np.isfinite(D) else Ds[best]
    return LawScan(law, int(best), float(x[best]), fit, D, _ro(Ds), message or getattr(fit, "message", ""))


def _failed(law, n, message) -> LawScan:
    fit = fit_tail(np.array([1.0]), 1.0, law)  # a failed fit of the law, with its message replaced
    return LawScan(law, -1, math.nan, fit, math.nan, _ro(np.full(max(n - 1, 0), np.nan)), message)


def _ro(a) -> np.ndarray:
    a = np.array(a, dtype=np.float64)
    a.flags.writeable = False
    return a


# --------------------------------------------------------------------------------------------
# the CDF of each law at tail points, vectorised over (candidate, point) pairs
# --------------------------------------------------------------------------------------------
def _cdf_pairs(law, params: dict, xmin, x) -> np.ndarray:
    """``F(x)`` of the law with per-pair parameters (arrays broadcast with ``xmin`` and ``x``)."""
    y = x / xmin
    if law == "exponential":
        return -np.expm1(-params["Lambda"] * (x - xmin))
    if law == "truncated_power_law":  # P(X > x) = y^(1-alpha) Z(alpha, mu y) / Z(alpha, mu)
        a, mu, lz0 = params["alpha"], params["mu"], params["log_norm"]
        out = np.empty(np.broadcast(a, y).shape)
        a, mu, lz0, y = (np.ravel(v) for v in np.broadcast_arrays(a, mu, lz0, y))
        for s in range(0, out.size, LAW_BLOCK):  # the incomplete gamma function: element-wise
            sl = slice(s, s + LAW_BLOCK)
            with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                log_ccdf = (1.0 - a[sl]) * np.log(y[sl]) + tpl_log_norm(a[sl], mu[sl] * y[sl]) - lz0[sl]
            out.flat[sl] = -np.expm1(np.minimum(log_ccdf, 0.0))
        return out
    if law == "stretched_exponential":
        return -np.expm1(-np.exp(params["log_c"]) * np.expm1(params["beta"] * np.log(y)))
    if law == "lognormal":
        mu, s = params["mu"], params["sigma"]
        z0 = (np.log(xmin) - mu) / s
        z = z0 + np.log(y) / s
        with np.errstate(divide="ignore", invalid="ignore"):
            hi_ = z0 > 0  # far tail: 1 - Q(z)/Q(z0) through erfcx, without cancellation
            log_ratio = np.where(
                hi_, -0.5 * (z - z0) * (z + z0) + np.log(special.erfcx(z / math.sqrt(2)))
                - np.log(special.erfcx(z0 / math.sqrt(2))),
                special.log_ndtr(-z) - special.log_ndtr(-z0))
        return -np.expm1(log_ratio)
    raise ValueError(law)


def _fit_params(fit) -> dict:
    """The parameters :func:`_cdf_pairs` takes, from a one-sample fit."""
    if fit.distribution == "truncated_power_law":
        mu = fit.Lambda * fit.xmin
        return {"alpha": fit.alpha, "mu": mu, "log_norm": float(tpl_log_norm(fit.alpha, mu))}
    p = dict(fit.params + fit.aux)
    if fit.distribution == "stretched_exponential" and "log_c" not in p:
        p["log_c"] = p["beta"] * (math.log(p["Lambda"]) + math.log(fit.xmin))
    return p


def law_D(fit, tail: np.ndarray, merge: bool = False) -> float:
    """KS distance ``max_k |F(x_k) - k/t|`` of a one-sample fit on its sorted tail."""
    t = tail.size
    if np.isfinite(fit.xmax):  # a truncated power law normalised on [xmin, xmax]: its own CDF
        F = np.asarray(fit.cdf(tail), dtype=np.float64)
    else:
        F = _cdf_pairs(fit.distribution, _fit_params(fit), fit.xmin, tail)
    terms = np.abs(F - np.arange(t) / t)
    if merge:
        first = np.ones(t, dtype=bool)
        first[1:] = tail[1:] != tail[:-1]
        terms = terms[first]
    return float(terms.max())


# --------------------------------------------------------------------------------------------
# every candidate fitted: exact bounded selection
# --------------------------------------------------------------------------------------------
def _scan_all(x, law, idx, merge, Ds) -> int:
    """Fit ``law`` at every candidate ``idx`` and return the position of the smallest ``D``."""
    n = x.size
    t = (n - idx).astype(np.float64)
    if law == "exponential":
        top = np.cumsum(x[::-1])[::-1]  # sum_{j >= i} x_j
        params = {"Lambda": 1.0 / (top[idx] / t - x[idx])}
    else:
        _, s = tail_sums(log_values(x))
        ymean = np.cumsum(x[::-1])[::-1][idx] / t / x[idx]
        alpha, mu = _tpl_fit_many(s[idx] / t, ymean)
        bad = np.flatnonzero(~(np.isfinite(alpha) & np.isfinite(mu)))
        for j in bad:  # the one-candidate fitter where the batched iteration did not converge
            fit = fit_tail(x[idx[j]:], float(x[idx[j]]), law)
            alpha[j], mu[j] = (fit.alpha, fit.Lambda * fit.xmin) if fit.success else (np.nan, np.nan)
        with np.errstate(invalid="ignore"):
            params = {"alpha": alpha, "mu": mu, "log_norm": tpl_log_norm(alpha, mu)}
    D = _bounded_select(x, law, idx, params, _first_of(x) if merge else None)
    Ds[idx] = D
    done = np.isfinite(D)
    return int(idx[done][np.argmin(D[done])]) if done.any() else int(idx[0])


def _terms(x, law, idx, params, cand, k, first):
    """KS terms ``|F(x_{i+k}) - k/t|`` of candidates ``cand`` (positions in ``idx``) at offsets ``k``."""
    n = x.size
    i = idx[cand]
    pos = np.minimum(i + k, n - 1)
    if first is not None:  # merged ties: the first of equal values carries the empirical CDF
        pos = first[pos]
    t = (n - i).astype(np.float64)
    p = {key: v[cand] for key, v in params.items()}
    F = _cdf_pairs(law, p, x[i], x[pos])
    return np.abs(F - (pos - i) / t)


def _first_of(x):
    """Position of the first value equal to each ``x[j]`` (sorted ``x``)."""
    new = np.ones(x.size, dtype=bool)
    new[1:] = x[1:] != x[:-1]
    return np.maximum.accumulate(np.where(new, np.arange(x.size), 0))


def _bounded_select(x, law, idx, params, first) -> np.ndarray:
    """Exact ``D`` of every candidate that can be the minimum (NaN for the others).

    Lower bounds from :data:`LAW_BOUND_LEVELS` evenly sampled tail positions, coarse to fine, each
    level on the candidates the previous one could not rule out; then every position between the
    two samples around the largest sampled term (where the maximum usually is: this bound is
    nearly always the exact ``D``); then exact distances in rounds of :data:`LAW_SEED`, x4 each
    round, smallest bound first, until no bound is below the best.
    """
    n, m = x.size, idx.size
    t = n - idx
    D = np.full(m, np.nan)
    valid = np.ones(m, dtype=bool)
    for v in params.values():
        valid &= np.isfinite(v)
    bound = np.where(valid, 0.0, np.inf)
    live = np.flatnonzero(valid)
    best = np.inf
    for level, samples in enumerate(LAW_BOUND_LEVELS):
        if live.size <= LAW_SEED:
            break
        k = np.floor(np.linspace(0.0, 1.0, samples)[:, None] * (t[live] - 1.0)).astype(np.intp)
        vals = _terms(x, law, idx, params, np.broadcast_to(live, k.shape), k, first)
        bound[live] = np.maximum(bound[live], vals.max(axis=0))
        if level == len(LAW_BOUND_LEVELS) - 1:  # every position around the largest sampled term
            j = vals.argmax(axis=0)
            start = k[np.maximum(j - 1, 0), np.arange(live.size)]
            stop = k[np.minimum(j + 1, samples - 1), np.arange(live.size)] + 1
            widths = stop - start
            owner = np.repeat(np.arange(live.size), widths)
            kk = np.arange(owner.size) - np.repeat(np.cumsum(widths) - widths, widths) + np.repeat(start, widths)
            near = _terms(x, law, idx, params, live[owner], kk, first)
            bound[live] = np.maximum(bound[live], np.maximum.reduceat(near, np.cumsum(widths) - widths))
        seed = live[np.argsort(bound[live], kind="stable")[:LAW_SEED]]
        _exact(x, law, idx, params, seed[np.isnan(D[seed])], first, D)
        best = float(np.nanmin(D))
        live = live[np.isnan(D[live]) & (bound[live] - _SLACK <= best)]
    live = live[np.argsort(bound[live], kind="stable")]
    done, batch = 0, LAW_SEED
    while done < live.size and bound[live[done]] - _SLACK <= best:
        todo = live[done:done + batch]
        _exact(x, law, idx, params, todo[bound[todo] - _SLACK <= best], first, D)
        best = float(np.nanmin(D))
        done, batch = done + batch, batch * 4
    return D


def _exact(x, law, idx, params, cands, first, D) -> None:
    """Exact ``D`` of the candidates ``cands`` (positions in ``idx``), written into ``D``."""
    if cands.size == 0:
        return
    widths = x.size - idx[cands]
    owner = np.repeat(np.arange(cands.size), widths)
    k = np.arange(owner.size) - np.repeat(np.cumsum(widths) - widths, widths)
    terms = _terms(x, law, idx, params, cands[owner], k, first)
    D[cands] = np.maximum.reduceat(terms, np.cumsum(widths) - widths)


# --------------------------------------------------------------------------------------------
# the truncated power law at every candidate at once
# --------------------------------------------------------------------------------------------
def _tpl_moments(a, mu, h=1e-4):
    """Per candidate: ``E[ln y]``, ``E[y]``, ``Var(ln y)``, ``Var(y)``, ``Cov(ln y, y)`` (as the
    one-sample fitter's ``_moments``, for arrays)."""
    A = np.stack([a, a + h, a - h, a - 1.0, a - 1.0 + h, a - 1.0 - h, a - 2.0])
    lz = tpl_log_norm(A, np.broadcast_to(mu, A.shape))
    e_log = -(lz[1] - lz[2]) / (2 * h)
    var_log = (lz[1] - 2 * lz[0] + lz[2]) / (h * h)
    with np.errstate(over="ignore", invalid="ignore"):
        e_y = np.exp(lz[3] - lz[0])
        e_y2 = np.exp(lz[6] - lz[0])
    e_log1 = -(lz[4] - lz[5]) / (2 * h)
    return e_log, e_y, var_log, e_y2 - e_y * e_y, e_y * e_log1 - e_y * e_log


def _solve(g0, g1, H00, H01, H11):
    """Newton ascent step ``-H^{-1} g`` of a concave quadratic model; scaled gradient where ``H`` is not
    negative definite numerically."""
    det = H00 * H11 - H01 * H01
    with np.errstate(divide="ignore", invalid="ignore"):
        s0 = -(H11 * g0 - H01 * g1) / det
        s1 = -(H00 * g1 - H01 * g0) / det
        bad = ~(np.isfinite(s0) & np.isfinite(s1) & (det > 0) & (g0 * s0 + g1 * s1 > 0))
        s0 = np.where(bad, g0 / np.maximum(np.abs(H00), 1e-300), s0)
        s1 = np.where(bad, g1 / np.maximum(np.abs(H11), 1e-300), s1)
    return s0, s1


def _tpl_fit_many(mean_log, mean_y, max_iter=60):
    r"""Maximum-likelihood ``(alpha, mu = Lambda xmin)`` of the untruncated truncated power law for
    every candidate, from its sufficient statistics :math:`\overline{\ln y}` and :math:`\bar y`.

    The one-sample fitter (:func:`~spectralwatch.core.fit.truncated.fit_truncated_power_law`) run on
    arrays: the power law when it satisfies the Karush-Kuhn-Tucker condition, else Newton steps on
    the concave likelihood (in :math:`(\alpha, \ln\mu)` when a step would cross :math:`\mu = 0`) with
    backtracking, alpha held on a bound of its range while the gradient points out of it.
    Candidates that do not converge come back NaN (the caller fits them one by one).
    """
    lo, hi = TPL_ALPHA_RANGE
    m = mean_log.size
    with np.errstate(divide="ignore", invalid="ignore"):
        a_pl = 1.0 + 1.0 / mean_log
        e_y_pl = np.where(a_pl > 2.0, (a_pl - 1.0) / (a_pl - 2.0), np.inf)
    boundary = (e_y_pl <= mean_y) & (a_pl > lo) & (a_pl < hi)
    alpha = np.where(boundary, a_pl, np.nan)
    mu_out = np.where(boundary, 0.0, np.nan)
    act = np.flatnonzero(~boundary & np.isfinite(mean_log) & (mean_log > 0))
    a = np.clip(a_pl[act], lo, hi)
    mu = 1.0 / mean_y[act]
    L, Y = mean_log[act], mean_y[act]

    def f(a_, mu_, L_, Y_):
        with np.errstate(invalid="ignore", over="ignore"):
            return -a_ * L_ - mu_ * Y_ - tpl_log_norm(a_, mu_)

    cur = f(a, mu, L, Y)
    for _ in range(max_iter):
        if act.size == 0:
            break
        e_log, e_y, v_log, v_y, cov = _tpl_moments(a, mu)
        g0, g1 = e_log - L, e_y - Y
        H00, H01, H11 = -v_log, -cov, -v_y
        s0, s1 = _solve(g0, g1, H00, H01, H11)
        # on a bound of alpha with the gradient (or the joint step) pointing out: alpha stays there
        at_lo, at_hi = a <= lo + 1e-10, a >= hi - 1e-10
        pinned = (at_lo & ((g0 < 0) | (s0 < 0))) | (at_hi & ((g0 > 0) | (s0 > 0)))
        with np.errstate(divide="ignore", invalid="ignore"):
            s0 = np.where(pinned, 0.0, s0)
            s1 = np.where(pinned, np.where(H11 < 0, -g1 / H11, g1), s1)
        converged = (g0 * s0 + g1 * s1 < 1e-17) & np.isfinite(g0) & np.isfinite(g1)
        logstep = (s1 < 0) & (mu + s1 <= 0.1 * mu)
        if logstep.any():  # (alpha, ln mu): exact gradient and Hessian by the chain rule
            l0, l1 = _solve(g0, mu * g1, H00, mu * H01, mu * mu * H11 + mu * g1)
            with np.errstate(divide="ignore", invalid="ignore"):
                h11 = mu * mu * H11 + mu * g1
                l1 = np.where(pinned, np.where(h11 < 0, -mu * g1 / h11, mu * g1), l1)
            s0, s1 = np.where(logstep, np.where(pinned, 0.0, l0), s0), np.where(logstep, l1, s1)
        tt = np.ones(act.size)
        with np.errstate(divide="ignore", invalid="ignore"):
            tt = np.where((s0 < 0) & (a + s0 < lo), (a - lo) / -s0, tt)
            tt = np.where((s0 > 0) & (a + s0 > hi), (hi - a) / s0, tt)
            tt = np.where(logstep, np.minimum(tt, 5.0 / np.maximum(np.abs(s1), 1e-300)), tt)
        na, nmu, new = a.copy(), mu.copy(), cur.copy()
        pending = ~converged
        for _ in range(60):
            if not pending.any():
                break
            p = np.flatnonzero(pending)
            ta = np.clip(a[p] + tt[p] * s0[p], lo, hi)
            ta = np.where(ta < lo + 1e-10, lo, np.where(ta > hi - 1e-10, hi, ta))  # land exactly on a bound
            tm = np.where(logstep[p], mu[p] * np.exp(tt[p] * s1[p]), mu[p] + tt[p] * s1[p])
            val = f(ta, tm, L[p], Y[p])
            ok = np.isfinite(val) & (val >= cur[p] - 1e-15 * np.abs(cur[p])) & (tm > 0)
            na[p[ok]], nmu[p[ok]], new[p[ok]] = ta[ok], tm[ok], val[ok]
            pending[p[ok]] = False
            tt[p[~ok]] *= 0.5
        change = np.abs(na - a) + np.abs(nmu - mu) * Y
        stuck = pending  # no ascent found: left to the one-candidate fitter
        finished = (converged | (change < 1e-12)) & ~stuck
        alpha[act[finished]], mu_out[act[finished]] = na[finished], nmu[finished]
        keep = ~(finished | stuck)
        act, a, mu, cur, L, Y = act[keep], na[keep], nmu[keep], new[keep], L[keep], Y[keep]
    return alpha, mu_out


# --------------------------------------------------------------------------------------------
# one candidate at a time: grid, refined
# --------------------------------------------------------------------------------------------
def _scan_grid(x, law, idx, merge, Ds) -> int:
    """Coarse-to-fine search over the candidates ``idx`` with the one-sample fitter."""
    m = idx.size

    def evaluate(pos):
        for p in pos:
            i = idx[p]
            if np.isnan(Ds[i]):
                fit = fit_tail(x[i:], float(x[i]), law)
                Ds[i] = law_D(fit, x[i:], merge) if fit.success else np.inf

    grid = np.unique(np.linspace(0, m - 1, min(m, GRID_CANDIDATES)).round().astype(np.intp))
    evaluate(grid)
    while True:
        seen = np.flatnonzero(np.isfinite(Ds[idx]) | np.isinf(Ds[idx]))
        order = seen[np.argsort(Ds[idx[seen]], kind="stable")][:GRID_REFINE]
        todo = []
        for p in order:  # between the evaluated neighbours of each of the best
            j = np.searchsorted(seen, p)
            left = seen[j - 1] if j > 0 else p
            right = seen[j + 1] if j + 1 < seen.size else p
            if right - left > 2:
                todo.append(np.unique(np.linspace(left, right, min(right - left + 1, GRID_CANDIDATES // 4 + 1))
                                      .round().astype(np.intp)))
        todo = [q for t_ in todo for q in t_ if np.isnan(Ds[idx[q]])]
        if not todo:
            break
        evaluate(todo)
    vals = Ds[idx]
    vals = np.where(np.isnan(vals), np.inf, vals)
    Ds[idx[np.isinf(vals)]] = np.nan
    return int(idx[int(np.argmin(vals))])

r"""Random-matrix theory of a layer's spectrum: the Marchenko-Pastur bulk, its spikes and detX.

Pure functions on eigenvalues; no framework, no plotting. See ``docs/rmt.md`` for the user guide.

Notes
-----
For an :math:`N \times M` matrix (:math:`N \ge M`, :math:`Q = N/M`) with i.i.d. entries of variance
:math:`\sigma^2 / N`, the eigenvalues of :math:`X = W^T W` follow, as :math:`N, M \to \infty`, the
Marchenko-Pastur (MP) law

.. math::

    \rho_Q(\lambda) = \frac{Q}{2\pi\sigma^2\lambda}\sqrt{(\lambda^+ - \lambda)(\lambda - \lambda^-)},
    \qquad \lambda^\pm = \sigma^2 \left(1 \pm Q^{-1/2}\right)^2

(Marchenko & Pastur, Math. USSR Sbornik 1, 1967). Its mean is :math:`\sigma^2`. At :math:`Q = 1` it
is the quarter-circle law of the singular values :math:`s = \sqrt\lambda`,
:math:`\rho(s) = \sqrt{4\sigma^2 - s^2} / (\pi\sigma^2)` on :math:`[0, 2\sigma]`.

As in WeightWatcher, a spectrum is first rescaled to mean 1, :math:`\lambda' = W_s^2 \lambda` with
:math:`W_s = \sqrt{n / \sum\lambda}`; :math:`\sigma` (``sigma_mp``) is fitted in those units.
Eigenvalues above the bulk edge plus a Tracy-Widom margin are *spikes* (Baik, Ben Arous & Peche,
Ann. Probab. 33, 2005; Tracy & Widom, Commun. Math. Phys. 177, 1996): with
:math:`t = Q^{-1/2} (\lambda^+)^{2/3} M^{-2/3}`, a spike is :math:`\lambda' > \lambda^+ + \sqrt t`.

Two fits of :math:`\sigma` are offered:

``'quantile'`` (default)
    The minimum-Wasserstein-2 (quantile least-squares) projection of the bulk onto the MP family,
    in closed form: :math:`\sigma^2 = \sum_{i \le n-k} \lambda'_i q_i / \sum_{i \le n-k} q_i^2`,
    :math:`q_i` the unit-MP quantile of level :math:`(i - 1/2 + k/2)/n`, iterated on the number
    of spikes :math:`k` (the top :math:`k` eigenvalues). A rank-:math:`k` perturbation moves
    bulk eigenvalue :math:`i` between the unperturbed quantiles :math:`i` and :math:`i + k`
    (interlacing; Bai & Silverstein, *Spectral Analysis of Large Dimensional Random Matrices*,
    2010, Thm A.43), hence the midpoint level. No bandwidth, no grid, no optimiser.
``'ww'``
    WeightWatcher 0.7.7's procedure, reproduced for compatibility: a linear-kernel density
    estimate (bandwidth 0.1) of the rescaled spectrum (of the singular values at :math:`Q = 1`),
    a least-squares residual against the MP (quarter-circle) density where the estimate exceeds
    0.01, minimised on a grid :math:`\sigma \in [0.05, 2) \sigma_0` (step :math:`0.01\sigma_0`,
    :math:`\sigma_0 = \sqrt{\lambda'_{max}}/(1 + Q^{-1/2})`) and polished by Nelder-Mead.

Martin & Mahoney, "Implicit self-regularization in deep neural networks: evidence from random
matrix theory and implications for learning", JMLR 22(165), 2021.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..options.vocabulary import MP_FIT_METHODS

__all__ = [
    "MP_FIT_METHODS", "MPFit", "DetX",
    "marchenko_pastur_edges", "marchenko_pastur_pdf", "marchenko_pastur_cdf", "marchenko_pastur_ppf",
    "quarter_circle_pdf", "tracy_widom_margin", "rescale_to_unit_mean", "fit_marchenko_pastur",
    "detx_constraint", "CorrelationTrap", "RandomizedESD", "jensen_shannon_distance", "shuffled_spectrum",
    "shuffled_replicas", "randomized_esd",
]

_MAX_SPIKE_ITER = 100  # the spike count only grows during the quantile fit; this bounds the loop
_BISECT_STEPS = 60  # bisection steps of the MP quantile function (2^-60 of [0, pi] in theta)
# WeightWatcher 0.7.7's density-fit constants (the 'ww' method)
_WW_BANDWIDTH = 0.1
_WW_GRID_POINTS = 1000
_WW_GRID_PAD = 0.5
_WW_DENSITY_FLOOR = 0.01
_WW_PENALTY = 1000.0
_WW_GRID = (0.05, 2.0, 0.01)


# ---------------------------------------------------------------------------------------- the law
def marchenko_pastur_edges(Q: float, sigma: float = 1.0) -> tuple[float, float]:
    r"""Bulk edges :math:`\lambda^\pm = \sigma^2 (1 \pm Q^{-1/2})^2` (``bulk_min``, ``bulk_max``)."""
    r = 1.0 / np.sqrt(Q)
    return float((sigma * (1.0 - r)) ** 2), float((sigma * (1.0 + r)) ** 2)


def marchenko_pastur_pdf(x, Q: float, sigma: float = 1.0) -> np.ndarray:
    r"""MP density :math:`Q\sqrt{(\lambda^+ - x)(x - \lambda^-)} / (2\pi\sigma^2 x)`, 0 outside the bulk.

    Examples
    --------
    >>> from scipy.integrate import quad
    >>> round(quad(marchenko_pastur_pdf, 0.0857, 2.9143, args=(2.0,))[0], 3)
    1.0
    """
    x = np.asarray(x, dtype=np.float64)
    a, b = marchenko_pastur_edges(Q, sigma)
    inside = (x > a) & (x < b) & (x > 0)
    xs = np.where(inside, x, 1.0)
    dens = Q * np.sqrt(np.abs((b - xs) * (xs - a))) / (2.0 * np.pi * sigma ** 2 * xs)
    return np.where(inside, dens, 0.0)


def quarter_circle_pdf(s, sigma: float = 1.0) -> np.ndarray:
    r"""Quarter-circle density of singular values at :math:`Q = 1`: :math:`\sqrt{4\sigma^2 - s^2}/(\pi\sigma^2)`.

    It is the MP law at :math:`Q = 1` seen through :math:`\lambda = s^2`:
    ``quarter_circle_pdf(s) == 2 * s * marchenko_pastur_pdf(s**2, 1.0)``.
    """
    s = np.asarray(s, dtype=np.float64)
    inside = (s >= 0) & (s < 2.0 * sigma)
    return np.where(inside, np.sqrt(np.clip(4.0 * sigma ** 2 - s * s, 0.0, None)) / (np.pi * sigma ** 2), 0.0)


def _unit_cdf_theta(theta: np.ndarray, y: float) -> np.ndarray:
    r"""CDF of the unit MP law (ratio :math:`y = 1/Q`) at :math:`x = 1 + y - 2\sqrt y \cos\theta`.

    With that substitution the density integrates in closed form:
    :math:`F = \frac{2}{\pi}\left[\frac{\sin\theta}{2\sqrt y} + \frac{(1+y)\theta}{4y}
    - \frac{1-y}{2y}\arctan\left(\frac{1+\sqrt y}{1-\sqrt y}\tan\frac\theta2\right)\right]`.
    """
    ry = np.sqrt(y)
    head = np.sin(theta) / (2.0 * ry) + (1.0 + y) * theta / (4.0 * y)
    if y < 1.0:
        with np.errstate(over="ignore"):
            t = np.where(theta >= np.pi, np.inf, np.tan(theta / 2.0))
        head = head - (1.0 - y) / (2.0 * y) * np.arctan((1.0 + ry) / (1.0 - ry) * t)
    return np.clip(2.0 / np.pi * head, 0.0, 1.0)


def marchenko_pastur_cdf(x, Q: float, sigma: float = 1.0) -> np.ndarray:
    """Cumulative distribution function of the MP law (closed form, see :func:`_unit_cdf_theta`)."""
    y = 1.0 / Q
    u = np.asarray(x, dtype=np.float64) / sigma ** 2
    cos_t = np.clip((1.0 + y - u) / (2.0 * np.sqrt(y)), -1.0, 1.0)
    return _unit_cdf_theta(np.arccos(cos_t), y)


def marchenko_pastur_ppf(p, Q: float, sigma: float = 1.0) -> np.ndarray:
    """Quantile function of the MP law: the ``x`` with ``cdf(x) = p``, by bisection in theta.

    Examples
    --------
    >>> x = marchenko_pastur_ppf([0.25, 0.5, 0.75], 4.0)
    >>> bool(np.allclose(marchenko_pastur_cdf(x, 4.0), [0.25, 0.5, 0.75]))
    True
    """
    p = np.asarray(p, dtype=np.float64)
    y = 1.0 / Q
    lo, hi = np.zeros_like(p), np.full_like(p, np.pi)
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        below = _unit_cdf_theta(mid, y) < p
        lo = np.where(below, mid, lo)
        hi = np.where(below, hi, mid)
    theta = 0.5 * (lo + hi)
    return sigma ** 2 * (1.0 + y - 2.0 * np.sqrt(y) * np.cos(theta))


def tracy_widom_margin(bulk_max: float, Q: float, M: int) -> float:
    r"""WeightWatcher's Tracy-Widom scale :math:`t = Q^{-1/2} (\lambda^+)^{2/3} M^{-2/3}`.

    Spikes are eigenvalues above :math:`\lambda^+ + \sqrt t`. The fluctuations of the largest
    eigenvalue of a random matrix are of order :math:`t` itself; the margin :math:`\sqrt t`
    (order :math:`M^{-1/3}`) is therefore many Tracy-Widom widths wide: conservative.
    """
    return float(Q ** -0.5 * bulk_max ** (2.0 / 3.0) * float(M) ** (-2.0 / 3.0))


def rescale_to_unit_mean(evals) -> tuple[np.ndarray, float]:
    r"""``(evals * W_scale**2, W_scale)`` with :math:`W_s = \sqrt{n / \sum \lambda}` (mean 1 after)."""
    evals = np.asarray(evals, dtype=np.float64)
    scale = float(np.sqrt(evals.size) / np.sqrt(np.sum(evals)))
    # (scale * scale) * evals, in this order: the 'ww' fit can be sensitive to the last bit
    return (scale * scale) * evals, scale


# ------------------------------------------------------------------------------------ the fit
@dataclass(frozen=True, eq=False, repr=False)
class MPFit:
    """Marchenko-Pastur fit of a spectrum's bulk (result of :func:`fit_marchenko_pastur`).

    Attributes
    ----------
    sigma : float
        ``sigma_mp``, in the units of the rescaled (mean-1) spectrum.
    W_scale : float
        ``sqrt(n / sum(evals))``: the rescaled spectrum is ``evals * W_scale**2``.
    bulk_min, bulk_max : float
        MP edges in the original units of ``evals``.
    margin : float
        Tracy-Widom margin ``sqrt(t)`` in rescaled units; spikes lie above ``bulk_max`` plus it.
    num_spikes : int
        Eigenvalues above the edge plus the margin.
    mp_softrank : float
        ``bulk_max / lambda_max`` (unit-free; 1 or more means no eigenvalue escapes the bulk).
    Q, M : float, int
        Aspect ratio and short side the fit used.
    method : str
        ``'quantile'`` or ``'ww'``.
    spikes : numpy.ndarray
        The spikes, ascending, in original units (read-only).
    status, message : str
        ``'success'``, or ``'failed'`` with the reason (all numbers NaN then).
    """

    sigma: float
    W_scale: float
    bulk_min: float
    bulk_max: float
    margin: float
    num_spikes: int
    mp_softrank: float
    Q: float
    M: int
    method: str
    spikes: np.ndarray
    status: str = "success"
    message: str = ""

    @property
    def edge(self) -> float:
        """Spike threshold in original units: ``bulk_max + margin / W_scale**2``."""
        return self.bulk_max + self.margin / self.W_scale ** 2

    def columns(self, prefix: str = "") -> dict:
        """The details-table columns (``rand_`` prefix for the randomized spectrum)."""
        return {f"{prefix}num_spikes": self.num_spikes, f"{prefix}sigma_mp": self.sigma,
                f"{prefix}mp_softrank": self.mp_softrank, f"{prefix}W_scale": self.W_scale,
                f"{prefix}bulk_max": self.bulk_max, f"{prefix}bulk_min": self.bulk_min}

    def __repr__(self) -> str:
        if self.status != "success":
            return f"MPFit(status='failed', message={self.message!r})"
        return (f"MPFit(sigma={self.sigma:.4f}, bulk_max={self.bulk_max:.4g}, num_spikes={self.num_spikes}, "
                f"mp_softrank={self.mp_softrank:.4f}, method={self.method!r})")


def _frozen(arr) -> np.ndarray:
    arr = np.array(arr, dtype=np.float64)
    arr.flags.writeable = False
    return arr


def _failed_mp(Q, M, method, message) -> MPFit:
    nan = float("nan")
    return MPFit(nan, nan, nan, nan, nan, -1, nan, float(Q), int(M), method, _frozen([]), "failed", message)


def _fit_sigma_quantile(x: np.ndarray, Q: float, M: int) -> float:
    """Quantile least-squares sigma with the spikes left out (``x``: rescaled, ascending).

    With ``k`` spikes, bulk eigenvalue ``i`` lies between the unperturbed quantiles ``i`` and
    ``i + k`` (interlacing); it is matched to the midpoint level ``(i - 1/2 + k/2) / n``.
    """
    n = x.size
    k = 0
    for _ in range(_MAX_SPIKE_ITER):
        q = marchenko_pastur_ppf((np.arange(n - k) + 0.5 + 0.5 * k) / n, Q)
        sigma = float(np.sqrt(np.dot(q, x[:n - k]) / np.dot(q, q)))
        b = marchenko_pastur_edges(Q, sigma)[1]
        k_new = int(n - np.searchsorted(x, b + np.sqrt(tracy_widom_margin(b, Q, M)), side="right"))
        if k_new <= k or k_new >= n - 1:
            break
        k = k_new
    return sigma


def _linear_kde(data: np.ndarray, grid: np.ndarray, h: float) -> np.ndarray:
    """Linear-kernel density :math:`\\frac{1}{nh}\\sum_i (1 - |x - x_i|/h)_+` by prefix sums (exact)."""
    d = np.sort(data)
    csum = np.concatenate([[0.0], np.cumsum(d)])
    lo = np.searchsorted(d, grid - h, side="right")
    mid = np.searchsorted(d, grid, side="right")
    hi = np.searchsorted(d, grid + h, side="left")
    n_left, n_right = mid - lo, hi - mid
    s_left = grid * n_left - (csum[mid] - csum[lo])   # sum of (x - x_i) over x - h < x_i <= x
    s_right = (csum[hi] - csum[mid]) - grid * n_right  # sum of (x_i - x) over x < x_i < x + h
    dens = (n_left + n_right - (s_left + s_right) / h) / (d.size * h)
    return np.clip(dens, 0.0, None)


def _ww_objective(sigma, xde, yde, Q, peak_x) -> float:
    """Sum of squared residuals of WeightWatcher's density fit at ``sigma`` (an array of one value)."""
    s = float(np.asarray(sigma).ravel()[0])
    if Q == 1:
        with np.errstate(invalid="ignore"):
            model = np.nan_to_num(np.sqrt(4.0 - xde ** 2) / (np.pi * s * s))
    else:
        r = np.sqrt(1.0 / Q)  # this form, not 1/sqrt(Q): the penalty's edges, to the last bit
        a, b = (s * (1.0 - r)) ** 2, (s * (1.0 + r)) ** 2
        if b < peak_x or b > xde[-1] or a > peak_x:
            return _WW_PENALTY ** 2 * xde.size
        with np.errstate(invalid="ignore", divide="ignore"):
            model = np.nan_to_num(np.sqrt((b - xde) * (xde - a)) * Q / (2.0 * np.pi * s * s * xde))
    return float(np.sum((model - yde) ** 2))


def _fit_sigma_ww(x: np.ndarray, Q: float) -> float:
    """WeightWatcher 0.7.7's sigma: grid search of the density residual, polished by Nelder-Mead."""
    from scipy import optimize

    data = np.sqrt(x) if Q == 1 else x
    grid = np.linspace(0.0, float(data.max()) + _WW_GRID_PAD, _WW_GRID_POINTS)
    dens = _linear_kde(data, grid, _WW_BANDWIDTH)
    keep = dens > _WW_DENSITY_FLOOR
    xde, yde = grid[keep], dens[keep]
    peak_x = float(xde[np.argmax(yde)])
    args = (xde, yde, Q, peak_x)
    s0 = float(np.sqrt(x.max() / (1.0 + 1.0 / np.sqrt(Q)) ** 2))
    start, stop, step = (c * s0 for c in _WW_GRID)
    sigmas = np.mgrid[slice(start, stop, step)]
    values = np.array([_ww_objective(np.array([s]), *args) for s in sigmas])
    best = float(sigmas[int(np.argmin(values))])
    polished = optimize.fmin(_ww_objective, best, args=args, full_output=True, disp=False)
    return float(polished[0][0])


def fit_marchenko_pastur(evals, Q: float, M: int, *, method: str = "quantile") -> MPFit:
    """Fit the Marchenko-Pastur law to the bulk of a spectrum and count the spikes above it.

    Parameters
    ----------
    evals : array_like
        Eigenvalues of ``W^T W`` (all of them, zeros included), any order.
    Q : float
        Aspect ratio ``N / M >= 1`` of the matrices.
    M : int
        Short side of the matrices (enters the Tracy-Widom margin).
    method : {'quantile', 'ww'}
        Sigma fit: minimum-Wasserstein (quantile least squares, default) or WeightWatcher 0.7.7's
        density fit. See the module notes.

    Returns
    -------
    MPFit
        ``status='failed'`` with a message for an empty, non-finite or all-zero spectrum.

    Examples
    --------
    >>> W = np.random.default_rng(0).standard_normal((800, 200))
    >>> fit = fit_marchenko_pastur(np.linalg.eigvalsh(W.T @ W), Q=4.0, M=200)
    >>> round(fit.sigma, 2), fit.num_spikes
    (1.0, 0)
    """
    from ..errors import InvalidParameterError

    if method not in MP_FIT_METHODS:
        raise InvalidParameterError(
            f"The 'method' parameter of fit_marchenko_pastur must be one of 'quantile', 'ww'. Got {method!r}.")
    if not (np.isfinite(Q) and Q >= 1.0):
        raise InvalidParameterError(f"The 'Q' parameter of fit_marchenko_pastur must be a number >= 1. Got {Q!r}.")
    x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    if x.size < 2 or not np.all(np.isfinite(x)) or not x[-1] > 0:
        return _failed_mp(Q, M, method, "the spectrum is empty, constant zero or not finite")
    x = np.clip(x, 0.0, None)
    xr, w_scale = rescale_to_unit_mean(x)
    sigma = _fit_sigma_quantile(xr, Q, M) if method == "quantile" else _fit_sigma_ww(xr, Q)
    if not (np.isfinite(sigma) and sigma > 0):
        return _failed_mp(Q, M, method, f"the {method} fit of sigma did not converge")
    a, b = marchenko_pastur_edges(Q, sigma)
    margin = float(np.sqrt(tracy_widom_margin(b, Q, M)))
    first = int(np.searchsorted(xr, b + margin, side="right"))
    return MPFit(sigma=sigma, W_scale=w_scale, bulk_min=a / w_scale ** 2, bulk_max=b / w_scale ** 2,
                 margin=margin, num_spikes=int(x.size - first), mp_softrank=float(b / xr[-1]),
                 Q=float(Q), M=int(M), method=method, spikes=_frozen(x[first:]))


# ----------------------------------------------------------------------------------------- detX
@dataclass(frozen=True)
class DetX:
    """The detX (ERG) condition of a spectrum (result of :func:`detx_constraint`).

    Attributes
    ----------
    num : int
        ``detX_num`` = ``num_ERG_spikes``: the smallest ``k`` for which the product of the ``k``
        largest rescaled (mean-1) eigenvalues is below 1.
    val : float
        ``detX_val``: the ``k``-th largest eigenvalue (the cut), in original units.
    val_rescaled : float
        The same eigenvalue in rescaled units.
    """

    num: int
    val: float
    val_rescaled: float


def detx_constraint(evals) -> DetX:
    r"""Smallest tail whose rescaled eigenvalues multiply to less than one (:math:`\det X < 1`).

    With :math:`\lambda'` rescaled to mean 1 and sorted descending,
    :math:`k = \min\{k : \sum_{j \le k} \ln \lambda'_j < 0\}` (log-sums: no overflow).
    Since the geometric mean is at most the arithmetic mean (1), :math:`k \le n` always exists.
    The Exact Renormalization Group condition of the SETOL theory (Martin & Hinrichs, 2025)
    says a well-trained layer has :math:`k` close to the power-law tail size ``num_pl_spikes``.

    Returns ``DetX(0, nan, nan)`` for fewer than 2 eigenvalues or a constant spectrum.
    """
    x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    if x.size < 2 or not x[0] < x[-1]:
        return DetX(0, float("nan"), float("nan"))
    xr, _ = rescale_to_unit_mean(x)
    with np.errstate(divide="ignore"):
        top_logs = np.cumsum(np.log(xr[::-1]))
    below = np.flatnonzero(top_logs < 0.0)
    k = int(below[0]) + 1 if below.size else x.size
    return DetX(num=k, val=float(x[x.size - k]), val_rescaled=float(xr[x.size - k]))


# -------------------------------------------------------------------------------- randomization
@dataclass(frozen=True)
class CorrelationTrap:
    """A spike of the *randomized* spectrum: an eigenvalue of the shuffled matrix past the MP edge.

    Shuffling destroys correlations but keeps the element distribution, so a spike that survives
    it comes from a few unusually large elements, not from learned structure (a "correlation
    trap", Martin & Mahoney, JMLR 2021, section 6).

    Attributes
    ----------
    eigenvalue : float
        The eigenvalue of the randomized ESD, in the units of the details table.
    distance : float
        ``eigenvalue - rand_bulk_max``: how far past the bulk edge.
    ratio : float
        ``eigenvalue / rand_bulk_max``.
    """

    eigenvalue: float
    distance: float
    ratio: float


@dataclass(frozen=True, eq=False, repr=False)
class RandomizedESD:
    """The spectrum of the element-wise shuffled matrices of a layer and its comparison with the real one.

    Attributes
    ----------
    evals : numpy.ndarray
        Eigenvalues of all replicas, pooled and sorted (read-only; ``get_ESD(layer, random=True)``).
    replicas : int
        Independent shuffles pooled (5 below 100 eigenvalues, else 1, like WeightWatcher).
    max_rand_eval, rand_distance, ww_softrank, ww_maxdist : float
        Largest randomized eigenvalue; Jensen-Shannon distance between the sorted real and
        randomized eigenvalue vectors (first replica); ``max / lambda_max`` and
        ``lambda_max - max`` (first replica).
    mp : MPFit
        Marchenko-Pastur fit of ``evals`` (the ``rand_*`` columns).
    traps : tuple of CorrelationTrap
        The spikes of ``mp``, largest first.
    """

    evals: np.ndarray
    replicas: int
    max_rand_eval: float
    rand_distance: float
    ww_softrank: float
    ww_maxdist: float
    mp: MPFit
    traps: tuple

    def columns(self) -> dict:
        cols = {"max_rand_eval": self.max_rand_eval, "rand_distance": self.rand_distance,
                "ww_softrank": self.ww_softrank, "ww_maxdist": self.ww_maxdist}
        cols.update(self.mp.columns(prefix="rand_"))
        cols["num_traps"] = self.mp.num_spikes
        return cols

    def __repr__(self) -> str:
        return (f"RandomizedESD(max_rand_eval={self.max_rand_eval:.4g}, rand_distance={self.rand_distance:.4f}, "
                f"num_traps={self.mp.num_spikes}, replicas={self.replicas})")


def jensen_shannon_distance(p, q) -> float:
    r"""Jensen-Shannon distance :math:`\sqrt{(KL(p\|m) + KL(q\|m))/2}`, :math:`m = (p+q)/2`, natural log.

    ``p`` and ``q`` are non-negative vectors of the same length, each normalised to sum 1
    (Lin, IEEE Trans. Inf. Theory 37, 1991; Endres & Schindelin, ibid. 49, 2003).
    """
    p = np.asarray(p, dtype=np.float64)
    q = np.asarray(q, dtype=np.float64)
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a):
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return float(np.sqrt(max(0.5 * (kl(p) + kl(q)), 0.0)))


def shuffled_spectrum(stack: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sorted pooled eigenvalues of ``W_i^T W_i`` after shuffling the elements of each matrix ``W_i``.

    Each matrix of the ``(k, N, M)`` stack is permuted on its own (a uniform random permutation of
    its ``N * M`` elements, drawn from ``rng``), as WeightWatcher does per kernel position.
    """
    k, N, M = stack.shape
    shuffled = rng.permuted(stack.reshape(k, N * M), axis=1).reshape(k, N, M)
    gram = np.matmul(np.swapaxes(shuffled, 1, 2), shuffled)
    return np.sort(np.clip(np.linalg.eigvalsh(gram), 0.0, None).ravel())


def shuffled_replicas(stack, rng: np.random.Generator, *, eval_scale: float = 1.0,
                      replicas: int | None = None) -> list:
    """Spectra (sorted, times ``eval_scale``) of ``replicas`` independent shuffles of the stack.

    ``replicas`` defaults to WeightWatcher's rule: 5 when the layer has fewer than 100 eigenvalues
    (``k * M``), else 1.
    """
    stack = np.asarray(stack, dtype=np.float64)
    if replicas is None:
        replicas = 5 if stack.shape[0] * stack.shape[2] < 100 else 1
    return [shuffled_spectrum(stack, rng) * eval_scale for _ in range(int(replicas))]


def randomized_esd(stack, evals, rng: np.random.Generator, *, eval_scale: float = 1.0,
                   method: str = "quantile", replicas: int | None = None) -> RandomizedESD:
    """Randomize a layer's matrices and compare the randomized spectrum with the real one.

    Parameters
    ----------
    stack : ndarray, shape (k, N, M)
        The layer's matrices (``N >= M``), in any scale; ``eval_scale`` converts their eigenvalues
        to the units of ``evals``.
    evals : array_like
        The layer's real (pooled) eigenvalues.
    rng : numpy.random.Generator
        Source of the shuffles.
    method : {'quantile', 'ww'}
        Marchenko-Pastur fit of the randomized spectrum (see :func:`fit_marchenko_pastur`).
    replicas : int, optional
        Shuffles to pool; default 5 when the layer has fewer than 100 eigenvalues, else 1.
    """
    stack = np.asarray(stack, dtype=np.float64)
    evals = np.sort(np.asarray(evals, dtype=np.float64).ravel())
    _, N, M = stack.shape
    draws = shuffled_replicas(stack, rng, eval_scale=eval_scale, replicas=replicas)
    pooled = np.sort(np.concatenate(draws))
    first_max, lam_max = float(draws[0][-1]), float(evals[-1])
    mp = fit_marchenko_pastur(pooled, N / M, M, method=method)
    traps = tuple(CorrelationTrap(float(v), float(v - mp.bulk_max), float(v / mp.bulk_max))
                  for v in mp.spikes[::-1])
    return RandomizedESD(evals=_frozen(pooled), replicas=len(draws), max_rand_eval=float(pooled[-1]),
                         rand_distance=jensen_shannon_distance(evals, draws[0]),
                         ww_softrank=first_max / lam_max, ww_maxdist=lam_max - first_max, mp=mp, traps=traps)

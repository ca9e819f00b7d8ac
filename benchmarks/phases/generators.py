r"""Labelled synthetic weight matrices for each of the 5+1 phases of training of Martin & Mahoney.

Martin & Mahoney ("Implicit self-regularization in deep neural networks: evidence from random
matrix theory and implications for learning", JMLR 22(165), 2021) describe each phase by the shape
of the empirical spectral density (ESD) of :math:`W^T W` (their Table 3) and tie the shapes to
random-matrix models (their Table 1): Marchenko-Pastur (MP) for Gaussian-like entries, the
spiked-covariance model for a bulk plus low-rank signal, and the heavy-tailed universality
classes of entries with tail exponent :math:`\mu` (weakly heavy-tailed :math:`\mu > 4`: "MP + PL
tail" at finite size; moderately heavy-tailed :math:`2 < \mu < 4` and very heavy-tailed
:math:`\mu < 2`: power-law ESDs). The generators below realise each phase with one of those
models; every random choice is drawn from the ``numpy.random.Generator`` passed in, so a case is
reproduced from its seed.

Notation: ``X`` is an ``N x M`` matrix (``N >= M``, ``c = M / N``) of i.i.d. entries of mean 0
and variance ``1/N``; its squared singular values fill the MP bulk
:math:`[(1-\sqrt c)^2, (1+\sqrt c)^2]`. A rank-one signal :math:`\theta u v^T` (unit ``u``, ``v``)
added to ``X`` makes an outlier eigenvalue only above the BBP threshold :math:`\theta_c = c^{1/4}`,
at :math:`(1+\theta^2)(c+\theta^2)/\theta^2` (Benaych-Georges & Nadakuditi, J. Multivariate
Anal. 111, 2012; Baik, Ben Arous & Peche, Ann. Probab. 33, 2005). Spike *strengths* are given in units of
:math:`\theta_c`: strength 1.3 puts the outlier 6-7% above the bulk edge, strength 5 at 2.5-4
times it.

The phases (``generate(phase, N, M, rng)``):

``random-like``
    ``X`` with Gaussian, uniform, Laplace or Rademacher entries (all with a finite fourth moment:
    MP bulk, Tracy-Widom edge).
``bleeding-out``
    ``X`` plus an *extensive* number of weak directions: ``r = f M`` (``f`` in [3%, 10%]) rank-one
    signals of strengths uniform in [1.0, 1.5]: eigenmass leaks just past the bulk edge (the
    largest eigenvalue ends 5-30% above it), no eigenvalue stands well apart.
``bulk+spikes``
    ``X`` plus ``k`` (1 to 6) rank-one signals, the strongest of strength 2.5 to 8, the others
    uniform between 1.2 and the strongest (weak spikes near the edge included): a few outliers,
    at least one well separated from the bulk.
``bulk-decay``
    The ESD of a Gaussian ``X`` whose top fraction ``1 - u0`` (``u0`` in [0.5, 0.8]) is bent
    (:func:`bent_spectrum`, exponent ``alpha`` in [7, 12]) into a tail that decays past the bulk
    edge, up to 1.4-2.5 times it (M&M's finite-size "MP + PL tail" shape of the weakly
    heavy-tailed class; the power-law fit of such tails gives alpha of about 3.5-9), given to a
    matrix ``U diag(s) V^T`` with random orthonormal ``U``, ``V``.
``heavy-tailed``
    Half the cases: i.i.d. symmetric Pareto or Student-t entries of tail exponent ``mu`` in
    [1.5, 3.5] (M&M's moderately and very heavy-tailed classes; Pareto ``mu = 3`` and Student-t
    with 3.5 degrees of freedom included). The other half: the bent-ESD construction of
    ``bulk-decay`` with ``alpha`` in [2, 3.5], ``u0`` in [0.6, 0.85] (a correlated matrix with a
    power-law ESD reaching 5 to 100 times the edge, as in trained layers).
``rank-collapse``
    Much of the spectrum at 0: a product ``A B`` of rank ``r = rho M`` (``rho`` in [0.15, 0.85]),
    or a random-like matrix whose columns are zero for a fraction in [0.15, 0.6] ("dead units"),
    sometimes with spikes added.

Every matrix is multiplied by a random scale ``10**U(-2, 0.5)`` (phases are scale-free) and stored
in the requested dtype (``float32`` or ``float64``), so the rank-collapse cases test the rank at
the stored precision.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

PHASES = ("random-like", "bleeding-out", "bulk+spikes", "bulk-decay", "heavy-tailed", "rank-collapse")

#: the (N, M) shapes of the benchmark: M from 100 to 500, aspect ratios Q = N/M of 1, 2, 3 and 4
SHAPES = ((200, 100), (256, 256), (512, 128), (600, 300), (900, 300), (1000, 500))
DTYPES = ("float32", "float64")

#: spike strengths in units of the BBP threshold c^(1/4)
STRONG_SPIKE = (2.5, 8.0)
WEAK_SPIKE_MIN = 1.2
BLEED_STRENGTH = (1.0, 1.5)
BLEED_FRACTION = (0.03, 0.10)
DECAY_ALPHA = (7.0, 12.0)
HEAVY_MU = (1.5, 3.5)
HEAVY_ALPHA = (2.0, 3.5)
DECAY_START = (0.5, 0.8)
TAIL_START = (0.6, 0.85)
COLLAPSE_RANK = (0.15, 0.85)
DEAD_FRACTION = (0.15, 0.6)


@dataclass
class Case:
    """One labelled matrix: its phase, shape, dtype, seed, the matrix and how it was made."""

    phase: str
    N: int
    M: int
    dtype: str
    seed: int
    W: np.ndarray = field(repr=False)
    params: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------- building blocks
def noise(N: int, M: int, rng: np.random.Generator, kind: str = "normal") -> np.ndarray:
    """``N x M`` i.i.d. entries of mean 0 and variance ``1/N`` from a light-tailed law."""
    if kind == "normal":
        Z = rng.standard_normal((N, M))
    elif kind == "uniform":
        Z = rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), (N, M))
    elif kind == "laplace":
        Z = rng.laplace(0.0, 1.0 / np.sqrt(2.0), (N, M))
    elif kind == "rademacher":
        Z = rng.choice(np.array([-1.0, 1.0]), size=(N, M))
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return Z / np.sqrt(N)


def orthonormal(n: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """``n x k`` matrix with orthonormal columns, uniformly distributed (Haar)."""
    q, r = np.linalg.qr(rng.standard_normal((n, k)))
    return q * np.sign(np.diag(r))


def add_spikes(X: np.ndarray, strengths, rng: np.random.Generator) -> np.ndarray:
    """``X + sum_i theta_i u_i v_i^T`` with ``theta_i = strength_i * c^(1/4)`` and Haar ``u``, ``v``."""
    strengths = np.asarray(strengths, dtype=np.float64)
    N, M = X.shape
    k = strengths.size
    if k == 0:
        return X
    theta = strengths * (M / N) ** 0.25
    return X + (orthonormal(N, k, rng) * theta) @ orthonormal(M, k, rng).T


def spike_location(strength: float, N: int, M: int) -> float:
    """Asymptotic outlier eigenvalue of ``X + theta u v^T`` (theta in BBP units), over the bulk edge."""
    c = M / N
    t2 = (strength * c ** 0.25) ** 2
    if strength <= 1.0:
        return 1.0
    return (1 + t2) * (c + t2) / t2 / (1 + np.sqrt(c)) ** 2


def with_spectrum(evals, N: int, rng: np.random.Generator) -> np.ndarray:
    """``U diag(sqrt(evals)) V^T`` with Haar ``U`` (``N x M``) and ``V``: a matrix whose ESD is ``evals``."""
    evals = np.asarray(evals, dtype=np.float64)
    M = evals.size
    return (orthonormal(N, M, rng) * np.sqrt(np.clip(evals, 0.0, None))) @ orthonormal(M, M, rng).T


def bent_spectrum(N: int, M: int, rng: np.random.Generator, alpha: float, u0: float) -> np.ndarray:
    """The sorted ESD of a Gaussian ``N x M`` matrix with its top ``1 - u0`` bent into a power law.

    Eigenvalue ``i`` (level ``u_i = (i + 1/2)/M``) above ``u0`` is multiplied by
    ``((1 - u0) / (1 - u_i))**(1 / (alpha - 1))``: continuous at ``u0``, a Pareto quantile function
    of exponent ``alpha`` times the rising MP quantiles, so the tail is heavier than ``alpha``
    alone says (a power-law fit gives a smaller exponent).
    """
    X = noise(N, M, rng)
    lam = np.sort(np.linalg.eigvalsh(X.T @ X))
    u = (np.arange(M) + 0.5) / M
    top = u > u0
    lam[top] *= ((1.0 - u0) / (1.0 - u[top])) ** (1.0 / (alpha - 1.0))
    return lam


def heavy_entries(N: int, M: int, rng: np.random.Generator, mu: float, law: str) -> np.ndarray:
    """i.i.d. symmetric heavy-tailed entries with tail exponent ``mu``: ``P(|x| > t) ~ t**-mu``."""
    if law == "pareto":
        Z = (rng.pareto(mu, (N, M)) + 1.0) * rng.choice(np.array([-1.0, 1.0]), size=(N, M))
    elif law == "student-t":
        Z = rng.standard_t(mu, (N, M))
    else:
        raise ValueError(f"unknown heavy-tailed law {law!r}")
    return Z / np.sqrt(N)


# ----------------------------------------------------------------------------------- the phases
def _random_like(N, M, rng):
    kind = str(rng.choice(["normal", "uniform", "laplace", "rademacher"]))
    return noise(N, M, rng, kind), {"entries": kind}


def _bleeding_out(N, M, rng):
    f = rng.uniform(*BLEED_FRACTION)
    r = max(2, int(round(f * M)))
    s = rng.uniform(*BLEED_STRENGTH, r)
    kind = str(rng.choice(["normal", "uniform"]))
    return add_spikes(noise(N, M, rng, kind), s, rng), {"entries": kind, "directions": r,
                                                        "strength_max": float(s.max())}


def _bulk_spikes(N, M, rng):
    k = int(rng.integers(1, 7))
    strongest = rng.uniform(*STRONG_SPIKE)
    s = np.concatenate([[strongest], rng.uniform(WEAK_SPIKE_MIN, strongest, k - 1)])
    kind = str(rng.choice(["normal", "uniform"]))
    return add_spikes(noise(N, M, rng, kind), s, rng), {"entries": kind, "strengths": np.round(s, 3).tolist()}


def _bulk_decay(N, M, rng):
    alpha = rng.uniform(*DECAY_ALPHA)
    u0 = rng.uniform(*DECAY_START)
    return with_spectrum(bent_spectrum(N, M, rng, alpha, u0), N, rng), {"alpha": float(alpha), "u0": float(u0)}


def _heavy_tailed(N, M, rng):
    if rng.random() < 0.5:
        mu = rng.uniform(*HEAVY_MU)
        law = str(rng.choice(["pareto", "student-t"]))
        return heavy_entries(N, M, rng, mu, law), {"entries": law, "mu": float(mu)}
    alpha = rng.uniform(*HEAVY_ALPHA)
    u0 = rng.uniform(*TAIL_START)
    return with_spectrum(bent_spectrum(N, M, rng, alpha, u0), N, rng), {"alpha": float(alpha), "u0": float(u0)}


def _rank_collapse(N, M, rng):
    dead = np.zeros(M, dtype=bool)
    if rng.random() < 0.5:
        r = max(1, int(round(rng.uniform(*COLLAPSE_RANK) * M)))
        W = noise(N, r, rng) @ noise(r, M, rng)
        params = {"kind": "product", "rank": r}
    else:
        W = noise(N, M, rng)
        dead[rng.choice(M, max(1, int(round(rng.uniform(*DEAD_FRACTION) * M))), replace=False)] = True
        params = {"kind": "dead-units", "dead": int(dead.sum())}
    if rng.random() < 0.3:  # a few strong spikes on top (they keep the rank deficit: rank grows by k at most)
        k = int(rng.integers(1, 4))
        strengths = rng.uniform(2.0, 5.0, k) * np.linalg.norm(W, 2) / 2.0
        W = W + (orthonormal(N, k, rng) * strengths) @ orthonormal(M, k, rng).T
        params["spikes"] = k
    W[:, dead] = 0.0
    return W, params


_MAKERS = {"random-like": _random_like, "bleeding-out": _bleeding_out, "bulk+spikes": _bulk_spikes,
           "bulk-decay": _bulk_decay, "heavy-tailed": _heavy_tailed, "rank-collapse": _rank_collapse}


def generate(phase: str, N: int, M: int, rng: np.random.Generator, dtype: str = "float64") -> tuple:
    """``(W, params)``: one matrix of the given phase, shape ``(N, M)``, stored as ``dtype``."""
    if phase not in _MAKERS:
        raise ValueError(f"unknown phase {phase!r}; one of {PHASES}")
    W, params = _MAKERS[phase](N, M, rng)
    scale = 10.0 ** rng.uniform(-2.0, 0.5)
    return (scale * W).astype(dtype), params


def case_seed(phase: str, N: int, M: int, dtype: str, seed: int) -> np.random.SeedSequence:
    """The seed sequence of one case: independent streams for every (phase, shape, dtype, seed)."""
    return np.random.SeedSequence([PHASES.index(phase), N, M, DTYPES.index(dtype), seed])


def cases(seeds, *, phases=PHASES, shapes=SHAPES, dtypes=DTYPES):
    """Every (phase, shape, dtype, seed) combination as :class:`Case`, generated lazily."""
    for seed in seeds:
        for phase in phases:
            for N, M in shapes:
                for dtype in dtypes:
                    rng = np.random.default_rng(case_seed(phase, N, M, dtype, seed))
                    W, params = generate(phase, N, M, rng, dtype)
                    yield Case(phase, N, M, dtype, seed, W, params)

"""Tests of the fit statistics: the alternative tails (core/fit/laws.py), the batched KS scan, the
bootstrap and goodness of fit (core/fit/uncertainty.py), the tail comparisons and the flags.

Planted truths: samples drawn exactly (by rejection) from power laws, truncated power laws,
lognormals, exponentials and stretched exponentials with known parameters; the special function
behind the truncated power law checked against arbitrary precision (mpmath) and quadrature.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from spectralwatch.core.fit.laws import (
    TruncatedPowerLawFit,
    fit_truncated_power_law,
    log_upper_gamma,
    tpl_log_norm,
)
from spectralwatch.errors import InvalidParameterError

# log Gamma(s, z) and ln Z agree with 40-digit references to this relative error (measured: 3e-14
# worst over the plane; the margin covers platform libm differences)
REL_GAMMA = 1e-12
# A maximum-likelihood estimate is asymptotically normal: |estimate - truth| <= Z_TOL standard
# errors fails with probability 6e-5 per check for a correct estimator (the seeds are fixed, so a
# pass is reproducible; the bound is what makes the tolerance honest rather than tuned).
Z_TOL = 4.0


# --------------------------------------------------------------------------------------
# exact samplers of the tail laws (rejection from simple proposals)
# --------------------------------------------------------------------------------------
def sample_power_law(alpha, xmin, n, rng):
    return xmin * (1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0))


def sample_tpl(alpha, lam, xmin, n, rng):
    """x^-alpha e^-lam x on [xmin, inf): Pareto thinned by e^-lam(x-xmin) (alpha > 1), or a
    shifted exponential thinned by (xmin/x)^alpha (alpha <= 1); both acceptance ratios are <= 1."""
    out, got = [], 0
    while got < n:
        m = max(1000, 4 * (n - got))
        if alpha > 1:
            x = sample_power_law(alpha, xmin, m, rng)
            keep = rng.random(m) < np.exp(-lam * (x - xmin))
        else:
            x = xmin + rng.exponential(1.0 / lam, m)
            keep = rng.random(m) < (xmin / x) ** alpha
        out.append(x[keep])
        got += int(keep.sum())
    return np.concatenate(out)[:n]


# --------------------------------------------------------------------------------------
# the incomplete gamma function for every real order
# --------------------------------------------------------------------------------------
def _grid():
    rng = np.random.default_rng(20240607)
    s = np.concatenate([rng.uniform(-50, 3, 60), [0.0, -1.0, -2.0, -49.0, 1e-14, -1e-14, 1e-9, -1e-9,
                                                  0.5, -0.5, 1.0, 0.5 + 1e-7, -0.5 + 1e-7]])
    z = np.concatenate([10 ** rng.uniform(-12, 3, 60), [1e-300, 1e-10, 0.5, 1.999, 2.0, 2.001, 3.0,
                                                         700.0, 1000.0, 1.0, 0.01]])
    return s, z


def test_log_upper_gamma_matches_arbitrary_precision():
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 40
    s, z = _grid()
    rng = np.random.default_rng(1)
    for si in s:
        zz = z[rng.choice(z.size, 12, replace=False)]
        got = log_upper_gamma(si, zz)
        for zi, g in zip(zz, got):
            ref = float(mpmath.re(mpmath.log(mpmath.gammainc(mpmath.mpf(float(si)), mpmath.mpf(float(zi))))))
            assert g == pytest.approx(ref, rel=REL_GAMMA, abs=REL_GAMMA), (si, zi)


def test_log_upper_gamma_special_values_and_shapes():
    from scipy import special

    assert float(np.exp(log_upper_gamma(0.0, 1.0))) == pytest.approx(special.exp1(1.0), rel=1e-15)
    assert float(log_upper_gamma(1.0, 3.0)) == pytest.approx(-3.0, rel=1e-15)  # Gamma(1, z) = e^-z
    assert float(log_upper_gamma(2.5, 0.0)) == pytest.approx(special.gammaln(2.5), rel=1e-15)
    assert np.isinf(log_upper_gamma(-0.5, 0.0))
    assert log_upper_gamma([[0.3], [-2.0]], [1.0, 2.0, 3.0]).shape == (2, 3)
    big = 1e5  # e^-z underflows: the log does not
    assert float(log_upper_gamma(-3.0, big)) == pytest.approx(-big - 4 * math.log(big), rel=1e-9)


@pytest.mark.parametrize("ymax", [np.inf, 1.5, 30.0, 1e4])
def test_tpl_normaliser_matches_quadrature(ymax):
    from scipy import integrate

    for a in (0.0, 0.3, 1.0 - 1e-6, 1.0, 1.0 + 1e-6, 2.0, 3.7, 10.0, 50.0):
        for mu in (1e-9, 1e-4, 0.01, 0.3, 1.0, 2.0, 2.5, 10.0, 100.0, 600.0):
            # substitute u = ln y and factor out e^-mu so the integrand is O(1)
            def f(u, a=a, mu=mu):
                return math.exp((1 - a) * u - mu * math.expm1(u)) if u < 700 else 0.0

            top = math.log(ymax) if np.isfinite(ymax) else np.inf
            val, _ = integrate.quad(f, 0, top, limit=500, epsabs=0, epsrel=1e-13)
            ref = math.log(val) - mu
            got = float(tpl_log_norm(a, mu, ymax))
            assert got == pytest.approx(ref, rel=1e-11, abs=1e-11), (a, mu, ymax)


def test_tpl_normaliser_power_law_limit():
    assert float(tpl_log_norm(2.5, 0.0)) == pytest.approx(-math.log(1.5))
    assert np.isinf(tpl_log_norm(0.8, 0.0))
    # truncated power law with tiny cut-off rate -> the power law
    assert float(tpl_log_norm(2.5, 1e-14)) == pytest.approx(-math.log(1.5), rel=1e-9)
    assert float(tpl_log_norm(1.0, 0.0, 10.0)) == pytest.approx(math.log(math.log(10.0)))


# --------------------------------------------------------------------------------------
# truncated power law maximum likelihood
# --------------------------------------------------------------------------------------
TPL_CASES = [  # (alpha, Lambda, xmin): heavy and light, alpha below, at and above 1, large Lambda*xmin
    (2.5, 0.05, 1.0),
    (1.5, 0.01, 1.0),
    (1.0, 1.0, 1.0),
    (0.5, 2.0, 0.3),
    (3.0, 0.5, 4.0),
    (1.8, 0.6, 2.0),
    (1.8, 3.0, 2.0),  # Lambda * xmin = 6: the tail spans [2, ~2.6], alpha is weakly identified
]


@pytest.mark.parametrize("alpha,lam,xmin", TPL_CASES)
def test_tpl_recovers_planted_parameters(alpha, lam, xmin):
    rng = np.random.default_rng(int(alpha * 100 + lam * 10))
    x = sample_tpl(alpha, lam, xmin, 20000, rng)
    # values below xmin must be ignored
    x = np.concatenate([x, rng.uniform(0, xmin, 500) * 0.999])
    fit = fit_truncated_power_law(x, xmin)
    assert isinstance(fit, TruncatedPowerLawFit) and fit.success, fit
    assert fit.n_tail == 20000
    assert abs(fit.alpha - alpha) <= Z_TOL * fit.alpha_stderr, (fit, fit.alpha_stderr)
    assert abs(fit.Lambda - lam) <= Z_TOL * fit.Lambda_stderr, (fit, fit.Lambda_stderr)
    # the standard errors are those of a 20000-point sample, not vacuous
    if lam * xmin <= 2:
        assert fit.alpha_stderr < 0.35 and fit.Lambda_stderr < 0.25 * lam


def test_tpl_is_the_global_maximum():
    """Compare with a brute-force Nelder-Mead search from many starts on the same likelihood."""
    from scipy import optimize

    rng = np.random.default_rng(5)
    for alpha, lam, n in ((2.5, 0.05, 200), (1.2, 0.7, 300), (3.0, 2.0, 1000)):
        x = sample_tpl(alpha, lam, 1.0, n, rng)
        fit = fit_truncated_power_law(x, 1.0)
        ml, my = np.mean(np.log(x)), np.mean(x)

        def nll(p, n=n, ml=ml, my=my):
            if not (p[1] > 0 and 0 <= p[0] <= 50):
                return 1e300
            return -n * (-p[0] * ml - p[1] * my - float(tpl_log_norm(p[0], p[1])))

        best = min((optimize.minimize(nll, [a0, m0], method="Nelder-Mead",
                                      options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 20000})
                    for a0 in (0.5, 2.0, 6.0) for m0 in (0.01, 1.0, 10.0)), key=lambda r: r.fun)
        assert fit.loglikelihood >= -best.fun - 1e-7


def test_tpl_power_law_data_gives_small_lambda_and_nests():
    rng = np.random.default_rng(7)
    x = sample_power_law(2.5, 1.0, 20000, rng)
    fit = fit_truncated_power_law(x, 1.0)
    pl_alpha = 1 + x.size / np.log(x).sum()
    pl_ll = x.size * (math.log(pl_alpha - 1) - pl_alpha * np.log(x).mean())
    assert fit.loglikelihood >= pl_ll - 1e-9  # the power law is inside the family
    assert fit.Lambda < 5e-3
    assert fit.alpha == pytest.approx(2.5, abs=0.05)


def test_tpl_boundary_is_exactly_the_power_law():
    # a tail heavier at the top than any power law of its own exponent: Lambda = 0 by KKT
    x = np.concatenate([np.linspace(1, 1.5, 50), [200.0, 500.0, 1e4]])
    fit = fit_truncated_power_law(x, 1.0)
    assert fit.Lambda == 0.0 and "power law" in fit.message
    assert fit.alpha == pytest.approx(1 + x.size / np.log(x).sum(), rel=1e-12)


def test_tpl_with_xmax_truncation():
    rng = np.random.default_rng(9)
    x = sample_tpl(2.0, 0.1, 1.0, 40000, rng)
    x = x[x <= 20.0]
    fit = fit_truncated_power_law(x, 1.0, xmax=20.0)
    assert abs(fit.alpha - 2.0) <= Z_TOL * fit.alpha_stderr
    assert abs(fit.Lambda - 0.1) <= Z_TOL * fit.Lambda_stderr
    # the density integrates to one on [xmin, xmax]
    from scipy import integrate

    total, _ = integrate.quad(lambda v: math.exp(fit.logpdf(v)), 1.0, 20.0, epsrel=1e-10)
    assert total == pytest.approx(1.0, rel=1e-8)


def test_tpl_truncated_at_the_sample_maximum_is_maximised():
    """xmax = the largest value (WeightWatcher's 'force'): the truncated likelihood's maximum is at
    least its value at the untruncated fit, and no Nelder-Mead start finds more."""
    from scipy import optimize

    rng = np.random.default_rng(0)
    x = np.sort(sample_tpl(2.5, 0.05, 1.0, 3000, rng))
    for xmin in (1.0, 1.661):
        tail = x[x >= xmin]
        y = tail / xmin
        free = fit_truncated_power_law(tail, xmin)
        forced = fit_truncated_power_law(tail, xmin, xmax=tail[-1])

        def ll(a, mu, y=y, xmin=xmin):
            return float(-a * np.log(y).sum() - mu * y.sum() - y.size * (tpl_log_norm(a, mu, y[-1]) + math.log(xmin)))

        assert forced.loglikelihood >= ll(free.alpha, free.Lambda * xmin) - 1e-6
        best = min(optimize.minimize(lambda p: -ll(p[0], p[1]) if p[1] >= 0 and 0 <= p[0] <= 50 else 1e300, s0,
                                     method="Nelder-Mead", options={"xatol": 1e-10, "fatol": 1e-12}).fun
                   for s0 in ([2.0, 0.01], [3.0, 0.1], [1.0, 0.5]))
        assert forced.loglikelihood >= -best - 1e-6


def test_tpl_alpha_on_its_bound_is_the_exponential():
    """A tail whose best exponent is below 0 puts alpha on its lower bound, where the truncated power
    law is the exponential: Lambda must then be the exponential's closed-form maximum 1/(mean - xmin)."""
    x = 1.0 + np.random.default_rng(0).exponential(1.0, 200)  # this sample's free exponent is < 0
    fit = fit_truncated_power_law(x, 1.0)
    assert fit.alpha == 0.0
    assert fit.Lambda == pytest.approx(1.0 / (x.mean() - 1.0), rel=1e-8)


def test_tpl_density_and_cdf_are_consistent():
    from scipy import integrate

    fit = fit_truncated_power_law(sample_tpl(0.7, 0.4, 2.0, 3000, np.random.default_rng(3)), 2.0)
    for v in (2.5, 4.0, 10.0):
        mass, _ = integrate.quad(lambda u: math.exp(fit.logpdf(u)), 2.0, v, epsrel=1e-11)
        assert fit.cdf(v) == pytest.approx(mass, rel=1e-8)
    assert fit.cdf(2.0) == pytest.approx(0.0, abs=1e-14)
    np.testing.assert_allclose(fit.cdf(np.array([2.5, 4.0])), [fit.cdf(2.5), fit.cdf(4.0)])


def test_tpl_failures_and_errors():
    assert not fit_truncated_power_law([1.0, 2.0, 3.0], 5.0).success  # empty tail
    assert not fit_truncated_power_law([2.0, 2.0, 2.0], 1.0).success  # constant tail
    assert "non-finite" in fit_truncated_power_law([1.0, 2.0, np.inf], 1.0).message
    with pytest.raises(InvalidParameterError, match="'xmin' parameter of fit_truncated_power_law"):
        fit_truncated_power_law([1.0, 2.0], 0.0)
    with pytest.raises(InvalidParameterError, match="'xmax'"):
        fit_truncated_power_law([1.0, 2.0], 1.0, xmax=0.5)
    with pytest.raises(InvalidParameterError, match="1-D"):
        fit_truncated_power_law(np.ones((2, 2)), 1.0)
    with pytest.raises(InvalidParameterError, match="alpha_range"):
        fit_truncated_power_law([1.0, 2.0], 1.0, alpha_range=(3, 1))
    fit = fit_truncated_power_law([1.0, 2.0], 1.0)
    with pytest.raises(AttributeError):
        fit.alpha = 3.0  # frozen


# --------------------------------------------------------------------------------------
# the other tail laws
# --------------------------------------------------------------------------------------
def sample_lognormal_tail(mu, sigma, xmin, n, rng):
    out, got = [], 0
    while got < n:
        x = np.exp(rng.normal(mu, sigma, 4 * n))
        out.append(x[x >= xmin])
        got += out[-1].size
    return np.concatenate(out)[:n]


def sample_stretched_tail(beta, lam, xmin, n, rng):
    """Weibull(beta, scale 1/lam) conditioned on x >= xmin: exactly the stretched exponential tail."""
    out, got = [], 0
    while got < n:
        x = rng.weibull(beta, 4 * n) / lam
        out.append(x[x >= xmin])
        got += out[-1].size
    return np.concatenate(out)[:n]


# Planted parameters of a 40000-point tail come back within this relative error: the asymptotic
# relative standard errors of these MLEs are 0.5-1.5% at this size, so 6% is 4+ standard errors.
REL_PLANTED = 0.06


@pytest.mark.parametrize("law, params, sampler", [
    ("lognormal", {"mu": 0.5, "sigma": 1.0}, lambda rng: sample_lognormal_tail(0.5, 1.0, 1.0, 40000, rng)),
    ("lognormal", {"mu": 1.0, "sigma": 0.8}, lambda rng: sample_lognormal_tail(1.0, 0.8, 1.0, 40000, rng)),
    ("exponential", {"Lambda": 0.7}, lambda rng: 1.0 + rng.exponential(1 / 0.7, 40000)),
    ("stretched_exponential", {"Lambda": 0.2, "beta": 0.5},
     lambda rng: sample_stretched_tail(0.5, 0.2, 1.0, 40000, rng)),
    ("stretched_exponential", {"Lambda": 0.5, "beta": 1.5},
     lambda rng: sample_stretched_tail(1.5, 0.5, 1.0, 40000, rng)),
    ("power_law", {"alpha": 2.5}, lambda rng: sample_power_law(2.5, 1.0, 40000, rng)),
])
def test_tail_laws_recover_planted_parameters(law, params, sampler):
    from spectralwatch.core.fit.laws import fit_tail

    x = sampler(np.random.default_rng(11))
    fit = fit_tail(x, 1.0, law)
    assert fit.success and fit.n_tail == x.size, fit
    for name, value in params.items():
        assert fit.param(name) == pytest.approx(value, rel=REL_PLANTED, abs=0.03), (name, fit)


@pytest.mark.parametrize("law", ["lognormal", "stretched_exponential", "exponential"])
def test_tail_laws_are_maximum_likelihood(law):
    """No start of a Nelder-Mead search on the same likelihood finds a higher value."""
    from scipy import optimize

    from spectralwatch.core.fit.laws import TailFit, fit_tail

    rng = np.random.default_rng(12)
    x = np.concatenate([sample_lognormal_tail(0.0, 1.5, 1.0, 700, rng), sample_power_law(2.2, 3.0, 300, rng)])
    fit = fit_tail(x, 1.0, law)
    names = [k for k, _ in fit.params]

    def nll(p):
        if law != "lognormal" and min(p) <= 0:
            return 1e300
        if law == "lognormal" and p[1] <= 0:
            return 1e300
        trial = TailFit(law, tuple(zip(names, p)), 0.0, x.size, 1.0, True)
        val = float(np.sum(trial.logpdf(x)))
        return -val if np.isfinite(val) else 1e300

    starts = [[v * f for v in (dict(fit.params)[k] for k in names)] for f in (0.5, 1.0, 2.0)]
    best = min(optimize.minimize(nll, s0, method="Nelder-Mead",
                                 options={"xatol": 1e-10, "fatol": 1e-12, "maxiter": 40000}).fun for s0 in starts)
    assert fit.loglikelihood >= -best - 1e-6


def test_tail_densities_integrate_to_one():
    from scipy import integrate

    from spectralwatch.core.fit.laws import fit_tail

    rng = np.random.default_rng(13)
    x = sample_lognormal_tail(0.3, 1.2, 1.0, 3000, rng)
    for law in ("power_law", "exponential", "stretched_exponential", "lognormal"):
        fit = fit_tail(x, 1.0, law)
        total, _ = integrate.quad(lambda v, f=fit: math.exp(f.logpdf(v)), 1.0, np.inf, limit=200)
        assert total == pytest.approx(1.0, rel=1e-7), law
        assert float(fit.cdf(3.0)) == pytest.approx(
            integrate.quad(lambda v, f=fit: math.exp(f.logpdf(v)), 1.0, 3.0)[0], rel=1e-7), law


def test_lognormal_power_law_limit_is_exact():
    """On a power-law tail the lognormal's maximum is its power-law limit (mu -> -inf, sigma -> inf):
    the likelihood there equals the power law's, and the test calls the two indistinguishable."""
    from spectralwatch.core.fit.laws import fit_tail, likelihood_ratio

    x = sample_power_law(2.0, 1.0, 5000, np.random.default_rng(14))
    pl, ln = fit_tail(x, 1.0, "power_law"), fit_tail(x, 1.0, "lognormal")
    assert ln.loglikelihood >= pl.loglikelihood - 1e-6
    lr = likelihood_ratio(pl.logpdf(x), ln.logpdf(x))
    assert not lr.p < 0.1


def test_stretched_exponential_power_law_limit():
    from spectralwatch.core.fit.laws import fit_tail

    x = sample_power_law(2.5, 1.0, 5000, np.random.default_rng(15))
    pl, se = fit_tail(x, 1.0, "power_law"), fit_tail(x, 1.0, "stretched_exponential")
    assert se.loglikelihood >= pl.loglikelihood - 1e-3  # beta -> 0 reaches the power law
    assert np.isfinite(se.logpdf(x)).all()


def test_likelihood_ratio_formulas():
    from scipy import stats as sstats

    from spectralwatch.core.fit.laws import likelihood_ratio

    rng = np.random.default_rng(16)
    a, b = rng.normal(0, 1, 200), rng.normal(0.1, 1, 200)
    lr = likelihood_ratio(a, b, first="a", second="b")
    d = a - b
    assert lr.R == pytest.approx(d.sum())
    assert lr.normalized_R == pytest.approx(d.sum() / (d.std() * math.sqrt(d.size)))
    assert lr.p == pytest.approx(2 * sstats.norm.sf(abs(lr.normalized_R)))
    nested = likelihood_ratio(a, a - 0.01, nested=True)  # R = 2: half of P(chi2_1 > 4)
    assert nested.p == pytest.approx(0.5 * sstats.chi2.sf(4.0, 1))
    assert likelihood_ratio(a, a + 1e-12).p == 1.0  # identical laws: no evidence either way
    assert lr.preferred(0.1) in ("", "a", "b")


# --------------------------------------------------------------------------------------
# the batched KS scan is the one-sample scan, row by row
# --------------------------------------------------------------------------------------
def _rows(kind, n, count, seed):
    import test_fit

    rows = []
    for i in range(count):
        x = np.sort(test_fit.make_sample(seed * 101 + i, n, kind))
        rows.append(x[x > 1e-5])
    m = min(r.size for r in rows)
    return np.array([r[-m:] for r in rows])


@pytest.mark.parametrize("kind", ["pareto", "mixture", "duplicates"])
@pytest.mark.parametrize("n", [9, 19, 20, 47, 49, 300, 1500])
def test_batch_scan_matches_fit_power_law(kind, n):
    from spectralwatch.core.fit.powerlaw import fit_power_law
    from spectralwatch.core.fit.ks_scan import batch_scan

    X = _rows(kind, n, 6, n)
    res = batch_scan(X)
    for b in range(X.shape[0]):
        fit = fit_power_law(X[b], ties="reference", thresh=1e-5)
        if fit.status != "success":
            assert res.index[b] == -1
            continue
        assert (res.alpha[b], res.xmin[b], res.D[b], res.n_tail[b]) == (fit.alpha, fit.xmin, fit.D, fit.n_tail)


def test_batch_scan_window_matches_xmin_range():
    from spectralwatch.core.fit.powerlaw import fit_power_law
    from spectralwatch.core.fit.ks_scan import batch_scan

    X = _rows("mixture", 600, 5, 3)
    lo, hi = np.quantile(X, 0.3), np.quantile(X, 0.9)
    res = batch_scan(X, window=(lo, hi))
    for b in range(X.shape[0]):
        fit = fit_power_law(X[b], xmin_range=(lo, hi), ties="reference")
        assert (res.alpha[b], res.xmin[b]) == (fit.alpha, fit.xmin)


def brute_merged(x):
    """Clauset et al. / powerlaw with ties: candidates are distinct values, the empirical CDF at a
    distinct value is the fraction strictly below it."""
    x = np.sort(x)
    best = None
    for xm in np.unique(x)[:-1]:
        tail = x[x >= xm]
        a = 1 + tail.size / np.log(tail / xm).sum()
        u = np.unique(tail)
        ecdf = np.searchsorted(tail, u, side="left") / tail.size
        D = np.max(np.abs(1 - (u / xm) ** (1 - a) - ecdf))
        if best is None or D < best[2]:
            best = (xm, a, D)
    return best


@pytest.mark.parametrize("seed", range(4))
def test_merged_ties_match_brute_force(seed):
    from spectralwatch.core.fit.powerlaw import fit_power_law

    rng = np.random.default_rng(seed)
    x = np.round(sample_power_law(2.3, 1.0, 400, rng), 1)  # many exact ties
    xm, a, D = brute_merged(x)
    fit = fit_power_law(x, ties="merge", thresh=0)
    assert fit.xmin == xm
    assert fit.alpha == pytest.approx(a, rel=1e-12) and fit.D == pytest.approx(D, rel=1e-9)


# --------------------------------------------------------------------------------------
# the public fitting API
# --------------------------------------------------------------------------------------
def test_fit_power_law_fixed_xmin():
    from spectralwatch import fit_power_law

    x = sample_power_law(2.5, 1.0, 3000, np.random.default_rng(20))
    fit = fit_power_law(x, xmin=2.0, thresh=0)
    tail = x[x >= 2.0]
    assert fit.method == "fixed" and fit.xmin == 2.0 and fit.n_tail == tail.size
    assert fit.alpha == pytest.approx(1 + tail.size / np.log(tail / 2.0).sum(), rel=1e-12)
    assert fit.sigma == pytest.approx((fit.alpha - 1) / math.sqrt(tail.size))
    assert fit_power_law(x, xmin=1e9).status == "failed"


def test_fit_power_law_hill_is_tempbalance_pl_alpha_hill():
    """TempBalance's PL_Alpha_Hill: xmin = the eigenvalue at index N // 2 of the sorted non-zero
    spectrum, alpha = 1 + n / sum(log(eigs[i:] / xmin)) with n = N - i."""
    from spectralwatch import fit_power_law

    ev = np.sort(np.random.default_rng(21).standard_normal((300, 120)) ** 2 @ np.ones(120))
    nz = ev[ev > 1e-5]
    i = len(nz) // 2
    n = len(nz) - i
    fit = fit_power_law(ev, xmin="hill")
    assert fit.method == "hill" and fit.xmin == nz[i]
    assert fit.alpha == pytest.approx(1 + n / np.sum(np.log(nz[i:] / nz[i])), rel=1e-12)
    D = np.max(np.abs(1 - (nz[i:] / nz[i]) ** (1 - fit.alpha) - np.arange(n) / n))
    assert fit.D == pytest.approx(D, rel=1e-12)


def test_fit_power_law_xmin_range_bounds_the_scan():
    from spectralwatch import fit_power_law

    x = np.concatenate([np.random.default_rng(22).uniform(0.1, 1, 500),
                        sample_power_law(3.0, 1.0, 500, np.random.default_rng(23))])
    free = fit_power_law(x)
    lo, hi = 2.0, 5.0
    bounded = fit_power_law(x, xmin_range=(lo, hi))
    assert lo <= bounded.xmin <= hi
    data = np.sort(x)
    pool = data[(data >= lo) & (data <= hi)][:-1]
    assert all(fit_power_law(x, xmin=float(v)).D >= bounded.D - 1e-12 for v in pool[::7])
    assert fit_power_law(x, xmin_range=(None, None)).alpha == free.alpha


def test_fit_power_law_distribution_statistics_and_compare():
    from spectralwatch import fit_power_law
    from spectralwatch.core.fit.laws import TruncatedPowerLawFit
    from spectralwatch.core.fit.comparison import TailComparison
    from spectralwatch.core.fit.uncertainty import AlphaBootstrap, GoodnessOfFit

    x = sample_tpl(1.8, 0.02, 1.0, 4000, np.random.default_rng(24))
    fit = fit_power_law(x, distribution="truncated_power_law", bootstrap=50, gof_samples=20, rng=0)
    # the truncated power law at its own xmin (its KS scan), not the power law's (issue 14)
    assert isinstance(fit.tail, TruncatedPowerLawFit) and fit.tail.xmin == fit.tail_scan.xmin
    assert fit.tail_scan.D == np.nanmin(fit.tail_scan.Ds)
    assert isinstance(fit.ci, AlphaBootstrap) and fit.ci.low < fit.alpha < fit.ci.high
    assert isinstance(fit.gof, GoodnessOfFit) and 0 <= fit.gof.p <= 1 and fit.gof.n_samples == 20
    again = fit_power_law(x, distribution="truncated_power_law", bootstrap=50, gof_samples=20, rng=0)
    assert (again.ci.low, again.ci.high, again.gof.p) == (fit.ci.low, fit.ci.high, fit.gof.p)  # seeded
    assert "ci=[" in repr(fit) and "gof_p=" in repr(fit)
    cmp = fit.compare()
    assert isinstance(cmp, TailComparison) and set(cmp.tests) == {
        "lognormal", "exponential", "stretched_exponential", "truncated_power_law"}
    assert cmp.tests["truncated_power_law"].nested and cmp.tests["truncated_power_law"].R < 0
    assert fit.compare("exponential").tests.keys() == {"exponential"}
    # the default fit is untouched by the new options
    plain = fit_power_law(x)
    assert (plain.alpha, plain.xmin, plain.D) == (fit.alpha, fit.xmin, fit.D) and plain.ci is None


@pytest.mark.parametrize("kwargs, name", [
    ({"xmin": -1.0}, "xmin"), ({"xmin": "median"}, "xmin"), ({"xmin_range": (3, 1)}, "xmin_range"),
    ({"xmin": 1.0, "xmin_range": (0, 2)}, "xmin_range"), ({"distribution": "gauss"}, "distribution"),
    ({"bootstrap": -1}, "bootstrap"), ({"gof_samples": 2.5}, "gof_samples"), ({"ci_level": 1.0}, "ci_level"),
    ({"ties": "first"}, "ties"), ({"xmin": "hill", "fix_fingers": "clip_xmax"}, "fix_fingers"),
])
def test_fit_power_law_bad_new_options(kwargs, name):
    from spectralwatch import fit_power_law

    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of fit_power_law"):
        fit_power_law(np.arange(1.0, 40.0), **kwargs)


def test_compare_on_failed_fit_raises():
    from spectralwatch import fit_power_law

    with pytest.raises(ValueError, match="failed"):
        fit_power_law([1.0]).compare()


# --------------------------------------------------------------------------------------
# analyze() options
# --------------------------------------------------------------------------------------
STATS_COLUMNS = {"alpha_ci_low", "alpha_ci_high", "xmin_stability", "gof_p", "best_tail", "fit_quality",
                 "farms_alpha", "farms_xmin", "farms_D", "farms_n_tail", "farms_windows", "farms_num_evals"}


@pytest.fixture(scope="module")
def small_model():
    """Five dense layers of different shapes; the odd ones with heavy-tailed column scales."""
    rng = np.random.default_rng(30)
    return {f"layer{i}.weight": rng.standard_normal((120 + 60 * i, 80))
            * (1 + (rng.pareto(1.5, (1, 80)) if i % 2 else 0)) for i in range(5)}


def test_analyze_default_table_and_summary_unchanged(small_model):
    import spectralwatch
    from spectralwatch.results.report import SUMMARY_METRICS

    rep = spectralwatch.analyze(small_model)
    cols = set(rep.details.columns)
    assert not cols & STATS_COLUMNS and not any(c.startswith("lr_") for c in cols)
    assert set(rep.summary) <= set(SUMMARY_METRICS)
    assert rep.num_averaged == rep.num_layers == 5
    assert "averaged" not in repr(rep)


def test_analyze_statistics_columns(small_model):
    import spectralwatch
    from spectralwatch.core.fit.comparison import TailComparison
    from spectralwatch.core.fit.uncertainty import AlphaBootstrap, GoodnessOfFit

    plain = spectralwatch.analyze(small_model)
    rep = spectralwatch.analyze(small_model, bootstrap=60, gof_samples=20, compare_tails=True, rng=5)
    d = rep.details
    for c in ("alpha_ci_low", "alpha_ci_high", "xmin_stability", "gof_p", "best_tail", "fit_quality",
              "lr_lognormal", "lr_lognormal_z", "lr_lognormal_p", "lr_exp_p", "lr_stretched_exp_p", "lr_tpl_p"):
        assert c in d, c
    # the statistics add columns, they change none
    np.testing.assert_array_equal(d["alpha"], plain.details["alpha"])
    assert rep.summary == plain.summary
    assert ((d["alpha_ci_low"] <= d["alpha"]) & (d["alpha"] <= d["alpha_ci_high"])).all()
    assert d["gof_p"].between(0, 1).all() and d["xmin_stability"].between(0, 1).all()
    assert set(d["best_tail"]) <= {"power_law", "lognormal", "exponential", "stretched_exponential",
                                   "truncated_power_law"}
    objs = rep.get_statistics(d["layer_id"].iloc[0])
    assert isinstance(objs["bootstrap"], AlphaBootstrap) and isinstance(objs["gof"], GoodnessOfFit)
    assert isinstance(objs["comparison"], TailComparison)
    # seeded per layer: the same rng gives the same numbers, another rng other ones
    again = spectralwatch.analyze(small_model, bootstrap=60, gof_samples=20, compare_tails=True, rng=5)
    np.testing.assert_array_equal(again.details["alpha_ci_low"], d["alpha_ci_low"])
    other = spectralwatch.analyze(small_model, bootstrap=60, rng=6)
    assert not np.array_equal(other.details["alpha_ci_low"], d["alpha_ci_low"])
    with pytest.raises(KeyError, match="bootstrap=N"):
        plain.get_statistics(d["layer_id"].iloc[0])


def test_fit_quality_flags_and_summary_rule(small_model):
    import spectralwatch

    rep = spectralwatch.analyze(small_model, fit_quality=True)
    d = rep.details
    assert (d["fit_quality"].str.contains("few_tail") == (d["n_tail"] < 16)).all()
    flagged = d["fit_quality"] != ""
    # default: the summary stays WeightWatcher's and averages every layer; the report says how many
    assert rep.summary == spectralwatch.analyze(small_model).summary
    assert rep.num_averaged == 5 and "5 averaged" in repr(rep)
    ex = spectralwatch.analyze(small_model, exclude_flagged=True)
    assert ex.summary["num_averaged"] == 5 - flagged.sum() == ex.num_averaged
    assert ex.summary["num_flagged"] == flagged.sum()
    if (~flagged).any():
        assert ex.summary["alpha"] == pytest.approx(d.loc[~flagged, "alpha"].mean())


def test_fit_quality_rules():
    from spectralwatch.core.fit.powerlaw import fit_power_law
    from spectralwatch.core.fit.comparison import compare_tails
    from spectralwatch.core.fit.quality import fit_quality
    from spectralwatch.core.fit.uncertainty import bootstrap_alpha

    rng = np.random.default_rng(31)
    ln = sample_lognormal_tail(0.0, 1.0, 1.0, 5000, rng)
    fit = fit_power_law(ln, xmin=1.0)
    assert "lognormal" in fit_quality(fit, comparison=compare_tails(ln, 1.0))
    pl = sample_power_law(2.5, 1.0, 2000, rng)
    good = fit_power_law(pl)
    assert fit_quality(good, boot=bootstrap_alpha(good, 100, 1), comparison=good.compare()) == ""
    assert fit_quality(fit_power_law(pl[:12])) == "few_tail"
    assert fit_quality(fit_power_law([1.0])) == "failed"


def test_analyze_xmin_methods(small_model):
    import spectralwatch
    from spectralwatch.core.fit.powerlaw import fit_power_law

    ev = spectralwatch.analyze(small_model).get_ESD(1)
    hill = spectralwatch.analyze(small_model, xmin_method="hill").details.iloc[0]
    assert hill["fit_method"] == "hill" and hill["alpha"] == fit_power_law(ev, xmin="hill").alpha
    peak = spectralwatch.analyze(small_model, xmin_method="peak").details
    ref = spectralwatch.analyze(small_model, fix_fingers="xmin_peak").details
    np.testing.assert_array_equal(peak["alpha"], ref["alpha"])
    fixed = spectralwatch.analyze(small_model, xmin=50.0).details
    assert (fixed["xmin"] == 50.0).all() and (fixed["fit_method"] == "fixed").all()
    rng_ = spectralwatch.analyze(small_model, xmin_range=(1.0, 1e3)).details
    ok = rng_["status"] == "success"
    assert rng_.loc[ok, "xmin"].between(1.0, 1e3).all()


@pytest.mark.parametrize("kwargs, name", [
    ({"bootstrap": 1}, "bootstrap"), ({"bootstrap": -2}, "bootstrap"), ({"gof_samples": "many"}, "gof_samples"),
    ({"ci_level": 0.0}, "ci_level"), ({"compare_tails": "yes"}, "compare_tails"),
    ({"xmin_method": "median"}, "xmin_method"), ({"xmin_method": "fixed"}, "xmin"),
    ({"xmin_method": "hill", "xmin": 2.0}, "xmin"), ({"xmin_range": (5, 1)}, "xmin_range"),
    ({"xmin_method": "hill", "xmin_range": (0, 1)}, "xmin_range"),
    ({"xmin_method": "hill", "fix_fingers": "xmin_peak"}, "fix_fingers"),
    ({"xmin_method": "peak", "fix_fingers": "clip_xmax"}, "fix_fingers"),
    ({"farms_q": 0.5}, "farms_q"), ({"exclude_flagged": 1}, "exclude_flagged"),
])
def test_analyze_bad_statistics_options(small_model, kwargs, name):
    import spectralwatch

    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of analyze"):
        spectralwatch.analyze(small_model, **kwargs)


# --------------------------------------------------------------------------------------
# FARMS
# --------------------------------------------------------------------------------------
def test_farms_windows_and_planted_blocks():
    from spectralwatch.core.farms import farms_spectrum

    rng = np.random.default_rng(40)
    blocks = [rng.standard_normal((50, 50)) * s for s in (1.0, 2.0, 3.0)]
    W = np.vstack(blocks)  # 150 x 50: three square windows with known spectra
    ev, windows = farms_spectrum(W[None])
    expected = np.sort(np.concatenate([np.linalg.eigvalsh(b.T @ b) for b in blocks]))
    assert windows == 3
    np.testing.assert_allclose(ev, expected, rtol=1e-10)
    square, w1 = farms_spectrum(blocks[0][None])  # a square matrix is its own window
    assert w1 == 1
    np.testing.assert_allclose(square, np.linalg.eigvalsh(blocks[0].T @ blocks[0]), rtol=1e-10)
    ev2, w2 = farms_spectrum(W[None], q=2.0)  # 100 x 50 windows, two of them, overlapping
    assert w2 == 2 and ev2.size == 100
    _, w3 = farms_spectrum(rng.standard_normal((130, 50))[None])  # 3 windows evenly covering 130 rows
    assert w3 == 3


def test_analyze_farms(small_model):
    import spectralwatch

    d = spectralwatch.analyze(small_model, farms=True).details
    assert (d["farms_windows"] == np.ceil(d["N"] / d["M"])).all()
    assert (d["farms_num_evals"] == d["farms_windows"] * d["M"]).all()
    assert d["farms_alpha"].notna().all()
    sq = {"w.weight": np.random.default_rng(41).standard_normal((80, 80))}
    one = spectralwatch.analyze(sq, farms=True).details.iloc[0]
    assert one["farms_alpha"] == pytest.approx(one["alpha"], rel=1e-9)  # square: FARMS changes nothing


# --------------------------------------------------------------------------------------
# the statistics do what they claim, over repeated draws
# --------------------------------------------------------------------------------------
TAIL_SAMPLERS = {  # a tail above xmin = 1 from each law
    "power_law": lambda n, rng: sample_power_law(2.5, 1.0, n, rng),
    "lognormal": lambda n, rng: sample_lognormal_tail(0.5, 1.0, 1.0, n, rng),
    "exponential": lambda n, rng: 1.0 + rng.exponential(1.0, n),
    "truncated_power_law": lambda n, rng: sample_tpl(1.5, 0.05, 1.0, n, rng),
    "stretched_exponential": lambda n, rng: sample_stretched_tail(0.5, 0.2, 1.0, n, rng),
}
# Expected rate of choosing the true law at n = 5000 and why (see docs/statistics.md):
# power law: an alternative is chosen only when it beats the power law at p < 0.1 AND gains more
#   than one unit of log-likelihood per extra parameter (AIC); for the nested truncated power law
#   that is P(chi2_1 > 2)/2 = 0.08, the others are rarer: expected about 0.88;
# exponential: the stretched exponential (beta = 1) and the truncated power law (alpha = 0) contain
#   it, and win when their extra parameter buys > 1 unit: P(chi2_1 > 2) = 0.16 and 0.08: about 0.78;
# lognormal, truncated power law, stretched exponential: distinguishable at this size: about 1.
EXPECTED_RIGHT = {"power_law": 0.88, "exponential": 0.78, "lognormal": 1.0, "truncated_power_law": 1.0,
                  "stretched_exponential": 1.0}


def _right_rate(law, n, reps, seed):
    from spectralwatch.core.fit.comparison import compare_tails

    rng = np.random.default_rng(seed)
    return np.mean([compare_tails(TAIL_SAMPLERS[law](n, rng), 1.0).best == law for _ in range(reps)])


@pytest.mark.parametrize("law", list(TAIL_SAMPLERS))
def test_tests_choose_the_right_law(law):
    # 25 draws: the binomial standard deviation at p = 0.8 is 0.08; the bound is the expected
    # rate less 2.5 of them (and never above 0.9)
    rate = _right_rate(law, 5000, 25, seed=50)
    assert rate >= min(0.9, EXPECTED_RIGHT[law] - 0.2), rate


@pytest.mark.slow
@pytest.mark.parametrize("law", list(TAIL_SAMPLERS))
def test_tests_choose_the_right_law_at_several_sizes(law):
    rates = {n: _right_rate(law, n, 100, seed=n) for n in (300, 1000, 5000)}
    sd = math.sqrt(0.2 * 0.8 / 100)
    assert rates[5000] >= EXPECTED_RIGHT[law] - 3 * sd - 0.02, rates
    if law != "power_law":  # more data, more power
        assert rates[5000] >= rates[300] - 2 * sd, rates
    else:  # the power law's error rate does not grow with n
        assert min(rates.values()) >= EXPECTED_RIGHT[law] - 3 * sd - 0.05, rates


def _coverage(draws, n_boot, seed, kind="pareto"):
    from spectralwatch import fit_power_law

    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        x = sample_power_law(2.5, 1.0, 300, rng)
        if kind == "mixture":  # a bulk below the power-law tail
            x = np.concatenate([rng.uniform(0.1, 1.0, 300), x])
        fit = fit_power_law(x, bootstrap=n_boot, rng=rng, thresh=0)
        hits += fit.ci.low <= 2.5 <= fit.ci.high
    return hits / draws


def test_bootstrap_interval_covers_sometimes():
    assert _coverage(30, 100, seed=60) >= 0.7  # the full check is the slow test below


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["pareto", "mixture"])
def test_bootstrap_interval_covers_at_nominal_rate(kind):
    # 90% intervals, 200 independent draws: binomial sd 0.021. Measured: 0.93 (pareto), 0.895
    # (mixture) with these seeds; 0.875 and 0.87 with others.
    cov = _coverage(200, 200, seed=61 if kind == "pareto" else 62, kind=kind)
    assert 0.83 <= cov <= 0.96, cov


def _gof_pvalues(draws, samples, seed):
    from spectralwatch import fit_power_law

    rng = np.random.default_rng(seed)
    return np.array([fit_power_law(sample_power_law(2.5, 1.0, 300, rng), gof_samples=samples, rng=rng,
                                   thresh=0).gof.p for _ in range(draws)])


def test_gof_pvalue_not_degenerate_under_the_null():
    p = _gof_pvalues(30, 50, seed=70)
    assert 0.3 <= p.mean() <= 0.8 and (p < 0.1).mean() <= 0.2


@pytest.mark.slow
def test_gof_pvalue_roughly_uniform_under_the_null():
    # Measured over 200 draws: mean 0.58, P(p < 0.1) = 0.055, quarters 16/19/30/36%, KS distance
    # to the uniform 0.165 (other seeds: P(p < 0.1) 0.03-0.07): roughly uniform, slightly
    # conservative (docs/statistics.md explains why: the resampled body of a synthetic sample has
    # ties that the data's body has not, so synthetic KS minima are a little larger).
    from scipy import stats as sstats

    p = _gof_pvalues(200, 100, seed=71)
    assert 0.42 <= p.mean() <= 0.66
    assert (p < 0.1).mean() <= 0.14  # the test is valid: it does not reject more than its level
    assert sstats.kstest(p, "uniform").statistic < 0.2
    for q in (0.25, 0.5, 0.75):  # every quarter of [0, 1] is populated
        assert 0.1 <= np.mean((p >= q - 0.25) & (p < q)) <= 0.4


def test_gof_rejects_a_lognormal():
    """With xmin held where the lognormal bends (so the scan cannot retreat into a short, straight
    far tail) the power law is rejected outright."""
    from spectralwatch import fit_power_law

    rng = np.random.default_rng(72)
    x = np.exp(rng.normal(0.0, 0.6, 5000))
    assert fit_power_law(x, xmin=1.0, gof_samples=50, rng=rng, thresh=0).gof.p <= 0.02


# --------------------------------------------------------------------------------------
# validation on data nobody here made: the powerlaw package's copies of Clauset et al.'s data
# --------------------------------------------------------------------------------------
# The continuous data sets of Clauset, Shalizi & Newman (2009) bundled in powerlaw 2.0.0 (its
# reference_data folder, read by powerlaw.load_test_dataset); 'words' and 'terrorism' are counts,
# fitted as discrete data by Clauset et al., and left out. powerlaw's own fit of cities and fires
# takes a minute (it fits every candidate xmin in Python), hence the slow marks.
CONTINUOUS = ["blackouts", "flares", "quakes", "surnames",
              pytest.param("cities", marks=pytest.mark.slow), pytest.param("fires", marks=pytest.mark.slow)]


@pytest.fixture(scope="module")
def powerlaw_pkg():
    return pytest.importorskip("powerlaw")


def _ours_at(alt, params: dict, xmin):
    """Our density of ``alt`` at given parameters (to check both packages define the same laws)."""
    from spectralwatch.core.fit.laws import TailFit, TruncatedPowerLawFit

    if alt == "truncated_power_law":
        return TruncatedPowerLawFit(params["alpha"], params["Lambda"], 0.0, 0, xmin, math.inf, 0.0, 0.0, True)
    names = {"lognormal": ("mu", "sigma"), "exponential": ("Lambda",),
             "stretched_exponential": ("Lambda", "beta")}[alt]
    return TailFit(alt, tuple((k, float(params[k])) for k in names), 0.0, 0, xmin, True)


def _lognormal_ll_mp(tail, params, xmin):
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    mu, s = mpmath.mpf(float(params["mu"])), mpmath.mpf(float(params["sigma"]))
    log_q = mpmath.log(mpmath.ncdf(-(mpmath.log(float(xmin)) - mu) / s))
    total = mpmath.mpf(0)
    values, counts = np.unique(tail, return_counts=True)
    for v, c in zip(values, counts):
        lv = mpmath.log(float(v))
        total += c * (-lv - mpmath.log(s) - mpmath.log(2 * mpmath.pi) / 2 - ((lv - mu) / s) ** 2 / 2 - log_q)
    return float(total)


@pytest.mark.parametrize("name", CONTINUOUS)
def test_agrees_with_the_powerlaw_package(powerlaw_pkg, name):
    import warnings

    from spectralwatch import fit_power_law

    data = powerlaw_pkg.load_test_dataset(name)
    ours = fit_power_law(data, ties="merge", thresh=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = powerlaw_pkg.Fit(data, parameter_ranges={"alpha": [1, 50]}, verbose=0)
        # xmin: the same candidate; alpha: the issue asks for 1%, the two agree to round-off
        assert ours.xmin == theirs.xmin
        assert ours.alpha == pytest.approx(theirs.alpha, rel=1e-9)
        assert ours.D == pytest.approx(theirs.D, rel=1e-9)
        comparison = ours.compare()
        tail = data[data >= ours.xmin]
        for alt, lr in comparison.tests.items():
            R, _ = theirs.distribution_compare("power_law", alt)
            dist = getattr(theirs, alt)
            their_ll = float(np.sum(dist.loglikelihoods(tail)))
            # both packages define the same law: ours at their parameters gives their likelihood
            ours_there = float(np.sum(_ours_at(alt, dist.parameters, ours.xmin).logpdf(tail)))
            if ours_there != pytest.approx(their_ll, rel=1e-9, abs=1e-6):
                # powerlaw's lognormal normaliser loses digits far in the tail (quakes: mu = -1500,
                # sigma = 40, xmin 38 sigmas above mu); there ours is checked against 50 digits
                assert alt == "lognormal"
                assert ours_there == pytest.approx(_lognormal_ll_mp(tail, dist.parameters, ours.xmin), rel=1e-12)
            if np.sign(R) != np.sign(lr.R) and max(abs(R), abs(lr.R)) > 1e-6:
                # a different sign only where powerlaw's optimiser stopped below our maximum
                assert comparison.fits[alt].loglikelihood > their_ll + 1e-3, (alt, R, lr.R)
                assert not (lr.p < 0.1 and lr.R < 0), (alt, lr)  # and our verdict is "inconclusive"


def test_statistics_do_not_depend_on_where_layers_run(small_model):
    import pandas as pd

    import spectralwatch

    kw = {"bootstrap": 40, "gof_samples": 10, "compare_tails": True, "farms": True, "rng": 3}
    serial = spectralwatch.analyze(small_model, workers=1, **kw).details
    pooled = spectralwatch.analyze(small_model, workers=2, **kw).details
    pd.testing.assert_frame_equal(serial, pooled)

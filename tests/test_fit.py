"""Tests of spectralwatch.fit: exactness of the bounded scan, planted truths, options, parity."""

from __future__ import annotations

import contextlib
import dataclasses
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from spectralwatch.errors import InvalidParameterError
from spectralwatch.core.fit.powerlaw import PowerLawFit
from spectralwatch.core.fit.powerlaw import fit_power_law as public_fit_power_law

# The bounded scan and the brute force below use the same formulas; they differ only in
# rounding (exp of log differences vs. a power of a ratio, summation order), which moves
# alpha, D and sigma by ~1e-14 relative at most.
REL_EXACT = 1e-12
# Parity with the WeightWatcher 0.7.7 fitter, as required of spectralwatch.
REL_REF = 1e-9
THRESH = 1e-5
# This file checks WeightWatcher's fitter: fit_power_law with the options analyze() passes on every
# layer (the public defaults are Clauset et al.'s: merged ties, a relative threshold; test_stats.py)
REFERENCE = {"ties": "reference", "thresh": THRESH}


def fit_power_law(evals, **kwargs):
    return public_fit_power_law(evals, **{**REFERENCE, **kwargs})


# --------------------------------------------------------------------------------------
# brute-force reference: a plain loop over candidates, straight from the formulas
# --------------------------------------------------------------------------------------
def brute_force(evals, thresh=THRESH, candidates=None, small_n_cutoff=20):
    """Return the chosen fit as a dict, or None when every candidate is degenerate."""
    x = np.sort(np.asarray(evals, dtype=np.float64))
    data = x[x > thresh]
    n = data.size
    small = n < small_n_cutoff and candidates is None
    alphas = np.zeros(n - 1) if small else np.full(n - 1, np.nan)
    Ds = np.ones(n - 1)
    eligible = False
    for i in range(n - 1):
        t = n - i
        tail = data[i:]
        s = np.sum(np.log(tail / data[i]))
        if small:
            if t < 8 or s <= 1e-12:
                continue
            alpha = 1.0 + (t - 1.0) / s
            eligible = True
        elif s > 0:
            alpha = 1.0 + t / s
        else:
            continue
        alphas[i] = alpha
        if alpha > 1:
            Ds[i] = np.max(np.abs(1 - (tail / data[i]) ** (1 - alpha) - np.arange(t) / t))
    if small and not eligible:
        s = np.sum(np.log(data / data[0]))
        if s <= 1e-12:
            return None
        alphas[0] = 1.0 + (n - 1.0) / s
        Ds[0] = np.max(np.abs(1 - (data / data[0]) ** (1 - alphas[0]) - np.arange(n) / n))
    pool = np.arange(n - 1) if candidates is None else np.asarray(candidates)
    i = int(pool[np.argmin(Ds[pool])])
    if not np.isfinite(alphas[i]) or (not small and not alphas[i] > 1):
        return None
    return {"index": i, "xmin": data[i], "alpha": alphas[i], "D": Ds[i],
            "sigma": (alphas[i] - 1) / np.sqrt(n - i), "Ds": Ds, "data": data}


def make_sample(seed, n, kind):
    """Heavy-tailed test spectra of several shapes, from a seeded Generator."""
    rng = np.random.default_rng(seed)
    alpha = rng.uniform(1.3, 7.0)
    pareto = 10 ** rng.uniform(-3, 3) * (1 - rng.random(n)) ** (-1 / (alpha - 1))
    if kind == "pareto":
        return pareto
    if kind == "mixture":  # a gamma bulk and a power-law tail, like a trained layer
        m = max(1, n // 5)
        return np.concatenate([rng.gamma(4.0, 0.25, n - m), 2.0 * pareto[:m] / pareto.min()])
    if kind == "duplicates":  # few significant digits: many exact ties
        return np.round(pareto / pareto.min(), 1)
    if kind == "near_thresh":  # values just above, at and below thresh
        tiny = THRESH * (1 + 10 ** rng.uniform(-6, 1, n))
        return np.concatenate([tiny, [0.0, THRESH, -1.0, 0.5 * THRESH]])
    raise ValueError(kind)


KINDS = ("pareto", "mixture", "duplicates", "near_thresh")


def assert_matches_brute(evals, **kwargs):
    fit = fit_power_law(evals, **kwargs)
    ref = brute_force(evals)
    if ref is None:
        assert fit.status == "failed" and fit.message
        return fit
    assert fit.status == "success"
    assert fit.xmin == ref["xmin"]
    assert fit.n_tail == np.count_nonzero(ref["data"] >= ref["xmin"])
    for name in ("alpha", "D", "sigma"):
        assert getattr(fit, name) == pytest.approx(ref[name], rel=REL_EXACT), name
    done = np.isfinite(fit.Ds)
    np.testing.assert_allclose(fit.Ds[done], ref["Ds"][done], rtol=REL_EXACT)
    np.testing.assert_allclose(fit.ks_curve(), ref["Ds"], rtol=REL_EXACT)
    return fit


# --------------------------------------------------------------------------------------
# exactness of the bounded scan
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("n", [5, 9, 19, 20, 21, 64, 300, 1000, 3000])
def test_same_choice_as_brute_force(kind, n):
    assert_matches_brute(make_sample(n * 7 + len(kind), n, kind))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**32 - 1), kind=st.sampled_from(KINDS),
       n=st.one_of(st.integers(5, 40), st.integers(40, 3000)))
def test_same_choice_as_brute_force_random(seed, kind, n):
    assert_matches_brute(make_sample(seed, n, kind))


def test_bounded_scan_skips_candidates():
    fit = fit_power_law(make_sample(3, 3000, "mixture"))
    assert np.isnan(fit.Ds).sum() > 2500  # most candidates were proved unable to win
    assert fit.D == np.nanmin(fit.Ds)


def test_input_order_does_not_matter():
    x = make_sample(11, 500, "pareto")
    a, b = fit_power_law(x), fit_power_law(np.random.default_rng(0).permutation(x).tolist())
    assert (a.alpha, a.xmin, a.D) == (b.alpha, b.xmin, b.D)


# --------------------------------------------------------------------------------------
# planted truths and invariances
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("alpha", [2.0, 2.5, 3.0, 4.0, 5.0])
def test_recovers_planted_exponent(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    x = (1 - rng.random(4000)) ** (-1 / (alpha - 1))  # continuous Pareto, xmin = 1
    fit = fit_power_law(x)
    std_err = (alpha - 1) / np.sqrt(fit.n_tail)  # asymptotic standard error of the MLE
    # 4 standard errors, plus 2% of (alpha - 1) for the bias of the KS choice of xmin
    assert abs(fit.alpha - alpha) < 4 * std_err + 0.02 * (alpha - 1)
    assert fit.sigma == pytest.approx((fit.alpha - 1) / np.sqrt(fit.n_tail), rel=1e-12)
    assert 1.0 <= fit.xmin < 2.0 and fit.n_tail > 1000
    assert fit.xmax == x.max() and fit.num_pl_spikes == fit.n_tail


@pytest.mark.parametrize("c", [1e-3, 0.37, 1e4])
def test_scale_invariance(c):
    x = make_sample(5, 1500, "mixture")
    a, b = fit_power_law(x), fit_power_law(c * x)
    # c * x rounds each value by <= 1 ulp, moving logs and ratios by ~1e-16
    assert b.alpha == pytest.approx(a.alpha, rel=1e-10)
    assert b.D == pytest.approx(a.D, rel=1e-10)
    assert b.xmin == pytest.approx(c * a.xmin, rel=1e-14)
    assert b.n_tail == a.n_tail


# --------------------------------------------------------------------------------------
# result object
# --------------------------------------------------------------------------------------
def test_result_object():
    x = make_sample(1, 800, "mixture")
    fit = fit_power_law(x)
    assert isinstance(fit, PowerLawFit) and fit.method == "ks" and fit.message == ""
    assert fit.raw_alpha == fit.alpha and fit.num_fingers == 0
    assert fit.xmins.size == fit.alphas.size == fit.Ds.size == fit.data.size - 1
    np.testing.assert_array_equal(fit.data, np.sort(x[x > THRESH]))
    for arr in (fit.xmins, fit.alphas, fit.Ds, fit.data):
        with pytest.raises(ValueError):
            arr[0] = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        fit.alpha = 3.0
    assert "alpha=" in repr(fit) and "ks" in repr(fit) and "\n" not in repr(fit)


@pytest.mark.parametrize("alpha, warning", [(1.6, "over-trained"), (3.0, ""),
                                            (8.0, "under-trained")])
def test_warning(alpha, warning):
    x = (1 - np.random.default_rng(2).random(3000)) ** (-1 / (alpha - 1))
    assert fit_power_law(x).warning == warning


def test_small_n_is_flagged():
    fit = fit_power_law(make_sample(4, 12, "pareto"))
    assert fit.method == "small_n" and fit.message == "small-n fit on 12 eigenvalues"


def test_num_pl_spikes_counts_all_evals():
    x = np.concatenate([make_sample(8, 300, "pareto"), [0.0, -2.0, 1e-9]])
    fit = fit_power_law(x, thresh=0.0)
    assert fit.num_pl_spikes == np.count_nonzero(x >= fit.xmin)
    big = fit_power_law(x, thresh=np.median(x))
    assert big.data.min() > np.median(x)


# --------------------------------------------------------------------------------------
# xmax
# --------------------------------------------------------------------------------------
def test_xmax_int_drops_top_eigenvalues():
    x = make_sample(9, 400, "mixture")
    clipped = np.sort(x)[:-3]
    for k in (3, -3, np.int64(3)):
        fit = fit_power_law(x, xmax=k)
        ref = fit_power_law(clipped)
        assert (fit.alpha, fit.xmin, fit.D, fit.xmax) == (ref.alpha, ref.xmin, ref.D, ref.xmax)
        assert fit.num_pl_spikes == np.count_nonzero(clipped >= fit.xmin)


def test_xmax_zero_and_force_change_nothing():
    x = make_sample(10, 400, "pareto")
    base = fit_power_law(x)
    for option in (0, "force"):
        fit = fit_power_law(x, xmax=option)
        assert (fit.alpha, fit.xmin, fit.D, fit.xmax) == (base.alpha, base.xmin, base.D,
                                                          base.xmax)


def test_xmax_too_large_fails():
    fit = fit_power_law(np.arange(1.0, 11.0), xmax=6)
    assert fit.status == "failed" and "more than half" in fit.message


# --------------------------------------------------------------------------------------
# fix_fingers
# --------------------------------------------------------------------------------------
def finger_sample():
    """A gamma bulk, a short steep tail and three outliers at twice its top."""
    rng = np.random.default_rng(8)
    base = np.concatenate([rng.gamma(4.0, 0.25, 1000), 2.0 * (1 - rng.random(40)) ** -0.25])
    return np.concatenate([base, base.max() * 2.0 * np.array([1.0, 1.01, 1.02])])


def test_clip_xmax_removes_fingers():
    x = finger_sample()
    fit = fit_power_law(x, fix_fingers="clip_xmax")
    plain = fit_power_law(x)
    assert fit.method == "clip_xmax" and fit.num_fingers >= 1
    assert fit.raw_alpha == plain.alpha and fit.alpha + 1.0 < fit.raw_alpha
    assert fit.xmax == np.sort(x)[-(fit.num_fingers + 2)]
    assert fit.num_pl_spikes == np.count_nonzero(x >= fit.xmin)  # removed ones count
    assert fit.num_pl_spikes == fit.n_tail + fit.num_fingers + 1
    assert "clipped" in fit.message


def test_clip_xmax_keeps_clean_fit():
    x = (1 - np.random.default_rng(6).random(2000)) ** (-1 / 1.5)
    fit = fit_power_law(x, fix_fingers="clip_xmax")
    plain = fit_power_law(x)
    assert fit.num_fingers == 0 and fit.alpha == fit.raw_alpha == plain.alpha
    for max_fingers in (0, 1, 2):  # range(2, max_fingers) is empty: nothing is tried
        fit = fit_power_law(finger_sample(), fix_fingers="clip_xmax", max_fingers=max_fingers)
        assert fit.num_fingers == 0
    assert fit_power_law(x[:12], fix_fingers="clip_xmax").status == "success"


def test_xmin_peak():
    x = make_sample(12, 2000, "mixture")
    data = np.sort(x[x > THRESH])
    counts, edges = np.histogram(np.log10(data), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    for xmin_max in (None, 3 * peak):
        high = 1.5 * peak if xmin_max is None else xmin_max
        fit = fit_power_law(x, fix_fingers="xmin_peak", xmin_max=xmin_max)
        pool = np.flatnonzero((data[:-1] >= 0.95 * peak) & (data[:-1] <= high))
        ref = brute_force(x, candidates=pool)
        assert fit.method == "xmin_peak" and fit.xmin == ref["xmin"]
        assert fit.alpha == pytest.approx(ref["alpha"], rel=REL_EXACT)
        assert fit.D == pytest.approx(ref["D"], rel=REL_EXACT)
    fit = fit_power_law(x, fix_fingers="xmin_peak", xmin_max=0.5 * peak)
    assert fit.status == "failed" and "xmin_max" in fit.message


def test_fix_fingers_off_values():
    x = make_sample(13, 300, "pareto")
    base = fit_power_law(x)
    assert fit_power_law(x, fix_fingers=False).alpha == base.alpha


# --------------------------------------------------------------------------------------
# failures are results; bad arguments raise
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("evals, words", [
    ([], "only 0"), ([5.0], "only 1"), ([1e-9, 2e-6, 1.0], "only 1"),
    ([3.0] * 50, "equal"), ([3.0] * 10, "equal"), ([3.0] * 5, "equal"),
    ([1.0, 2.0, np.nan, 4.0], "non-finite"), ([1.0, np.inf] * 20, "non-finite"),
])
def test_failed_fits(evals, words):
    fit = fit_power_law(evals)
    assert fit.status == "failed" and fit.warning == "" and words in fit.message
    assert (fit.alpha, fit.xmin, fit.xmax, fit.D, fit.sigma) == (-1.0,) * 5
    assert fit.num_pl_spikes == -1 and fit.n_tail == 0 and fit.data.size == 0
    assert fit.xmins.size == fit.alphas.size == fit.Ds.size == 0
    assert fit.ks_curve().size == 0 and "failed" in repr(fit)


def test_bad_xmax_message():
    with pytest.raises(InvalidParameterError) as info:
        fit_power_law([1.0, 2.0, 3.0], xmax="abc")
    assert str(info.value) == ("The 'xmax' parameter of fit_power_law must be None, "
                               "'force' or an int. Got 'abc'.")
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize("kwargs", [
    {"xmax": True}, {"xmax": 2.0}, {"fix_fingers": "foo"}, {"fix_fingers": True},
    {"max_fingers": -1}, {"max_fingers": 2.5}, {"max_fingers": True},
    {"finger_thresh": -1.0}, {"finger_thresh": float("nan")}, {"thresh": -1.0},
    {"thresh": "x"}, {"xmin_max": 0.0}, {"xmin_max": "a"},
])
def test_bad_arguments_raise(kwargs):
    with pytest.raises(InvalidParameterError, match=repr(next(iter(kwargs)))):
        fit_power_law(np.arange(1.0, 30.0), **kwargs)


@pytest.mark.parametrize("evals", [np.ones((3, 3)), np.float64(3.0), ["a", "b"],
                                   np.array([1 + 1j, 2.0])])
def test_bad_evals_raise(evals):
    with pytest.raises(InvalidParameterError, match="'evals'"):
        fit_power_law(evals)


def test_fix_fingers_error_lists_allowed_values():
    with pytest.raises(InvalidParameterError, match="'xmin_peak' or 'clip_xmax'"):
        fit_power_law([1.0, 2.0], fix_fingers="peak")


# --------------------------------------------------------------------------------------
# parity with the installed WeightWatcher 0.7.7 fitter
# --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def ww_powerlaw():
    pytest.importorskip("weightwatcher")
    from weightwatcher import WW_powerlaw

    return WW_powerlaw


@pytest.mark.reference
@pytest.mark.parametrize("n, kind", [(5, "pareto"), (9, "pareto"), (15, "pareto"), (15, "mixture"),
                                     (50, "pareto"), (500, "mixture"), (3000, "mixture"),
                                     (3000, "pareto")])
def test_parity_with_weightwatcher(ww_powerlaw, n, kind):
    x = make_sample(100 + n, n, kind)
    data = np.sort(x[x > THRESH])
    with contextlib.redirect_stdout(io.StringIO()):  # it prints "SMALL N PL FIT"
        ref = ww_powerlaw.WWFit(data)
    fit = fit_power_law(x)
    for name in ("alpha", "xmin", "D", "sigma"):
        if name == "sigma" and n < 8:
            # The reference computes sigma before filling in alpha of its whole-sample
            # fallback, so it reports -1/sqrt(n); spectralwatch reports (alpha - 1)/sqrt(n).
            assert ref.sigma == pytest.approx(-1 / np.sqrt(n), rel=REL_REF)
            assert fit.sigma == pytest.approx((fit.alpha - 1) / np.sqrt(n), rel=REL_EXACT)
            continue
        assert getattr(fit, name) == pytest.approx(float(getattr(ref, name)), rel=REL_REF)
    assert fit.xmax == ref.xmax
    if n >= 20:  # for small n the reference trims .data at its J-choice xmin as well
        assert fit.n_tail == len(ref.data)


@pytest.mark.reference
def test_clip_xmax_parity_with_weightwatcher(ww_powerlaw):
    from weightwatcher.RMT_Util import fit_clipped_powerlaw

    x = np.sort(finger_sample())
    ref, num_fingers, raw = fit_clipped_powerlaw(x[x > THRESH], max_fingers=10,
                                                 finger_thresh=1.0, pl_package="ww")
    fit = fit_power_law(x, fix_fingers="clip_xmax")
    assert fit.num_fingers == num_fingers
    assert fit.alpha == pytest.approx(ref.alpha, rel=REL_REF)
    assert fit.raw_alpha == pytest.approx(raw.alpha, rel=REL_REF)
    assert fit.D == pytest.approx(ref.D, rel=REL_REF) and fit.xmin == ref.xmin

"""The bootstrap and the goodness of fit in bounded memory, and the public fitter's scale-free defaults."""

import copy

import numpy as np
import pytest

from spectralwatch import fit_power_law
from spectralwatch.core.fit import ks_scan, uncertainty
from spectralwatch.core.fit.ks_scan import batch_scan
from spectralwatch.core.fit.uncertainty import bootstrap_alpha, goodness_of_fit

from test_stats import sample_power_law


def _fit(seed=0, n=600, **kw):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.uniform(0.1, 1.0, n // 2), sample_power_law(2.3, 1.0, n // 2, rng)])
    return fit_power_law(x, thresh=0, **kw)


def _one_shot_gof_Ds(fit, G, rng):
    """CSN's synthetic samples drawn all at once (the code before issue 14), then scanned."""
    data = np.asarray(fit.data)
    n = data.size
    body = data[data < fit.xmin]
    from_tail = rng.random((G, n)) < (n - body.size) / n
    synth = fit.xmin * (1.0 - rng.random((G, n))) ** (-1.0 / (fit.alpha - 1.0))
    synth = np.where(from_tail, synth, body[rng.integers(0, body.size, size=(G, n))])
    synth.sort(axis=1)
    return batch_scan(synth, merge=fit.ties == "merge").D


@pytest.mark.parametrize("bitgen", [np.random.PCG64, np.random.MT19937])
def test_grouped_draws_are_the_one_shot_draws(monkeypatch, bitgen):
    """Samples drawn and scanned in groups of rows: the same values as all at once, whatever the
    grouping and the bit generator, and the generator ends where the one-shot draws leave it."""
    fit = _fit()
    expect_gen = np.random.Generator(bitgen(5))
    expect = _one_shot_gof_Ds(fit, 23, expect_gen)
    for group in (1 << 20, 3 * fit.data.size, 1):  # one group; groups of 3 rows; 1 row at a time
        monkeypatch.setattr(uncertainty, "GROUP_ELEMENTS", group)
        monkeypatch.setattr(ks_scan, "BATCH_GROUP_ELEMENTS", max(group, 1))
        gen = np.random.Generator(bitgen(5))
        res = goodness_of_fit(fit, 23, gen)
        np.testing.assert_array_equal(res.Ds, expect[np.isfinite(expect)])
        # the generator ends where the one-shot draws leave it: the same next numbers
        np.testing.assert_array_equal(copy.deepcopy(gen).random(5), copy.deepcopy(expect_gen).random(5))


def test_grouped_bootstrap_is_unchanged(monkeypatch):
    fit = _fit(1)
    ref = bootstrap_alpha(fit, 40, np.random.default_rng(3))
    monkeypatch.setattr(uncertainty, "GROUP_ELEMENTS", 2 * fit.n_tail)
    again = bootstrap_alpha(fit, 40, np.random.default_rng(3))
    np.testing.assert_array_equal(ref.alphas, again.alphas)
    assert (ref.low, ref.high, ref.xmin_stability) == (again.low, again.high, again.xmin_stability)


def test_memory_does_not_grow_with_the_sample_count(monkeypatch):
    """Peak allocation (tracemalloc sees numpy's arrays) is the same for 8 and 64 samples."""
    import tracemalloc

    fit = _fit(2, n=4000)
    monkeypatch.setattr(uncertainty, "GROUP_ELEMENTS", 4 * fit.data.size)  # 4 rows per group
    monkeypatch.setattr(ks_scan, "BATCH_GROUP_ELEMENTS", 4 * fit.data.size)
    peaks = {}
    for G in (8, 64):
        tracemalloc.start()
        goodness_of_fit(fit, G, np.random.default_rng(0))
        peaks[G] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    one_shot = 64 * fit.data.size * 8 * 4  # four (G, n) float64 arrays of the one-shot form
    assert peaks[64] < 1.5 * peaks[8] and peaks[64] < one_shot / 3, peaks


# --------------------------------------------------------------------------------------
# the public fitter's defaults: scale-free, Clauset et al.'s ties
# --------------------------------------------------------------------------------------
@pytest.mark.parametrize("c", [1e-7, 1e-3, 1.0, 1e5])
def test_default_fit_is_scale_free(c):
    """The same fit for c * x (issue 14: the absolute 1e-5 gave alpha 2.69 instead of 2.53 at 1e-7)."""
    rng = np.random.default_rng(4)
    x = np.concatenate([rng.gamma(2.0, 1e-4, 500), sample_power_law(2.5, 1e-2, 500, rng)])
    base, scaled = fit_power_law(x), fit_power_law(c * x)
    assert scaled.n_tail == base.n_tail and scaled.data.size == base.data.size == x.size
    assert scaled.alpha == pytest.approx(base.alpha, rel=1e-10)
    assert scaled.xmin == pytest.approx(c * base.xmin, rel=1e-12)
    # the reference's absolute threshold is not scale-free: it cuts the body of the scaled-down data
    assert fit_power_law(1e-7 * x, thresh=1e-5, ties="reference").data.size < x.size


def test_relative_threshold_drops_zeros_and_round_off():
    rng = np.random.default_rng(5)
    x = sample_power_law(2.5, 1.0, 300, rng)
    top = x.max()
    noisy = np.concatenate([x, [0.0, -1e-13, 1e-14 * top, 5e-13 * top, 2e-12 * top]])
    fit = fit_power_law(noisy)
    assert fit.data.size == x.size + 1 and fit.data.min() == 2e-12 * top  # only the last is above 1e-12 x max
    failed = fit_power_law(np.array([0.0, -1.0, 0.0]))
    assert failed.status == "failed" and "no positive value" in failed.message


def test_relative_threshold_value():
    from spectralwatch.core.fit.powerlaw import RELATIVE_THRESH

    x = np.array([1e-13, 7e-12, 1.0, 2.0, 3.0, 4.0, 5.0, 6.5])
    fit = fit_power_law(x)
    assert RELATIVE_THRESH == 1e-12
    assert fit.data.size == 7 and fit.data.min() == 7e-12  # 1e-13 <= 1e-12 x 6.5 is dropped


def test_default_ties_are_merged():
    rng = np.random.default_rng(6)
    x = np.round(sample_power_law(2.3, 1.0, 400, rng), 1)
    default, merged = fit_power_law(x), fit_power_law(x, ties="merge", thresh=0)
    assert default.ties == "merge" and (default.alpha, default.xmin, default.D) == (merged.alpha, merged.xmin,
                                                                                     merged.D)
    reference = fit_power_law(x, ties="reference", thresh=1e-5)
    assert reference.ties == "reference" and reference.D != default.D


def test_analyze_keeps_the_reference_fit():
    """analyze passes ties='reference', thresh=1e-5: its alpha is WeightWatcher's fit of the spectrum."""
    import spectralwatch

    W = np.random.default_rng(7).standard_t(3.0, (300, 120))
    rep = spectralwatch.analyze(W)
    ev = rep.get_ESD(0)
    ref = fit_power_law(ev, ties="reference", thresh=1e-5)
    row = rep.details.iloc[0]
    assert (row["alpha"], row["xmin"], row["D"]) == (ref.alpha, ref.xmin, ref.D)


# --------------------------------------------------------------------------------------
# small tails: the parametric (basic) interval
# --------------------------------------------------------------------------------------
def test_auto_interval_is_parametric_below_300_tail_values():
    from spectralwatch.core.fit.uncertainty import SMALL_TAIL

    rng = np.random.default_rng(8)
    small = fit_power_law(sample_power_law(2.5, 1.0, 60, rng))
    large = fit_power_law(sample_power_law(2.5, 1.0, 3000, rng))
    assert small.n_tail < SMALL_TAIL <= large.n_tail
    a, b = bootstrap_alpha(small, 60, 1), bootstrap_alpha(large, 60, 1)
    assert (a.method, a.small_tail, b.method, b.small_tail) == ("parametric", True, "percentile", False)
    assert fit_power_law(small.data, bootstrap=60, rng=1).ci.method == "parametric"
    assert fit_power_law(small.data, bootstrap=60, rng=1, ci_method="percentile").ci.method == "percentile"
    with pytest.raises(Exception, match="ci_method"):
        fit_power_law(small.data, bootstrap=10, ci_method="bca")


def test_parametric_interval_is_the_basic_interval_of_the_synthetic_alphas():
    fit = fit_power_law(sample_power_law(2.5, 1.0, 80, np.random.default_rng(9)))
    ci = bootstrap_alpha(fit, 200, np.random.default_rng(2), level=0.9, method="parametric")
    q_lo, q_hi = np.quantile(ci.alphas, [0.05, 0.95])
    assert ci.low == pytest.approx(max(1.0, 2 * fit.alpha - q_hi), abs=1e-12)
    assert ci.high == pytest.approx(2 * fit.alpha - q_lo, abs=1e-12)
    assert ci.n_boot == ci.alphas.size > 190 and 0 <= ci.xmin_stability <= 1


def test_analyze_reports_the_interval_method():
    import spectralwatch

    rng = np.random.default_rng(10)
    W = {"a.weight": rng.standard_t(2.5, (400, 200)), "b.weight": rng.standard_normal((30, 20))}
    d = spectralwatch.analyze(W, bootstrap=40, rng=0).details.set_index("name")
    from spectralwatch.core.fit.uncertainty import SMALL_TAIL

    for name, row in d.iterrows():
        assert row["alpha_ci_method"] == ("parametric" if row["n_tail"] < SMALL_TAIL else "percentile")


@pytest.mark.slow
def test_small_tail_interval_covers_near_its_level():
    """50 Pareto values (a KS-chosen tail of ~26): the percentile interval covered 0.81 at 0.90 (issue
    14: 0.85 at 0.95); the parametric one covers within 3 binomial standard errors of 0.90."""
    rng = np.random.default_rng(11)
    hits = {"percentile": 0, "auto": 0}
    draws = 150
    for _ in range(draws):
        fit = fit_power_law(sample_power_law(2.5, 1.0, 50, rng))
        for m in hits:
            ci = bootstrap_alpha(fit, 200, rng, level=0.9, method=m)
            hits[m] += ci.low <= 2.5 <= ci.high
    sd = (0.9 * 0.1 / draws) ** 0.5
    assert hits["auto"] / draws >= 0.9 - 3 * sd, hits
    assert hits["auto"] > hits["percentile"], hits

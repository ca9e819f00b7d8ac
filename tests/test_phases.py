"""Phases of training, the Tracy-Widom spike test and the entries' tail index (issue 14, item 2).

Planted truths: the Tracy-Widom law's published mean, variance and quantiles; pure-noise matrices
(false positives at the stated rate); planted spikes (detected); Pareto and Student-t entries
(their tail index); matrices of each phase from the labelled benchmark of benchmarks/phases and
the cases the issue names. The full benchmark (confusion matrix in docs/rmt.md) is
benchmarks/phases/run.py; a reduced run is the ``slow`` test at the end.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

import spectralwatch
from spectralwatch.core import phases, rmt
from spectralwatch.core.tracy_widom import tracy_widom_spikes, tw1_cdf, tw1_ppf, tw1_sf, wishart_edge_scaling

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "phases"
sys.path.insert(0, str(BENCH))
import generators as gen  # noqa: E402


def evals_of(W):
    W = np.asarray(W, dtype=np.float64)
    return np.sort(np.linalg.eigvalsh(W.T @ W))


# ------------------------------------------------------------------------------ Tracy-Widom law
def test_tw1_matches_the_published_values():
    # Tracy & Widom (1996); Bornemann (Math. Comp. 79, 2010): mean -1.2065335745820, variance 1.607781034581;
    # Johnstone (Ann. Statist. 29, 2001), Table 1: 95% and 99% quantiles 0.9793, 2.0234
    assert tw1_ppf(0.95) == pytest.approx(0.9793, abs=1e-4)
    assert tw1_ppf(0.99) == pytest.approx(2.0234, abs=1e-4)
    from scipy.integrate import quad

    mean = -quad(lambda s: tw1_cdf(s), -12, 0)[0] + quad(lambda s: tw1_sf(s), 0, 14)[0]
    second = quad(lambda s: -2 * s * tw1_cdf(s), -12, 0)[0] + quad(lambda s: 2 * s * tw1_sf(s), 0, 14)[0]
    assert mean == pytest.approx(-1.2065335745820, abs=1e-8)
    assert second - mean ** 2 == pytest.approx(1.607781034581, abs=1e-8)
    s = np.array([-3.0, 0.0, 2.0, 6.0])
    np.testing.assert_allclose(tw1_cdf(s) + tw1_sf(s), 1.0, rtol=1e-12)
    assert 0 < tw1_sf(12.0) < 1e-12  # the upper tail keeps its relative accuracy


def test_edge_scaling_formula():
    mu, sigma = wishart_edge_scaling(400.5, 100.5)
    assert mu == pytest.approx(900.0) and sigma == pytest.approx(30 * (1 / 20 + 1 / 10) ** (1 / 3))


@pytest.mark.parametrize("N,M", [(200, 100), (64, 64), (300, 60)])
def test_pure_noise_gets_spikes_at_about_the_stated_rate(N, M):
    rng = np.random.default_rng(N + M)
    hits = sum(tracy_widom_spikes(evals_of(rng.standard_normal((N, M))), N, M).num > 0 for _ in range(300))
    assert hits <= 9  # 1% nominal: 3 expected, P(>= 10) < 0.002 under Binomial(300, 0.01)


def test_planted_spikes_are_counted():
    rng = np.random.default_rng(1)
    for k in (1, 3):
        W = gen.add_spikes(gen.noise(600, 300, rng), [2.0] * k, rng)
        res = tracy_widom_spikes(evals_of(W), 600, 300)
        assert res.num == k and res.pvalue < 1e-10 and res.statistic > 10
    pure = tracy_widom_spikes(evals_of(gen.noise(600, 300, rng)), 600, 300)
    assert pure.num == 0 and pure.pvalue > 0.01


def test_spikes_just_above_the_edge_are_found_where_the_margin_rule_misses_them():
    """Strength 1.3 (about 6% above the edge at Q = 2): the case the issue says is missed 30-95% of the time."""
    rng = np.random.default_rng(2)
    tw = ww = 0
    for _ in range(20):
        ev = evals_of(gen.add_spikes(gen.noise(1000, 500, rng), [1.3], rng))
        tw += tracy_widom_spikes(ev, 1000, 500).num >= 1
        ww += rmt.fit_marchenko_pastur(ev, 2.0, 500).num_spikes >= 1
    assert tw >= 19 and ww <= 17  # measured at 200 draws: 100% vs 68% (docs/rmt.md)


def test_pooled_conv_matrices_use_a_per_matrix_level():
    rng = np.random.default_rng(3)
    hits = 0
    for _ in range(100):
        ev = np.concatenate([evals_of(rng.standard_normal((128, 64))) for _ in range(9)])
        hits += tracy_widom_spikes(ev, 128, 64, rf=9).num > 0
    assert hits <= 5  # without the per-matrix level the rate would be about 1 - 0.99**9 = 9%


# ---------------------------------------------------------------------------- entries' tail
@pytest.mark.parametrize("mu", [1.5, 2.5, 3.5])
def test_entry_tail_index_of_pareto_and_student_t_entries(mu):
    rng = np.random.default_rng(int(10 * mu))
    assert phases.entry_tail_index(gen.heavy_entries(500, 400, rng, mu, "pareto")) == pytest.approx(mu, rel=0.12)
    assert phases.entry_tail_index(gen.heavy_entries(500, 400, rng, mu, "student-t")) == pytest.approx(mu, rel=0.2)


def test_entry_tail_index_of_light_tails_is_far_above_4_and_needs_enough_entries(monkeypatch):
    rng = np.random.default_rng(0)
    assert phases.entry_tail_index(rng.standard_normal((300, 200))) > 8
    assert phases.entry_tail_index(rng.laplace(size=(300, 200))) > 5
    assert np.isinf(phases.entry_tail_index(np.sign(rng.standard_normal((300, 200)))))  # no tail at all
    assert np.isnan(phases.entry_tail_index(rng.standard_normal((100, 100))))  # 10000 < 20000 entries
    W = gen.heavy_entries(300, 200, rng, 2.5, "pareto")
    whole = phases.entry_tail_index(W)
    monkeypatch.setattr(phases, "_CHUNK", 997)  # the chunked scan gives the same order statistics
    assert phases.entry_tail_index(W) == whole


# -------------------------------------------------------------------------------- the phases
def _details(model):
    return spectralwatch.analyze(model, mp_fit=True).details.set_index("name")


@pytest.mark.parametrize("phase", gen.PHASES)
def test_planted_matrices_get_their_phase(phase):
    """Two matrices of each phase of the benchmark's generators (seeds outside the tuning seeds)."""
    model = {}
    for i, (N, M, dtype) in enumerate([(512, 128, "float32"), (600, 300, "float64")]):
        W, _ = gen.generate(phase, N, M, np.random.default_rng([gen.PHASES.index(phase), 900 + i]), dtype)
        model[f"m{i}.weight"] = W
    assert list(_details(model)["phase"]) == [phase, phase]


def test_the_cases_the_issue_names():
    rng = np.random.default_rng(14)
    model = {
        "spikes.weight": gen.add_spikes(gen.noise(1000, 500, rng), [5.0, 3.0, 1.3], rng),
        "pareto3.weight": gen.heavy_entries(1000, 500, rng, 3.0, "pareto"),
        "student35.weight": gen.heavy_entries(1000, 500, rng, 3.5, "student-t"),
    }
    d = _details(model)
    assert d.loc["spikes", "phase"] == "bulk+spikes" and d.loc["spikes", "tw_spikes"] == 3
    assert d.loc["pareto3", "phase"] == "heavy-tailed"
    assert d.loc["student35", "phase"] == "heavy-tailed"
    assert d.loc["pareto3", "entry_tail_index"] == pytest.approx(3.0, rel=0.15)


def test_reference_columns_are_untouched_and_new_ones_added():
    rng = np.random.default_rng(6)
    W = gen.add_spikes(gen.noise(400, 200, rng), [1.3], rng)
    d = spectralwatch.analyze({"w.weight": W}, mp_fit=True).details.iloc[0]
    mp = rmt.fit_marchenko_pastur(evals_of(W), 2.0, 200)
    assert d["num_spikes"] == mp.num_spikes  # WeightWatcher's margin rule, as before
    for col in ("tw_spikes", "tw_pvalue", "entry_tail_index", "phase", "phase_note"):
        assert col in d.index, col


def test_small_layers_say_their_label_may_mislead():
    rng = np.random.default_rng(7)
    model = {"tiny.weight": rng.standard_normal((80, 40)), "small.weight": rng.standard_normal((150, 60))}
    d = spectralwatch.analyze(model, mp_fit=True, min_evals=1).details.set_index("name")
    assert d.loc["tiny", "phase"] == "" and "too few" in d.loc["tiny", "phase_note"]
    assert d.loc["small", "phase"] == "random-like"
    assert "only 60 eigenvalues" in d.loc["small", "phase_note"]
    assert "tail index not read" in d.loc["small", "phase_note"]


def test_phase_notes_reach_the_terminal_and_the_html():
    from spectralwatch.render.html import report_html
    from spectralwatch.render.text import summary_lines

    rng = np.random.default_rng(8)
    rep = spectralwatch.analyze({"small.weight": rng.standard_normal((150, 60)),
                                 "big.weight": rng.standard_normal((600, 300))}, mp_fit=True)
    text = "\n".join(summary_lines(rep))
    assert "phases:" in text and "only 60 eigenvalues" in text
    assert "only 60 eigenvalues" in report_html(rep, figures=False)


@pytest.mark.slow
def test_reduced_benchmark_is_right_90_percent_per_class():
    import run

    rows = [r for seed in (100, 101) for r in run.classify_seed(seed, workers=1)]
    for phase in gen.PHASES:
        sel = [r for r in rows if r["truth"] == phase]
        assert sum(r["label"] == phase for r in sel) >= 0.9 * len(sel), phase

"""Property-based tests (hypothesis) of the fitter and the spectrum: invariants that must always hold."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from spectralwatch.core.fit.powerlaw import fit_power_law
from spectralwatch.core.matrices import layer_matrices
from spectralwatch.core.metrics import spectral_metrics
from spectralwatch.core.spectrum import layer_spectrum

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

positive_spectra = arrays(np.float64, st.integers(1, 400),
                          elements=st.floats(1e-8, 1e8, allow_nan=False, allow_infinity=False))
matrices = st.tuples(st.integers(1, 40), st.integers(1, 40), st.integers(0, 2**32 - 1))


@SETTINGS
@given(positive_spectra)
def test_fit_never_crashes_and_is_self_consistent(evals):
    fit = fit_power_law(evals)
    assert fit.status in ("success", "failed")
    if fit.status == "failed":
        assert fit.alpha == -1 and fit.warning == "" and fit.message
        return
    assert fit.alpha > 1 and 0 <= fit.D <= 1 and fit.sigma >= 0
    assert fit.xmin <= fit.xmax == np.max(evals[evals > 1e-5])
    assert 1 <= fit.n_tail <= fit.num_pl_spikes <= evals.size
    assert fit.warning == ("over-trained" if fit.alpha < 2 else "under-trained" if fit.alpha > 6 else "")


@SETTINGS
@given(positive_spectra, st.floats(1e-3, 1e3))
def test_fit_is_scale_invariant(evals, c):
    a, b = fit_power_law(evals, thresh=0), fit_power_law(evals * c, thresh=0)
    assert a.status == b.status
    if a.status == "success":
        # the chosen xmin may flip between near-tied candidates only through rounding
        if a.n_tail == b.n_tail:
            assert b.alpha == pytest.approx(a.alpha, rel=1e-7)
            assert b.xmin == pytest.approx(a.xmin * c, rel=1e-9)


@SETTINGS
@given(positive_spectra)
def test_fit_ignores_order(evals):
    a = fit_power_law(evals)
    b = fit_power_law(np.random.default_rng(0).permutation(evals))
    assert (a.alpha, a.xmin, a.D) == (b.alpha, b.xmin, b.D)


@SETTINGS
@given(matrices)
def test_spectrum_invariants(spec):
    n, m, seed = spec
    W = np.random.default_rng(seed).standard_normal((n, m))
    s = layer_spectrum(layer_matrices(W, "dense"))
    ev = s.pooled
    assert ev.size == min(n, m) and np.all(ev >= 0)
    # trace: sum of eigenvalues = squared Frobenius norm
    assert ev.sum() == pytest.approx(np.sum(W * W), rel=1e-10)
    # transpose invariance and scaling by c scales eigenvalues by c^2
    np.testing.assert_allclose(layer_spectrum(layer_matrices(W.T, "dense")).pooled, ev, rtol=1e-9,
                               atol=1e-12 * ev.max())
    np.testing.assert_allclose(layer_spectrum(layer_matrices(2 * W, "dense")).pooled, 4 * ev, rtol=1e-9,
                               atol=1e-12 * ev.max())
    m_ = spectral_metrics(ev, s.svals, max(n, m))
    assert m_.matrix_rank == np.linalg.matrix_rank(W)
    assert m_.stable_rank >= 1 - 1e-12 and m_.stable_rank <= min(n, m) + 1e-9


@SETTINGS
@given(st.integers(2, 30), st.integers(2, 30), st.integers(1, 5), st.integers(0, 2**32 - 1))
def test_rank_of_low_rank_products_is_exact(n, m, k, seed):
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((n, k)) @ rng.standard_normal((k, m))
    s = layer_spectrum(layer_matrices(W, "dense"))
    assert spectral_metrics(s.pooled, s.svals, max(n, m)).matrix_rank == np.linalg.matrix_rank(W)


# ---- hostile text and patterns (docs/robustness.md) ------------------------------------------------------

def _regex():
    """Small regular expressions over the alphabet of module names, nested groups and quantifiers included."""
    atom = st.sampled_from(["a", "b", ".", r"\.", r"\d", r"\w", "[ab]", "[^.]", "_", "q"])
    quant = st.sampled_from(["", "*", "+", "?", "*?", "+?", "{1,2}", "{2}"])

    def extend(inner):
        return st.one_of(
            st.tuples(inner, inner).map("".join),
            st.tuples(inner, inner).map(lambda t: f"({t[0]}|{t[1]})"),
            st.tuples(inner, quant).map(lambda t: f"({t[0]}){t[1]}"),
        )

    return st.recursive(st.tuples(atom, quant).map("".join), extend, max_leaves=6)


@SETTINGS
@given(_regex(), st.text(alphabet="ab._q1", max_size=14), st.sampled_from(["", "^", "(?:x\\.)?"]))
def test_pattern_match_agrees_with_python_re(key, name, anchor):
    import re

    from spectralwatch.io.sources.patterns import pattern_match

    key = anchor + key
    assert pattern_match(key, name) == (re.match(rf"(.*\.)?({key})$", name) is not None)


@SETTINGS
@given(st.text(max_size=60))
def test_escaped_text_has_no_control_character_and_no_formula_prefix(text):
    from spectralwatch.render.safe_text import csv_cell, figure_text, markdown_text, term_text

    for out in (term_text(text), markdown_text(text), figure_text(text)):
        assert not any(ord(ch) < 32 or 0x7F <= ord(ch) < 0xA0 or ch in "\u202e\u2066\u2028" for ch in out)
    assert term_text(term_text(text)) == term_text(text)
    assert "|" not in markdown_text(text).replace("\\|", "")
    assert figure_text(text).count("$") == figure_text(text).count("\\$")
    cell = csv_cell(text)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))

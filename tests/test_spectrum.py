"""Spectrum and matrices: random-matrix theory, exact invariants, rank-deficient matrices."""

import numpy as np
import pytest

from spectralwatch.core.matrices import NonFiniteWeightsError, layer_matrices, matrix_geometry
from spectralwatch.core.metrics import matrix_entropy, matrix_rank, spectral_metrics
from spectralwatch.core.spectrum import layer_spectrum

# Gram + syevd vs gesdd: both backward stable; eigenvalues of a well-conditioned matrix agree to
# a few ulps of lambda_max.
GRAM_RTOL = 1e-10


def spec(W, layer_type="dense", method="auto", **kw):
    return layer_spectrum(layer_matrices(W, layer_type, **kw), method=method)


@pytest.mark.parametrize("N,M", [(2000, 500), (1000, 1000), (3000, 300)])
def test_gaussian_eigenvalues_inside_marchenko_pastur_edges(N, M):
    rng = np.random.default_rng(1)
    W = rng.standard_normal((N, M)) / np.sqrt(N)  # X = W^T W has MP law with variance 1, Q = N/M
    ev = spec(W).pooled
    q = M / N
    lo, hi = (1 - np.sqrt(q)) ** 2, (1 + np.sqrt(q)) ** 2
    # finite-size fluctuations of the extreme eigenvalues are O(N^(-2/3)) (Tracy-Widom): 5% margin
    assert ev.max() <= hi * 1.05 and ev.max() >= hi * 0.95
    if q < 1:
        assert ev.min() >= lo * 0.9 - 1e-3
    # the bulk fills the support: 99% of the eigenvalues inside [lo, hi] (1% allowance at the edges)
    assert np.mean((ev >= lo * 0.98) & (ev <= hi * 1.02)) > 0.99


def test_invariants_trace_transpose_scaling():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((300, 120))
    ev = spec(W).pooled
    assert np.isclose(ev.sum(), np.sum(W * W), rtol=1e-12)
    np.testing.assert_allclose(spec(W.T).pooled, ev, rtol=1e-12, atol=1e-12 * ev.max())
    np.testing.assert_allclose(spec(3.0 * W).pooled, 9.0 * ev, rtol=1e-11, atol=1e-11 * ev.max())


def test_gram_route_matches_svd_route():
    rng = np.random.default_rng(3)
    W = rng.standard_normal((700, 200)) @ np.diag(np.linspace(0.1, 3, 200))
    a, b = spec(W, method="gram").pooled, spec(W, method="svd").pooled
    np.testing.assert_allclose(a, b, rtol=0, atol=GRAM_RTOL * b.max())


@pytest.mark.parametrize("rank", [1, 5, 37])
def test_rank_deficient_matrix_rank_is_exact(rank):
    rng = np.random.default_rng(rank)
    W = rng.standard_normal((200, rank)) @ rng.standard_normal((rank, 80))
    s = spec(W)  # auto: must notice the unresolved zeros and use the SVD
    assert s.route == "svd"
    m = spectral_metrics(s.pooled, s.svals, N=200)
    assert m.matrix_rank == np.linalg.matrix_rank(W) == rank
    assert m.rank_loss == 80 - rank
    assert m.weak_rank_loss == 80 - rank


def test_full_rank_uses_fast_route():
    W = np.random.default_rng(5).standard_normal((400, 100))
    s = spec(W)
    assert s.route == "gram"
    assert spectral_metrics(s.pooled, s.svals, N=400).matrix_rank == 100


def test_conv2d_slicing_and_scaling():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((16, 8, 3, 3))
    mats = layer_matrices(W, "conv2d")
    assert (mats.rf, mats.N, mats.M, mats.eval_scale) == (9, 16, 8, 0.5)
    expected = np.sort(np.concatenate([np.linalg.svd(W[:, :, i, j], compute_uv=False) ** 2 * 0.5
                                       for i in range(3) for j in range(3)]))
    np.testing.assert_allclose(layer_spectrum(mats).pooled, expected, rtol=1e-10)
    unpooled = layer_matrices(W, "conv2d", pooled=False)
    assert unpooled.eval_scale == 9 / 2
    assert layer_matrices(W, "conv2d", conv2d_norm=False).eval_scale == 1.0


def test_even_kernel_keeps_N_ge_M():
    # WeightWatcher 0.7.7 swaps N and M for even-sized kernels; we never do
    W = np.zeros((4, 32, 2, 2)) + 1.0
    mats = layer_matrices(W, "conv2d")
    assert (mats.N, mats.M, mats.rf) == (32, 4, 4)
    assert matrix_geometry("conv2d", W.shape) == (32, 4, 4)


def test_conv1d_kernel_is_sliced():
    W = np.random.default_rng(7).standard_normal((10, 20, 5))
    mats = layer_matrices(W, "conv1d")
    assert (mats.rf, mats.N, mats.M, mats.eval_scale) == (5, 20, 10, 1.0)
    np.testing.assert_allclose(mats.stack[2], W[:, :, 2].T)


def test_non_finite_weights_are_refused():
    W = np.ones((10, 10))
    W[3, 4] = np.nan
    W[0, 0] = np.inf
    with pytest.raises(NonFiniteWeightsError, match="1 NaN and 1 Inf"):
        layer_matrices(W, "dense")


def test_entropy_of_flat_and_spiked_spectra():
    flat = np.ones(50)
    assert matrix_entropy(flat, 50) == pytest.approx(1.0, abs=1e-6)
    spiked = np.r_[np.full(49, 1e-12), 1.0]
    assert matrix_entropy(spiked, 50) < 0.01
    assert np.isnan(matrix_entropy(np.zeros(5), 0))


def test_matrix_rank_rule_matches_numpy():
    rng = np.random.default_rng(8)
    for k in (1, 3, 10):
        W = rng.standard_normal((30, k)) @ rng.standard_normal((k, 20))
        assert matrix_rank(np.linalg.svd(W, compute_uv=False), 30) == np.linalg.matrix_rank(W)


def test_blocked_gram_is_exact_and_thread_count_independent():
    from spectralwatch.core.spectrum import one_blas_thread, gram_matrix, set_gram_threads, gram_threads

    rng = np.random.default_rng(9)
    # > GRAM_BLOCK columns: the blocked path; a tall narrow matrix: the row-chunk path
    for W in (rng.standard_normal((1200, 1100)), rng.standard_normal((20000, 200))):
        saved = gram_threads()
        try:
            results = []
            for threads in (1, 2, 3):
                set_gram_threads(threads)
                with one_blas_thread():
                    results.append(gram_matrix(W))
        finally:
            set_gram_threads(saved)
        assert all(np.array_equal(results[0], r) for r in results[1:])
        np.testing.assert_allclose(results[0], W.T @ W, rtol=0, atol=1e-12 * np.abs(results[0]).max())


@pytest.mark.parametrize("shape", [(1, 1), (5, 3), (400, 150), (150, 400), (3000, 64)])
def test_eigensolver_is_numpys_below_the_two_stage_width(shape):
    from spectralwatch.core.eigensolver import eigvalsh_inplace
    from spectralwatch.core.spectrum import gram_matrix, one_blas_thread

    W = np.random.default_rng(sum(shape)).standard_normal(shape)
    W = W if W.shape[0] >= W.shape[1] else W.T
    with one_blas_thread():
        g = gram_matrix(W)
        want = np.linalg.eigvalsh(g)
        got = eigvalsh_inplace(g[None].copy())[0]
    np.testing.assert_array_equal(got, want)


def test_eigensolver_falls_back_to_numpy_when_the_two_stage_binding_is_unavailable(monkeypatch):
    import spectralwatch.core.eigensolver as lapack

    monkeypatch.setitem(lapack._STATE, "two", None)
    monkeypatch.setattr(lapack, "TWO_STAGE_MIN_M", 8)
    assert not lapack.two_stage_available()
    g = np.random.default_rng(1).standard_normal((30, 12))
    g = g.T @ g
    np.testing.assert_array_equal(lapack.eigvalsh_inplace(g[None].copy())[0], np.linalg.eigvalsh(g))


def test_eigensolver_reports_non_convergence_as_linalg_error():
    from spectralwatch.core.eigensolver import eigvalsh_inplace

    g = np.full((1, 4, 4), np.nan)
    with pytest.raises(np.linalg.LinAlgError):
        eigvalsh_inplace(g)


def test_two_stage_reduction_for_wide_matrices_is_as_accurate_and_deterministic(monkeypatch):
    import spectralwatch.core.eigensolver as lapack

    if not lapack.two_stage_available():
        pytest.skip("numpy's LAPACK has no dsyevd_2stage")
    monkeypatch.setattr(lapack, "TWO_STAGE_MIN_M", 64)  # small sizes take the two-stage route too
    W = np.random.default_rng(5).standard_normal((300, 200))
    g = W.T @ W
    want = np.linalg.eigvalsh(g)
    got = lapack.eigvalsh_inplace(g[None].copy())[0]
    again = lapack.eigvalsh_inplace(g[None].copy())[0]
    np.testing.assert_array_equal(got, again)
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-13 * want[-1])


def test_one_blas_thread_limits_scipys_blas_too_even_when_scipy_was_not_yet_imported():
    """scipy's LAPACK (the SVD route) is a BLAS library of its own; a controller created before it was
    loaded left it on every core, so SVD-checked spectra could differ in the last bits between runs
    (the Dask table once differed from the threaded one)."""
    import subprocess
    import sys

    code = ("import sys\nfrom spectralwatch.core.spectrum import one_blas_thread\n"
            "assert 'scipy.linalg' not in sys.modules\n"
            "from threadpoolctl import threadpool_info\n"
            "with one_blas_thread():\n"
            "    infos = [i for i in threadpool_info() if i['user_api'] == 'blas']\n"
            "    assert len(infos) >= 2 and all(i['num_threads'] == 1 for i in infos), infos\n"
            "print('ok')\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ok", out.stderr

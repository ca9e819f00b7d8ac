"""Accelerator route (exercised through torch on the CPU here) and the eigenvalue cache."""

import numpy as np
import pandas as pd
import pytest

import spectralwatch
from spectralwatch.core.spectrum import torch_eigenvalues
from spectralwatch.io.cache import cache_key
from spectralwatch.pipeline.spectra import resolve_device
from spectralwatch.core.matrices import layer_matrices
from spectralwatch.core.spectrum import layer_spectrum

# torch's and numpy's eigensolvers are both backward stable: they agree to a few ulps of lambda_max
DEVICE_RTOL = 1e-11


def test_torch_route_matches_numpy_route():
    pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    mats = layer_matrices(rng.standard_normal((24, 12, 3, 3)), "conv2d")
    ref = layer_spectrum(mats, method="gram").evals / mats.eval_scale
    got = torch_eigenvalues(mats.stack, "cpu")
    np.testing.assert_allclose(got, ref, rtol=0, atol=DEVICE_RTOL * ref.max())


def test_unavailable_device_falls_back_with_a_warning():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.warns(RuntimeWarning, match="not available"):
        assert resolve_device("cuda") == "cpu"
    W = np.random.default_rng(1).standard_normal((50, 20))
    with pytest.warns(RuntimeWarning):
        row = spectralwatch.analyze(W, device="cuda").details.iloc[0]
    assert row["spectrum_route"] == "gram"


def test_bad_device_is_an_invalid_parameter():
    with pytest.raises(ValueError, match="'device' parameter"):
        resolve_device("tpu")


def test_cache_reuses_eigenvalues(tmp_path):
    rng = np.random.default_rng(2)
    model = {f"l{i}.weight": rng.standard_normal((90, 40)) for i in range(3)}
    first = spectralwatch.analyze(model, cache_dir=tmp_path, workers=1).details
    assert len(list(tmp_path.glob("*.npz"))) == 3
    again = spectralwatch.analyze(model, cache_dir=tmp_path, fix_fingers="clip_xmax", workers=1).details
    assert (again["spectrum_route"] == "gram+cache").all()
    plain = spectralwatch.analyze(model, fix_fingers="clip_xmax", workers=1).details
    pd.testing.assert_series_equal(again["alpha"], plain["alpha"], check_exact=True)
    assert list(first["lambda_max"]) == list(again["lambda_max"])


def test_cache_key_depends_on_content_and_scaling():
    W = np.random.default_rng(3).standard_normal((16, 8, 3, 3))
    a = cache_key(layer_matrices(W, "conv2d"), "auto", "cpu")
    assert a == cache_key(layer_matrices(W.copy(), "conv2d"), "auto", "cpu")
    assert a != cache_key(layer_matrices(W, "conv2d", conv2d_norm=False), "auto", "cpu")
    W[0, 0, 0, 0] += 1e-9
    assert a != cache_key(layer_matrices(W, "conv2d"), "auto", "cpu")

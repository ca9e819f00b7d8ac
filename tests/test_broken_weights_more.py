"""More broken weights, each with its defined outcome (tests/test_broken_weights.py has the first set).

Every class of bad values gets either a ``success`` row with finite numbers or a ``failed`` row
whose message names the problem, and never costs another layer its row: the good layers of a
model that mixes them with every broken class get exactly the rows they get alone. The reasons
are counted by :func:`spectralwatch.failures.failure_summary`.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import spectralwatch
from spectralwatch.results.failures import failure_summary, failure_text, reason_class
from spectralwatch.core.matrices import SpectrumRangeError, check_spectrum_range, layer_matrices

SHAPE = (64, 32)


def gaussian(shape=SHAPE, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def row_of(W, **kwargs):
    """The details row of a one-layer model (``W`` as a state-dict entry)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no numpy overflow/invalid warning escapes either
        return spectralwatch.analyze({"x.weight": W}, **kwargs).details.iloc[0]


def assert_failed(row, *words):
    assert row["status"] == "failed" and row["warning"] == "", row["message"]
    for word in words:
        assert word in row["message"], (word, row["message"])


def assert_success_finite(row):
    assert row["status"] == "success", row["message"]
    for col in ("alpha", "D", "sigma", "lambda_max", "norm", "log_norm", "log_spectral_norm", "stable_rank",
                "entropy", "alpha_weighted", "log_alpha_norm"):
        assert np.isfinite(float(row[col])), (col, row[col])


# ------------------------------------------------------------------------------ NaN and Inf

def test_all_nan_matrix():
    assert_failed(row_of(np.full(SHAPE, np.nan)), f"{SHAPE[0] * SHAPE[1]} NaN", "0 Inf")


def test_a_single_nan_in_a_large_matrix_is_found():
    W = gaussian((1000, 400))
    W[777, 333] = np.nan
    assert_failed(row_of(W), "1 NaN and 0 Inf")


def test_negative_inf_and_nan_mixed_are_counted():
    W = gaussian()
    W[0, 0] = -np.inf
    W[1, :3] = np.nan
    assert_failed(row_of(W), "3 NaN and 1 Inf")


def test_nan_in_one_conv_kernel_position_fails_the_layer():
    K = gaussian((32, 16, 3, 3))
    K[5, 2, 1, 1] = np.nan
    row = row_of(K)
    assert row["layer_type"] in ("conv2d", "dense") and row["rf"] == 9
    assert_failed(row, "1 NaN")


# ------------------------------------------------------------------------ rank-deficient matrices

@pytest.mark.parametrize("value", [0.3, -2.5, 1e6])
def test_constant_matrix_has_one_eigenvalue_and_a_failed_fit(value):
    row = row_of(np.full(SHAPE, value))
    # one eigenvalue N * M * c^2, the others zero: the rank columns say so, the fit cannot be made
    np.testing.assert_allclose(row["lambda_max"], SHAPE[0] * SHAPE[1] * value ** 2, rtol=1e-12)
    assert row["matrix_rank"] == 1 and row["rank_loss"] == SHAPE[1] - 1
    assert_failed(row, "only 1 eigenvalues above")


def test_rank_one_matrix():
    u, v = gaussian((SHAPE[0], 1), 1), gaussian((1, SHAPE[1]), 2)
    row = row_of(u @ v)
    np.testing.assert_allclose(row["lambda_max"], float((u.T @ u)[0, 0]) * float((v @ v.T)[0, 0]), rtol=1e-12)
    assert row["matrix_rank"] == 1 and row["stable_rank"] == pytest.approx(1.0)
    assert_failed(row, "only 1 eigenvalues above")


@pytest.mark.parametrize("shape", [(1, 300), (300, 1)])
def test_vectors_among_good_layers_are_skipped_with_a_reason_or_fail_cleanly(shape):
    model = {"good.weight": gaussian(), "thin.weight": gaussian(shape, 3)}
    report = spectralwatch.analyze(model)  # default min_evals=8: one eigenvalue is too few
    assert list(report.details["name"]) == ["good"] and report.details["status"].iloc[0] == "success"
    skipped = report.skipped.set_index("name")
    assert skipped.loc["thin", "rule"] == "min_evals" and "1 eigenvalues < min_evals=8" in skipped.loc["thin", "reason"]
    d = spectralwatch.analyze(model, min_evals=0).details.set_index("name")
    assert d.loc["good", "status"] == "success"
    assert (d.loc["thin", "N"], d.loc["thin", "M"], d.loc["thin", "num_evals"]) == (300, 1, 1)
    assert d.loc["thin", "status"] == "failed" and "only 1 eigenvalues above" in d.loc["thin", "message"]


# ------------------------------------------------------------------------ magnitudes and dtypes

def test_huge_dynamic_range_1e_minus30_to_1e30():
    rng = np.random.default_rng(4)
    W = 10.0 ** rng.uniform(-30, 30, SHAPE) * rng.choice([-1.0, 1.0], SHAPE)
    row = row_of(W)
    assert_success_finite(row)
    assert row["lambda_max"] > 1e58  # the largest entries, squared


@pytest.mark.parametrize("big", [1e160, 1e200, 1e300, np.finfo(np.float64).max])
def test_one_entry_whose_square_overflows_float64(big):
    W = gaussian()
    W[3, 7] = big
    row = row_of(W)  # no overflow warning, no LinAlgError: a reason
    assert_failed(row, "eigenvalues overflow float64", f"{big:.3g}")
    assert not row["has_esd"]


def test_every_entry_huge_overflows_the_sum_of_the_eigenvalues():
    assert_failed(row_of(np.full(SHAPE, 1e307)), "eigenvalues overflow float64")


@pytest.mark.parametrize("scale", [1e100, 1e150, 2e152])
def test_huge_but_representable_spectra_are_analysed_with_finite_metrics(scale):
    G = gaussian()
    plain, scaled = row_of(G), row_of(G * scale)
    assert_success_finite(scaled)
    # alpha is scale-free; the log-norm metrics move by exactly log10(scale^2) (times alpha)
    assert scaled["alpha"] == pytest.approx(plain["alpha"], rel=1e-9)
    shift = 2 * np.log10(scale)
    assert scaled["log_norm"] == pytest.approx(plain["log_norm"] + shift, rel=1e-12)
    assert scaled["log_alpha_norm"] == pytest.approx(plain["log_alpha_norm"] + plain["alpha"] * shift, rel=1e-9)


@pytest.mark.parametrize("tiny", [1e-200, 1e-310])
def test_weights_whose_squares_underflow_say_so(tiny):
    row = row_of(gaussian() * tiny)  # 1e-310 is a denormal
    assert_failed(row, "eigenvalues underflow float64")
    assert "all-zero" not in row["message"]


def test_small_but_representable_weights_fail_the_fit_with_a_reason():
    for W in (gaussian() * 1e-155, (gaussian() * 1e-40).astype(np.float32)):  # float32 denormals
        row = row_of(W)
        assert row["has_esd"] and 0 < row["lambda_max"] < 1e-5
        assert_failed(row, "only 0 eigenvalues above 1e-05")


def test_float16_weights_whose_gram_would_overflow_float16():
    W16 = (gaussian() * 1e4).astype(np.float16)  # entries ~1e4: W^T W ~1e10, far above float16's 65504
    with np.errstate(over="ignore"):
        assert np.isinf(W16[:, :1].T @ W16[:, :1]).all()  # in float16 arithmetic
    row = row_of(W16)
    assert_success_finite(row)
    assert row["dtype"] == "float16"
    same = row_of(W16.astype(np.float64))  # computed in float64: the same numbers
    for col in ("alpha", "lambda_max", "D", "log_alpha_norm"):
        assert row[col] == same[col], col


def test_float16_near_its_maximum():
    W16 = np.clip(gaussian() * 3e4, -65504, 65504).astype(np.float16)
    assert np.isfinite(W16).all() and np.abs(W16).max() > 6e4
    assert_success_finite(row_of(W16))


@pytest.mark.parametrize("scale", [1.0, 1e30])
def test_bfloat16_torch_weights(scale):
    torch = pytest.importorskip("torch")
    t = (torch.from_numpy(gaussian()) * scale).to(torch.bfloat16)  # bfloat16 reaches 3e38
    row = row_of(t)
    assert_success_finite(row)
    assert row["dtype"] == "bfloat16"
    same = row_of(t.float().numpy())
    assert row["alpha"] == same["alpha"] and row["lambda_max"] == same["lambda_max"]


def test_bfloat16_nan_and_overflowed_inf():
    torch = pytest.importorskip("torch")
    nan = torch.from_numpy(gaussian()).to(torch.bfloat16)
    nan[2, 2] = float("nan")
    assert_failed(row_of(nan), "1 NaN")
    inf = (torch.from_numpy(gaussian()) * 1e39).to(torch.bfloat16)  # beyond bfloat16's range: inf
    assert torch.isinf(inf).any()
    assert_failed(row_of(inf), "Inf values")


@pytest.mark.parametrize("dtype", [np.int8, np.uint8, np.int32, np.int64, np.bool_])
def test_integer_and_bool_weights_are_analysed_as_their_values(dtype):
    rng = np.random.default_rng(6)
    W = (rng.integers(0, 2, SHAPE) if dtype is np.bool_ else rng.integers(0 if dtype is np.uint8 else -100, 100,
                                                                           SHAPE)).astype(dtype)
    row = row_of(W)
    assert_success_finite(row)
    same = row_of(W.astype(np.float64))
    assert row["alpha"] == same["alpha"] and row["lambda_max"] == same["lambda_max"]


def test_complex_weights_fail_instead_of_losing_their_imaginary_part():
    W = gaussian() + 1j * gaussian(seed=1)
    assert_failed(row_of(W), "complex weights")


def test_torch_module_with_broken_parameters():
    torch = pytest.importorskip("torch")
    net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Linear(64, 48), torch.nn.Linear(48, 40))
    with torch.no_grad():
        net[1].weight[0, 0] = float("nan")
        net[2].weight.zero_()
    d = spectralwatch.analyze(net).details.set_index("longname")
    assert d.loc["0", "status"] == "success"
    assert d.loc["1", "status"] == "failed" and "1 NaN" in d.loc["1", "message"]
    assert d.loc["2", "status"] == "failed" and "all-zero" in d.loc["2", "message"]


# ------------------------------------------------------------------- the range check on its own

def test_range_check_passes_ordinary_weights_and_names_the_extremes():
    for W in (gaussian(), np.zeros(SHAPE), gaussian().astype(np.float16), np.full(SHAPE, 1e140),
              gaussian() * 1e-150, np.arange(12, dtype=np.int64).reshape(3, 4)):
        check_spectrum_range(W)  # no error
    with pytest.raises(SpectrumRangeError, match="overflow"):
        check_spectrum_range(np.full((4, 3), 1e155))
    with pytest.raises(SpectrumRangeError, match="underflow"):
        check_spectrum_range(np.full((4, 3), 1e-170))
    with pytest.raises(SpectrumRangeError):
        layer_matrices(np.full((8, 4, 3, 3), 1e200), "conv2d")  # a conv kernel goes through it too
    # the check reads W in chunks: a large float64 matrix with one extreme entry far from the first chunk
    W = np.ones((1200, 1000))
    W[-1, -1] = 1e155
    with pytest.raises(SpectrumRangeError, match=r"1e\+155"):
        check_spectrum_range(W)


# ----------------------------------------------------------------- a model mixing all of them

def _broken_layers(torch) -> dict:
    rng = np.random.default_rng(9)
    single_nan = gaussian((300, 200), 10)
    single_nan[150, 100] = np.nan
    one_huge = gaussian(seed=11)
    one_huge[0, 0] = 1e300
    layers = {
        "all_nan": np.full(SHAPE, np.nan),
        "single_nan": single_nan,
        "neg_inf": np.where(gaussian(seed=12) > 2.5, -np.inf, gaussian(seed=12)),
        "zero": np.zeros(SHAPE),
        "constant": np.full(SHAPE, -0.7),
        "rank1": gaussian((SHAPE[0], 1), 13) @ gaussian((1, SHAPE[1]), 14),
        "one_huge": one_huge,
        "underflow": gaussian(seed=15) * 1e-300,
        "range": 10.0 ** rng.uniform(-30, 30, SHAPE),
        "fp16": (gaussian(seed=16) * 1e4).astype(np.float16),
        "int8": rng.integers(-100, 100, SHAPE).astype(np.int8),
        "complex": gaussian(seed=17) * (1 + 1j),
    }
    if torch is not None:
        layers["bf16"] = torch.from_numpy(gaussian(seed=18)).to(torch.bfloat16)
    return layers


#: reason class of every broken layer that fails (the others succeed)
EXPECTED_FAILURES = {"all_nan": "NaN or Inf weights", "single_nan": "NaN or Inf weights",
                     "neg_inf": "NaN or Inf weights", "zero": "all-zero weights",
                     "constant": "fewer than 2 eigenvalues above the fit threshold",
                     "rank1": "fewer than 2 eigenvalues above the fit threshold",
                     "one_huge": "eigenvalues overflow float64", "underflow": "eigenvalues underflow float64",
                     "complex": "complex weights"}


@pytest.mark.parametrize("where", [dict(workers=1), dict(executor="threads", workers=2),
                                   dict(executor="processes", workers=2)], ids=["serial", "threads", "processes"])
def test_a_model_mixing_good_and_broken_layers_keeps_every_good_row(where):
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test dependency
        torch = None
    good = {f"good{i}": gaussian((48 + 8 * i, 24 + 4 * i), 20 + i) for i in range(3)}
    broken = _broken_layers(torch)
    model = {}
    for i, (name, W) in enumerate(broken.items()):  # good layers between the broken ones
        model[f"{name}.weight"] = W
        if i % 5 == 0:
            g = f"good{i // 5}"
            model[f"{g}.weight"] = good[g]
    assert len(model) == len(broken) + len(good)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        report = spectralwatch.analyze(model, **where)
    d = report.details.set_index("name")
    assert sorted(d.index) == sorted(k[: -len(".weight")] for k in model)  # nothing lost
    alone = spectralwatch.analyze({f"{k}.weight": v for k, v in good.items()}).details.set_index("name")
    for g in good:  # exactly the rows the good layers get without the broken ones
        for col in ("status", "alpha", "xmin", "D", "lambda_max", "log_alpha_norm", "matrix_rank"):
            assert d.loc[g, col] == alone.loc[g, col], (g, col)
    for name in broken:
        if name in EXPECTED_FAILURES:
            assert d.loc[name, "status"] == "failed" and d.loc[name, "message"], name
            assert reason_class(d.loc[name, "message"]) == EXPECTED_FAILURES[name], (name, d.loc[name, "message"])
        else:
            assert d.loc[name, "status"] == "success" and np.isfinite(d.loc[name, "alpha"]), name
    assert report.num_failed == len(EXPECTED_FAILURES)
    counts = failure_summary(report.details)
    assert sum(counts.values()) == report.num_failed
    assert counts == {"NaN or Inf weights": 3, "fewer than 2 eigenvalues above the fit threshold": 2,
                      "all-zero weights": 1, "eigenvalues overflow float64": 1, "eigenvalues underflow float64": 1,
                      "complex weights": 1}
    ok = d[d["status"] == "success"]
    assert report.summary["alpha"] == pytest.approx(ok["alpha"].mean())


def test_cli_run_over_broken_layers_exits_0_and_counts_the_failures(tmp_path, capsys):
    from spectralwatch.cli import main

    path = tmp_path / "broken.npz"
    with np.errstate(over="ignore"):
        np.savez(path, **{"good.weight": gaussian(), "nan.weight": np.full(SHAPE, np.nan),
                          "zero.weight": np.zeros(SHAPE), "huge.weight": np.full(SHAPE, 1e200)})
    assert main(["analyze", str(path), "--no-progress"]) == 0
    assert "4 layers analysed, 3 failed" in capsys.readouterr().out
    assert main(["analyze", str(path), "--no-progress", "--format", "json"]) == 0
    import json

    doc = json.loads(capsys.readouterr().out)
    assert doc["num_failed"] == 3
    assert failure_summary(doc["details"]) == {"NaN or Inf weights": 1, "all-zero weights": 1,
                                               "eigenvalues overflow float64": 1}


# ------------------------------------------------------------------------- failure_summary itself

def test_reason_classes_of_the_known_messages():
    cases = {
        "weights contain 3 NaN and 0 Inf values": "NaN or Inf weights",
        "NonFiniteWeightsError: the product of the two layers has NaN or Inf values": "NaN or Inf weights",
        "all eigenvalues are zero (all-zero weights)": "all-zero weights",
        "only 1 eigenvalues above 1e-05; at least 2 are needed": "fewer than 2 eigenvalues above the fit threshold",
        "all 12 eigenvalues are equal": "all tail eigenvalues equal",
        "no candidate xmin between 1 and 2": "no xmin candidate",
        "xmax=40 would drop more than half of the 64 eigenvalues": "xmax drops too many eigenvalues",
        "evals contain 2 non-finite value(s) (NaN or inf)": "non-finite eigenvalues",
        "out of memory while analysing this layer": "out of memory",
        "the worker process died while analysing this layer (killed, or out of memory)": "worker process died",
        "lost on the Dask cluster: KilledWorker: ('task', <Worker>)": "lost on the Dask cluster",
        "CorruptFileError: Cannot read the .npz file 'x.npz' (corrupted or truncated)": "corrupted file",
        "LinAlgError: SVD did not converge": "LinAlgError",
        "numpy.linalg.LinAlgError: Eigenvalues did not converge": "LinAlgError",
        "something new happened: details": "something new happened",
        "": "unknown",
        None: "unknown",
        float("nan"): "unknown",
    }
    for message, cls in cases.items():
        assert reason_class(message) == cls, message
    assert len(reason_class("x" * 200)) == 60


def test_failure_summary_orders_by_count_and_ignores_successes():
    rows = [{"status": "failed", "message": "all eigenvalues are zero (all-zero weights)"},
            {"status": "success", "message": "small-n fit"},
            {"status": "failed", "message": "weights contain 1 NaN and 0 Inf values"},
            {"status": "failed", "message": "weights contain 0 NaN and 2 Inf values"}]
    assert list(failure_summary(rows).items()) == [("NaN or Inf weights", 2), ("all-zero weights", 1)]
    assert failure_text(rows) == "3 failed: 2 NaN or Inf weights, 1 all-zero weights"
    assert failure_summary(rows[1:2]) == {} and failure_text(rows[1:2]) == ""
    pd = pytest.importorskip("pandas")
    assert failure_summary(pd.DataFrame(rows)) == failure_summary(rows)
    assert failure_summary(pd.DataFrame()) == {} and failure_summary(None) == {}


# ------------------------------------------------------------- the optional analyses on broken layers

OPTION_SETS = [dict(mp_fit=True), dict(mp_fit=True, mp_fit_method="ww"), dict(randomize=True, rng=0),
               dict(detX=True), dict(vectors=True), dict(fix_fingers="clip_xmax"), dict(fix_fingers="xmin_peak"),
               dict(fit="TPL"), dict(bootstrap=10, rng=0), dict(gof_samples=10, rng=0), dict(compare_tails=True),
               dict(inverse=True), dict(pool=False), dict(xmax=3), dict(svd_method="gram"), dict(svd_method="svd")]


@pytest.mark.parametrize("options", OPTION_SETS, ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()))
def test_every_per_layer_option_gives_broken_layers_a_row_and_keeps_the_good_ones(options):
    broken = {k: v for k, v in _broken_layers(None).items() if k in
              ("all_nan", "zero", "constant", "rank1", "one_huge", "underflow", "complex", "fp16", "int8")}
    good = {"good0": gaussian((80, 40), 30), "good1": gaussian((72, 36), 31)}
    model = {f"{k}.weight": v for k, v in {**good, **broken}.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # e.g. bootstrap resamples of a failed layer
        d = spectralwatch.analyze(model, **options).details.set_index("name")
    assert sorted(d.index) == sorted({**good, **broken})  # one row each, nothing lost
    alone = spectralwatch.analyze({f"{k}.weight": v for k, v in good.items()}, **options).details.set_index("name")
    for g in good:
        assert d.loc[g, "status"] == "success" and np.isfinite(d.loc[g, "alpha"])
        assert d.loc[g, "alpha"] == alone.loc[g, "alpha"]
    for name in ("all_nan", "zero", "one_huge", "underflow", "complex"):
        assert d.loc[name, "status"] == "failed" and d.loc[name, "message"], name
    for name in ("fp16", "int8"):  # valid weights; with inverse=True, 1/lambda of 1e4-sized entries is below 1e-5
        assert d.loc[name, "status"] == "success" or (options.get("inverse") and "only 0 eigenvalues above"
                                                      in d.loc[name, "message"]), (name, d.loc[name, "message"])

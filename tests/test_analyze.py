"""End-to-end analyze(): planted truths, options, bad input, reports, the compat class."""

import hashlib
import json

import numpy as np
import pytest

import spectralwatch
from spectralwatch.options import WW_KEYWORDS

# WeightWatcher 0.7.7 keywords whose capability is not in this version: option -> (off values, what)
_NOT_YET = {k: (ww.off, ww.what) for k, ww in WW_KEYWORDS.items() if ww.status == "not_yet"}
from spectralwatch import (InvalidParameterError, NoLayersError, NotYetSupportedError, UnknownFormatError,
                           WeightWatcher)


def planted(n, m, alpha, rng):
    """W = U diag(sqrt(lambda)) V^T with lambda ~ Pareto(alpha): ESD density ~ lambda^-alpha."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # threaded LAPACK spins on a busy machine (a 3000 x 1500 QR: 50 s, not 1 s)
        u, _ = np.linalg.qr(rng.standard_normal((n, m)))
        v, _ = np.linalg.qr(rng.standard_normal((m, m)))
    lam = rng.pareto(alpha - 1, m) + 1.0
    return (u * np.sqrt(lam)) @ v.T


@pytest.mark.parametrize("alpha", [2.5, 3.0, 4.0])
def test_planted_power_law_alpha_is_recovered(alpha):
    rng = np.random.default_rng(int(alpha * 10))
    W = planted(3000, 1500, alpha, rng)
    row = spectralwatch.analyze(W).details.iloc[0]
    # MLE standard error is (alpha-1)/sqrt(n_tail); allow 4 of them plus 0.1 for the choice of xmin
    tol = 4 * (alpha - 1) / np.sqrt(row["n_tail"]) + 0.1
    assert abs(row["alpha"] - alpha) < tol, (row["alpha"], alpha, tol)
    assert row["status"] == "success"


def test_scaling_weights_leaves_alpha_unchanged():
    rng = np.random.default_rng(3)
    W = planted(1200, 600, 3.0, rng)
    a = spectralwatch.analyze(W).details.iloc[0]
    b = spectralwatch.analyze(5.0 * W).details.iloc[0]
    assert b["alpha"] == pytest.approx(a["alpha"], rel=1e-9)
    assert b["xmin"] == pytest.approx(25.0 * a["xmin"], rel=1e-9)
    assert b["lambda_max"] == pytest.approx(25.0 * a["lambda_max"], rel=1e-12)


def test_dict_model_rows_columns_and_summary():
    rng = np.random.default_rng(4)
    model = {"a.weight": rng.standard_normal((64, 32)), "b.weight": rng.standard_normal((128, 64)),
             "b.bias": rng.standard_normal(128), "norm.weight": np.ones(64)}
    rep = spectralwatch.analyze(model)
    d = rep.details
    assert list(d["layer_id"]) == [1, 2] and list(d["name"]) == ["a", "b"]
    assert list(rep.skipped["name"]) == ["norm"]
    for col in ["alpha", "alpha_weighted", "log_alpha_norm", "D", "sigma", "xmin", "xmax", "num_pl_spikes",
                "lambda_max", "norm", "log_norm", "spectral_norm", "log_spectral_norm", "stable_rank",
                "matrix_rank", "rank_loss", "weak_rank_loss", "entropy", "sv_max", "sv_min", "N", "M", "Q",
                "rf", "num_evals", "has_esd", "status", "warning", "longname", "layer_type"]:
        assert col in d.columns, col
    assert set(rep.summary) == {"log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm",
                                "stable_rank"}
    assert rep.summary["alpha"] == pytest.approx(d["alpha"].mean())
    np.testing.assert_allclose(rep.get_ESD("b").sum(), np.sum(model["b.weight"] ** 2), rtol=1e-12)
    assert rep.get_fit(1).alpha == d.loc[0, "alpha"]
    assert json.loads(rep.to_json())["num_layers"] == 2
    assert rep.to_csv().splitlines()[0].startswith("layer_id,name")
    assert "2 layers" in repr(rep)


def test_bad_layers_do_not_lose_the_others():
    rng = np.random.default_rng(5)
    nan_w = rng.standard_normal((50, 40))
    nan_w[1, 1] = np.nan
    model = {"good.weight": rng.standard_normal((60, 30)), "nan.weight": nan_w,
             "zero.weight": np.zeros((40, 20)), "row.weight": rng.standard_normal((1, 300)),
             "good2.weight": rng.standard_normal((80, 40))}
    rep = spectralwatch.analyze(model)
    d = rep.details.set_index("name")
    assert d.loc["good", "status"] == "success" and d.loc["good2", "status"] == "success"
    assert d.loc["nan", "status"] == "failed" and "NaN" in d.loc["nan", "message"]
    assert d.loc["zero", "status"] == "failed" and "zero" in d.loc["zero", "message"]
    assert d.loc["zero", "warning"] == ""  # a failed fit is not 'over-trained'
    assert "row" not in d.index and "min_evals" in rep.skipped.set_index("name").loc["row", "reason"]
    assert rep.num_failed == 2
    # failed layers are left out of the summary
    assert rep.summary["alpha"] == pytest.approx(d.loc[["good", "good2"], "alpha"].mean())
    # with min_evals=0 the 1 x N layer is analysed: one eigenvalue, a failed fit with a reason
    row = spectralwatch.analyze(model, min_evals=0, layers=["row"]).details.iloc[0]
    assert row["num_evals"] == 1 and row["status"] == "failed" and row["message"]


def test_no_analysable_layer_is_a_clear_error():
    with pytest.raises(NoLayersError, match="min_evals"):
        spectralwatch.analyze({"tiny.weight": np.ones((4, 4))})
    with pytest.raises(NoLayersError):
        spectralwatch.analyze({"bias": np.ones(3), "norm.weight": np.ones(5)})
    with pytest.warns(UserWarning, match="min_evals"):
        assert WeightWatcher(model={"tiny.weight": np.ones((4, 4))}).analyze().empty


def test_unknown_objects_and_missing_paths():
    with pytest.raises(UnknownFormatError):
        spectralwatch.analyze(42)
    with pytest.raises(FileNotFoundError):
        spectralwatch.analyze("/no/such/model.safetensors")


@pytest.mark.parametrize("kwargs, match", [
    ({"min_evals": -1}, "'min_evals' parameter of analyze must be an int >= 0. Got -1"),
    ({"fix_fingers": "yes"}, "'fix_fingers' parameter"),
    ({"xmax": 2.5}, "'xmax' parameter"),
    ({"fit": "lognormal"}, "'fit' parameter"),
    ({"pl_package": "powerlaw"}, "'pl_package'"),
    ({"pool": "no"}, "'pool' parameter"),
    ({"layers": [1, -2]}, "not both"),
    ({"min_size": 10}, "min_evals"),
])
def test_invalid_options_name_the_parameter(kwargs, match):
    # WeightWatcher's own keywords (pl_package, min_size) are taken by the drop-in class
    call = spectralwatch.WeightWatcher().analyze if set(kwargs) & set(WW_KEYWORDS) else spectralwatch.analyze
    with pytest.raises(InvalidParameterError, match=match):
        call(np.ones((20, 10)), **kwargs)


@pytest.mark.parametrize("option", sorted(_NOT_YET))
def test_options_not_in_this_version_raise_instead_of_being_ignored(option):
    watcher = spectralwatch.WeightWatcher()  # WeightWatcher's own keywords: the drop-in class takes them
    with pytest.raises(NotYetSupportedError, match=option):
        watcher.analyze(np.ones((20, 10)), **{option: True})
    watcher.analyze(np.random.default_rng(0).standard_normal((20, 10)), **{option: _NOT_YET[option][0][0]})


@pytest.mark.parametrize("option", sorted(WW_KEYWORDS))
def test_weightwatcher_keywords_given_to_analyze_say_where_they_belong(option):
    with pytest.raises(TypeError, match="WeightWatcher 0.7.7 keyword"):
        spectralwatch.analyze(np.ones((20, 10)), **{option: True})


def test_misspelt_option_suggests_the_right_one():
    with pytest.raises(TypeError, match="min_evals"):
        spectralwatch.analyze(np.ones((20, 10)), min_eval=3)


def test_layer_filters():
    rng = np.random.default_rng(6)
    model = {f"l{i}.weight": rng.standard_normal((40, 20)) for i in range(4)}
    assert list(spectralwatch.analyze(model, layers=[2, 3]).details["layer_id"]) == [2, 3]
    assert list(spectralwatch.analyze(model, layers=[-1]).details["layer_id"]) == [2, 3, 4]
    assert list(spectralwatch.analyze(model, layers=["l0", "l3"]).details["name"]) == ["l0", "l3"]
    assert list(spectralwatch.analyze(model, layers=["-l0"]).details["name"]) == ["l1", "l2", "l3"]
    assert len(spectralwatch.analyze(model, layers="dense").details) == 4
    assert list(spectralwatch.analyze(model, start_ids=10).details["layer_id"]) == [10, 11, 12, 13]


def test_pool_false_gives_one_row_per_kernel_position():
    rng = np.random.default_rng(7)
    model = {"conv.weight": rng.standard_normal((32, 16, 3, 3)), "fc.weight": rng.standard_normal((40, 20))}
    pooled = spectralwatch.analyze(model).details
    assert list(pooled["num_evals"]) == [16 * 9, 20] and list(pooled["rf"]) == [9, 1]
    sliced = spectralwatch.analyze(model, pool=False).details
    assert list(sliced["slice_id"]) == list(range(9)) + [0]
    assert (sliced["num_evals"].iloc[:9] == 16).all()
    # unpooled slices are scaled by rf/2, pooled ones by 1/2
    W0 = model["conv.weight"][:, :, 0, 0]
    assert sliced["lambda_max"].iloc[0] == pytest.approx(np.linalg.norm(W0, 2) ** 2 * 4.5, rel=1e-10)


def test_fix_fingers_and_xmax_options_reach_the_fit():
    rng = np.random.default_rng(8)
    W = planted(800, 400, 3.0, rng)
    d = spectralwatch.analyze(W, fix_fingers="clip_xmax").details
    assert {"num_fingers", "raw_alpha"} <= set(d.columns)
    d2 = spectralwatch.analyze(W, xmax=3).details
    assert d2.loc[0, "xmax"] < spectralwatch.analyze(W).details.loc[0, "xmax"]


def test_describe_lists_without_computing():
    model = {"a.weight": np.ones((64, 32)), "c.weight": np.ones((8, 4, 3, 3)), "n.weight": np.ones(3)}
    frame = spectralwatch.describe(model)
    assert list(frame["name"]) == ["a", "c"]
    assert list(frame["num_evals"]) == [32, 36]


def test_compat_class_round_trip():
    rng = np.random.default_rng(9)
    model = {"a.weight": rng.standard_normal((64, 32)), "b.weight": rng.standard_normal((70, 50))}
    ww = WeightWatcher(model=model)
    details = ww.analyze(min_evals=10)
    assert ww.get_details() is details
    assert ww.get_summary() == spectralwatch.analyze(model, min_evals=10).summary
    np.testing.assert_allclose(ww.get_ESD(layer=2), ww.report.get_ESD(2))
    assert len(ww.describe()) == 2


def test_npz_file_is_read_and_left_untouched(tmp_path):
    rng = np.random.default_rng(10)
    path = tmp_path / "m.npz"
    np.savez(path, **{"x.weight": rng.standard_normal((50, 25))})
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    rep = spectralwatch.analyze(str(path))
    assert rep.details.loc[0, "name"] == "x"
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before

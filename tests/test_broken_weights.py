"""Every kind of broken weight gets a defined row; none ends the run or loses other layers."""

import numpy as np
import pytest

import spectralwatch


def _model():
    rng = np.random.default_rng(0)
    good = rng.standard_normal((64, 32))
    nan = good.copy()
    nan[0, 0] = np.nan
    inf = good.copy()
    inf[1, 1] = np.inf
    huge_range = good.copy()
    huge_range[:, 0] *= 1e150  # Gram entries near 1e300: still finite in float64
    rank1 = np.outer(rng.standard_normal(64), rng.standard_normal(32))
    return {
        "good.weight": good,
        "nan.weight": nan,
        "inf.weight": inf,
        "zero.weight": np.zeros((64, 32)),
        "constant.weight": np.full((64, 32), 0.3),
        "rank1.weight": rank1,
        "tiny.weight": good * 1e-200,
        "huge_range.weight": huge_range,
        "fp16_overflow.weight": np.full((64, 32), 6e4, dtype=np.float16) * np.float16(2),  # inf in fp16
        "bf16_like.weight": good.astype(np.float32),
        "good2.weight": rng.standard_normal((80, 40)),
    }


def test_each_broken_layer_has_a_defined_outcome():
    with np.errstate(over="ignore"):
        model = _model()
    rep = spectralwatch.analyze(model)
    d = rep.details.set_index("name")
    assert set(d.index) == {k[:-len(".weight")] for k in model}  # nothing lost
    for name in ("good", "good2", "bf16_like", "huge_range"):
        assert d.loc[name, "status"] == "success", (name, d.loc[name, "message"])
    for name, word in (("nan", "NaN"), ("inf", "Inf"), ("fp16_overflow", "Inf"), ("zero", "zero")):
        assert d.loc[name, "status"] == "failed" and word in d.loc[name, "message"], name
    # rank-1 and constant matrices: one non-zero eigenvalue; the rank columns say so
    for name in ("rank1", "constant"):
        assert d.loc[name, "matrix_rank"] == 1 and d.loc[name, "rank_loss"] == 31
        assert d.loc[name, "status"] in ("success", "failed") and isinstance(d.loc[name, "message"], str)
    # a tiny but valid matrix: all eigenvalues below the fit threshold -> a failed fit with a reason
    assert d.loc["tiny", "status"] == "failed" and d.loc["tiny", "message"]
    assert rep.num_failed == int((d["status"] == "failed").sum())
    assert np.isfinite(rep.summary["alpha"])


@pytest.mark.parametrize("shape", [(1, 500), (500, 1), (2, 2)])
def test_degenerate_shapes_are_skipped_with_a_reason_or_fail_cleanly(shape):
    W = np.random.default_rng(1).standard_normal(shape)
    with pytest.raises(spectralwatch.NoLayersError, match="min_evals"):
        spectralwatch.analyze(W)
    row = spectralwatch.analyze(W, min_evals=0).details.iloc[0]
    # one eigenvalue cannot be fitted; two give a small-n fit that says so
    assert row["status"] == ("failed" if min(shape) == 1 else "success") and row["message"]

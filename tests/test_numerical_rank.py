"""The rank at the stored precision (numerical_rank, numerical_rank_loss; issue 14, item 1).

Planted truths: exact low-rank products stored as float64, float32, float16 and bfloat16 (torch),
full-rank Gaussian matrices in each, a GGUF Q8_0 tensor of known rank, and the actual rounding
error of each format against the bound the tolerance uses. The reference columns (matrix_rank,
rank_loss) must keep WeightWatcher's float64 rule whatever the dtype.
"""

from __future__ import annotations

import numpy as np
import pytest

import spectralwatch
from spectralwatch.core.metrics import matrix_rank
from spectralwatch.core.precision import storage_eps, storage_noise_bound

N, M, R = 400, 200, 40


def low_rank(seed=0, N=N, M=M, r=R):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, r)) @ rng.standard_normal((r, M)) / np.sqrt(r)


def reference_rank(W64) -> int:
    """WeightWatcher's rule on the float64 values: #{s > s_max * N * eps64} (numpy's matrix_rank)."""
    return matrix_rank(np.linalg.svd(W64, compute_uv=False), max(W64.shape))


@pytest.mark.parametrize("dtype,expected", [
    ("float64", 2.0 ** -52), ("float32", 2.0 ** -23), ("float16", 2.0 ** -10), ("bfloat16", 2.0 ** -7),
    ("torch.bfloat16", 2.0 ** -7), ("float8_e4m3fn", 2.0 ** -3), ("float8_e5m2", 2.0 ** -2),
    ("float8_e4m3fnuz", 2.0 ** -3), ("float8_e8m0fnu", 1.0), ("float4_e2m1fn_x2", 0.5), ("complex64", 2.0 ** -23),
    ("int8", 0.0), ("uint8", 0.0), ("bool", 0.0), ("qint8", 2.0 ** -23)])
def test_storage_eps_of_each_dtype(dtype, expected):
    assert storage_eps(dtype)[0] == expected


def test_quantised_weights_use_the_dequantised_dtype():
    assert storage_eps("float32", "Q4_0") == (2.0 ** -23, "float32 (dequantised Q4_0)")
    assert storage_eps("float32", "int8 (DequantizeLinear)")[0] == 2.0 ** -23
    assert storage_eps("int8", "Q8_0")[0] == 2.0 ** -23  # integer codes of a quantised tensor
    eps, basis = storage_eps("mixed")
    assert eps == np.finfo(np.float64).eps and "not recognised" in basis


@pytest.mark.parametrize("fmt", ["float32", "float16", "bfloat16"])
def test_noise_bound_covers_the_actual_rounding_error(fmt):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(3)
    for W in (rng.standard_normal((300, 150)), low_rank(1, 300, 150, 20), rng.standard_t(3, (300, 150))):
        stored = torch.tensor(W, dtype=getattr(torch, fmt)).double().numpy()
        err = np.linalg.norm(stored - W, 2)  # what rounding did to the matrix
        bound = storage_noise_bound(stored[None], storage_eps(fmt)[0])[0]
        assert err <= bound, (fmt, err, bound)
        assert err >= bound / 20  # and the bound is not absurdly loose


@pytest.mark.parametrize("fmt", ["float64", "float32", "float16", "bfloat16"])
def test_planted_low_rank_is_found_at_the_stored_precision(fmt):
    W = low_rank()
    if fmt in ("float64", "float32"):
        stored, W64 = W.astype(fmt), W.astype(fmt).astype(np.float64)
    else:
        torch = pytest.importorskip("torch")
        stored = torch.tensor(W, dtype=getattr(torch, fmt))
        W64 = stored.double().numpy()
    row = spectralwatch.analyze({"w.weight": stored}, mp_fit=True).details.iloc[0]
    assert row["dtype"] == fmt
    assert row["numerical_rank"] == R and row["numerical_rank_loss"] == M - R
    assert row["phase"] == "rank-collapse"
    # the reference columns keep WeightWatcher's float64 rule: blind to the rank in float32 and below
    assert row["matrix_rank"] == reference_rank(W64)
    assert row["rank_loss"] == M - reference_rank(W64)
    assert row["rank_loss"] == (M - R if fmt == "float64" else 0)


def test_the_issue_example_float32_1000x500_rank_100():
    rng = np.random.default_rng(0)
    A = (rng.standard_normal((1000, 100)) @ rng.standard_normal((100, 500))).astype(np.float32)
    row = spectralwatch.analyze({"a.weight": A}, mp_fit=True).details.iloc[0]
    assert (row["matrix_rank"], row["rank_loss"]) == (500, 0)  # the reference rule, unchanged
    assert (row["numerical_rank"], row["numerical_rank_loss"]) == (100, 400)
    assert row["phase"] == "rank-collapse"


@pytest.mark.parametrize("fmt", ["float64", "float32", "float16", "bfloat16"])
def test_full_rank_matrices_lose_nothing_or_only_the_noise_level(fmt):
    rng = np.random.default_rng(5)
    model = {"tall.weight": rng.standard_normal((400, 200)), "square.weight": rng.standard_normal((300, 300))}
    if fmt in ("float64", "float32"):
        model = {k: v.astype(fmt) for k, v in model.items()}
    else:
        torch = pytest.importorskip("torch")
        model = {k: torch.tensor(v, dtype=getattr(torch, fmt)) for k, v in model.items()}
    d = spectralwatch.analyze(model).details.set_index("name")
    assert d.loc["tall", "numerical_rank_loss"] == 0  # Q = 2: every singular value well above the noise
    # Q = 1: the smallest singular values of a square matrix reach 0; in bfloat16 about 1-2% of them
    # lie at the rounding-noise level (module notes of core/precision.py), far below rank-collapse
    assert d.loc["square", "numerical_rank_loss"] <= {"bfloat16": 9, "float16": 2}.get(fmt, 0)
    assert (d["numerical_rank"] + d["numerical_rank_loss"] == d["num_evals"]).all()


def test_conv_layer_ranks_are_summed_over_its_matrices():
    rng = np.random.default_rng(2)
    W = rng.standard_normal((64, 32, 3, 3)).astype(np.float32)
    W[:, :, 0, 0] = (rng.standard_normal((64, 4)) @ rng.standard_normal((4, 32))).astype(np.float32)  # rank 4
    pooled = spectralwatch.analyze({"c.weight": W}).details.iloc[0]
    assert pooled["numerical_rank"] == 8 * 32 + 4 and pooled["numerical_rank_loss"] == 28
    assert pooled["rank_loss"] == 0  # float64 rule: float32 rounding noise counts as rank
    slices = spectralwatch.analyze({"c.weight": W}, pool=False).details
    assert slices["numerical_rank_loss"].tolist() == [28] + [0] * 8


def _write_gguf(path, name, array, qname):
    gguf = pytest.importorskip("gguf")
    writer = gguf.GGUFWriter(str(path), "llama")
    qtype = gguf.GGMLQuantizationType[qname]
    writer.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_quantised_gguf_rank(tmp_path):
    """Q8_0: rows copied from 12 prototypes stay exact copies (rank 12); a Gaussian matrix stays full rank."""
    rng = np.random.default_rng(4)
    proto = rng.standard_normal((12, 128))
    copies = proto[rng.integers(0, 12, 256)]
    path = _write_gguf(tmp_path / "low.gguf", "blk.0.ffn_up.weight", copies, "Q8_0")
    row = spectralwatch.analyze(path).details.iloc[0]
    assert (row["dtype"], row["quant"]) == ("float32", "Q8_0")
    assert row["numerical_rank"] == 12 and row["numerical_rank_loss"] == 128 - 12
    path = _write_gguf(tmp_path / "full.gguf", "blk.0.ffn_up.weight", rng.standard_normal((256, 128)), "Q8_0")
    assert spectralwatch.analyze(path).details.iloc[0]["numerical_rank_loss"] == 0

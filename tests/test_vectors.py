"""Eigenvector localisation (vectors=True) and the analyses that change what is analysed
(inverse=True, intra=True, stacked=True): planted truths, invariants, and parity with WeightWatcher 0.7.7."""

import numpy as np
import pytest

import spectralwatch
from spectralwatch import InvalidParameterError, NoLayersError
from spectralwatch.core.matrices import layer_matrices
from spectralwatch.io.sources import open_source
from spectralwatch.core.cross_layer import align_pair, intra_pair_matrix, stack_layers, standardize
from spectralwatch.core.vectors import (VECTOR_COLUMNS, eigenvector_metrics, localization_ratio, participation_ratio,
                                   vector_entropy)

from reference import requires_reference, run_reference

#: float64 round-off of an eigendecomposition / SVD relative to the largest value (many ulps of slack)
EXACT = 1e-9


def gaussian(n, m, seed):
    return np.random.default_rng(seed).standard_normal((n, m))


# --------------------------------------------------------------------------- vector quantities

def test_localised_and_uniform_vectors_have_the_extreme_ratios():
    M = 64
    e1 = np.zeros(M)
    e1[5] = -1.0
    flat = np.full(M, 1 / np.sqrt(M))
    V = np.column_stack([e1, flat])
    assert localization_ratio(V) == pytest.approx([1.0, M], rel=1e-12)
    assert participation_ratio(V) == pytest.approx([1.0, M ** 0.25], rel=1e-12)
    # a Gaussian unit vector: ||v||_2/||v||_4 -> (M/3)^(1/4) (E v^4 = 3 sigma^4)
    g = gaussian(20000, 1, 0)[:, 0]
    assert participation_ratio(g / np.linalg.norm(g))[0] == pytest.approx((20000 / 3) ** 0.25, rel=0.02)


def test_vector_entropy_is_the_entropy_of_numpys_histogram():
    rng = np.random.default_rng(1)
    V = rng.standard_normal((300, 6))
    V[:, 0] = 0.25                      # constant |v|: numpy widens the range by +-0.5
    V[:, 1] = np.round(V[:, 1], 1)      # many values exactly on bin edges
    V[:150, 2] = 0.0
    for j in range(V.shape[1]):
        a = np.abs(V[:, j]) - np.abs(V[:, j]).mean()
        h = np.histogram(a, bins=100, density=True)[0] + 1e-10
        p = h / h.sum()
        assert vector_entropy(V[:, j])[0] == pytest.approx(-np.sum(p * np.log(p)), abs=1e-12)


def test_planted_localised_spike_has_a_localised_top_eigenvector():
    W = gaussian(600, 200, 2) / np.sqrt(600)
    W[10, 7] = 100.0                    # one huge element: its column is a localised top direction
    met = eigenvector_metrics(W)
    assert np.allclose(met.evals, np.sort(np.linalg.eigvalsh(W.T @ W)), rtol=0, atol=EXACT * met.evals[-1])
    cols = met.split(1)
    # off-axis entries ~ 100 W[10, j] / 100^2 ~ 4e-4 each, ~0.08 summed over 199 of them
    assert cols["tail_mean_loc_ratio"] < 1.2 and cols["tail_mean_part_ratio"] < 1.05
    assert cols["tail_var_loc_ratio"] == 0.0
    # the bulk vectors are delocalised Gaussian-like vectors: participation ratio near (M/3)^(1/4)
    assert cols["bulk_mean_part_ratio"] == pytest.approx((200 / 3) ** 0.25, rel=0.1)
    assert cols["bulk_mean_loc_ratio"] > 20 * cols["tail_mean_loc_ratio"]


def test_vectors_columns_in_analyze():
    W = gaussian(500, 150, 3)
    row = spectralwatch.analyze(W, vectors=True).details.iloc[0]
    assert all(c in row.index for c in VECTOR_COLUMNS) and len(VECTOR_COLUMNS) == 12
    met = eigenvector_metrics(W)
    expected = met.split(int(row["num_pl_spikes"]))
    for c in VECTOR_COLUMNS:
        assert row[c] == pytest.approx(expected[c], rel=1e-12)
    assert "tail_mean_loc_ratio" not in spectralwatch.analyze(W).details.columns


def test_failed_fit_has_no_tail():
    W = np.outer(np.arange(1, 41), np.ones(20)) + 0.0  # rank 1: one non-zero eigenvalue, the fit fails
    row = spectralwatch.analyze(W, vectors=True).details.iloc[0]
    assert row["status"] == "failed"
    assert np.isnan(row["tail_mean_vec_entropy"]) and np.isfinite(row["bulk_mean_vec_entropy"])


def test_vectors_with_inverse_use_the_same_eigenvectors():
    W = gaussian(300, 100, 4)
    row = spectralwatch.analyze(W, vectors=True, inverse=True).details.iloc[0]
    met = eigenvector_metrics(W)
    # the inverse ESD's tail is made of the smallest eigenvalues of W^T W: the reversed order
    n = int(row["num_pl_spikes"])
    assert row["tail_mean_loc_ratio"] == pytest.approx(np.mean(met.loc_ratio[:n]), rel=1e-9)


def _reference_matches_a_split(ours_row, ref_row, met):
    """The reference puts the eigenvector whose eigenvalue equals xmin on either side of the cut,
    depending on the rounding of its own (different) eigensolver: it must match our tail of
    num_pl_spikes vectors or that tail minus its smallest vector, exactly."""
    n = int(ours_row["num_pl_spikes"])
    for c in VECTOR_COLUMNS:
        assert ours_row[c] == pytest.approx(met.split(n)[c], rel=1e-12, nan_ok=True)
    def error(a, b):
        if np.isnan(a) or np.isnan(b):
            return 0.0 if np.isnan(a) and np.isnan(b) else np.inf
        # absolute floor: a variance of nearly equal O(1) values carries ~1e-15 of absolute round-off
        return abs(a - b) / (abs(b) + 1e-9)

    return min(max(error(met.split(n_tail)[c], float(ref_row[c])) for c in VECTOR_COLUMNS) for n_tail in (n, n - 1))


@requires_reference
@pytest.mark.reference
@pytest.mark.parametrize("which", ["mlp", "vgg", "gpt2"])
def test_vectors_parity_with_reference(which):
    from nets import gpt2_blocks, mlp, vgg11_like

    model = {"mlp": lambda: mlp(sizes=(160, 96, 48, 10)),
             "vgg": lambda: vgg11_like(width=0.125, num_classes=10),  # square conv slices included
             "gpt2": lambda: gpt2_blocks(n_layer=1, d=32, n_head=2, vocab=64, n_positions=32)}[which]()
    ours = spectralwatch.analyze(model, vectors=True, workers=1).details
    ref = run_reference(model, vectors=True).set_index("layer_id")
    refs = {r.layer_id: r for r in open_source(model).layers()}
    assert list(ours["layer_id"]) == list(ref.index)
    for _, row in ours.iterrows():
        r = refs[row["layer_id"]]
        mats = layer_matrices(r.load(), r.layer_type)
        met = eigenvector_metrics(mats.stack, mats.eval_scale)
        # exact up to the two eigensolvers' round-off (scipy eig vs numpy eigh)
        assert _reference_matches_a_split(row, ref.loc[row["layer_id"]], met) < 1e-8, row["layer_id"]


# -------------------------------------------------------------------------------------- inverse

def test_inverse_esd_is_one_over_lambda():
    W = gaussian(400, 100, 5)
    lam = np.sort(np.linalg.eigvalsh(W.T @ W))
    rep = spectralwatch.analyze(W, inverse=True)
    assert np.allclose(rep.get_ESD(0), np.sort(1 / lam), rtol=1e-9, atol=0)
    row = rep.details.iloc[0]
    assert row["lambda_max"] == pytest.approx(1 / lam[0], rel=1e-9)
    assert row["sv_max"] == pytest.approx(1 / np.sqrt(lam[0]), rel=1e-9)


def test_inverse_keeps_zero_eigenvalues_and_rank():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((150, 20)) @ rng.standard_normal((20, 60))  # rank 20 of 60
    plain = spectralwatch.analyze(W).details.iloc[0]
    inv = spectralwatch.analyze(W, inverse=True)
    row = inv.details.iloc[0]
    assert row["matrix_rank"] == plain["matrix_rank"] == 20 and row["rank_loss"] == plain["rank_loss"] == 40
    ev = inv.get_ESD(0)
    lam = np.sort(np.linalg.svd(W, compute_uv=False) ** 2)[-20:]
    assert np.allclose(ev[-20:], np.sort(1 / lam), rtol=1e-7)
    assert np.all(ev[:40] < 1e-10 * ev[-1])


def test_inverse_conv2d_keeps_the_conv_scaling():
    rng = np.random.default_rng(7)
    K = rng.standard_normal((32, 16, 3, 3))
    plain = spectralwatch.analyze({"c.weight": K}).get_ESD(1)
    inv = spectralwatch.analyze({"c.weight": K}, inverse=True).get_ESD(1)
    assert np.allclose(inv, np.sort(1 / plain), rtol=1e-9)  # 1 / (lambda / 2): the same pooled ESD inverted


@requires_reference
@pytest.mark.reference
def test_inverse_parity_with_reference():
    from nets import mlp

    model = mlp(sizes=(160, 96, 48, 10))
    ours = spectralwatch.analyze(model, inverse=True, workers=1).details
    ref = run_reference(model, inverse=True)
    for c in ["alpha", "xmin", "D", "num_pl_spikes", "lambda_max", "norm", "log_norm", "stable_rank",
              "entropy", "matrix_rank", "log_alpha_norm", "alpha_weighted"]:
        assert np.allclose(ours[c].astype(float), ref[c].astype(float), rtol=1e-6), c


# ---------------------------------------------------------------------------------------- intra

def test_align_pair_contracts_the_largest_common_size():
    a, b = np.ones((30, 50)), np.ones((20, 30))
    W0, W1 = align_pair(a, b)
    assert W0.shape == (50, 30) and W1.shape == (30, 20)
    assert align_pair(np.ones((3, 4)), np.ones((5, 6))) is None


def test_intra_esd_is_the_singular_values_of_the_normalised_product():
    rng = np.random.default_rng(8)
    W1, W2 = rng.standard_normal((120, 200)), rng.standard_normal((60, 120))  # torch (out, in) layout
    rep = spectralwatch.analyze({"a.weight": W1, "b.weight": W2}, intra=True, sparsify=False)
    row = rep.details.iloc[0]
    assert (row["layer_id"], row["name"], row["Xflag"]) == (2, "1 X 2", True)
    X = (W1.T @ W2.T) / (np.linalg.norm(W1) * np.linalg.norm(W2))
    sv = np.sort(np.linalg.svd(X, compute_uv=False))
    assert np.allclose(rep.get_ESD(2), sv, rtol=1e-8, atol=EXACT * sv[-1])
    assert (row["N"], row["M"], row["num_evals"]) == (200, 60, 60)
    assert row["sv_max"] == pytest.approx(np.sqrt(sv[-1]), rel=1e-9)


def test_intra_mask_is_seeded_and_incompatible_pairs_are_reported():
    rng = np.random.default_rng(9)
    sd = {"a.weight": rng.standard_normal((64, 100)), "b.weight": rng.standard_normal((32, 64)),
          "c.weight": rng.standard_normal((10, 17))}
    one = spectralwatch.analyze(sd, intra=True, rng=1)
    two = spectralwatch.analyze(sd, intra=True, rng=1)
    other = spectralwatch.analyze(sd, intra=True, rng=2)
    assert np.array_equal(one.get_ESD(2), two.get_ESD(2))
    assert not np.allclose(one.get_ESD(2), other.get_ESD(2))
    assert list(one.details["layer_id"]) == [2]
    skipped = one.skipped
    assert list(skipped.loc[skipped["rule"] == "intra", "layer_id"]) == [3]
    with pytest.raises(NoLayersError, match="at least two"):
        spectralwatch.analyze(sd, intra=True, layers=[1])


def test_intra_mask_normalisation():
    rng = np.random.default_rng(10)
    W0, W1 = rng.standard_normal((40, 30)), rng.standard_normal((30, 20))
    X = intra_pair_matrix(W0, W1, sparsify=True, rng=np.random.default_rng(0))
    S = np.random.default_rng(0).integers(0, 2, size=(30, 30)).astype(float)
    expected = W0 @ S @ W1 / (np.linalg.norm(W0) * np.linalg.norm(W1) + np.sqrt(np.linalg.norm(S)))
    assert np.allclose(X, expected, rtol=1e-12)


@requires_reference
@pytest.mark.reference
@pytest.mark.parametrize("which", ["mlp", "vgg"])
def test_intra_parity_with_reference(which):
    from nets import mlp, vgg11_like

    model = mlp(sizes=(160, 96, 48, 10)) if which == "mlp" else vgg11_like(width=0.125, num_classes=10)
    ours = spectralwatch.analyze(model, intra=True, sparsify=False, workers=1).details
    ref = run_reference(model, intra=True, sparsify=False)
    assert list(ours["layer_id"]) == list(ref["layer_id"])
    assert [n.strip() for n in ref["name"]] == list(ours["name"])
    for c in ["N", "M", "num_evals", "alpha", "xmin", "D", "num_pl_spikes", "lambda_max", "sv_max", "norm",
              "stable_rank", "entropy", "matrix_rank", "alpha_weighted", "log_alpha_norm"]:
        assert np.allclose(ours[c].astype(float), ref[c].astype(float), rtol=1e-6), c


@requires_reference
@pytest.mark.reference
def test_intra_mask_parity_with_reference_over_seeds():
    """The random mask: same distribution as the reference's (which draws from numpy's global state)."""
    from nets import mlp

    model = mlp(sizes=(160, 96, 48, 10))
    cols = ["lambda_max", "norm"]
    ours = np.array([spectralwatch.analyze(model, intra=True, rng=s, workers=1).details[cols].to_numpy(float)
                     for s in range(6)])
    refs, state = [], np.random.get_state()
    try:
        for s in range(6):
            np.random.seed(s)
            refs.append(run_reference(model, intra=True)[cols].to_numpy(float))
    finally:
        np.random.set_state(state)  # leave numpy's global state as we found it
    refs = np.array(refs)
    # per pair and column: means agree within 4 standard errors of their difference (6 draws each)
    se = np.sqrt(ours.var(axis=0, ddof=1) / 6 + refs.var(axis=0, ddof=1) / 6)
    assert np.all(np.abs(ours.mean(axis=0) - refs.mean(axis=0)) < 4 * se)


# -------------------------------------------------------------------------------------- stacked

def test_standardize_is_robust_and_handles_pruned_layers():
    B = np.random.default_rng(11).standard_normal((50, 40)) * 3 + 7
    Z = standardize(B)
    assert np.median(Z) == pytest.approx(0, abs=1e-12)
    assert np.median(np.abs(Z)) == pytest.approx(1, rel=1e-12)
    P = np.zeros((10, 10))
    P[0, :3] = [1, 2, 3]                 # MAD = 0: falls back to the standard deviation
    assert np.isfinite(standardize(P)).all() and np.std(standardize(P)) == pytest.approx(1)
    assert not standardize(np.full((4, 4), 2.0)).any()


def test_stacked_matrix_is_invariant_to_each_layers_scale_and_offset():
    rng = np.random.default_rng(12)
    sd = {"a.weight": rng.standard_normal((80, 50)), "b.weight": rng.standard_normal((60, 30)),
          "c.weight": rng.standard_normal((40, 50))}
    moved = {"a.weight": 5 * sd["a.weight"] + 1, "b.weight": 0.01 * sd["b.weight"] - 3, "c.weight": sd["c.weight"]}
    one, two = spectralwatch.analyze(sd, stacked=True), spectralwatch.analyze(moved, stacked=True)
    row = one.details.iloc[0]
    assert (row["layer_id"], row["name"], row["layer_type"], row["stacked_layers"]) == (0, "Stacked Layer",
                                                                                        "stacked", 3)
    assert (row["N"], row["M"]) == (180, 50)
    assert np.allclose(one.get_ESD(0), two.get_ESD(0), rtol=1e-9)
    W = stack_layers([sd["a.weight"], sd["b.weight"], sd["c.weight"]])
    assert np.allclose(one.get_ESD(0), np.sort(np.linalg.eigvalsh(W.T @ W)), rtol=1e-9)


def test_stacked_gaussian_layers_follow_marchenko_pastur():
    rng = np.random.default_rng(13)
    sd = {f"l{i}.weight": rng.standard_normal((500, 200)) * (i + 1) for i in range(4)}
    row = spectralwatch.analyze(sd, stacked=True).details.iloc[0]
    # MAD of N(0,1) is 0.6745: standardised entries have variance 1/0.6745^2; MP edge (sqrt(N)+sqrt(M))^2 var
    var = 1 / 0.6744897501960817 ** 2
    assert row["lambda_max"] == pytest.approx(var * (np.sqrt(2000) + np.sqrt(200)) ** 2, rel=0.05)


def test_variant_options_are_validated():
    W = gaussian(50, 20, 0)
    with pytest.raises(InvalidParameterError, match="'stacked' parameter of analyze"):
        spectralwatch.analyze(W, intra=True, stacked=True)
    with pytest.raises(InvalidParameterError, match="'vectors' parameter of analyze must be True or False"):
        spectralwatch.analyze(W, vectors="yes")

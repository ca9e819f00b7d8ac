"""Model distances and SVD editing (smoothing, sharpening): planted truths, inputs never modified,
written files, and parity with WeightWatcher 0.7.7."""

import copy
import hashlib
import json
import os

import numpy as np
import pytest

import spectralwatch
from spectralwatch import InvalidParameterError, WeightWatcher
from spectralwatch.tools.editing import truncate_components
from spectralwatch.core.metrics import matrix_rank

from reference import import_reference, quiet, requires_reference

torch = pytest.importorskip("torch")
safetensors = pytest.importorskip("safetensors")

#: float32 storage rounds every weight by ~6e-8 relative: a dropped component comes back as noise
#: whose eigenvalues are ~1e-15 of lambda_max; kept ones are far above this floor
NONZERO = 1e-10


def sha(path) -> str:
    """SHA-256 of a file, or of every file of a folder (names included)."""
    path = os.fspath(path)
    files = sorted(os.path.join(r, f) for r, _d, fs in os.walk(path) for f in fs) if os.path.isdir(path) else [path]
    h = hashlib.sha256()
    for f in files:
        with open(f, "rb") as fh:
            h.update(os.path.relpath(f, path).encode() + fh.read())
    return h.hexdigest()


def nonzero_evals(W) -> int:
    s = np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)
    return int(np.sum(s * s > NONZERO * s[0] ** 2))


def gaussian(n, m, seed):
    return np.random.default_rng(seed).standard_normal((n, m))


def small_state_dict(seed=0):
    rng = np.random.default_rng(seed)
    return {"fc1.weight": rng.standard_normal((96, 64)).astype(np.float32),
            "fc1.bias": rng.standard_normal(96).astype(np.float32),
            "conv.weight": rng.standard_normal((24, 12, 3, 3)).astype(np.float32),
            "norm.weight": np.ones(24, dtype=np.float32),
            "fc2.weight": rng.standard_normal((10, 96)).astype(np.float32)}


def save(sd, path, metadata=None):
    from safetensors.numpy import save_file

    save_file(sd, str(path), metadata=metadata)
    return str(path)


# ------------------------------------------------------------------------------------- the maths

def test_truncation_is_the_best_rank_k_approximation_ranked_across_matrices():
    rng = np.random.default_rng(0)
    U = np.linalg.qr(rng.standard_normal((2, 30, 5)))[0]
    V = np.linalg.qr(rng.standard_normal((2, 5, 5)))[0]
    s = np.array([[9.0, 5.0, 3.0, 1.0, 0.5], [8.0, 4.0, 2.0, 0.7, 0.1]])
    stack = np.matmul(U * s[:, None, :], np.swapaxes(V, 1, 2))  # two 30 x 5 matrices
    new, keep = truncate_components(stack, 3)
    assert keep.sum() == 3 and keep[0, 0] and keep[1, 0] and keep[0, 1]
    # Eckart-Young: the error is exactly the dropped singular values
    dropped = np.sort(s.ravel())[:-3]
    assert np.linalg.norm(stack - new) == pytest.approx(np.sqrt(np.sum(dropped ** 2)), rel=1e-10)
    new, keep = truncate_components(stack, -2)  # remove the two largest: 9 and 8
    assert not keep[0, 0] and not keep[1, 0] and keep.sum() == 8


def test_svd_percent_leaves_exactly_k_nonzero_eigenvalues():
    torch.manual_seed(0)
    layer = torch.nn.Linear(256, 256)  # the 4096 x 4096 figure below, at a size the default suite affords
    before = layer.weight.detach().clone()
    result = spectralwatch.svd_smoothing(layer, method="svd", percent=0.2)
    assert torch.equal(layer.weight, before) and result.model is not layer
    assert nonzero_evals(result.model.weight.detach()) == int(0.2 * 256) == 51
    W = gaussian(150, 100, 1)  # float64 end to end: the exact numerical rank
    out = spectralwatch.svd_smoothing(W, method="svd", percent=0.2).model
    assert matrix_rank(np.linalg.svd(out, compute_uv=False), 150) == 20
    assert spectralwatch.analyze(out).details.loc[0, "matrix_rank"] == 20


@pytest.mark.slow
def test_svd_percent_on_a_4096_layer_leaves_819_eigenvalues(tmp_path):
    """WeightWatcher's own figure: a 4096 x 4096 layer smoothed to 20% keeps int(0.2 * 4096) = 819."""
    torch.manual_seed(0)
    path = tmp_path / "big.safetensors"
    from safetensors.torch import save_file

    save_file({"fc.weight": torch.nn.Linear(4096, 4096).weight.detach()}, str(path))
    before = sha(path)
    result = spectralwatch.svd_smoothing(str(path), method="svd", percent=0.2, out=tmp_path / "smooth.safetensors")
    assert sha(path) == before
    assert result.layers[0].kept == 819
    evals = spectralwatch.analyze(result.path).get_ESD(1)
    assert int(np.sum(evals > NONZERO * evals[-1])) == 819


# ----------------------------------------------------------------------- inputs are never modified

def test_file_hash_unchanged_after_every_command(tmp_path):
    sd = small_state_dict()
    path = save(sd, tmp_path / "model.safetensors", metadata={"format": "pt", "note": "kept"})
    before = sha(path)
    smooth = spectralwatch.svd_smoothing(path, method="svd", percent=0.5, out=tmp_path / "s.safetensors")
    sharp = spectralwatch.svd_sharpness(path, rng=0, out=tmp_path / "h.safetensors")
    spectralwatch.svd_smoothing(path, method="detX", out=tmp_path / "d.safetensors")
    spectralwatch.analyze(path, vectors=True, inverse=True)
    spectralwatch.analyze(path, intra=True, rng=0)
    spectralwatch.analyze(path, stacked=True)
    spectralwatch.distances(path, smooth.path, method="cka")
    WeightWatcher(model=path).SVDSmoothing(percent=0.5, method="svd", out=str(tmp_path / "w.safetensors"))
    assert sha(path) == before
    from safetensors import safe_open

    with safe_open(smooth.path, "np") as f:
        assert f.metadata() == {"format": "pt", "note": "kept"}
        assert sorted(f.keys()) == sorted(sd)
        assert np.array_equal(f.get_tensor("fc1.bias"), sd["fc1.bias"])  # not a layer: copied as is
        assert f.get_tensor("fc1.weight").dtype == np.float32
        assert nonzero_evals(f.get_tensor("fc1.weight")) == 32
    assert {e.status for e in sharp.layers} <= {"edited", "unchanged"}


def test_objects_are_never_modified(tmp_path):
    sd = {k: torch.from_numpy(v) for k, v in small_state_dict().items()}
    frozen = {k: v.clone() for k, v in sd.items()}
    arr = gaussian(60, 40, 2)
    arr_before = arr.copy()
    new_sd = spectralwatch.svd_smoothing(sd, method="svd", percent=0.5).model
    spectralwatch.svd_sharpness(sd, rng=1)
    new_arr = spectralwatch.svd_smoothing(arr, method="svd", percent=0.5).model
    assert all(torch.equal(sd[k], frozen[k]) for k in sd) and np.array_equal(arr, arr_before)
    assert new_sd["fc1.weight"].dtype == torch.float32 and not torch.equal(new_sd["fc1.weight"], sd["fc1.weight"])
    assert torch.equal(new_sd["fc1.bias"], sd["fc1.bias"])
    assert nonzero_evals(new_arr) == 20
    wrapped = {"state_dict": {k: v.numpy() for k, v in sd.items()}, "epoch": 3}
    new_wrapped = spectralwatch.svd_smoothing(wrapped, method="svd", percent=0.25).model
    assert new_wrapped["epoch"] == 3 and nonzero_evals(new_wrapped["state_dict"]["fc2.weight"]) == 2


def test_out_is_required_for_paths_and_the_input_is_only_overwritten_on_request(tmp_path):
    path = save(small_state_dict(), tmp_path / "m.safetensors")
    with pytest.raises(InvalidParameterError, match="'out' parameter of svd_smoothing must be a new path"):
        spectralwatch.svd_smoothing(path)
    with pytest.raises(InvalidParameterError, match="must differ from the model's own path"):
        spectralwatch.svd_sharpness(path, out=path)
    with pytest.raises(InvalidParameterError, match="ending in '.safetensors'"):
        spectralwatch.svd_smoothing(path, out=tmp_path / "x.pt")
    with pytest.raises(InvalidParameterError, match="'method' parameter of svd_smoothing"):
        spectralwatch.svd_smoothing(path, method="lowrank", out=tmp_path / "y.safetensors")
    with pytest.raises(InvalidParameterError, match="'percent' parameter"):
        spectralwatch.svd_smoothing(path, method="svd", percent=1.5, out=tmp_path / "y.safetensors")
    before = sha(path)
    result = spectralwatch.svd_smoothing(path, method="svd", percent=0.5, inplace=True)
    assert result.path == path and sha(path) != before
    assert list(spectralwatch.analyze(path).details["name"]) == ["conv", "fc1", "fc2"]  # still a valid file


def test_inplace_torch_module_is_explicit():
    layer = torch.nn.Linear(64, 48)
    result = spectralwatch.svd_smoothing(layer, method="svd", percent=0.5, inplace=True)
    assert result.model is layer and nonzero_evals(layer.weight.detach()) == 24


def test_bfloat16_weights_are_written_back_as_bfloat16(tmp_path):
    from safetensors.torch import load_file, save_file

    W = torch.randn(80, 40).to(torch.bfloat16)
    path = tmp_path / "bf.safetensors"
    save_file({"fc.weight": W, "emb.weight": torch.randn(30, 20).to(torch.bfloat16)}, str(path))
    out = spectralwatch.svd_smoothing(str(path), method="svd", percent=0.5, out=tmp_path / "o.safetensors")
    got = load_file(out.path)
    assert got["fc.weight"].dtype == torch.bfloat16
    expected = spectralwatch.svd_smoothing(W.float().double().numpy(), method="svd", percent=0.5).model
    assert torch.equal(got["fc.weight"], torch.from_numpy(expected).to(torch.bfloat16))  # round to nearest even


def test_folder_of_shards(tmp_path):
    src = tmp_path / "hf"
    src.mkdir()
    sd = small_state_dict(3)
    save({k: sd[k] for k in ("fc1.weight", "fc1.bias")}, src / "model-00001-of-00002.safetensors")
    save({k: sd[k] for k in ("conv.weight", "norm.weight", "fc2.weight")}, src / "model-00002-of-00002.safetensors")
    index = {"weight_map": {k: ("model-00001-of-00002.safetensors" if k.startswith("fc1") else
                                "model-00002-of-00002.safetensors") for k in sd}}
    (src / "model.safetensors.index.json").write_text(json.dumps(index))
    (src / "config.json").write_text("{}")
    before = sha(src)
    result = spectralwatch.svd_smoothing(str(src), method="svd", percent=0.5, out=tmp_path / "out")
    assert sha(src) == before
    assert sorted(os.listdir(result.path)) == sorted(os.listdir(src))
    plain = spectralwatch.analyze(str(src)).details
    edited = spectralwatch.analyze(result.path).details
    assert list(plain["name"]) == list(edited["name"])
    assert [e.status for e in result.layers] == ["edited"] * 3


# ------------------------------------------------------------------------------------- the counts

def test_counts_are_the_ones_analyze_reports():
    rng = np.random.default_rng(4)
    sd = {"a.weight": rng.standard_normal((200, 80)) + 3 * np.outer(rng.standard_normal(200), rng.standard_normal(80)),
          "b.weight": rng.standard_normal((120, 60)), "c.weight": rng.standard_normal((16, 8, 3, 3))}
    rows = spectralwatch.analyze(sd, detX=True, mp_fit=True).details.set_index("layer_id")
    for method, column in (("detX", "detX_num"), ("rmt", "num_spikes"), ("alpha_min", "num_pl_spikes")):
        for e in spectralwatch.svd_smoothing(sd, method=method).layers:
            assert e.k == rows.loc[e.layer_id, column], (method, e)
            if e.status == "edited":
                assert e.kept == e.k and e.removed == e.num_evals - e.k


def test_rmt_keeps_a_planted_signal():
    rng = np.random.default_rng(5)
    U, V = np.linalg.qr(rng.standard_normal((200, 3)))[0], np.linalg.qr(rng.standard_normal((100, 3)))[0]
    signal = (U * [80.0, 60.0, 45.0]) @ V.T  # 3 spikes far above the bulk edge sqrt(200) + sqrt(100) = 24
    W = rng.standard_normal((200, 100)) + signal
    result = spectralwatch.svd_smoothing(W, method="rmt")
    assert result.layers[0].k == 3 and nonzero_evals(result.model) == 3
    # denoised: the rank-3 projection is much closer to the signal than W (the error left, ~sqrt(3) x the
    # bulk edge, is what the noise puts inside the signal's subspace)
    assert np.linalg.norm(result.model - signal) < 0.25 * np.linalg.norm(W - signal)


def test_sharpness_removes_correlation_traps():
    rng = np.random.default_rng(6)
    W = rng.standard_normal((300, 150))
    clean = spectralwatch.svd_sharpness(W, rng=0)
    assert clean.layers[0].status == "unchanged" and np.array_equal(clean.model, W)
    W[7, 11] = 150.0  # one huge element: a spike that survives shuffling (a trap)
    one = spectralwatch.svd_sharpness(W, rng=0)
    two = spectralwatch.svd_sharpness(W, rng=0)
    assert one.layers[0].k == 1 and one.layers[0].removed == 1
    assert np.array_equal(one.model, two.model)
    s_old = np.linalg.svd(W, compute_uv=False)
    s_new = np.linalg.svd(one.model, compute_uv=False)
    assert np.allclose(s_new[:-1], s_old[1:], rtol=1e-9) and abs(one.model[7, 11]) < 10


def test_unpooled_edits_each_kernel_position():
    K = np.random.default_rng(7).standard_normal((32, 16, 3, 3))
    result = spectralwatch.svd_smoothing({"c.weight": K}, method="svd", percent=0.25, pool=False)
    assert [e.slice_id for e in result.layers] == list(range(9)) and all(e.kept == 4 for e in result.layers)
    new = result.model["c.weight"]
    assert all(nonzero_evals(new[:, :, i, j]) == 4 for i in range(3) for j in range(3))


# --------------------------------------------------------------------------------------- distances

def test_distances_planted():
    rng = np.random.default_rng(8)
    a = {"x.weight": rng.standard_normal((50, 30)), "x.bias": np.zeros(50),
         "c.weight": rng.standard_normal((16, 8, 3, 3))}
    D = rng.standard_normal((50, 30))
    b = {"x.weight": a["x.weight"] + D, "x.bias": np.full(50, 0.5), "c.weight": 2 * a["c.weight"]}
    raw = spectralwatch.distances(a, b).details.set_index("layer_id")
    assert raw.loc[1, "delta_W"] == pytest.approx(np.linalg.norm(D), rel=1e-12)
    assert raw.loc[1, "delta_b"] == pytest.approx(0.5 * np.sqrt(50)) and raw.loc[1, "b_shape"] == (50,)
    assert raw.loc[2, "delta_W"] == pytest.approx(np.linalg.norm(a["c.weight"]), rel=1e-12)  # ids: *.weight keys
    euc = spectralwatch.distances(a, b, method="euclidean").details.set_index("layer_id")
    slices = [np.linalg.norm(a["c.weight"][:, :, i, j]) for i in range(3) for j in range(3)]
    assert euc.loc[2, "delta_W"] == pytest.approx(np.mean(slices), rel=1e-12)
    cka = spectralwatch.distances(a, b, method="cka")
    assert cka.details.set_index("layer_id").loc[2, "delta_W"] == pytest.approx(1.0, rel=1e-12)  # scale-free
    assert spectralwatch.distances(a, a, method="cka").mean_delta_W == pytest.approx(1.0, rel=1e-12)
    unpooled = spectralwatch.distances(a, b, method="euclidean", pool=False).details
    assert list(unpooled.loc[unpooled["layer_id"] == 2, "slice_id"]) == list(range(9))


def test_distances_mixed_inputs_and_mismatches(tmp_path):
    torch.manual_seed(1)
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 10))
    path = tmp_path / "m.safetensors"
    from safetensors.torch import save_file

    save_file({k: v.detach().contiguous() for k, v in model.state_dict().items()}, str(path))
    same = spectralwatch.distances(model, str(path))
    assert same.mean_delta_W == 0.0 and same.mean_delta_b == 0.0 and list(same.details["layer_id"]) == [1, 3]
    other = torch.nn.Sequential(torch.nn.Linear(40, 20), torch.nn.ReLU(), torch.nn.Linear(20, 10))
    with pytest.raises(ValueError, match="same architecture"):
        spectralwatch.distances(model, other)
    with pytest.raises(InvalidParameterError, match="'method' parameter of distances"):
        spectralwatch.distances(model, model, method="cosine")


def test_compat_methods(tmp_path):
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Linear(40, 30), torch.nn.ReLU(), torch.nn.Linear(30, 16))
    before = copy.deepcopy(model.state_dict())
    watcher = WeightWatcher(model=model)
    avg_dW, avg_db, details = watcher.distances(model, model, method="euclidean")
    assert avg_dW == 0.0 and details.index.name == "layer_id"
    smoothed = watcher.SVDSmoothing(method="svd", percent=0.5)
    assert watcher.model is smoothed and smoothed is not model
    assert all(torch.equal(model.state_dict()[k], before[k]) for k in before)
    assert nonzero_evals(smoothed[0].weight.detach()) == 15
    sharpened = watcher.SVDSharpness(model=model, rng=0)
    assert isinstance(sharpened, torch.nn.Sequential)


# ------------------------------------------------------------------------------------------ parity

def _reference_watcher(model):
    ww = import_reference()
    with quiet():
        return ww.WeightWatcher(model=copy.deepcopy(model))


@requires_reference
@pytest.mark.reference
@pytest.mark.parametrize("method", ["raw", "euclidean", "cka"])
def test_distances_parity_with_reference(method):
    from nets import gpt2_blocks, mlp, vgg11_like

    for make in (lambda s: mlp(sizes=(160, 96, 48, 10), seed=s),
                 lambda s: vgg11_like(width=0.125, num_classes=10, seed=s),
                 lambda s: gpt2_blocks(n_layer=1, d=32, n_head=2, vocab=64, n_positions=32, seed=s)):
        a, b = make(0), make(1)
        ours = spectralwatch.distances(a, b, method=method).as_tuple()
        watcher = _reference_watcher(a)
        with quiet():
            ref = watcher.distances(copy.deepcopy(a), copy.deepcopy(b), method=method)
        assert list(ours[2].index) == list(ref[2].index)
        assert list(ours[2]["name"]) == list(ref[2]["name"])
        # the reference converts weights to float32 and accumulates in float32 (relative error ~1e-7 sqrt(n))
        assert np.allclose(ours[2]["delta_W"], ref[2]["delta_W"].astype(float), rtol=2e-5)
        assert np.allclose(ours[2]["delta_b"], ref[2]["delta_b"].astype(float), rtol=2e-5, atol=1e-6)
        assert ours[0] == pytest.approx(float(ref[0]), rel=2e-5)


@requires_reference
@pytest.mark.reference
@pytest.mark.parametrize("method", ["svd", "detX", "alpha_min"])
def test_smoothing_parity_with_reference(method):
    from nets import mlp

    model = mlp(sizes=(160, 96, 48, 10))
    ours = spectralwatch.svd_smoothing(model, method=method, percent=0.3).model
    watcher = _reference_watcher(model)
    with quiet():
        ref = watcher.SVDSmoothing(method=method, percent=0.3)
    for i in (0, 2, 4):
        W = model.net[i].weight.detach().double().numpy()
        Wo = ours.net[i].weight.detach().double().numpy()
        Wr = ref.net[i].weight.detach().double().numpy()
        # the same number of components is kept (the counts are deterministic) ...
        assert nonzero_evals(Wo) == nonzero_evals(Wr), (method, i)
        # ... and ours is the exact truncated SVD, never farther from W than the reference's randomized one
        assert np.linalg.norm(W - Wo) <= np.linalg.norm(W - Wr) * (1 + 1e-6)


@requires_reference
@pytest.mark.reference
def test_sharpness_parity_with_reference():
    rng = np.random.default_rng(9)
    layer = torch.nn.Linear(100, 200, bias=False)
    W = rng.standard_normal((200, 100)) * 0.05
    W[7, 11] = 10.0
    with torch.no_grad():
        layer.weight.copy_(torch.from_numpy(W))
    model = torch.nn.Sequential(layer)
    ours = spectralwatch.svd_sharpness(model, rng=0, mp_fit_method="ww").model
    watcher = _reference_watcher(model)
    with quiet():
        ref = watcher.SVDSharpness(model=copy.deepcopy(model))  # it returns its model argument
    s = np.linalg.svd(W, compute_uv=False)
    for edited in (ours, ref):  # both remove exactly the one trap: the largest component
        s_new = np.linalg.svd(edited[0].weight.detach().double().numpy(), compute_uv=False)
        assert np.allclose(s_new[:-1], s[1:], rtol=1e-5)

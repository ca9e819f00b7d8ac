"""Layer types beyond the reference, grouped convolutions, fused projections, Hugging Face folders."""

from __future__ import annotations

import json

import numpy as np
import pytest

import spectralwatch
from spectralwatch.errors import InvalidParameterError
from spectralwatch.core.matrices import layer_matrices, matrix_geometry
from spectralwatch.io.sources import open_source

torch = pytest.importorskip("torch")
nn = torch.nn

from realmodels import fetch  # noqa: E402


def evals_of(W):
    return np.sort(np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False) ** 2)


# --------------------------------------------------------------------------------------------
# packed attention, recurrent gates, conv3d, transposed convolutions
# --------------------------------------------------------------------------------------------

class Seq(nn.Module):
    def __init__(self):
        super().__init__()
        self.attn = nn.MultiheadAttention(24, 3)
        self.lstm = nn.LSTM(16, 20, num_layers=2, bidirectional=True)
        self.gru = nn.GRU(16, 12)
        self.rnn = nn.RNN(16, 10)
        self.c3 = nn.Conv3d(4, 6, 3)
        self.up = nn.ConvTranspose2d(6, 4, 3)


@pytest.fixture(scope="module")
def seq():
    torch.manual_seed(0)
    return Seq()


def test_packed_qkv_and_gates_from_a_module_and_its_state_dict(seq):
    for model in (seq, seq.state_dict()):
        refs = {r.longname: r for r in open_source(model).layers()}
        w = seq.attn.in_proj_weight.detach().numpy()
        for k, part in enumerate("qkv"):
            ref = refs[f"attn.in_proj_weight.{part}"]
            assert ref.layer_type == "dense" and ref.shape == (24, 24)
            np.testing.assert_array_equal(ref.load(), w[24 * k: 24 * (k + 1)])
        ih = seq.lstm.weight_ih_l1_reverse.detach().numpy()  # (4 * 20, 2 * 20): i, f, g, o
        np.testing.assert_array_equal(refs["lstm.weight_ih_l1_reverse.g"].load(), ih[40:60])
        assert refs["lstm.weight_hh_l0.o"].layer_type == "lstm" and refs["lstm.weight_hh_l0.o"].shape == (20, 20)
        assert [n for n in refs if n.startswith("gru.weight_hh_l0.")] == [f"gru.weight_hh_l0.{g}" for g in "rzn"]
        assert refs["gru.weight_ih_l0.z"].layer_type == "gru" and refs["rnn.weight_hh_l0"].layer_type == "rnn"
        assert refs["c3"].layer_type == "conv3d"
        # the reference's ids are kept: the new matrices are numbered after every other layer
        parts = [r for n, r in refs.items() if "_weight." in n or ".weight_" in n or n.startswith("rnn.")]
        assert min(r.layer_id for r in parts) > refs["up"].layer_id


def test_new_layer_types_are_analysed(seq):
    report = spectralwatch.analyze(seq, min_evals=1)
    d = report.details.set_index("longname")
    assert d.loc["c3", "rf"] == 27 and d.loc["c3", "num_evals"] == 4 * 27
    assert d.loc["up", "layer_type"] == "conv_transpose" and d.loc["up", "rf"] == 9
    W = seq.c3.weight.detach().numpy().reshape(6, 4, 27)
    np.testing.assert_allclose(report.get_ESD("c3"), np.sort(np.concatenate([evals_of(W[:, :, i]) for i in range(27)])),
                               rtol=1e-9)
    assert (d["status"] == "success").sum() >= 40
    assert set(d["quant"]) == {""} and set(d["dtype"]) == {"float32"}


# --------------------------------------------------------------------------------------------
# grouped and depthwise convolutions
# --------------------------------------------------------------------------------------------

def test_block_treatment_is_the_block_diagonal_spectrum():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((12, 3, 3, 3))  # groups=4: out 12 = 4 x 3, in 12 = 4 x 3
    mats = layer_matrices(W, "conv2d", groups=4, grouped_conv="block", conv2d_norm=False)
    assert matrix_geometry("conv2d", W.shape, groups=4, grouped_conv="block") == (12, 12, 9)
    full = []
    for pos in range(9):  # the true 12 x 12 map of each kernel position
        blockdiag = np.zeros((12, 12))
        for g in range(4):
            blockdiag[3 * g:3 * g + 3, 3 * g:3 * g + 3] = W.reshape(12, 3, 9)[3 * g:3 * g + 3, :, pos]
        full.append(evals_of(blockdiag))
    got = np.sort(np.concatenate([evals_of(m) for m in mats.stack]))
    np.testing.assert_allclose(got, np.sort(np.concatenate(full)), rtol=1e-10, atol=1e-12)
    ref = layer_matrices(W, "conv2d", groups=4, grouped_conv="reference")
    assert ref.stack.shape == (9, 12, 3)  # the reference slices the stored tensor as if dense


def test_depthwise_default_is_the_reference_and_block_is_opt_in():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Conv2d(32, 32, 3, groups=32), nn.Conv2d(32, 32, 1))
    d_ref = spectralwatch.describe(model)
    assert list(d_ref["num_evals"]) == [9, 32]  # the reference's 9-eigenvalue "ESD"
    report = spectralwatch.analyze(model, grouped_conv="block")
    d = report.details
    assert list(d["num_evals"]) == [32 * 9, 32] and d["N"].iloc[0] == 32 and d["M"].iloc[0] == 32
    W = model[0].weight.detach().double().numpy()
    np.testing.assert_allclose(report.get_ESD(1), np.sort(0.5 * (W ** 2).ravel()), rtol=1e-12)
    sd = spectralwatch.analyze(model.state_dict(), grouped_conv="block")  # (C, 1, k, k) read as depthwise
    np.testing.assert_allclose(sd.details["alpha"], d["alpha"])
    with pytest.raises(InvalidParameterError, match="grouped_conv"):
        spectralwatch.analyze(model, grouped_conv="block", pool=False)
    with pytest.raises(InvalidParameterError, match="grouped_conv"):
        spectralwatch.analyze(model, grouped_conv="blocks")


# --------------------------------------------------------------------------------------------
# fused projections, folders, describe(skipped=True)
# --------------------------------------------------------------------------------------------

def _save(sd, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def test_split_fused_gpt2_when_the_config_says_so(tmp_path):
    torch.manual_seed(3)
    d = 16
    sd = {"h.0.attn.c_attn.weight": torch.randn(d, 3 * d), "h.0.attn.c_proj.weight": torch.randn(d, d)}
    _save(sd, tmp_path / "model.safetensors")
    default = spectralwatch.describe(tmp_path)
    assert list(default["name"]) == ["h.0.attn.c_attn", "h.0.attn.c_proj"]  # the reference's view
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": d, "n_head": 2}))
    listed = spectralwatch.describe(tmp_path, split_fused=True, skipped=True)
    analysed = listed[listed["analysed"]]
    assert list(analysed["name"]) == ["h.0.attn.c_proj"] + [f"h.0.attn.c_attn.{p}" for p in "qkv"]
    assert "split_fused=True" in listed.loc[~listed["analysed"], "reason"].iloc[0]
    refs = {r.name: r for r in open_source(tmp_path).layers()}
    report = spectralwatch.analyze(tmp_path, split_fused=True)
    np.testing.assert_allclose(report.get_ESD("h.0.attn.c_attn.k"),
                               evals_of(refs["h.0.attn.c_attn"].load()[:, d:2 * d]), rtol=1e-9)


def test_describe_lists_what_is_not_analysed_with_the_reason():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(20, 30), nn.LayerNorm(30), nn.Linear(30, 4))
    listed = spectralwatch.describe(model, skipped=True)
    assert list(listed["analysed"]) == [True, False, False]
    assert listed["reason"].iloc[1].startswith("type: layer type 'norm'")
    assert listed["reason"].iloc[2].startswith("min_evals: 4 eigenvalues")
    with pytest.raises(InvalidParameterError, match="'skipped' parameter of describe"):
        spectralwatch.describe(model, skipped="yes")


def test_sentence_transformers_folder_and_bin_index(tmp_path):
    torch.manual_seed(5)
    enc = {"encoder.layer.0.query.weight": torch.randn(16, 16), "encoder.layer.0.key.weight": torch.randn(16, 16)}
    dense = {"linear.weight": torch.randn(8, 16)}
    st = tmp_path / "st"
    (st / "0_Transformer").mkdir(parents=True)
    (st / "1_Pooling").mkdir()
    (st / "2_Dense").mkdir()
    _save(enc, st / "0_Transformer" / "model.safetensors")
    (st / "1_Pooling" / "config.json").write_text("{}")
    torch.save(dense, st / "2_Dense" / "pytorch_model.bin")
    (st / "modules.json").write_text(json.dumps([{"idx": i, "name": str(i), "path": p, "type": "x"} for i, p in
                                                 enumerate(["0_Transformer", "1_Pooling", "2_Dense"])]))
    names = [r.name for r in open_source(st).layers()]
    assert names == ["encoder.layer.0.key", "encoder.layer.0.query", "2_Dense.linear"]
    shards = tmp_path / "bin"
    shards.mkdir()
    torch.save({"b.weight": torch.randn(4, 4)}, shards / "pytorch_model-00002-of-00002.bin")
    torch.save({"a.weight": torch.randn(4, 4)}, shards / "pytorch_model-00001-of-00002.bin")
    (shards / "pytorch_model.bin.index.json").write_text(json.dumps({"weight_map": {
        "a.weight": "pytorch_model-00001-of-00002.bin", "b.weight": "pytorch_model-00002-of-00002.bin"}}))
    assert [r.name for r in open_source(shards).layers()] == ["a", "b"]


def test_folder_with_one_onnx_file_reads_it(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    W = np.random.default_rng(6).standard_normal((10, 12)).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 10])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 12])],
                              [numpy_helper.from_array(W, "w")])
    onnx.save(helper.make_model(graph), str(tmp_path / "model.onnx"))
    (ref,) = list(open_source(tmp_path).layers())
    assert ref.name == "mm" and ref.layer_type == "dense"


# --------------------------------------------------------------------------------------------
# real files
# --------------------------------------------------------------------------------------------

@pytest.mark.models
def test_yolov8n_onnx_end_to_end():
    pytest.importorskip("onnx")
    path = fetch("yolov8n-onnx")
    report = spectralwatch.analyze(path)
    d = report.details
    assert set(d["layer_type"]) == {"conv2d"} and len(d) >= 60 and (d["status"] == "success").all()
    assert d["name"].str.endswith("/Conv").all()  # named after the consuming node
    assert d["longname"].iloc[0] == "model.0.conv"
    assert 2 < report.summary["alpha"] < 8


@pytest.mark.models
def test_all_minilm_as_a_folder_and_as_a_single_file():
    path = fetch("all-minilm-l6-v2")
    by_folder = spectralwatch.analyze(path.parent).details
    by_file = spectralwatch.analyze(path).details
    assert len(by_folder) == len(by_file) == 39
    assert list(by_folder["name"]) == list(by_file["name"])
    assert list(by_file["layer_id"]) == list(by_folder["layer_id"] + 1)  # a file counts from 1, a folder from 0
    np.testing.assert_allclose(by_folder["alpha"], by_file["alpha"], rtol=1e-12)


def test_large_safetensors_matrices_are_read_straight_into_float64(tmp_path, monkeypatch):
    from safetensors.numpy import save_file

    import spectralwatch.io.sources.safetensors_ as st

    monkeypatch.setattr(st, "LARGE_MATRIX_BYTES", 1000)  # every matrix below is "large"
    monkeypatch.setattr(st, "_CHUNK_BYTES", 4096)         # several blocks of rows each
    rng = np.random.default_rng(9)
    arrays = {"tall": rng.standard_normal((300, 40)).astype(np.float32),
              "wide": rng.standard_normal((40, 300)).astype(np.float32),
              "half": rng.standard_normal((50, 70)).astype(np.float16)}
    save_file(arrays, str(tmp_path / "m.safetensors"))
    for ref in open_source(tmp_path / "m.safetensors").layers():
        W = ref.load()
        assert W.dtype == np.float64
        np.testing.assert_array_equal(W, arrays[ref.name].astype(np.float64))
        tall = W if W.shape[0] >= W.shape[1] else W.T
        assert tall.flags["C_CONTIGUOUS"]  # the analysis needs no further copy
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data)
    ref = next(r for r in open_source(tmp_path / "cut.safetensors").layers() if r.name == "wide")
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])  # truncated after the header was read
    with pytest.raises(Exception, match="could not be read completely|truncated"):
        ref.load()

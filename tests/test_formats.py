"""One tiny network in every format gives the same details table; Keras and ONNX readers; bad files.

The network (two 3x3 convolutions and two dense layers) is written out as a torch module, a state
dict, a safetensors file, an ONNX export, a Keras model with the same weights (in memory, ``.keras``
and ``.h5``), a GGUF file in F32 and a Flax parameter tree (and an NNX module). Every source must give
the same spectra: only the layout of the stored kernels differs, so the metrics agree to rounding.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("KERAS_BACKEND", "torch")  # Keras 3 on torch: TensorFlow is never needed

import numpy as np
import pytest

import spectralwatch
from spectralwatch.errors import CorruptFileError, UnknownFormatError
from spectralwatch.io.sources import available_sources, open_source

torch = pytest.importorskip("torch")
nn = torch.nn

# metrics compared across formats; the spectra differ only by eigensolver rounding on transposed or
# permuted copies of the same float32 matrices (relative ~1e-12), far below this tolerance
COMPARED = ["N", "M", "rf", "num_evals", "lambda_max", "norm", "log_norm", "stable_rank", "matrix_rank", "entropy",
            "alpha", "xmin", "D", "num_pl_spikes", "alpha_weighted", "log_alpha_norm"]
RTOL = 1e-6


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.conv2 = nn.Conv2d(8, 16, 3)
        self.fc1 = nn.Linear(16 * 4 * 4, 32)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = torch.relu(self.conv2(torch.relu(self.conv1(x))))
        return self.fc2(torch.relu(self.fc1(x.flatten(1))))


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(11)
    return Tiny().eval()


def _weights(model) -> dict:
    return {k: v.detach().numpy().copy() for k, v in model.state_dict().items()}


def _table(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = spectralwatch.analyze(model, **kw).details
    d = d.assign(key=[str(n).replace("/", ".").split(".")[-1] for n in d["longname"]])
    return d.set_index("key").sort_index()


def _assert_same(table, expected):
    assert list(table.index) == list(expected.index) == ["conv1", "conv2", "fc1", "fc2"]
    assert list(table["layer_type"]) == ["conv2d", "conv2d", "dense", "dense"]
    for col in COMPARED:
        np.testing.assert_allclose(table[col].astype(float).to_numpy(), expected[col].astype(float).to_numpy(),
                                   rtol=RTOL, atol=1e-12, err_msg=col)


@pytest.fixture(scope="module")
def expected(tiny):
    return _table(tiny)


def test_torch_state_dict_and_safetensors(tiny, expected, tmp_path):
    from safetensors.torch import save_file

    _assert_same(_table(tiny.state_dict()), expected)
    save_file(tiny.state_dict(), str(tmp_path / "tiny.safetensors"))
    _assert_same(_table(tmp_path / "tiny.safetensors"), expected)


def test_onnx_export(tiny, expected, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "tiny.onnx"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(tiny, torch.randn(1, 3, 8, 8), str(path), dynamo=False)
    _assert_same(_table(path), expected)
    _assert_same(_table(onnx.load(str(path))), expected)  # the in-memory ModelProto
    refs = {r.longname: r for r in open_source(path).layers()}
    assert refs["conv1"].name == "/conv1/Conv" and refs["conv1"].layer_id == 0  # initializer index


def _keras_tiny(weights):
    keras = pytest.importorskip("keras")
    model = keras.Sequential([
        keras.Input((8, 8, 3)),
        keras.layers.Conv2D(8, 3, name="conv1"), keras.layers.Conv2D(16, 3, name="conv2"),
        keras.layers.Flatten(), keras.layers.Dense(32, name="fc1"), keras.layers.Dense(10, name="fc2")])
    for name in ("conv1", "conv2"):  # torch (out, in, kh, kw) -> keras (kh, kw, in, out)
        model.get_layer(name).set_weights([weights[f"{name}.weight"].transpose(2, 3, 1, 0), weights[f"{name}.bias"]])
    for name in ("fc1", "fc2"):
        model.get_layer(name).set_weights([weights[f"{name}.weight"].T, weights[f"{name}.bias"]])
    return model


def test_keras_in_memory_keras_archive_and_h5(tiny, expected, tmp_path):
    model = _keras_tiny(_weights(tiny))
    _assert_same(_table(model), expected)
    model.save(str(tmp_path / "tiny.keras"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(str(tmp_path / "tiny.h5"))
    model.save_weights(str(tmp_path / "tiny.weights.h5"))
    for name in ("tiny.keras", "tiny.h5", "tiny.weights.h5"):
        _assert_same(_table(tmp_path / name), expected)


def test_keras_files_are_read_without_keras_or_tensorflow(tiny, tmp_path):
    import subprocess
    import sys

    model = _keras_tiny(_weights(tiny))
    model.save(str(tmp_path / "tiny.keras"))
    code = (f"import sys; sys.modules['keras'] = None; sys.modules['tensorflow'] = None\n"
            f"import spectralwatch\n"
            f"d = spectralwatch.describe({str(tmp_path / 'tiny.keras')!r})\n"
            f"print(list(d['name']))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "['conv1', 'conv2', 'fc1', 'fc2']", out.stderr


def test_gguf_f32(tiny, expected, tmp_path):
    gguf = pytest.importorskip("gguf")
    path = tmp_path / "tiny.gguf"
    writer = gguf.GGUFWriter(str(path), "tiny")
    for key, value in _weights(tiny).items():
        writer.add_tensor(key, value.astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    table = _table(path)
    _assert_same(table, expected)
    assert set(table["dtype"]) == {"float32"} and set(table["quant"]) == {""}


def _flax_tree(weights, as_jax=True):
    jnp = pytest.importorskip("jax.numpy") if as_jax else np
    tree = {}
    for name in ("conv1", "conv2"):
        tree[name] = {"kernel": jnp.asarray(weights[f"{name}.weight"].transpose(2, 3, 1, 0)),
                      "bias": jnp.asarray(weights[f"{name}.bias"])}
    for name in ("fc1", "fc2"):
        tree[name] = {"kernel": jnp.asarray(weights[f"{name}.weight"].T), "bias": jnp.asarray(weights[f"{name}.bias"])}
    return {"params": tree, "opt_state": {"mu": tree}}  # an Optax-style training state: 'params' only is read


def test_flax_parameter_tree(tiny, expected):
    _assert_same(_table(_flax_tree(_weights(tiny))), expected)
    _assert_same(_table(_flax_tree(_weights(tiny), as_jax=False)), expected)  # numpy leaves work without jax


def test_flax_nnx_module(tiny, expected):
    nnx = pytest.importorskip("flax.nnx")
    jnp = pytest.importorskip("jax.numpy")

    class Net(nnx.Module):
        def __init__(self, rngs):
            self.conv1 = nnx.Conv(3, 8, kernel_size=(3, 3), rngs=rngs)
            self.conv2 = nnx.Conv(8, 16, kernel_size=(3, 3), rngs=rngs)
            self.fc1 = nnx.Linear(256, 32, rngs=rngs)
            self.fc2 = nnx.Linear(32, 10, rngs=rngs)

    net = Net(nnx.Rngs(0))
    tree = _flax_tree(_weights(tiny))["params"]
    for name, leaves in tree.items():
        getattr(net, name).kernel = nnx.Param(jnp.asarray(leaves["kernel"]))
    _assert_same(_table(net), expected)


# --------------------------------------------------------------------------------------------
# Keras layer kinds
# --------------------------------------------------------------------------------------------

def test_keras_layer_kinds_in_memory_and_on_disk(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(0)
    inp = keras.Input((6, 4))
    x = keras.layers.LSTM(5, return_sequences=True, name="lstm")(inp)
    x = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4, name="mha")(x, x)
    x = keras.layers.Conv1D(6, 2, name="c1")(x)
    x = keras.layers.Reshape((5, 6, 1))(x)
    x = keras.layers.DepthwiseConv2D(2, depth_multiplier=3, name="dw")(x)
    inner = keras.Sequential([keras.layers.Dense(7, name="d_in")], name="inner")
    out = inner(keras.layers.Flatten()(x))
    model = keras.Model(inp, out)
    mem = {r.longname: r for r in open_source(model).layers()}
    assert mem["mha/query"].shape == (5, 8) and mem["mha/attention_output"].shape == (8, 5)
    assert mem["c1"].layer_type == "conv1d" and mem["c1"].shape == (6, 5, 2)
    assert mem["dw"].shape == (3, 1, 2, 2) and mem["dw"].groups == 1
    assert mem["inner/d_in"].layer_type == "dense"
    gates = [k for k in mem if k.startswith("lstm/lstm_cell/kernel.")]
    assert gates == [f"lstm/lstm_cell/kernel.{g}" for g in "ifco"]
    kernel = keras.ops.convert_to_numpy(model.get_layer("lstm").cell.kernel)
    np.testing.assert_array_equal(mem["lstm/lstm_cell/kernel.f"].load(), kernel[:, 5:10])
    model.save(str(tmp_path / "m.keras"))
    disk = {r.longname: r for r in open_source(tmp_path / "m.keras").layers()}
    assert set(disk) == set(mem)
    for name, ref in mem.items():
        np.testing.assert_array_equal(disk[name].load(), ref.load(), err_msg=name)
        assert disk[name].layer_type == ref.layer_type


def test_keras_depthwise_block_treatment():
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((9, 9, 4)), keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")])
    (ref,) = [r for r in open_source(model).layers()]
    assert ref.shape == (8, 1, 3, 3) and ref.groups == 4
    d_ref = spectralwatch.describe(model, min_evals=1)
    d_block = spectralwatch.describe(model, grouped_conv="block")
    assert int(d_ref["num_evals"].iloc[0]) == 9 and int(d_block["num_evals"].iloc[0]) == 4 * 9
    # each group is a 2 x 1 block: its eigenvalue is the squared norm of the multiplier's two weights
    W = keras.ops.convert_to_numpy(model.get_layer("dw").kernel).astype(np.float64)  # (3, 3, 4, 2)
    expected = np.sort(0.5 * (W ** 2).sum(axis=-1).ravel())
    np.testing.assert_allclose(spectralwatch.analyze(model, grouped_conv="block").get_ESD(ref.layer_id), expected,
                               rtol=1e-10)


# --------------------------------------------------------------------------------------------
# ONNX specifics
# --------------------------------------------------------------------------------------------

def _onnx_model(quantised=False, trans_b=1):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    W = rng.standard_normal((12, 20)).astype(np.float32)          # Gemm B, (out, in) with transB=1
    M = rng.standard_normal((12, 9)).astype(np.float32)           # MatMul weight (in, out), as a Constant
    C = rng.standard_normal((6, 3, 3, 3)).astype(np.float32)      # Conv
    inits = [numpy_helper.from_array(W if trans_b else W.T.copy(), "gemm_w"),
             numpy_helper.from_array(C, "conv_w")]
    nodes = [helper.make_node("Gemm", ["x", "gemm_w"], ["h"], name="fc", transB=trans_b),
             helper.make_node("Constant", [], ["mm_w"], value=numpy_helper.from_array(M, "mm_w")),
             helper.make_node("MatMul", ["h", "mm_w"], ["y"], name="proj"),
             helper.make_node("Conv", ["img", "conv_w"], ["z"], name="conv", group=1)]
    if quantised:
        scale = np.float32(0.05)
        q = np.clip(np.round(W / scale), -127, 127).astype(np.int8)
        inits[0] = numpy_helper.from_array(q, "gemm_q")
        inits += [numpy_helper.from_array(np.array(scale, np.float32), "gemm_s"),
                  numpy_helper.from_array(np.array(0, np.int8), "gemm_z")]
        nodes.insert(0, helper.make_node("DequantizeLinear", ["gemm_q", "gemm_s", "gemm_z"], ["gemm_w"]))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 20]),
                                           helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 9]),
                               helper.make_tensor_value_info("z", TensorProto.FLOAT, [1, 6, 6, 6])], inits)
    return onnx.helper.make_model(graph), W, M, C


@pytest.mark.parametrize("trans_b", [1, 0])
def test_onnx_initializers_constants_gemm_and_conv(trans_b):
    model, W, M, C = _onnx_model(trans_b=trans_b)
    refs = {r.name: r for r in open_source(model).layers()}
    assert refs["fc"].layer_type == "dense" and refs["fc"].shape == (12, 20)  # transB honoured
    np.testing.assert_array_equal(refs["fc"].load(), W)
    assert refs["proj"].layer_type == "dense" and refs["proj"].longname == "mm_w"  # a Constant node's tensor
    np.testing.assert_array_equal(refs["proj"].load(), M)
    assert refs["conv"].layer_type == "conv2d"
    np.testing.assert_array_equal(refs["conv"].load(), C)


def test_onnx_quantised_weights_are_dequantised_and_say_so():
    model, W, _, _ = _onnx_model(quantised=True)
    refs = {r.name: r for r in open_source(model).layers() if r.layer_type == "dense"}
    assert refs["fc"].quant == "int8 (DequantizeLinear)" and refs["fc"].dtype == "float32"
    np.testing.assert_allclose(refs["fc"].load(), W, atol=0.05 / 2 + 1e-6)  # within half a quantisation step
    details = spectralwatch.analyze(model).details
    assert dict(zip(details["name"], details["quant"]))["fc"] == "int8 (DequantizeLinear)"


# --------------------------------------------------------------------------------------------
# bad input and the registry
# --------------------------------------------------------------------------------------------

def _truncate(path, keep):
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_onnx_and_keras_files_name_the_file(tiny, tmp_path):
    model, *_ = _onnx_model()
    onnx = pytest.importorskip("onnx")
    onnx.save(model, str(tmp_path / "m.onnx"))
    _truncate(tmp_path / "m.onnx", 0.5)
    with pytest.raises(CorruptFileError, match=r"ONNX file '.*m\.onnx' is corrupted or truncated"):
        open_source(tmp_path / "m.onnx")
    _keras_tiny(_weights(tiny)).save(str(tmp_path / "m.keras"))
    _truncate(tmp_path / "m.keras", 0.6)
    with pytest.raises(CorruptFileError, match=r"Keras file '.*m\.keras' is corrupted or truncated"):
        open_source(tmp_path / "m.keras")
    (tmp_path / "junk.h5").write_bytes(b"\x89HDF\r\n" + b"\0" * 50)
    with pytest.raises(CorruptFileError, match="junk.h5"):
        open_source(tmp_path / "junk.h5")


def test_registry_lists_every_format_with_its_extra():
    by_name = {d["name"]: d for d in available_sources()}
    for name, extra in [("gguf", "gguf"), ("onnx", "onnx"), ("onnx.ModelProto", "onnx"), ("keras file", "keras"),
                        ("keras.Model", "keras"), ("flax.nnx.Module", "jax"), ("parameter tree", "jax")]:
        assert by_name[name]["extra"] == extra, name
    assert ".gguf" in by_name["gguf"]["extensions"] and ".keras" in by_name["keras file"]["extensions"]


def test_unknown_object_hint_mentions_saving_for_tensorflow():
    class FakeTF:
        pass

    FakeTF.__module__ = "tensorflow.python.keras"
    with pytest.raises(UnknownFormatError, match="model.save"):
        open_source(FakeTF())


def test_parameter_tree_attention_lstm_and_conv_layouts():
    rng = np.random.default_rng(7)
    tree = {"params": {
        "Conv_0": {"kernel": rng.standard_normal((3, 3, 4, 8)), "bias": np.zeros(8)},
        "MultiHeadDotProductAttention_0": {
            "query": {"kernel": rng.standard_normal((8, 2, 4)), "bias": np.zeros((2, 4))},
            "out": {"kernel": rng.standard_normal((2, 4, 8)), "bias": np.zeros(8)}},
        "OptimizedLSTMCell_0": {"ii": {"kernel": rng.standard_normal((8, 6))},
                                "hf": {"kernel": rng.standard_normal((6, 6)), "bias": np.zeros(6)}},
        "Embed_0": {"embedding": rng.standard_normal((20, 8))},
        "LayerNorm_0": {"scale": np.ones(8), "bias": np.zeros(8)}}}
    refs = {r.name: r for r in open_source(tree).layers()}
    assert list(refs) == ["Conv_0", "MultiHeadDotProductAttention_0.query", "MultiHeadDotProductAttention_0.out",
                          "OptimizedLSTMCell_0.ii", "OptimizedLSTMCell_0.hf", "Embed_0"]
    assert [r.layer_id for r in refs.values()] == list(range(6))
    conv = refs["Conv_0"]
    assert conv.layer_type == "conv2d" and conv.shape == (8, 4, 3, 3)
    np.testing.assert_array_equal(conv.load()[5, 2], tree["params"]["Conv_0"]["kernel"][:, :, 2, 5])
    assert refs["MultiHeadDotProductAttention_0.query"].shape == (8, 8)
    assert refs["MultiHeadDotProductAttention_0.out"].load().shape == (8, 8)
    assert refs["OptimizedLSTMCell_0.hf"].layer_type == "lstm" and refs["Embed_0"].layer_type == "embedding"


def test_cli_sources_lists_the_formats(capsys):
    from spectralwatch.cli import main

    assert main(["sources"]) == 0
    out = capsys.readouterr().out
    for name in ("gguf", "onnx", "keras file", "parameter tree", "flax.nnx.Module"):
        assert name in out


def test_onnx_qlinear_conv_weight_is_dequantised_per_channel():
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(8)
    q = rng.integers(-100, 100, size=(4, 3, 3, 3)).astype(np.int8)
    scale = np.array([0.1, 0.2, 0.05, 0.01], np.float32)  # per output channel
    zero = np.zeros(4, np.int8)
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    inits = [numpy_helper.from_array(np.array(0.1, np.float32), "xs"), numpy_helper.from_array(np.array(0, np.uint8), "xz"),
             numpy_helper.from_array(q, "w"), numpy_helper.from_array(scale, "ws"), numpy_helper.from_array(zero, "wz"),
             numpy_helper.from_array(np.array(0.1, np.float32), "ys"), numpy_helper.from_array(np.array(0, np.uint8), "yz")]
    graph = helper.make_graph([helper.make_node("QLinearConv", names, ["y"], name="qconv")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4, 6, 6])], inits)
    refs = {r.longname: r for r in open_source(helper.make_model(graph)).layers()}
    w = refs["w"]
    assert (w.name, w.layer_type, w.quant) == ("qconv", "conv2d", "int8 (QLinearConv)")
    np.testing.assert_allclose(w.load(), q.astype(np.float32) * scale[:, None, None, None], rtol=1e-6)


def test_keras_subclassed_model_in_memory_and_on_disk(tmp_path):
    keras = pytest.importorskip("keras")
    keras.utils.set_random_seed(2)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.emb = keras.layers.Embedding(30, 12)
            self.conv = keras.layers.Conv2D(6, 3)
            self.fc = keras.layers.Dense(9)

        def call(self, x):
            return self.fc(x)

    model = Sub()
    model.emb.build((None, 4))
    model.conv.build((None, 8, 8, 3))
    model.fc.build((None, 12))
    mem = {r.name: r for r in open_source(model).layers()}
    assert {n: (r.layer_type, r.shape) for n, r in mem.items()} == {
        "embedding": ("embedding", (30, 12)), "conv2d": ("conv2d", (6, 3, 3, 3)), "dense": ("dense", (12, 9))}
    model.save(str(tmp_path / "sub.keras"))
    disk = {r.layer_type: r for r in open_source(tmp_path / "sub.keras").layers()}
    for ref in mem.values():
        np.testing.assert_array_equal(disk[ref.layer_type].load(), ref.load())

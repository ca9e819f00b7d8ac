"""Fuzz corpus of the ONNX and GGUF readers.

ONNX: a small graph (Gemm, MatMul on a ``Constant``, Conv, a per-axis ``DequantizeLinear`` weight,
an LSTM, one initializer in an external data file), and protobuf-level corruptions of a parsed copy:
dims claiming 10^12 elements, unknown element types, truncated raw data, external data outside the
folder or past its end, odd node attributes, missing inputs.

GGUF: a file written field by field here (so that every header field can be set to any value):
F32, F16, Q8_0 and Q4_0 tensors, a norm and a mixture-of-experts tensor; corruptions of the version,
counts, metadata types and lengths, alignment, and each tensor's rank, dims, type, offset and name.
"""

from __future__ import annotations

import random
import struct

import numpy as np

from fuzz_mutate import FuzzFormat, Mutant, matrix

__all__ = ["ONNX_FORMATS", "GGUF_FORMATS", "onnx_model", "gguf_bytes"]


# --------------------------------------------------------------------------------------------
# ONNX
# --------------------------------------------------------------------------------------------

_EXTERNAL = "weights.data"


def onnx_model():
    """``(ModelProto, external data bytes)``: every kind of weight the ONNX reader types."""
    from onnx import TensorProto, helper, numpy_helper

    W, M, C, E = matrix(1, 16, 24), matrix(2, 24, 16), matrix(3, 8, 3, 3, 3), matrix(5, 16, 16)
    Q = np.clip(np.round(matrix(4, 16, 24) * 40), -127, 127).astype(np.int8)
    scale = np.linspace(0.01, 0.02, 16).astype(np.float32)
    lstm_w, lstm_r = matrix(6, 1, 32, 12), matrix(7, 1, 32, 8)
    inits = [numpy_helper.from_array(W, "gemm_w"), numpy_helper.from_array(C, "conv_w"),
             numpy_helper.from_array(Q, "q_w"), numpy_helper.from_array(scale, "q_scale"),
             numpy_helper.from_array(np.zeros(16, np.int8), "q_zero"),
             numpy_helper.from_array(lstm_w, "lstm_W"), numpy_helper.from_array(lstm_r, "lstm_R")]
    ext = numpy_helper.from_array(E, "ext_w")
    ext.ClearField("raw_data")
    ext.data_location = TensorProto.EXTERNAL
    for key, value in (("location", _EXTERNAL), ("offset", "0"), ("length", str(E.nbytes))):
        entry = ext.external_data.add()
        entry.key, entry.value = key, value
    inits.append(ext)
    nodes = [helper.make_node("Gemm", ["x", "gemm_w"], ["h"], name="fc", transB=1),
             helper.make_node("Constant", [], ["mm_w"], value=numpy_helper.from_array(M, "mm_w")),
             helper.make_node("MatMul", ["x", "mm_w"], ["y"], name="proj"),
             helper.make_node("MatMul", ["h", "ext_w"], ["y2"], name="ext"),
             helper.make_node("Conv", ["img", "conv_w"], ["z"], name="conv", group=1),
             helper.make_node("DequantizeLinear", ["q_w", "q_scale", "q_zero"], ["q_deq"], axis=0),
             helper.make_node("Gemm", ["x", "q_deq"], ["hq"], name="qfc", transB=1),
             helper.make_node("LSTM", ["seq", "lstm_W", "lstm_R"], ["ys"], name="lstm", hidden_size=8)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], inits)
    model = helper.make_model(graph, producer_name="spectralwatch-fuzz",
                              opset_imports=[helper.make_opsetid("", 17)])
    return model, E.tobytes()


def _build_onnx() -> dict:
    model, data = onnx_model()
    return {"model.onnx": model.SerializeToString(), _EXTERNAL: data}


def _init(model, name):
    return next(t for t in model.graph.initializer if t.name == name)


def _node(model, name):
    return next(n for n in model.graph.node if n.name == name)


def _set_attr(node_name, attr, value):
    def edit(model):
        from onnx import helper

        node = _node(model, node_name)
        kept = [a for a in node.attribute if a.name != attr]
        del node.attribute[:]
        node.attribute.extend(kept + [helper.make_attribute(attr, value)])

    return edit


def _set_dims(name, dims):
    def edit(model):
        t = _init(model, name)
        del t.dims[:]
        t.dims.extend(dims)

    return edit


def _set(tensor, **fields):
    def edit(model):
        t = _init(model, tensor)
        for key, value in fields.items():
            setattr(t, key, value)

    return edit


def _external(**entries):
    def edit(model):
        t = _init(model, "ext_w")
        current = {e.key: e.value for e in t.external_data}
        current.update(entries)
        del t.external_data[:]
        for key, value in current.items():
            entry = t.external_data.add()
            entry.key, entry.value = key, value

    return edit


def _replace_constant(model):
    from onnx import helper

    node = next(n for n in model.graph.node if n.op_type == "Constant")
    del node.attribute[:]
    node.attribute.extend([helper.make_attribute("value_float", 2.0)])


def _sparse_constant(model):
    from onnx import helper, numpy_helper

    node = next(n for n in model.graph.node if n.op_type == "Constant")
    values = numpy_helper.from_array(np.ones(3, np.float32), "v")
    indices = numpy_helper.from_array(np.array([0, 5, 10**9], np.int64), "i")
    del node.attribute[:]
    node.attribute.extend([helper.make_attribute("sparse_value", helper.make_sparse_tensor(values, indices, [24, 16]))])


def _undefined_attr(model):
    node = _node(model, "conv")
    for a in node.attribute:
        if a.name == "group":
            a.type = 0


def _drop(kind, name):
    def edit(model):
        if kind == "init":
            keep = [t for t in model.graph.initializer if t.name != name]
            del model.graph.initializer[:]
            model.graph.initializer.extend(keep)
        else:
            keep = [n for n in model.graph.node if n.name != name]
            del model.graph.node[:]
            model.graph.node.extend(keep)

    return edit


def _onnx_edits() -> list:
    return [
        ("gemm_w dims [10**6, 10**6]", _set_dims("gemm_w", [10 ** 6, 10 ** 6])),
        ("gemm_w dims [2**62, 4]", _set_dims("gemm_w", [2 ** 62, 4])),
        ("gemm_w dims [-1, 24]", _set_dims("gemm_w", [-1, 24])),
        ("gemm_w dims []", _set_dims("gemm_w", [])),
        ("gemm_w dims [16, 24, 1, 1, 1, 1, 1, 1]", _set_dims("gemm_w", [16, 24, 1, 1, 1, 1, 1, 1])),
        ("gemm_w dims [0, 24]", _set_dims("gemm_w", [0, 24])),
        ("conv_w dims [8, 3, 3, 10**9]", _set_dims("conv_w", [8, 3, 3, 10 ** 9])),
        ("gemm_w element type 0", _set("gemm_w", data_type=0)),
        ("gemm_w element type 999", _set("gemm_w", data_type=999)),
        ("gemm_w element type STRING", _set("gemm_w", data_type=8)),
        ("gemm_w element type FLOAT16", _set("gemm_w", data_type=10)),
        ("gemm_w element type BFLOAT16", _set("gemm_w", data_type=16)),
        ("gemm_w element type FLOAT4E2M1", _set("gemm_w", data_type=23)),
        ("gemm_w element type DOUBLE", _set("gemm_w", data_type=11)),
        ("gemm_w raw data halved", lambda m: _set("gemm_w", raw_data=_init(m, "gemm_w").raw_data[:700])(m)),
        ("gemm_w raw data empty", _set("gemm_w", raw_data=b"")),
        ("gemm_w in float_data, 5 values", lambda m: (_init(m, "gemm_w").ClearField("raw_data"),
                                                     _init(m, "gemm_w").float_data.extend([1.0] * 5))),
        ("ext_w outside the folder", _external(location="../../../../../../etc/passwd")),
        ("ext_w at an absolute path", _external(location="/etc/passwd")),
        ("ext_w in /dev/zero", _external(location="/dev/zero")),
        ("ext_w in a missing file", _external(location="missing.data")),
        ("ext_w location ''", _external(location="")),
        ("ext_w offset 10**12", _external(offset=str(10 ** 12))),
        ("ext_w length 10**12", _external(length=str(10 ** 12))),
        ("ext_w length -1", _external(length="-1")),
        ("ext_w offset 'abc'", _external(offset="abc")),
        ("ext_w dims [10**6, 10**6]", _set_dims("ext_w", [10 ** 6, 10 ** 6])),
        ("ext_w without entries", lambda m: _init(m, "ext_w").ClearField("external_data")),
        ("conv group 0", _set_attr("conv", "group", 0)),
        ("conv group -3", _set_attr("conv", "group", -3)),
        ("conv group 10**9", _set_attr("conv", "group", 10 ** 9)),
        ("conv group 'x'", _set_attr("conv", "group", "x")),
        ("conv group of undefined type", _undefined_attr),
        ("Gemm transB 7", _set_attr("fc", "transB", 7)),
        ("DequantizeLinear axis 99", lambda m: _dq_axis(m, 99)),
        ("DequantizeLinear axis -99", lambda m: _dq_axis(m, -99)),
        ("DequantizeLinear scale of 5 values", _set_dims("q_scale", [5])),
        ("DequantizeLinear scale removed", _drop("init", "q_scale")),
        ("DequantizeLinear zero point removed", _drop("init", "q_zero")),
        ("DequantizeLinear without outputs", lambda m: _dq(m).ClearField("output")),
        ("Constant value_float instead of a tensor", _replace_constant),
        ("Constant sparse_value with an index past the end", _sparse_constant),
        ("Constant without outputs", lambda m: next(n for n in m.graph.node if n.op_type == "Constant")
         .ClearField("output")),
        ("lstm_W dims [2, 32, 12]", _set_dims("lstm_W", [2, 32, 12])),
        ("lstm_W dims [0, 32, 12]", _set_dims("lstm_W", [0, 32, 12])),
        ("lstm_R dims [1, 31, 8]", _set_dims("lstm_R", [1, 31, 8])),
        ("the Gemm node removed", _drop("node", "fc")),
        ("every node removed", lambda m: m.graph.ClearField("node")),
        ("duplicate initializer names", lambda m: _set("conv_w", name="gemm_w")(m)),
        ("an initializer named ''", _set("conv_w", name="")),
        ("no graph", lambda m: m.ClearField("graph")),
        ("opset 10**6", lambda m: setattr(m.opset_import[0], "version", 10 ** 6)),
    ]


def _dq(model):
    return next(n for n in model.graph.node if n.op_type == "DequantizeLinear")


def _dq_axis(model, axis):
    from onnx import helper

    node = _dq(model)
    del node.attribute[:]
    node.attribute.extend([helper.make_attribute("axis", axis)])


def _onnx_semantic(files, rng: random.Random) -> list[Mutant]:
    out = []
    for label, edit in _onnx_edits():
        model, _ = onnx_model()
        edit(model)
        out.append(Mutant(f"onnx: {label}", {"model.onnx": model.SerializeToString()}))
    out.append(Mutant("external data file removed", {_EXTERNAL: None}))
    out.append(Mutant("external data file truncated", {_EXTERNAL: files[_EXTERNAL][:100]}))
    data = files["model.onnx"]
    for _ in range(10):  # protobuf varints (tags, lengths) set to odd values
        pos = rng.randrange(0, len(data))
        blob = rng.choice((b"\xff" * 10, b"\x80" * 9 + b"\x01", b"\x00", b"\xff\xff\xff\xff\x0f"))
        out.append(Mutant(f"onnx: varint {blob.hex()} at {pos}", {"model.onnx": data[:pos] + blob + data[pos + 1:]}))
    return out


ONNX_FORMATS = (
    FuzzFormat("onnx", _build_onnx, "model.onnx", lambda files: {"model.onnx": 512, _EXTERNAL: 64}, _onnx_semantic,
               requires=("onnx",), weights={"model.onnx": 4.0}),
)


# --------------------------------------------------------------------------------------------
# GGUF
# --------------------------------------------------------------------------------------------

def _s(text) -> bytes:
    raw = text if isinstance(text, bytes) else text.encode()
    return struct.pack("<Q", len(raw)) + raw


def _kv(key, vtype: int, value: bytes) -> bytes:
    return _s(key) + struct.pack("<I", vtype) + value


def _tensors() -> list[dict]:
    """The tensors: name, ggml dims (row length first), type code, data bytes."""
    import gguf

    q = gguf.quants.quantize
    T = gguf.GGMLQuantizationType
    return [
        {"name": "token_embd.weight", "dims": [16, 24], "type": 0, "data": matrix(1, 24, 16).tobytes()},
        {"name": "blk.0.attn_norm.weight", "dims": [16], "type": 0, "data": np.ones(16, np.float32).tobytes()},
        {"name": "blk.0.attn_q.weight", "dims": [32, 16], "type": int(T.Q8_0),
         "data": q(matrix(2, 16, 32), T.Q8_0).tobytes()},
        {"name": "blk.0.ffn_up.weight", "dims": [16, 24], "type": 1, "data": matrix(3, 24, 16).astype(np.float16).tobytes()},
        {"name": "blk.0.ffn_up_exps.weight", "dims": [16, 16, 2], "type": 0, "data": matrix(4, 2, 16, 16).tobytes()},
        {"name": "output.weight", "dims": [32, 24], "type": int(T.Q4_0), "data": q(matrix(5, 24, 32), T.Q4_0).tobytes()},
    ]


def _metadata(align: int = 32) -> list[bytes]:
    names = _s(b"a") + _s(b"bc")
    return [_kv("general.architecture", 8, _s("llama")), _kv("general.alignment", 4, struct.pack("<I", align)),
            _kv("llama.block_count", 4, struct.pack("<I", 1)),
            _kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", 8, 2) + names),
            _kv("tokenizer.ggml.scores", 9, struct.pack("<IQ", 6, 2) + struct.pack("<2f", 0.5, 0.25))]


def gguf_bytes(tensors=None, kvs=None, *, version=3, n_tensors=None, n_kv=None, align=32, info_edit=None) -> bytes:
    """A GGUF file; ``info_edit(k, info_bytes_fields)`` may rewrite tensor ``k``'s header fields."""
    tensors = _tensors() if tensors is None else tensors
    kvs = _metadata(align) if kvs is None else kvs
    offsets, pos = [], 0
    for t in tensors:
        pos = -(-pos // align) * align
        offsets.append(pos)
        pos += len(t["data"])
    infos = []
    for k, t in enumerate(tensors):
        fields = {"name": _s(t["name"]), "n_dims": struct.pack("<I", len(t["dims"])),
                  "dims": b"".join(struct.pack("<Q", d) for d in t["dims"]), "type": struct.pack("<I", t["type"]),
                  "offset": struct.pack("<Q", offsets[k])}
        if info_edit is not None:
            info_edit(k, fields)
        infos.append(fields["name"] + fields["n_dims"] + fields["dims"] + fields["type"] + fields["offset"])
    head = (b"GGUF" + struct.pack("<IQQ", version, len(tensors) if n_tensors is None else n_tensors,
                                  len(kvs) if n_kv is None else n_kv) + b"".join(kvs) + b"".join(infos))
    head += bytes(-len(head) % align)
    data = bytearray()
    for off, t in zip(offsets, tensors):
        data += bytes(off - len(data)) + t["data"]
    return head + bytes(data)


def _build_gguf() -> dict:
    return {"model.gguf": gguf_bytes()}


def _gguf_headers(files) -> dict:
    data = files["model.gguf"]
    return {"model.gguf": len(data) - sum(len(t["data"]) for t in _tensors())}


def _info(k, **fields):
    def edit(j, f):
        if j == k:
            f.update(fields)

    return edit


def _gguf_semantic(files, rng: random.Random) -> list[Mutant]:
    n = len(_tensors())
    variants = [(f"version {v}", dict(version=v)) for v in (1, 4, 2 ** 31)]
    variants += [(f"tensor count {c}", dict(n_tensors=c)) for c in (0, n + 1, 2 ** 24 + 1, 2 ** 40, 2 ** 64 - 1)]
    variants += [(f"metadata count {c}", dict(n_kv=c)) for c in (0, 6, 2 ** 40)]
    variants += [(f"alignment {a}", dict(kvs=_metadata(a))) for a in (0, 3, 2 ** 31)]
    md = _metadata()
    odd_kvs = [
        ("a key of 2**40 bytes", struct.pack("<Q", 2 ** 40) + b"k"),
        ("a key of 2**64-1 bytes", struct.pack("<Q", 2 ** 64 - 1) + b"k"),
        ("value type 13", _kv("x", 13, b"\0" * 8)),
        ("value type 2**32-1", _kv("x", 2 ** 32 - 1, b"\0" * 8)),
        ("an array of item type 99", _kv("x", 9, struct.pack("<IQ", 99, 3))),
        ("an array of 2**40 items", _kv("x", 9, struct.pack("<IQ", 4, 2 ** 40))),
        ("an array of 2**24 strings", _kv("x", 9, struct.pack("<IQ", 8, 2 ** 24))),
        ("an array of arrays", _kv("x", 9, struct.pack("<IQ", 9, 2) + struct.pack("<IQ", 4, 1) + b"\0" * 4
                                   + struct.pack("<IQ", 4, 10 ** 9))),
        ("alignment as a string", _kv("general.alignment", 8, _s("32"))),
        ("alignment as a u64 of 2**40", _kv("general.alignment", 10, struct.pack("<Q", 2 ** 40))),
        ("a key that is not UTF-8", _kv(b"\xff\xfe", 4, struct.pack("<I", 1))),
        ("architecture not UTF-8", _kv("general.architecture", 8, _s(b"\xff\xfe"))),
    ]
    for label, blob in odd_kvs:
        variants.append((f"metadata: {label}", dict(kvs=md[:1] + [blob] + md[1:])))
    tensor_edits = []
    q = struct.pack
    for k, tensor in enumerate(_tensors()):
        edits = [
            ("rank 0", _info(k, n_dims=q("<I", 0), dims=b"")),
            ("rank 9", _info(k, n_dims=q("<I", 9), dims=q("<9Q", *[1] * 9))),
            ("rank 2**32-1", _info(k, n_dims=q("<I", 2 ** 32 - 1))),
            ("dims [10**12, 10**12]", _info(k, n_dims=q("<I", 2), dims=q("<2Q", 10 ** 12, 10 ** 12))),
            ("dims [2**63, 1]", _info(k, n_dims=q("<I", 2), dims=q("<2Q", 2 ** 63, 1))),
            ("dims [2**64-1, 2**64-1]", _info(k, n_dims=q("<I", 2), dims=q("<2Q", 2 ** 64 - 1, 2 ** 64 - 1))),
            ("dims [32, 0]", _info(k, n_dims=q("<I", 2), dims=q("<2Q", 32, 0))),
            ("dims [0, 0, 0]", _info(k, n_dims=q("<I", 3), dims=q("<3Q", 0, 0, 0))),
            ("dims [3, 24]", _info(k, n_dims=q("<I", 2), dims=q("<2Q", 3, 24))),
            ("type 99", _info(k, type=q("<I", 99))),
            ("type 2**32-1", _info(k, type=q("<I", 2 ** 32 - 1))),
            ("type F32", _info(k, type=q("<I", 0))),
            ("type Q4_0", _info(k, type=q("<I", 2))),
            ("type Q4_K", _info(k, type=q("<I", 12))),
            ("type IQ2_XXS", _info(k, type=q("<I", 16))),
            ("type TQ1_0", _info(k, type=q("<I", 34))),
            ("offset 2**63", _info(k, offset=q("<Q", 2 ** 63))),
            ("offset 2**64-1", _info(k, offset=q("<Q", 2 ** 64 - 1))),
            ("offset misaligned", _info(k, offset=q("<Q", 1))),
            ("offset 0 (overlapping)", _info(k, offset=q("<Q", 0))),
            ("name of 2**40 bytes", _info(k, name=q("<Q", 2 ** 40) + b"x")),
            ("name ''", _info(k, name=_s(b""))),
            ("name not UTF-8", _info(k, name=_s(b"\xff\xfe.weight"))),
            ("name of the first tensor", _info(k, name=_s(_tensors()[0]["name"]))),
        ]
        tensor_edits += [(f"{tensor['name']}: {label}", edit) for label, edit in edits]
    picked = rng.sample(tensor_edits, min(len(tensor_edits), 40))
    out = [Mutant(f"gguf: {label}", {"model.gguf": gguf_bytes(**kw)}) for label, kw in variants]
    out += [Mutant(f"gguf tensor: {label}", {"model.gguf": gguf_bytes(info_edit=edit)}) for label, edit in picked]
    return out


GGUF_FORMATS = (
    FuzzFormat("gguf", _build_gguf, "model.gguf", _gguf_headers, _gguf_semantic, requires=("gguf",)),
)

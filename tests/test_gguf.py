"""GGUF: quantised tensors dequantised one at a time, llama.cpp names, bad files, the real SmolLM2 file."""

from __future__ import annotations

import struct

import numpy as np
import pytest

import spectralwatch
from spectralwatch.errors import CorruptFileError, UnknownFormatError
from spectralwatch.io.sources import open_source

gguf = pytest.importorskip("gguf", reason="the gguf package (spectralwatch[gguf]) is not installed")

from realmodels import fetch  # noqa: E402


def write_gguf(path, tensors: dict, arch="llama"):
    """Write ``name -> (array float32, qtype name)`` with the gguf package."""
    writer = gguf.GGUFWriter(str(path), arch)
    for name, (array, qname) in tensors.items():
        qtype = gguf.GGMLQuantizationType[qname]
        if qname == "F32":
            writer.add_tensor(name, array.astype(np.float32))
        elif array.dtype == np.uint8:  # raw blocks (types the package can dequantise but not quantise)
            writer.add_tensor(name, array, raw_dtype=qtype)
        else:
            writer.add_tensor(name, gguf.quants.quantize(array.astype(np.float32), qtype), raw_dtype=qtype)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def q4k_blocks(rng, rows, cols):
    """Raw Q4_K blocks (144 bytes per 256 values) with finite float16 scales."""
    blocks = rng.integers(0, 256, size=(rows, cols // 256, 144), dtype=np.uint8)
    blocks[:, :, 0:2] = np.frombuffer(np.float16(0.01).tobytes(), np.uint8)  # d
    blocks[:, :, 2:4] = np.frombuffer(np.float16(0.002).tobytes(), np.uint8)  # dmin
    return blocks.reshape(rows, -1)


@pytest.fixture
def llama_like(tmp_path):
    rng = np.random.default_rng(5)
    tensors = {
        "token_embd.weight": (rng.standard_normal((50, 64)), "Q8_0"),
        "blk.0.attn_norm.weight": (np.ones(64), "F32"),
        "blk.0.attn_q.weight": (rng.standard_normal((64, 64)), "Q4_1"),
        "blk.0.attn_k.weight": (rng.standard_normal((32, 64)), "Q4_0"),
        "blk.0.ffn_up.weight": (rng.standard_normal((96, 64)), "Q5_0"),
        "blk.0.ffn_down.weight": (rng.standard_normal((64, 96)), "Q8_0"),
        "blk.0.ffn_gate.weight": (q4k_blocks(rng, rows=96, cols=256), "Q4_K"),
        "output.weight": (rng.standard_normal((50, 64)), "F32"),
    }
    return write_gguf(tmp_path / "m.gguf", tensors), tensors


def test_tensors_are_dequantised_like_the_gguf_package(llama_like):
    path, tensors = llama_like
    refs = {r.name: r for r in open_source(path).layers()}
    assert [r.layer_id for r in refs.values()] == list(range(1, 9))  # one id per *.weight, from 1
    types = {n: r.layer_type for n, r in refs.items()}
    assert types == {"token_embd": "embedding", "blk.0.attn_norm": "norm", "blk.0.attn_q": "dense",
                     "blk.0.attn_k": "dense", "blk.0.ffn_up": "dense", "blk.0.ffn_down": "dense",
                     "blk.0.ffn_gate": "dense", "output": "dense"}
    for key, (array, qname) in tensors.items():
        ref = refs[key[: -len(".weight")]]
        assert ref.quant == ("" if qname == "F32" else qname) and ref.dtype == "float32"
        qtype = gguf.GGMLQuantizationType[qname]
        got = ref.load()
        if array.dtype == np.uint8:  # raw K-quant blocks
            np.testing.assert_array_equal(got, gguf.quants.dequantize(array, qtype))
            assert got.shape == (96, 256) and np.isfinite(got).all()
            continue
        want = array.astype(np.float32) if qname == "F32" else gguf.quants.dequantize(
            gguf.quants.quantize(array.astype(np.float32), qtype), qtype)
        assert got.shape == array.shape
        np.testing.assert_array_equal(got, want.reshape(array.shape))
        if qname != "F32":  # quantisation noise is small but not zero
            assert 0 < np.abs(got - array).max() < 0.5 * np.abs(array).max()


def test_details_carry_the_quant_column(llama_like):
    path, _ = llama_like
    details = spectralwatch.analyze(path).details
    assert dict(zip(details["name"], details["quant"]))["blk.0.attn_q"] == "Q4_1"
    assert dict(zip(details["name"], details["quant"]))["output"] == ""
    assert (details["status"] == "success").all()


def test_mixture_of_experts_tensor_gives_one_matrix_per_expert(tmp_path):
    rng = np.random.default_rng(6)
    experts = rng.standard_normal((3, 40, 32))
    path = write_gguf(tmp_path / "moe.gguf", {"blk.0.ffn_up_exps.weight": (experts, "Q8_0")})
    refs = list(open_source(path).layers())
    assert refs[0].skip.startswith("a mixture-of-experts tensor")
    parts = refs[1:]
    assert [p.name for p in parts] == ["blk.0.ffn_up_exps.0", "blk.0.ffn_up_exps.1", "blk.0.ffn_up_exps.2"]
    assert [p.layer_id for p in parts] == [2, 3, 4]
    whole = gguf.quants.dequantize(gguf.quants.quantize(experts.astype(np.float32), gguf.GGMLQuantizationType.Q8_0),
                                   gguf.GGMLQuantizationType.Q8_0).reshape(experts.shape)
    for k, part in enumerate(parts):
        np.testing.assert_array_equal(part.load(), whole[k])
    listed = spectralwatch.describe(path, skipped=True)
    assert "mixture-of-experts" in listed.loc[~listed["analysed"], "reason"].iloc[0]


def test_truncated_file_names_the_file_and_the_tensor(llama_like):
    path, _ = llama_like
    data = path.read_bytes()
    path.write_bytes(data[: len(data) - 1000])
    with pytest.raises(CorruptFileError, match=r"GGUF file '.*m\.gguf' is corrupted or truncated: tensor '.*' ends"):
        open_source(path)
    path.write_bytes(data[:300])  # inside the header
    with pytest.raises(CorruptFileError, match=r"m\.gguf"):
        open_source(path)
    path.write_bytes(b"GGUF" + b"\xff" * 40)
    with pytest.raises(CorruptFileError, match="version"):
        open_source(path)


def test_unknown_quantisation_type_is_a_clear_error(tmp_path):
    path = write_gguf(tmp_path / "odd.gguf", {"blk.0.attn_q.weight": (np.ones((4, 32)), "F32")})
    data = bytearray(path.read_bytes())
    name = b"blk.0.attn_q.weight"
    at = data.find(name) + len(name)
    n_dims = struct.unpack_from("<I", data, at)[0]
    struct.pack_into("<I", data, at + 4 + 8 * n_dims, 250)  # no GGML type has this code
    path.write_bytes(bytes(data))
    with pytest.raises(UnknownFormatError, match=r"odd\.gguf.*'blk\.0\.attn_q\.weight'.*code 250.*unknown quantisation"):
        open_source(path)


@pytest.mark.models
def test_smollm2_real_gguf_every_block_matrix_and_the_embedding():
    path = fetch("smollm2-135m-gguf")
    report = spectralwatch.analyze(path)
    d = report.details
    kinds = ("attn_q", "attn_k", "attn_v", "attn_output", "ffn_up", "ffn_gate", "ffn_down")
    want = {f"blk.{b}.{k}" for b in range(30) for k in kinds} | {"token_embd"}
    assert set(d["name"]) == want and len(d) == 211
    assert d.loc[d["name"] == "token_embd", "layer_type"].item() == "embedding"
    assert d.loc[d["name"] == "token_embd", "N"].item() == 49152
    assert set(d["quant"]) == {"Q4_1", "Q8_0"} and (d["status"] == "success").all()
    assert set(report.skipped["rule"]) == {"type"}  # the 61 norm vectors
    q = d[d["name"] == "blk.0.attn_q"].iloc[0]
    assert (q["N"], q["M"]) == (576, 576)
    k = d[d["name"] == "blk.0.attn_k"].iloc[0]
    assert (k["N"], k["M"]) == (576, 192)  # 3 key-value heads of 64

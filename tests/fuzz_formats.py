"""The fuzz corpus: one small valid model per file format the package reads, and its mutants.

Each :class:`FuzzFormat` builds its model as ``{relative path: bytes}`` (the same bytes on every
run: fixed seeds, fixed zip dates, no timestamps), says which path ``analyze`` is given, how large
each file's header is (bit flips are concentrated there) and which structured corruptions apply
(header fields set to huge, negative, overlapping or unknown values, with the rest of the file
left valid so that the deeper checks are reached). :func:`mutants` puts together the fixed
truncations, the structured corruptions, the hostile shapes of tests/fuzz_hostile.py and seeded random
byte mutants.

The formats are the files of ``spectralwatch.sources.available_sources()``: ``.npy``, ``.npz``,
``.pt`` (zip and legacy torch formats), ``.safetensors``, a sharded safetensors folder, a Hugging
Face folder with ``config.json``, ``.keras``, ``.h5``, ``.onnx`` (with external data), ``.gguf`` and a
PEFT adapter folder. Keras files are written with h5py in the layout Keras 3 uses (importing Keras
costs seconds; the readers never import it either).
"""

from __future__ import annotations

import io
import json
import random
import struct

import numpy as np

from fuzz_h5 import H5_FORMATS
from fuzz_hostile import hostile_mutants
from fuzz_mutate import (FuzzFormat, Mutant, build_zip, matrix, pickle_mutants, pickle_ops, random_mutants,
                         truncations, zip_field_mutants, zip_members)
from fuzz_onnx_gguf import GGUF_FORMATS, ONNX_FORMATS

__all__ = ["FORMATS", "mutants"]


def mutants(fmt: FuzzFormat, files: dict, n_random: int, seed: int) -> list[Mutant]:
    """The valid model itself, truncations of every file, every structured corruption, then ``n_random``
    seeded random byte mutants (bit flips and byte edits concentrated in the headers, cuts, insertions).
    """
    rng = random.Random(f"{seed}:{fmt.name}")
    headers = fmt.headers(files)
    out: list[Mutant] = [Mutant("the valid model", {})]
    for name in sorted(files):
        out.extend(truncations(name, files[name], headers.get(name, 64)))
    out.extend(fmt.semantic(files, rng))
    out.extend(hostile_mutants(fmt.name, files, rng))  # built to do harm rather than damaged (issue 17)
    out.extend(random_mutants(files, headers, rng, n_random, fmt.weights))
    return out


# --------------------------------------------------------------------------------------------
# numpy: .npy and .npz
# --------------------------------------------------------------------------------------------

def npy_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr, allow_pickle=True)
    return buf.getvalue()


def npy_raw(header: str, data: bytes, version=(1, 0)) -> bytes:
    """A ``.npy`` stream with any header text (padded like numpy pads it)."""
    length_size = 2 if version == (1, 0) else 4
    prefix = 6 + 2 + length_size
    text = header.encode("latin1")
    pad = -(prefix + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    fmt = "<H" if length_size == 2 else "<I"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text + data


_NPY_HEADERS = (
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (1000000, 1000000), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (-1, 24), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 24, 4611686018427387904), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (18446744073709551616,), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (0, 1000000000000), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (), }",
    "{'descr': '<f99', 'fortran_order': False, 'shape': (16, 24), }",
    "{'descr': '|O', 'fortran_order': False, 'shape': (16, 24), }",
    "{'descr': '<U5', 'fortran_order': False, 'shape': (16, 24), }",
    "{'descr': '>f4', 'fortran_order': True, 'shape': (16, 24), }",
    "{'descr': [('a', '<f4'), ('b', '<i4')], 'fortran_order': False, 'shape': (16, 12), }",
    "{'descr': '<c8', 'fortran_order': False, 'shape': (16, 12), }",
    "{'descr': '<f4', 'fortran_order': 'yes', 'shape': (16, 24), }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': '16x24', }",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (16.0, 24), }",
    "{'descr': '<f4', 'shape': (16, 24), }",
    "[1, 2, 3]",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 24), ",
    "{'descr': '<f4', 'fortran_order': False, 'shape': (16, 24), 'extra': __import__('os'), }",
)


def _npy_semantic(data: bytes) -> list[tuple[str, bytes]]:
    body = data[128:]
    out = [(f"npy header {h}", npy_raw(h, body)) for h in _NPY_HEADERS]
    out.append(("npy header in format 2.0", npy_raw(_NPY_HEADERS[1], body, (2, 0))))
    out.append(("npy format version 9.9", data[:6] + bytes([9, 9]) + data[8:]))
    out.append(("npy header length 65535", data[:8] + struct.pack("<H", 65535) + data[10:]))
    out.append(("npy header length 0", data[:8] + struct.pack("<H", 0) + data[10:]))
    v2 = npy_raw("{'descr': '<f4', 'fortran_order': False, 'shape': (16, 24), }", body, (2, 0))
    out.append(("npy 2.0 header length 2**31", v2[:8] + struct.pack("<I", 2 ** 31) + v2[12:]))
    return out


def _build_npy() -> dict:
    return {"model.npy": npy_bytes(matrix(1, 16, 24))}


def _npy_semantic_mutants(files, rng) -> list[Mutant]:
    out = [Mutant(label, {"model.npy": data}) for label, data in _npy_semantic(files["model.npy"])]
    out.append(Mutant("npy of a pickled dict (numpy.save of a Python object)",
                      {"model.npy": npy_bytes(np.array({"fc.weight": matrix(2, 16, 24)}, dtype=object))}))
    out.append(Mutant("npy of an object array of floats",
                      {"model.npy": npy_bytes(matrix(3, 16, 24).astype(object))}))
    return out


_NPZ = (("fc1.weight.npy", 1, (16, 24), 0), ("fc1.bias.npy", 2, (16,), 0), ("fc2.weight.npy", 3, (24, 16), 8),
        ("conv.weight.npy", 4, (8, 3, 3, 3), 0))


def _build_npz() -> dict:
    members = [(name, npy_bytes(matrix(seed, *shape)), compress) for name, seed, shape, compress in _NPZ]
    return {"model.npz": build_zip(members)}


def _npz_semantic(files, rng) -> list[Mutant]:
    data = files["model.npz"]
    members = zip_members(data)
    out = []
    for label, npy in _npy_semantic(members[0][1]):
        out.append(Mutant(f"npz member {members[0][0]}: {label}", {"model.npz": build_zip([(members[0][0], npy, 0)]
                                                                                            + members[1:])}))
    out.extend(zip_field_mutants("model.npz", data, rng, 16))
    renamed = [("../../escape.npy", members[0][1], 0)] + members[1:]
    out.append(Mutant("npz member named ../../escape.npy", {"model.npz": build_zip(renamed)}))
    out.append(Mutant("npz with a duplicated member", {"model.npz": build_zip(members + members[:1])}))
    out.append(Mutant("npz with an empty member", {"model.npz": build_zip([("empty.npy", b"", 0)] + members)}))
    out.append(Mutant("npz without members", {"model.npz": build_zip([])}))
    pickled = npy_bytes(np.array([{"x": 1}], dtype=object))
    out.append(Mutant("npz with a pickled member beside the arrays",
                      {"model.npz": build_zip(members + [("meta.weight.npy", pickled, 0)])}))
    out.append(Mutant("npz of pickled members only", {"model.npz": build_zip([("meta.weight.npy", pickled, 0)])}))
    deflated = [(n, c, 8) for n, c, _ in members]
    flipped = bytearray(build_zip(deflated))
    for _ in range(4):
        flipped[rng.randrange(40, len(flipped) // 2)] ^= 0x10
    out.append(Mutant("npz, every member deflated, deflate streams bit-flipped", {"model.npz": bytes(flipped)}))
    return out


# --------------------------------------------------------------------------------------------
# torch: zip and legacy formats
# --------------------------------------------------------------------------------------------

_TORCH = (("fc1.weight", 1, (16, 24)), ("fc1.bias", 2, (16,)), ("fc2.weight", 3, (24, 16)),
          ("conv.weight", 4, (8, 3, 3, 3)))


def _state_dict(shared: bool = False):
    """The state dict; ``shared``: every tensor a view of one storage (one storage key in a legacy file)."""
    import torch

    arrays = [(key, matrix(seed, *shape)) for key, seed, shape in _TORCH]
    if not shared:
        return {key: torch.from_numpy(a) for key, a in arrays}
    flat = torch.from_numpy(np.concatenate([a.ravel() for _, a in arrays]))
    out, pos = {}, 0
    for key, a in arrays:
        out[key] = flat[pos:pos + a.size].view(a.shape)
        pos += a.size
    return out


def _build_pt() -> dict:
    import torch

    buf = io.BytesIO()
    torch.save(_state_dict(), buf)  # a file object: the records are named archive/... (same bytes every run)
    return {"model.pt": buf.getvalue()}


def _pt_headers(files) -> dict:
    data = files["model.pt"]
    end = data.find(b"PK\x03\x04", 4)  # the second local header: data.pkl comes first
    return {"model.pt": end if end > 0 else 256}


def _pt_semantic(files, rng) -> list[Mutant]:
    data = files["model.pt"]
    members = zip_members(data)
    pkl = next(k for k, (n, _, _) in enumerate(members) if n.endswith("data.pkl"))
    name, pickle_bytes, _ = members[pkl]
    out = []
    for label, new in pickle_mutants(pickle_bytes, rng, 24):
        changed = list(members)
        changed[pkl] = (name, new, 0)
        out.append(Mutant(f"data.pkl {label}", {"model.pt": build_zip(changed)}))
    out.extend(zip_field_mutants("model.pt", data, rng, 8))
    storages = [k for k, (n, _, _) in enumerate(members) if "/data/" in n]
    for how in ("short", "long", "missing", "empty"):
        changed = list(members)
        k = storages[0]
        n, content, c = changed[k]
        if how == "missing":
            del changed[k]
        else:
            changed[k] = (n, {"short": content[:len(content) // 3], "long": content * 3, "empty": b""}[how], c)
        out.append(Mutant(f"storage record {n} {how}", {"model.pt": build_zip(changed)}))
    for record, value in (("byteorder", b"big"), ("version", b"99\n"), ("byteorder", b"\xff\xfe")):
        changed = [(n, value if n.endswith("/" + record) else content, c) for n, content, c in members]
        out.append(Mutant(f"record {record} = {value!r}", {"model.pt": build_zip(changed)}))
    out.append(Mutant("records without their common folder",
                      {"model.pt": build_zip([(n.split("/", 1)[1], content, c) for n, content, c in members])}))
    return out


def _legacy_parts(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of the five pickles of a legacy torch file (magic, protocol, sys_info, object, keys)."""
    spans, pos = [], 0
    for _ in range(5):
        ops = pickle_ops(data, pos)
        spans.append((pos, ops[-1][3]))
        pos = ops[-1][3]
    return spans


def _build_pt_legacy() -> dict:
    import torch

    buf = io.BytesIO()
    torch.save(_state_dict(shared=True), buf, _use_new_zipfile_serialization=False)
    data = buf.getvalue()
    # the storage key is a memory address: renamed 1000... (same length, so nothing moves); one storage,
    # so the order of the storages (sorted by address) cannot change either
    start, end = _legacy_parts(data)[4]
    keys = [arg for name, arg, _, _ in pickle_ops(data[:end], start) if name in ("BINUNICODE", "SHORT_BINUNICODE")]
    assert len(keys) == 1
    return {"model.pt": data.replace(keys[0].encode(), str(10 ** (len(keys[0]) - 1)).encode())}


def _pt_legacy_headers(files) -> dict:
    return {"model.pt": _legacy_parts(files["model.pt"])[4][1]}


def _pt_legacy_semantic(files, rng) -> list[Mutant]:
    data = files["model.pt"]
    spans = _legacy_parts(data)
    out = []
    for label, new in pickle_mutants(data, rng, 16, *spans[3]):
        out.append(Mutant(f"object pickle {label}", {"model.pt": new}))
    for label, new in pickle_mutants(data, rng, 4, *spans[4]):
        out.append(Mutant(f"keys pickle {label}", {"model.pt": new}))
    for label, new in pickle_mutants(data, rng, 3, *spans[0]):
        out.append(Mutant(f"magic number {label}", {"model.pt": new}))
    size_at = spans[4][1]
    for value in (0, 1, 10 ** 12, 2 ** 63 - 1, 2 ** 64 - 1):
        patched = bytearray(data)
        struct.pack_into("<Q", patched, size_at, value)
        out.append(Mutant(f"first storage size field = {value}", {"model.pt": bytes(patched)}))
    return out


# --------------------------------------------------------------------------------------------
# safetensors: one file, a sharded folder, a Hugging Face folder, a PEFT adapter
# --------------------------------------------------------------------------------------------

def st_bytes(tensors: dict) -> bytes:
    from safetensors.numpy import save

    return save(tensors)


def st_parts(data: bytes) -> tuple[dict, bytes]:
    n = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + n]), data[8 + n:]


def st_raw(header, body: bytes, length: int | None = None) -> bytes:
    text = header if isinstance(header, bytes) else json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text) if length is None else length) + text + body


def _edit(header: dict, key: str, **changes) -> dict:
    out = json.loads(json.dumps(header))
    out[key].update(changes)
    return out


def safetensors_semantic(name: str, data: bytes, rng: random.Random) -> list[Mutant]:
    """Header corruptions of the safetensors file ``name`` (shapes, offsets, dtypes, lengths)."""
    header, body = st_parts(data)
    keys = sorted(k for k in header if k != "__metadata__")
    first, second = keys[0], keys[1]
    f0 = header[first]["data_offsets"]
    variants = [
        ("shape [10**6, 10**6]", _edit(header, first, shape=[10 ** 6, 10 ** 6])),
        ("shape [10**12]", _edit(header, first, shape=[10 ** 12])),
        ("shape [0, 10**12] with no bytes", _edit(header, first, shape=[0, 10 ** 12], data_offsets=[f0[0], f0[0]])),
        ("shape [2**70, 0]", _edit(header, first, shape=[2 ** 70, 0], data_offsets=[f0[0], f0[0]])),
        ("shape [-16, 24]", _edit(header, first, shape=[-16, 24])),
        ("shape 16x24 as a string", _edit(header, first, shape="16x24")),
        ("shape with a float", _edit(header, first, shape=[16.0, 24])),
        ("shape of 9 dimensions", _edit(header, first, shape=[1] * 8 + [f0[1] - f0[0]], dtype="U8")),
        ("negative data_offsets", _edit(header, first, data_offsets=[-8, f0[1]])),
        ("data_offsets reversed", _edit(header, first, data_offsets=[f0[1], f0[0]])),
        ("data_offsets past the end", _edit(header, first, data_offsets=[f0[0] + 10 ** 12, f0[1] + 10 ** 12])),
        ("data_offsets overlapping", _edit(header, second, data_offsets=header[first]["data_offsets"])),
        ("data_offsets of 3 numbers", _edit(header, first, data_offsets=[0, 4, 8])),
        ("data_offsets as floats", _edit(header, first, data_offsets=[float(f0[0]), float(f0[1])])),
        ("unknown dtype", _edit(header, first, dtype="F99")),
        ("dtype F4 (not decodable)", _edit(header, first, dtype="F4", shape=[2 * (f0[1] - f0[0])])),
        ("dtype of the wrong size", _edit(header, first, dtype="F64")),
        ("dtype null", _edit(header, first, dtype=None)),
        ("entry is a list", dict(header, **{first: [1, 2]})),
        ("__metadata__ is a list", dict(header, __metadata__=[1])),
        ("__metadata__ of non-strings", dict(header, __metadata__={"a": {"b": [1, 2]}})),
        ("an empty key", {("" if k == first else k): v for k, v in header.items()}),
        ("a 100 kB key", {("k" * 100000 if k == first else k): v for k, v in header.items()}),
        ("no tensors", {}),
    ]
    out = [Mutant(f"{name}: {label}", {name: st_raw(h, body)}) for label, h in variants]
    text = json.dumps(header).encode()
    raw = [("header is not JSON", b"{" + text[1:-1]), ("header is a JSON list", b"[1, 2]"),
           ("header is not UTF-8", b'{"\xff\xfe": 1}'), ("header nested 100000 deep", b"[" * 100000 + b"]" * 100000),
           ("duplicate keys", text[:-1] + b", " + json.dumps({first: header[first]}).encode()[1:])]
    out += [Mutant(f"{name}: {label}", {name: st_raw(h, body)}) for label, h in raw]
    for length in (0, 1, len(data), 2 ** 40, 2 ** 64 - 1):
        out.append(Mutant(f"{name}: header length field {length}", {name: st_raw(text, body, length)}))
    return out


def _build_safetensors() -> dict:
    return {"model.safetensors": st_bytes({"fc1.weight": matrix(1, 16, 24), "fc1.bias": matrix(2, 16),
                                           "fc2.weight": matrix(3, 24, 16), "conv.weight": matrix(4, 8, 3, 3, 3)})}


def st_headers(files) -> dict:
    return {n: 8 + int.from_bytes(d[:8], "little") if n.endswith(".safetensors") and len(d) >= 8 else 256
            for n, d in files.items()}


_SHARDS = ("model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors")
_INDEX = "model.safetensors.index.json"


def _build_sharded() -> dict:
    a = {"model.layers.0.fc1.weight": matrix(1, 16, 24), "model.layers.0.fc1.bias": matrix(2, 16)}
    b = {"model.layers.1.fc2.weight": matrix(3, 24, 16), "lm_head.weight": matrix(5, 20, 16)}
    weight_map = {k: _SHARDS[0] for k in a} | {k: _SHARDS[1] for k in b}
    index = {"metadata": {"total_size": 4 * (16 * 24 + 16 + 24 * 16 + 20 * 16)}, "weight_map": weight_map}
    return {_SHARDS[0]: st_bytes(a), _SHARDS[1]: st_bytes(b), _INDEX: json.dumps(index, indent=2).encode()}


def _sharded_semantic(files, rng) -> list[Mutant]:
    index = json.loads(files[_INDEX])
    wm = index["weight_map"]

    def with_map(weight_map):
        return json.dumps(dict(index, weight_map=weight_map)).encode()

    first = sorted(wm)[0]
    variants = [
        ("a shard that is missing", with_map({**wm, first: "model-00003-of-00003.safetensors"})),
        ("a shard outside the folder", with_map({**wm, first: "../" + _SHARDS[0]})),
        ("an absolute shard path", with_map({**wm, first: "/etc/passwd"})),
        ("a shard named ''", with_map({**wm, first: ""})),
        ("a shard that is the folder itself", with_map({**wm, first: "."})),
        ("the index naming itself", with_map({**wm, first: _INDEX})),
        ("a key missing from its shard", with_map({**wm, "model.layers.9.ghost.weight": _SHARDS[0]})),
        ("a key in the wrong shard", with_map({**wm, first: _SHARDS[1]})),
        ("a shard name that is a number", with_map({**wm, first: 7})),
        ("weight_map is a list", with_map(list(wm))),
        ("no weight_map", json.dumps({"metadata": {}}).encode()),
        ("an empty weight_map", with_map({})),
        ("the index is a JSON list", b"[]"),
        ("the index is not JSON", files[_INDEX][:-3]),
        ("the index is not UTF-8", b'{"weight_map": {"\xff": 1}}'),
        ("the index is nested 100000 deep", b"[" * 100000 + b"]" * 100000),
        ("the index is empty", b""),
    ]
    out = [Mutant(f"index: {label}", {_INDEX: text}) for label, text in variants]
    out.append(Mutant("second shard removed", {_SHARDS[1]: None}))
    for shard in _SHARDS:
        out.extend(rng.sample(safetensors_semantic(shard, files[shard], rng), 6))
    return out


def _build_hf_folder() -> dict:
    weights = {"model.layers.0.self_attn.qkv_proj.weight": matrix(1, 48, 16),
               "model.layers.0.self_attn.o_proj.weight": matrix(2, 16, 16),
               "model.layers.0.mlp.gate_up_proj.weight": matrix(3, 64, 16),
               "model.layers.0.mlp.down_proj.weight": matrix(4, 16, 32)}
    config = {"model_type": "phi3", "hidden_size": 16, "num_attention_heads": 2, "num_key_value_heads": 2,
              "intermediate_size": 32, "architectures": ["Phi3ForCausalLM"]}
    return {"config.json": json.dumps(config, indent=2).encode(), "model.safetensors": st_bytes(weights)}


def _hf_semantic(files, rng) -> list[Mutant]:
    config = json.loads(files["config.json"])
    odd = ("abc", 0, -16, 10 ** 30, None, [16], 1.5, True, {"a": 1}, float("nan"))
    out = []
    for key in ("hidden_size", "num_attention_heads", "num_key_value_heads", "head_dim", "n_head", "n_embd"):
        for value in odd:
            if rng.random() < 0.5:
                out.append(Mutant(f"config {key} = {value!r}", {"config.json": json.dumps({**config, key: value}).encode()}))
    for model_type in ("gpt_neox", "bloom", "gpt2", "phi4mm", 5, None):
        changed = {**config, "model_type": model_type, "num_attention_heads": rng.choice((0, 3, -1, "2", 2))}
        out.append(Mutant(f"config model_type {model_type!r}", {"config.json": json.dumps(changed).encode()}))
    for label, text in (("a list", b"[1, 2]"), ("not JSON", files["config.json"][:-2]), ("not UTF-8", b"\xff\xfe{}"),
                        ("nested 100000 deep", b"[" * 100000 + b"]" * 100000), ("empty", b"")):
        out.append(Mutant(f"config.json is {label}", {"config.json": text}))
    out.extend(rng.sample(safetensors_semantic("model.safetensors", files["model.safetensors"], rng), 10))
    return out


_PEFT_PREFIX = "base_model.model.layers.0."


def _build_peft() -> dict:
    weights = {}
    for k, proj in enumerate(("q_proj", "v_proj")):
        weights[f"{_PEFT_PREFIX}{proj}.lora_A.weight"] = matrix(10 + k, 8, 24)
        weights[f"{_PEFT_PREFIX}{proj}.lora_B.weight"] = matrix(20 + k, 16, 8)
    config = {"peft_type": "LORA", "r": 8, "lora_alpha": 16, "target_modules": ["q_proj", "v_proj"],
              "use_rslora": False, "alpha_pattern": {}, "rank_pattern": {}}
    return {"adapter_config.json": json.dumps(config, indent=2).encode(), "adapter_model.safetensors": st_bytes(weights)}


def _peft_aux() -> dict:
    return {"base.safetensors": st_bytes({"layers.0.q_proj.weight": matrix(30, 16, 24),
                                          "layers.0.v_proj.weight": matrix(31, 16, 24)})}


def _peft_semantic(files, rng) -> list[Mutant]:
    config = json.loads(files["adapter_config.json"])
    variants = []
    for key in ("lora_alpha", "r"):
        for value in ("abc", 0, -4, None, [8], 1e308, float("inf"), True):
            variants.append((key, value))
    variants += [("use_rslora", "yes"), ("use_rslora", 1), ("alpha_pattern", [1]), ("alpha_pattern", {"(": 2}),
                 ("alpha_pattern", {"q_proj": "x"}), ("alpha_pattern", {"q_proj": 0}), ("rank_pattern", {"q_proj": 0}),
                 ("rank_pattern", {"q_proj": "r"}), ("rank_pattern", {"[": 1}), ("rank_pattern", "all")]
    out = [Mutant(f"adapter_config {key} = {value!r}",
                  {"adapter_config.json": json.dumps({**config, key: value}).encode()}) for key, value in variants]
    for label, text in (("a list", b"[]"), ("not JSON", b"{"), ("nested 100000 deep", b"[" * 100000 + b"]" * 100000)):
        out.append(Mutant(f"adapter_config.json is {label}", {"adapter_config.json": text}))
    header, body = st_parts(files["adapter_model.safetensors"])
    a_key = f"{_PEFT_PREFIX}q_proj.lora_A.weight"
    b_key = f"{_PEFT_PREFIX}q_proj.lora_B.weight"
    renamed = {(k.replace("lora_B", "lora_X") if k == b_key else k): v for k, v in header.items()}
    swapped = {**header, a_key: dict(header[a_key], shape=[24, 8]), b_key: dict(header[b_key], shape=[8, 16])}
    odd = {**header, a_key: dict(header[a_key], shape=[16, 12]), b_key: dict(header[b_key], shape=[32, 4])}
    flat = {**header, a_key: dict(header[a_key], shape=[192])}
    for label, h in (("lora_B missing", renamed), ("A and B transposed", swapped), ("A and B of odd shapes", odd),
                     ("lora_A flat", flat)):
        out.append(Mutant(f"adapter weights: {label}", {"adapter_model.safetensors": st_raw(h, body)}))
    out.extend(rng.sample(safetensors_semantic("adapter_model.safetensors", files["adapter_model.safetensors"],
                                               rng), 8))
    return out


_PEFT_CALLS = (("analyze", {"peft": True}), ("describe", {"peft": True}),
               ("analyze", {"peft": "with_base", "base_model": "{aux}/base.safetensors"}))
_HF_CALLS = (("analyze", {}), ("analyze", {"split_fused": True}), ("describe", {"split_fused": True}))

FORMATS: dict[str, FuzzFormat] = {f.name: f for f in (
    FuzzFormat("npy", _build_npy, "model.npy", lambda files: {"model.npy": 128}, _npy_semantic_mutants),
    FuzzFormat("npz", _build_npz, "model.npz", lambda files: {"model.npz": 256}, _npz_semantic),
    FuzzFormat("pt", _build_pt, "model.pt", _pt_headers, _pt_semantic, requires=("torch",)),
    FuzzFormat("pt_legacy", _build_pt_legacy, "model.pt", _pt_legacy_headers, _pt_legacy_semantic,
               requires=("torch",)),
    FuzzFormat("safetensors", _build_safetensors, "model.safetensors", st_headers,
               lambda files, rng: safetensors_semantic("model.safetensors", files["model.safetensors"], rng)),
    FuzzFormat("sharded", _build_sharded, "", st_headers, _sharded_semantic, weights={_INDEX: 2.0}),
    FuzzFormat("hf_folder", _build_hf_folder, "", st_headers, _hf_semantic, calls=_HF_CALLS),
    FuzzFormat("peft", _build_peft, "", st_headers, _peft_semantic, calls=_PEFT_CALLS, aux=_peft_aux,
               weights={"adapter_config.json": 0.5}),
    *H5_FORMATS, *ONNX_FORMATS, *GGUF_FORMATS,
)}

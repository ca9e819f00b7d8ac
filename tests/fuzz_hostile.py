"""Hostile shapes for the fuzz corpus (docs/robustness.md, "Hostile files and careless commands").

Beyond damage, files built to make the reader do harm: work out of proportion to their bytes (a sparse or
strided torch tensor densified into a huge matrix, one stored block referenced hundreds of times by npz
members, ONNX initializers or legacy HDF5 weight names, headers of thousands of empty tensors, a
safetensors header of megabytes), reads outside the model (HDF5 soft links, ONNX external data outside the
folder), regular expressions that backtrack catastrophically (PEFT ``alpha_pattern`` / ``rank_pattern``),
metadata nested deeper than the interpreter's recursion limit, a compressed ``.keras`` member of many
layers. :func:`hostile_mutants` gives those of one format; every one must end, like any other mutant, in a
report or a ``SpectralWatchError`` naming the file, within the case's time limit.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile

import numpy as np

from fuzz_mutate import Mutant, build_zip, matrix, zip_members

__all__ = ["hostile_mutants", "alias_zip"]


def alias_zip(members: list, copies: int) -> bytes:
    """A zip whose central directory lists its last member ``copies`` more times, every entry pointing at the
    one stored copy (duplicate members: one stored block, many names)."""
    data = build_zip(members)
    end = data.rfind(b"PK\x05\x06")
    cd_size, cd_offset = struct.unpack_from("<II", data, end + 12)
    central = data[cd_offset:cd_offset + cd_size]
    last = central.rfind(b"PK\x01\x02")
    record = central[last:]
    new_central = central + record * copies
    count = struct.unpack_from("<H", data, end + 10)[0] + copies
    tail = bytearray(data[end:])
    struct.pack_into("<HHII", tail, 8, count, count, len(new_central), cd_offset)
    return data[:cd_offset] + new_central + bytes(tail)


def _npy(arr) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _npz(files, rng) -> list:
    members = zip_members(files["model.npz"])
    big = ("big.weight.npy", _npy(matrix(50, 256, 256)), 0)
    return [Mutant("npz: one 256 KB member listed 700 times in the central directory",
                   {"model.npz": alias_zip(members + [big], 700)})]


def _pt(files, rng) -> list:
    import torch

    out = []
    cases = {
        "a 2 KB sparse COO tensor of shape 30000 x 20000": torch.sparse_coo_tensor(
            torch.tensor([[0, 1], [0, 1]]), torch.tensor([1.0, 2.0]), (30000, 20000), check_invariants=True),
        "a strided view of 100 floats as 30000 x 20000": torch.zeros(100).as_strided((30000, 20000), (0, 0)),
        "a sparse tensor whose indices leave its shape": torch.sparse_coo_tensor(
            torch.tensor([[0, 10 ** 6], [0, 5]]), torch.tensor([1.0, 2.0]), (10, 10), check_invariants=False),
    }
    for label, tensor in cases.items():
        buf = io.BytesIO()
        torch.save({"fc1.weight": tensor, "fc2.weight": torch.from_numpy(matrix(3, 24, 16))}, buf)
        out.append(Mutant(f"pt: {label}", {"model.pt": buf.getvalue()}))
    shared = torch.from_numpy(matrix(4, 128, 128))
    buf = io.BytesIO()
    torch.save({f"l{k}.weight": shared for k in range(1500)}, buf)
    out.append(Mutant("pt: one storage referenced by 1500 tensors", {"model.pt": buf.getvalue()}))
    return out


def _safetensors(files, rng) -> list:
    data = files["model.safetensors"]
    n = int.from_bytes(data[:8], "little")
    header = data[8:8 + n].rstrip(b" ") + b" " * (3 << 20)
    header += b" " * (-len(header) % 8)
    return [Mutant("safetensors: a 3 MB header (whitespace) for 1.5 KB of data",
                   {"model.safetensors": struct.pack("<Q", len(header)) + header + data[8 + n:]})]


def _gguf(files, rng) -> list:
    from fuzz_onnx_gguf import _kv, _s, gguf_bytes

    depth = 200_000
    nested = _kv("deep", 9, struct.pack("<IQ", 9, 1) * depth + struct.pack("<IQ", 4, 0))
    empty = [{"name": f"e{k}.weight", "dims": [0], "type": 0, "data": b""} for k in range(20_000)]
    return [Mutant(f"gguf: metadata arrays nested {depth} deep", {"model.gguf": gguf_bytes(kvs=[nested])}),
            Mutant("gguf: 20000 header-only tensors", {"model.gguf": gguf_bytes(tensors=empty)}),
            Mutant("gguf: a 1 MB metadata string", {"model.gguf": gguf_bytes(kvs=[_kv("s", 8, _s(b"x" * (1 << 20)))])})]


def _onnx(files, rng) -> list:
    import onnx
    from onnx import helper

    out = []
    base = onnx.load_from_string(files["model.onnx"])
    for label, location in (("../outside.bin", "../outside.bin"), ("an absolute path", "/etc/hostname")):
        model = onnx.ModelProto()
        model.CopyFrom(base)
        t = next(t for t in model.graph.initializer if t.name == "ext_w")
        for entry in t.external_data:
            if entry.key == "location":
                entry.value = location
        out.append(Mutant(f"onnx: external data at {label}", {"model.onnx": model.SerializeToString()}))
    model = onnx.ModelProto()
    model.CopyFrom(base)
    ext = next(t for t in model.graph.initializer if t.name == "ext_w")
    for k in range(3000):
        t = model.graph.initializer.add()
        t.CopyFrom(ext)
        t.name = f"alias_{k}"
        model.graph.node.append(helper.make_node("MatMul", ["h", t.name], [f"o{k}"], name=f"mm{k}"))
    out.append(Mutant("onnx: 3000 initializers sharing one external block", {"model.onnx": model.SerializeToString()}))
    return out


def _h5(files, rng) -> list:
    from fuzz_h5 import legacy_h5

    def soft_to_data(f):
        import h5py

        path = "model_weights/fc1/sequential/fc1/kernel"
        data = f[path][()]
        del f[path]
        f["elsewhere"] = data
        f[path] = h5py.SoftLink("/elsewhere")

    def aliased(f):
        group = f["model_weights/fc1"]
        names = list(group.attrs["weight_names"])
        group.attrs["weight_names"] = np.array(names[:1] * 3000)

    return [Mutant("h5: a kernel reached through a soft link (to a dataset of the file)",
                   {"model.h5": legacy_h5(soft_to_data)}),
            Mutant("h5: weight_names naming one dataset 3000 times", {"model.h5": legacy_h5(aliased)})]


def _keras(files, rng) -> list:
    members = zip_members(files["model.keras"])
    deflated = [(n, c, zipfile.ZIP_DEFLATED) for n, c, _ in members]
    return [Mutant("keras: every member deflate-compressed", {"model.keras": build_zip(deflated)})]


def _peft(files, rng) -> list:
    from fuzz_formats import st_parts, st_raw

    config = json.loads(files["adapter_config.json"])
    header, body = st_parts(files["adapter_model.safetensors"])
    long_name = "a" * 40
    renamed = {k.replace("layers.0.", f"{long_name}.layers.0."): v for k, v in header.items()}
    out = []
    for key, patterns in (("alpha_pattern", {"(a+)+$": 4, "q_proj": 32}), ("rank_pattern", {"(a|a)*b": 2}),
                          ("alpha_pattern", {"((a*)*)*c": 8, "(": 1})):
        out.append(Mutant(f"peft: {key} {patterns} on module names of 40 a's",
                          {"adapter_config.json": json.dumps({**config, key: patterns}).encode(),
                           "adapter_model.safetensors": st_raw(renamed, body)}))
    return out


_BY_FORMAT = {"npz": _npz, "pt": _pt, "safetensors": _safetensors, "gguf": _gguf, "onnx": _onnx, "h5": _h5,
              "keras": _keras, "peft": _peft}


def hostile_mutants(name: str, files: dict, rng) -> list:
    """The hostile mutants of format ``name`` (none for the formats without any)."""
    make = _BY_FORMAT.get(name)
    return make(files, rng) if make is not None else []

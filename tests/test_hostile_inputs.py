"""Hostile model files (docs/robustness.md, "Hostile files and careless commands"): files that make the
reader open other files, do work out of proportion to their bytes, backtrack forever on a pattern, die of a
signal when rewritten, or echo someone else's secret in an error message.

Every crafted input is built here; whatever could hang runs in a subprocess with a timeout. Every case ends
in a one-line error, a failed row with the reason, or correct results.
"""

from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

import spectralwatch
from spectralwatch.errors import BudgetExceededError, CorruptFileError, SpectralWatchError, UnsafeFileError
from spectralwatch.io.sources import open_model, open_source

safetensors_numpy = pytest.importorskip("safetensors.numpy")

SRC = str(Path(spectralwatch.__file__).parents[1])


def _run(code: str, timeout: float = 60, cwd=None) -> subprocess.CompletedProcess:
    """``code`` in a fresh interpreter (whatever hangs or dies there fails the test, not pytest)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout, env=env,
                          cwd=cwd)


def _w(seed: int, *shape) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _st(path: Path, tensors: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    safetensors_numpy.save_file(tensors, str(path))
    return path


# ---- containment: a model reads only its own files -------------------------------------------------

@pytest.fixture
def h5py():
    return pytest.importorskip("h5py")


def _keras_weights(path: Path, h5py, link=None) -> Path:
    with h5py.File(path, "w") as f:
        v = f.create_group("layers/dense/vars")
        v.attrs["name"] = "dense"
        if link is None:
            v["0"] = _w(1, 40, 24)
        else:
            v["0"] = link(h5py, f)
    return path


@pytest.mark.parametrize("kind", ["external", "soft", "soft-to-own-data"])
def test_hdf5_links_are_refused(tmp_path, h5py, kind):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["secret"] = _w(9, 40, 24)
    links = {"external": lambda h5py, f: h5py.ExternalLink(str(other), "/secret"),
             "soft": lambda h5py, f: h5py.SoftLink("/nowhere"),
             "soft-to-own-data": lambda h5py, f: (f.create_dataset("data", data=_w(2, 40, 24)),
                                                  h5py.SoftLink("/data"))[1]}
    path = _keras_weights(tmp_path / "m.weights.h5", h5py, links[kind])
    with pytest.raises(UnsafeFileError, match="link") as info:
        spectralwatch.analyze(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    archive = tmp_path / "m.keras"  # the same inside a .keras archive
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("config.json", "{}")
        zf.write(path, "model.weights.h5")
    with pytest.raises(UnsafeFileError, match="link"):
        spectralwatch.describe(archive)


def test_a_legacy_h5_weight_name_through_an_external_link_is_refused(tmp_path, h5py):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["k"] = _w(3, 30, 20)
    path = tmp_path / "legacy.h5"
    with h5py.File(path, "w") as f:
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [b"fc"]
        g = mw.create_group("fc")
        g.attrs["weight_names"] = [b"fc/kernel:0"]
        g["fc"] = h5py.ExternalLink(str(other), "/")
    with pytest.raises(UnsafeFileError, match="external link"):
        spectralwatch.describe(path)


def _sentence_transformers(root: Path, modules: list) -> Path:
    root.mkdir(parents=True)
    _st(root / "model.safetensors", {"enc.weight": _w(1, 40, 24)})
    (root / "modules.json").write_text(json.dumps(modules))
    return root


def test_modules_json_cannot_leave_the_folder_or_recurse(tmp_path):
    _st(tmp_path / "parent_weights.safetensors", {"secret.weight": _w(7, 64, 32)})
    escape = _sentence_transformers(tmp_path / "esc", [{"idx": 0, "path": ""}, {"idx": 1, "path": ".."}])
    with pytest.raises(UnsafeFileError, match="outside the model"):
        spectralwatch.describe(escape)
    absolute = _sentence_transformers(tmp_path / "abs", [{"idx": 1, "path": str(tmp_path)}])
    with pytest.raises(UnsafeFileError, match="outside the model"):
        spectralwatch.describe(absolute)
    here = _sentence_transformers(tmp_path / "dot", [{"idx": 0, "path": ""}, {"idx": 1, "path": "."},
                                                     {"idx": 2, "path": "./"}])
    assert list(spectralwatch.describe(here)["name"]) == ["enc"]  # itself, once: no recursion
    looped = _sentence_transformers(tmp_path / "loop", [{"idx": 0, "path": ""}])
    (looped / "modules.json").unlink()
    (looped / "1_Dense").symlink_to(looped)  # a module folder that is the model itself
    (looped / "2_Up").symlink_to(tmp_path)  # one that leaves it
    with pytest.raises(UnsafeFileError, match="outside the model"):
        spectralwatch.describe(looped)
    (looped / "2_Up").unlink()
    assert list(spectralwatch.describe(looped)["name"]) == ["enc"]


def test_module_folders_nest_a_bounded_depth(tmp_path):
    root = tmp_path / "deep"
    folder = root
    for k in range(8):
        _st(folder / "model.safetensors", {f"l{k}.weight": _w(k, 30, 20)})
        folder = folder / "1_Dense"
    with pytest.raises(UnsafeFileError, match="nests"):
        spectralwatch.describe(root)


def test_symlinks_are_followed_only_within_the_model(tmp_path):
    outside = _st(tmp_path / "elsewhere" / "secret.safetensors", {"secret.weight": _w(9, 64, 32)})
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "model.safetensors").symlink_to(outside)
    with pytest.raises(UnsafeFileError, match="outside the model"):
        spectralwatch.describe(folder)
    (folder / "model.safetensors").unlink()
    _st(folder / "real" / "w.bin.safetensors", {"fc.weight": _w(1, 40, 24)})
    (folder / "model.safetensors").symlink_to(folder / "real" / "w.bin.safetensors")  # inside: fine
    assert list(spectralwatch.describe(folder)["name"]) == ["fc"]
    # a shard named by the index, a symlink outside
    sharded = tmp_path / "sharded"
    _st(sharded / "a.safetensors", {"a.weight": _w(1, 40, 24)})
    (sharded / "b.safetensors").symlink_to(outside)
    (sharded / "model.safetensors.index.json").write_text(json.dumps(
        {"weight_map": {"a.weight": "a.safetensors", "secret.weight": "b.safetensors"}}))
    with pytest.raises(UnsafeFileError, match="outside the model"):
        spectralwatch.describe(sharded)


def test_a_hugging_face_cache_snapshot_is_read(tmp_path):
    repo = tmp_path / "models--org--name"
    blob = _st(repo / "blobs" / "0123abcd", {"fc.weight": _w(1, 40, 24)})
    snapshot = repo / "snapshots" / "rev1"
    snapshot.mkdir(parents=True)
    (snapshot / "model.safetensors").symlink_to(Path("..") / ".." / "blobs" / blob.name)
    (repo / "blobs" / "cfg").write_text(json.dumps({"model_type": "bert"}))
    (snapshot / "config.json").symlink_to(Path("..") / ".." / "blobs" / "cfg")
    assert list(spectralwatch.describe(snapshot, split_fused=True)["name"]) == ["fc"]


def test_companion_configs_cannot_leave_the_folder(tmp_path):
    secret = tmp_path / "secret.json"
    secret.write_text(json.dumps({"r": 8, "lora_alpha": 16}))
    folder = tmp_path / "adapter"
    _st(folder / "adapter_model.safetensors", {"base_model.model.l.q_proj.lora_A.weight": _w(1, 8, 24),
                                               "base_model.model.l.q_proj.lora_B.weight": _w(2, 16, 8)})
    (folder / "adapter_config.json").symlink_to(secret)
    with pytest.raises(UnsafeFileError, match="outside the model"):
        spectralwatch.describe(folder, peft=True)


@pytest.mark.parametrize("where", ["../outside.bin", "/etc/hostname", "symlink", "fifo"])
def test_onnx_external_data_stays_in_the_folder(tmp_path, where):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    folder = tmp_path / "m"
    folder.mkdir()
    W = _w(1, 24, 16)
    (tmp_path / "outside.bin").write_bytes(W.tobytes())
    location = where
    if where == "symlink":
        (folder / "w.bin").symlink_to(tmp_path / "outside.bin")
        location = "w.bin"
    elif where == "fifo":
        os.mkfifo(folder / "w.bin")
        location = "w.bin"
    t = numpy_helper.from_array(W, "w")
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for key, value in (("location", location), ("offset", "0"), ("length", str(W.nbytes))):
        e = t.external_data.add()
        e.key, e.value = key, value
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])], [t])
    path = folder / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    if where != "fifo":
        with pytest.raises(UnsafeFileError) as info:
            spectralwatch.describe(path)
        assert str(path) in str(info.value)
        return
    code = (f"import spectralwatch\ntry:\n spectralwatch.describe({str(path)!r})\n"
            "except Exception as e:\n print(type(e).__name__, e)")
    proc = _run(code, timeout=60)  # (a FIFO opened for reading would block forever: in a child process)
    assert proc.returncode == 0 and proc.stdout.startswith("UnsafeFileError"), proc.stdout + proc.stderr
    assert str(path) in proc.stdout


def test_fifos_devices_and_symlink_loops_are_refused_before_opening(tmp_path):
    fifo = tmp_path / "model.safetensors"
    os.mkfifo(fifo)
    loop_a, loop_b = tmp_path / "a.pt", tmp_path / "b.pt"
    loop_a.symlink_to(loop_b)
    loop_b.symlink_to(loop_a)
    zero = tmp_path / "zero.npy"
    zero.symlink_to("/dev/zero")
    folder = tmp_path / "f"
    folder.mkdir()
    (folder / "x.safetensors").symlink_to(folder / "x.safetensors")
    code = ("import spectralwatch\n"
            f"for p in {[str(fifo), str(loop_a), str(zero), str(folder)]!r}:\n"
            "    try:\n        spectralwatch.describe(p)\n        print('read', p)\n"
            "    except Exception as e:\n        print(type(e).__name__, '|', e)\n")
    proc = _run(code, timeout=60)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 4 and all(line.startswith("UnsafeFileError |") for line in lines), proc.stdout
    assert "FIFO" in lines[0] and "loop" in lines[1] and "device" in lines[2] and "loop" in lines[3]
    assert all(len(line) < 400 for line in lines)  # no 4 KB path


# ---- work in proportion to the bytes ---------------------------------------------------------------

def test_sparse_and_strided_torch_tensors_fail_alone(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "m.pt"
    torch.save({"sparse.weight": torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 1]]), torch.tensor([1.0, 2.0]),
                                                         (30000, 20000), check_invariants=True),
                "strided.weight": torch.zeros(100).as_strided((30000, 20000), (0, 0)),
                "good.weight": torch.from_numpy(_w(1, 64, 32))}, path)
    assert path.stat().st_size < 20_000  # 8 KB of them is the good layer
    details = spectralwatch.analyze(path, max_evals=None, max_N=None, workers=1).details.set_index("name")
    assert details.loc["good", "status"] == "success"
    for name, what in (("sparse", "sparse_coo"), ("strided", "strided view")):
        assert details.loc[name, "status"] == "failed"
        message = details.loc[name, "message"]
        assert message.startswith("BudgetExceededError") and f"{name}.weight" in message and what in message
        assert "max_work_ratio" in message
    # the limit is an option: lifted, the sparse tensor is read (and densified)
    small = tmp_path / "small.pt"
    torch.save({"s.weight": torch.sparse_coo_tensor(torch.tensor([[0, 1], [0, 1]]), torch.tensor([1.0, 2.0]),
                                                    (2000, 600), check_invariants=True)}, small)
    W = next(iter(open_source(small, max_work_ratio=None).layers())).load()
    assert W.shape == (2000, 600) and W[1, 1] == 2.0 and np.count_nonzero(W) == 2
    with pytest.raises(BudgetExceededError):
        next(iter(open_source(small, max_work_ratio=1).layers())).load()


def test_a_sparse_tensor_with_indices_outside_its_shape_fails_alone(tmp_path):
    torch = pytest.importorskip("torch")
    path = tmp_path / "bad.pt"
    bad = torch.sparse_coo_tensor(torch.tensor([[0, 10 ** 6], [0, 5]]), torch.tensor([1.0, 2.0]), (10, 10),
                                  check_invariants=False)
    torch.save({"bad.weight": bad, "good.weight": torch.from_numpy(_w(1, 64, 32))}, path)
    details = spectralwatch.analyze(path, min_evals=1, workers=1).details.set_index("name")
    assert details.loc["bad", "status"] == "failed" and "out of its shape" in details.loc["bad", "message"]
    assert details.loc["good", "status"] == "success"


def _alias_npz(path: Path, copies: int) -> Path:
    data = io.BytesIO()
    np.save(data, _w(5, 256, 256))
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("big.weight.npy", data.getvalue())
    raw = buf.getvalue()
    end = raw.rfind(b"PK\x05\x06")
    size, offset = struct.unpack_from("<II", raw, end + 12)
    central = raw[offset:offset + size] * (copies + 1)
    tail = bytearray(raw[end:])
    struct.pack_into("<HHII", tail, 8, copies + 1, copies + 1, len(central), offset)
    path.write_bytes(raw[:offset] + central + bytes(tail))
    return path


def test_one_stored_block_referenced_many_times_is_refused(tmp_path, h5py):
    torch = pytest.importorskip("torch")
    cases = {}
    shared = torch.from_numpy(_w(1, 200, 100))
    cases["pt"] = tmp_path / "alias.pt"
    torch.save({f"l{k}.weight": shared for k in range(3000)}, cases["pt"])
    cases["npz"] = _alias_npz(tmp_path / "alias.npz", 700)
    cases["h5"] = tmp_path / "alias.h5"
    with h5py.File(cases["h5"], "w") as f:
        mw = f.create_group("model_weights")
        mw.attrs["layer_names"] = [b"dense"]
        g = mw.create_group("dense")
        g["k:0"] = _w(2, 256, 256)
        g.attrs["weight_names"] = [b"k:0"] * 4000
    for fmt, path in cases.items():
        assert path.stat().st_size < 1_000_000, fmt
        with pytest.raises(BudgetExceededError, match="referenced by") as info:
            spectralwatch.describe(path)
        assert str(path) in str(info.value) and "max_work_ratio" in str(info.value)
    ok = open_source(cases["pt"], max_work_ratio=None)  # lifted: the file opens
    assert sum(1 for _ in ok.layers()) == 3000


def test_onnx_initializers_sharing_one_external_block(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    W = _w(1, 128, 128)
    (tmp_path / "w.bin").write_bytes(W.tobytes())
    inits, nodes = [], []
    for k in range(2000):
        t = numpy_helper.from_array(W, f"w{k}")
        t.ClearField("raw_data")
        t.data_location = TensorProto.EXTERNAL
        for key, value in (("location", "w.bin"), ("offset", "0"), ("length", str(W.nbytes))):
            e = t.external_data.add()
            e.key, e.value = key, value
        inits.append(t)
        nodes.append(helper.make_node("MatMul", ["x", f"w{k}"], [f"y{k}"], name=f"mm{k}"))
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 128])],
                              [helper.make_tensor_value_info("y0", TensorProto.FLOAT, [1, 128])], inits)
    path = tmp_path / "m.onnx"
    onnx.save(helper.make_model(graph), str(path))
    with pytest.raises(BudgetExceededError, match="referenced by 2000 tensors"):
        spectralwatch.describe(path)


def _gguf(tensors, kvs=()) -> bytes:
    def s(text: bytes) -> bytes:
        return struct.pack("<Q", len(text)) + text

    head = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kvs)) + b"".join(kvs)
    for name, dims in tensors:
        head += s(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
        head += struct.pack("<IQ", 0, 0)
    return head + bytes(-len(head) % 32)


def test_gguf_headers_of_many_empty_tensors_and_deep_metadata(tmp_path):
    pytest.importorskip("gguf")
    empty = tmp_path / "empty.gguf"
    empty.write_bytes(_gguf([(f"t{k}.weight".encode(), [0]) for k in range(40_000)]))
    started = time.perf_counter()
    with pytest.raises(BudgetExceededError, match="tensors") as info:
        spectralwatch.describe(empty)
    assert str(empty) in str(info.value)
    assert time.perf_counter() - started < 30  # (not a timing assertion on speed: a hang guard)
    deep = tmp_path / "deep.gguf"
    nested = struct.pack("<Q", 4) + b"deep" + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 50_000
    deep.write_bytes(_gguf([], [nested + struct.pack("<IQ", 4, 0)]))
    with pytest.raises(CorruptFileError, match="nests arrays"):
        spectralwatch.describe(deep)


def test_a_huge_safetensors_header_is_refused_before_it_is_parsed(tmp_path):
    header = json.dumps({f"t{k}": {"dtype": "F32", "shape": [0], "data_offsets": [0, 0]}
                         for k in range(40_000)}).encode()
    header += b" " * (-len(header) % 8)
    path = tmp_path / "big.safetensors"
    path.write_bytes(struct.pack("<Q", len(header)) + header)
    with pytest.raises(BudgetExceededError, match="before parsing it"):
        spectralwatch.describe(path)
    assert len(open_source(path, max_work_ratio=None).entries()) == 40_000


def test_a_compressed_keras_member_is_inflated_once(tmp_path, h5py, monkeypatch):
    from spectralwatch.io.sources import keras_files

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        for k in range(40):
            g = f.create_group(f"layers/dense_{k}/vars")
            g.attrs["name"] = f"dense_{k}"
            g["0"] = _w(k, 64, 32)
    path = tmp_path / "m.keras"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("config.json", "{}")
        zf.writestr("model.weights.h5", buf.getvalue())
    reads = []
    real = zipfile.ZipFile.read

    def read(self, name, *args, **kwargs):
        reads.append(name)
        return real(self, name, *args, **kwargs)

    monkeypatch.setattr(zipfile.ZipFile, "read", read)
    layers = keras_files.scan_file(str(path))  # in this process: every read is counted
    for layer in layers:
        for weight in layer.weights:
            weight[3]()
    assert len(layers) == 40 and reads.count("model.weights.h5") == 1


def test_the_work_ratio_option_is_validated():
    from spectralwatch.errors import InvalidParameterError

    for bad in (-1, float("nan"), "x", True):
        with pytest.raises(InvalidParameterError, match="max_work_ratio"):
            open_source(np.eye(3), max_work_ratio=bad)


# ---- patterns read from files ------------------------------------------------------------------------

def test_a_catastrophic_peft_pattern_cannot_hang(tmp_path):
    folder = tmp_path / "adapter"
    long = "a" * 40
    prefix = f"base_model.model.{long}.layers.0.q_proj"
    _st(folder / "adapter_model.safetensors", {f"{prefix}.lora_A.weight": _w(1, 8, 24),
                                               f"{prefix}.lora_B.weight": _w(2, 16, 8)})
    (folder / "adapter_config.json").write_text(json.dumps(
        {"r": 8, "lora_alpha": 16, "alpha_pattern": {"(a+)+$": 4, "q_proj": 32}, "rank_pattern": {"(a|a)*b": 2}}))
    base = _st(tmp_path / "base.safetensors", {f"{long}.layers.0.q_proj.weight": _w(3, 16, 24)})
    code = (f"import spectralwatch\nr = spectralwatch.analyze({str(folder)!r}, peft='with_base', "
            f"base_model={str(base)!r}, min_evals=1, workers=1)\n"
            f"print(r.details[['name', 'status']].to_dict('records'))\n"
            f"print(len(spectralwatch.describe({str(folder)!r}, peft=True)))")
    proc = _run(code, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "lora_W_plus_AB" in proc.stdout


def test_peft_patterns_mean_what_they_mean_to_peft():
    """The linear-time matcher against Python's re on PEFT's own expression, over keys and names."""
    import re

    from spectralwatch.io.sources.patterns import pattern_match

    keys = ["q_proj", "layers.0.q_proj", r"layers\.\d+\.q_proj", ".*q_proj", "(q|v)_proj", "^model.*v_proj",
            r"\bq_proj", "k{1,3}_proj", "k{2}_proj", "a*?b", "(a+)+$", ".{2,5}", "x?y??z+?", "[^.]+_proj",
            r"[a-c\d]+", "q_proj$", r"\w+\.up_proj", r"(?:mlp|attn)\.\w+", "[", "(?P<g>q)_proj", r"(q)\1_proj",
            "(?i)Q_PROJ", "(?=q)q_proj", "up_proj|down_proj", "", r"\Aq_proj\Z", r"q_proj\B"]
    names = ["base_model.model.model.layers.0.self_attn.q_proj", "model.layers.1.self_attn.v_proj",
             "layers.0.q_proj", "kk_proj", "q_proj", "xq_proj", "a.b", "aaab", "abc", "12",
             "model.layers.10.mlp.up_proj", "q_proj\n", "", "qq_proj", "mlp.gate"]
    for key in keys:
        try:
            compiled = re.compile(rf"(.*\.)?({key})$")
        except re.error:
            compiled = None
        for name in names:
            got = pattern_match(key, name)
            if compiled is None:  # not a regular expression: literal
                assert got == (name == key or name.endswith("." + key)), (key, name)
            elif any(tok in key for tok in ("\\1", "(?i)", "(?=")):  # matched literally (documented)
                assert got == (name == key or name.endswith("." + key)), (key, name)
            else:
                assert got == (compiled.match(name) is not None), (key, name)


def test_pattern_matching_is_linear_on_hostile_inputs():
    from spectralwatch.io.sources.patterns import pattern_match

    started = time.perf_counter()
    for key in ("(a+)+$", "(a|a)*b", "((a*)*)*c", "(a|aa)+$", "(.*a){12}"):
        assert pattern_match(key, "a" * 3000 + "!") is False
    assert time.perf_counter() - started < 30  # a hang guard (backtracking would take longer than the universe)


# ---- files rewritten while they are read ---------------------------------------------------------

_REWRITE = """
import os, subprocess, sys, numpy as np
import torch
from spectralwatch.io.sources import open_source
path = sys.argv[1]
torch.save({"a.weight": torch.randn(1500, 1000), "b.weight": torch.randn(1500, 1000)}, path)
refs = list(open_source(path).layers())
subprocess.run([sys.executable, "-c", "open(%r, 'wb').write(b'x' * 100)" % path], check=True)
for r in refs:
    try:
        r.load()
        print("loaded", r.name)
    except Exception as e:
        print(type(e).__name__, "|", e)
"""


def test_a_checkpoint_truncated_by_another_process_is_an_error_not_a_signal(tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "reader_after_truncation.py"
    script.write_text(_REWRITE)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "last.pt")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode} (SIGBUS is -7): {proc.stderr[-2000:]}"
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and all(line.startswith("CorruptFileError |") for line in lines), proc.stdout
    assert "was truncated while it was being read" in lines[0]


_CONCURRENT = """
import os, subprocess, sys, time, numpy as np
import torch
from spectralwatch.errors import CorruptFileError
from spectralwatch.io.sources import open_source
path = sys.argv[1]
A = torch.from_numpy(np.random.default_rng(1).standard_normal((800, 600)).astype(np.float32))
torch.save({"w.weight": A}, path)
ref = next(iter(open_source(path).layers()))
writer = subprocess.Popen([sys.executable, "-c", '''
import sys, torch, numpy as np
path = sys.argv[1]
B = torch.from_numpy(np.random.default_rng(2).standard_normal((700, 600)).astype(np.float32))
A = torch.from_numpy(np.random.default_rng(1).standard_normal((800, 600)).astype(np.float32))
for k in range(40):
    torch.save({"w.weight": B if k % 2 == 0 else A}, path)  # a training loop re-saving last.pt in place
''', path])
ok = errors = 0
while writer.poll() is None:
    try:
        W = ref.load()
        assert np.array_equal(W, A.numpy()), "a matrix that is not the one opened"
        ok += 1
    except CorruptFileError as exc:
        text = str(exc)
        assert "while it was being read" in text or "no longer holds" in text or "ended before" in text, text
        errors += 1
writer.wait()
assert ok + errors > 0
print("ok", ok, "errors", errors)
"""


@pytest.mark.slow
def test_a_checkpoint_rewritten_in_a_loop_while_read_never_kills_the_reader(tmp_path):
    pytest.importorskip("torch")
    script = tmp_path / "reader_under_rewrites.py"
    script.write_text(_CONCURRENT)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([SRC, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "last.pt")], capture_output=True, text=True,
                          timeout=300, env=env)
    assert proc.returncode == 0, f"exit {proc.returncode} (SIGBUS is -7): {proc.stderr[-2000:]}"
    assert proc.stdout.startswith("ok "), proc.stdout


def test_a_truncated_mapping_is_copied_as_an_error(tmp_path):
    path = tmp_path / "mapped.bin"
    path.write_bytes(b"x" * (1 << 20))
    code = f"""
import mmap, os, numpy as np
from spectralwatch.errors import CorruptFileError
from spectralwatch.io.sources.guarded import copy_mapped
fh = open({str(path)!r}, "rb")
m = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
address = np.frombuffer(m, dtype=np.uint8).ctypes.data
assert bytes(copy_mapped(address, 4096, "f")) == b"x" * 4096
os.truncate({str(path)!r}, 4096)
try:
    copy_mapped(address + 8192, 4096, "f")
    print("copied")
except CorruptFileError as exc:
    print("error", exc)
"""
    if not os.path.exists("/proc/self/mem"):
        pytest.skip("no /proc/self/mem: the copy is direct (documented)")
    proc = _run(code)
    assert proc.returncode == 0 and proc.stdout.startswith("error"), (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.parametrize("fmt", ["gguf", "npy", "safetensors"])
def test_other_formats_rewritten_after_opening_give_an_error(tmp_path, fmt):
    W = _w(1, 64, 32)
    if fmt == "gguf":
        pytest.importorskip("gguf")
        path = tmp_path / "m.gguf"
        head = b"GGUF" + struct.pack("<IQQ", 3, 1, 0) + struct.pack("<Q", 8) + b"w.weight" + struct.pack("<I", 2)
        head += struct.pack("<QQ", 32, 64) + struct.pack("<IQ", 0, 0)
        head += bytes(-len(head) % 32)
        path.write_bytes(head + W.tobytes())
    elif fmt == "npy":
        path = tmp_path / "m.npy"
        np.save(path, W)
    else:
        path = _st(tmp_path / "m.safetensors", {"w.weight": W})
    ref = next(iter(open_source(path).layers()))
    np.testing.assert_array_equal(ref.load(), W)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # cut while the model is open
    with pytest.raises(CorruptFileError):
        ref.load()
    path.write_bytes(data[:-16] + _w(2, 4).tobytes())  # rewritten: same size, other values
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10 ** 9))
    with pytest.raises(CorruptFileError, match="changed while it was being read"):
        ref.load()  # never the new file's values shown as the model's


# ---- error messages never print file bytes --------------------------------------------------------

_KEY = ("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW"
        "QyNTUxOQAAACDSECRETSECRETSECRETSECRETSECRETSECRETSECRET=\n-----END OPENSSH PRIVATE KEY-----\n")


@pytest.mark.parametrize("ext", [".safetensors", ".pt", ".npz", ".npy", ".gguf", ".onnx", ".h5", ".keras"])
def test_error_messages_never_print_the_files_bytes(tmp_path, ext):
    secret = tmp_path / "id_ed25519"
    secret.write_text(_KEY)
    link = tmp_path / f"model{ext}"
    link.symlink_to(secret)
    with pytest.raises(SpectralWatchError) as info:
        spectralwatch.analyze(link)
    message = str(info.value)
    raw = _KEY.encode()
    leaks = [raw[i:i + 4].decode() for i in range(0, len(raw) - 4) if raw[i:i + 4].decode() in message
             and raw[i:i + 4].decode() not in str(link)]
    numbers = {str(int.from_bytes(raw[:n], order)) for n in (2, 4, 8) for order in ("little", "big")}
    assert not leaks, (message, leaks)
    assert not any(n in message for n in numbers), message
    assert str(link) in message

"""Model readers: detection, WeightWatcher-compatible numbering, file formats and their failures."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

from spectralwatch.errors import (CorruptFileError, InvalidParameterError, ModelFileNotFoundError,
                                  SpectralWatchError, UnknownFormatError, UnsafeFileError)
from spectralwatch.io.sources import ANALYSABLE_TYPES, available_sources, open_source

torch = pytest.importorskip("torch")
nn = torch.nn


# --------------------------------------------------------------------------------------------
# models and helpers
# --------------------------------------------------------------------------------------------

def make_mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(20, 30), nn.ReLU(), nn.Linear(30, 25), nn.LayerNorm(25), nn.ReLU(),
                         nn.Linear(25, 10))


class ConvNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU(),
                                      nn.Conv2d(8, 16, 3), nn.BatchNorm2d(16), nn.ReLU())
        self.fc = nn.Linear(64, 20)
        self.out = nn.Linear(20, 10)


def make_convnet():
    torch.manual_seed(1)
    net = ConvNet()
    with torch.no_grad():  # non-trivial norm statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-1, 1)
                m.weight.uniform_(0.5, 1.5)
    return net


class Tiny(nn.Module):
    """Every layer kind the file formats must carry."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(12, 6)
        self.conv1 = nn.Conv1d(6, 5, 3)
        self.conv2 = nn.Conv2d(5, 4, 2)
        self.bn = nn.BatchNorm2d(4)
        self.fc = nn.Linear(16, 7)


def make_tiny():
    torch.manual_seed(2)
    return Tiny()


def contiguous_sd(model):
    return {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}


def loaded_by_name(source):
    return {ref.name: ref.load() for ref in source.layers()}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_hashes(path):
    path = Path(path)
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    return {str(p): sha256(p) for p in files}


def save_safetensors(state_dict, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in state_dict.items()}, str(path))


def write_sharded(state_dict, folder, n_shards=2):
    """A Hugging Face style sharded folder; weight_map lists keys in state-dict order."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    keys = list(state_dict)
    per = -(-len(keys) // n_shards)
    weight_map = {}
    for i in range(n_shards):
        name = f"model-{i + 1:05d}-of-{n_shards:05d}.safetensors"
        part = {k: state_dict[k] for k in keys[i * per:(i + 1) * per]}
        save_safetensors(part, folder / name)
        weight_map.update({k: name for k in part})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return weight_map


@dataclasses.dataclass
class TrainingConfig:
    lr: float = 0.1


# --------------------------------------------------------------------------------------------
# import hygiene
# --------------------------------------------------------------------------------------------

def test_importing_sources_does_not_import_torch_or_pandas():
    code = ("import sys, spectralwatch, spectralwatch.io.sources as s; "
            "s.available_sources(); s.open_source({'a.weight': __import__('numpy').ones((2, 3))}); "
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_without_torch_numpy_and_safetensors_still_work_and_torch_files_name_the_extra(tmp_path):
    sd = contiguous_sd(make_tiny())
    save_safetensors(sd, tmp_path / "m.safetensors")
    torch.save(sd, tmp_path / "m.pt")
    code = f"""
import sys
sys.modules['torch'] = None  # make 'import torch' fail
import numpy as np
from spectralwatch.io.sources import open_source, available_sources
from spectralwatch.errors import MissingDependencyError, UnknownFormatError
refs = list(open_source({str(tmp_path / 'm.safetensors')!r}).layers())
assert refs[0].load().dtype == np.float32, refs
assert {{d['name']: d['installed'] for d in available_sources()}}['pytorch file'] is False
try:
    open_source({str(tmp_path / 'm.pt')!r})
except MissingDependencyError as exc:
    assert "spectralwatch[torch]" in str(exc), exc
else:
    raise AssertionError('no error')
try:
    open_source(3)
except UnknownFormatError as exc:
    assert "spectralwatch[torch]" in str(exc), exc
print('ok')
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "ok", out.stderr


# --------------------------------------------------------------------------------------------
# parity of ids / names with WeightWatcher 0.7.7
# --------------------------------------------------------------------------------------------

def ww_rows(model, **kwargs):
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d = ww.WeightWatcher().describe(model=model, **kwargs)  # a fresh instance: it keeps state
    return [(int(r.layer_id), str(r.name), str(r.longname), str(r.layer_type).split(".")[-1].lower())
            for r in d.itertuples()]


def our_rows(model, **kwargs):
    return [(r.layer_id, r.name, r.longname, r.layer_type) for r in open_source(model, **kwargs).layers()
            if r.layer_type in ANALYSABLE_TYPES and min(r.shape) >= 1]


@pytest.mark.reference
@pytest.mark.parametrize("make", [make_mlp, make_convnet], ids=["mlp", "convnet"])
def test_module_ids_match_weightwatcher(make):
    model = make()
    expected = ww_rows(model)
    assert expected  # the reference listed something
    assert our_rows(model) == expected


@pytest.mark.reference
@pytest.mark.parametrize("make", [make_mlp, make_convnet], ids=["mlp", "convnet"])
def test_state_dict_ids_match_weightwatcher(make):
    sd = make().state_dict()
    assert our_rows(sd) == ww_rows(sd)
    assert our_rows(sd)[0][0] == 1  # a state dict counts from 1
    assert our_rows(sd, start_id=7) == ww_rows(sd, start_ids=7)


@pytest.mark.reference
@pytest.mark.parametrize("layout", ["single", "sharded", "files"])
def test_folder_ids_match_weightwatcher(tmp_path, layout):
    sd = contiguous_sd(make_convnet())
    if layout == "single":
        save_safetensors(sd, tmp_path / "model.safetensors")
    elif layout == "sharded":
        write_sharded(sd, tmp_path, n_shards=2)
    else:
        keys = list(sd)
        save_safetensors({k: sd[k] for k in keys[:7]}, tmp_path / "model-00001-of-00002.safetensors")
        save_safetensors({k: sd[k] for k in keys[7:]}, tmp_path / "model-00002-of-00002.safetensors")
    expected = ww_rows(str(tmp_path))
    assert expected and expected[0][0] == 0  # the reference counts a folder from 0
    # same ids and names; listed in network order (features.3 before fc), the reference in its stored order
    assert sorted(our_rows(tmp_path)) == sorted(expected)


def test_module_numbering_counts_every_module():
    model = make_convnet()
    refs = list(open_source(model).layers())
    paths = [p for p, _ in model.named_modules()]
    for ref in refs:
        assert paths[ref.layer_id] == ref.longname
        assert ref.name == ref.longname.split(".")[-1]
    assert [(r.longname, r.layer_type) for r in refs] == [
        ("features.0", "conv2d"), ("features.1", "norm"), ("features.3", "conv2d"), ("features.4", "norm"),
        ("fc", "dense"), ("out", "dense")]
    assert [r.layer_id for r in open_source(model, start_id=10).layers()] == [r.layer_id + 10 for r in refs]


def test_root_module_with_weight_is_layer_zero_named_after_its_class():
    (ref,) = open_source(nn.Linear(3, 4)).layers()
    assert (ref.layer_id, ref.name, ref.longname, ref.layer_type, ref.shape) == (0, "Linear", "", "dense", (4, 3))


class Conv1D(nn.Module):
    """Shape of the Hugging Face GPT-2 layer: a 2-D weight stored (in, out)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(nx, nf))
        self.bias = nn.Parameter(torch.zeros(nf))


class MyLinear(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(5, 4))


class RMSNorm(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(4))


class Scaler(nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 3))


def test_module_layer_types():
    torch.manual_seed(3)
    model = nn.ModuleDict({
        "emb": nn.Embedding(10, 4), "c1": nn.Conv1d(4, 6, 3), "c2": nn.Conv2d(6, 5, 3), "lin": nn.Linear(4, 5),
        "hf": Conv1D(8, 4), "my": MyLinear(), "ln": nn.LayerNorm(4), "bn": nn.BatchNorm1d(4),
        "rms": RMSNorm(), "c3": nn.Conv3d(2, 3, 2), "tr": nn.ConvTranspose2d(2, 3, 2), "bil": nn.Bilinear(3, 4, 5),
        "sc": Scaler(), "relu": nn.ReLU(), "bn_noaffine": nn.BatchNorm1d(4, affine=False),
    })
    got = {r.name: (r.layer_type, r.shape) for r in open_source(model).layers()}
    assert got == {
        "emb": ("embedding", (10, 4)), "c1": ("conv1d", (6, 4, 3)), "c2": ("conv2d", (5, 6, 3, 3)),
        "lin": ("dense", (5, 4)), "hf": ("conv1d", (4, 8)), "my": ("dense", (5, 4)), "ln": ("norm", (4,)),
        "bn": ("norm", (4,)), "rms": ("norm", (4,)), "c3": ("conv3d", (3, 2, 2, 2, 2)),
        "tr": ("conv_transpose", (2, 3, 2, 2)), "bil": ("unknown", (5, 3, 4)), "sc": ("unknown", (3, 3)),
    }
    ids = {r.name: r.layer_id for r in open_source(model).layers()}
    assert ids["emb"] == 1 and ids["sc"] == 13  # relu and bn_noaffine still consume ids (root is 0)


def test_module_is_not_modified_and_loads_are_copies():
    model = make_convnet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    attrs = {name: sorted(vars(m)) for name, m in model.named_modules()}
    for ref in open_source(model).layers():
        w = ref.load()
        w[...] = 0  # must not write through to the model
    assert {name: sorted(vars(m)) for name, m in model.named_modules()} == attrs
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert not any(hasattr(m, "longname") for m in model.modules())


def test_module_dtypes_widened():
    lin16 = nn.Linear(4, 3).half()
    linbf = nn.Linear(4, 3).to(torch.bfloat16)
    lin64 = nn.Linear(4, 3).double()
    for layer, dtype, out in [(lin16, "float16", np.float32), (linbf, "bfloat16", np.float32),
                              (lin64, "float64", np.float64), (nn.Linear(4, 3), "float32", np.float32)]:
        (ref,) = open_source(layer).layers()
        w = ref.load()
        assert ref.dtype == dtype and w.dtype == out
        np.testing.assert_array_equal(w, layer.weight.detach().double().numpy())


# --------------------------------------------------------------------------------------------
# state dicts and bare arrays
# --------------------------------------------------------------------------------------------

def test_state_dict_numbering_rules():
    rng = np.random.default_rng(0)
    sd = {"transformer.wte.weight": rng.standard_normal((50, 8)), "embed_tokens.weight": rng.standard_normal((50, 8)),
          "h.0.ln.weight": np.ones(8), "h.0.ln.bias": np.zeros(8), "h.0.attn.weight": rng.standard_normal((8, 24)),
          "h.0.conv.weight": rng.standard_normal((4, 8, 3)), "h.0.c2.weight": rng.standard_normal((4, 4, 3, 3)),
          "steps": 7, "scale.weight": np.array(2.0), "note": "text"}
    refs = list(open_source(sd).layers())
    assert [(r.layer_id, r.name, r.longname, r.layer_type) for r in refs] == [
        (1, "transformer.wte", "transformer.wte", "embedding"), (2, "embed_tokens", "embed_tokens", "embedding"),
        (3, "h.0.ln", "h.0.ln", "norm"), (4, "h.0.attn", "h.0.attn", "dense"), (5, "h.0.conv", "h.0.conv", "conv1d"),
        (6, "h.0.c2", "h.0.c2", "conv2d"), (7, "scale", "scale", "unknown")]
    assert [r.layer_id for r in open_source(sd, start_id=0).layers()] == list(range(7))


def test_state_dict_without_weight_keys_uses_every_key():
    rng = np.random.default_rng(1)
    sd = {"W1": rng.standard_normal((6, 4)), "W2": rng.standard_normal((5, 6)), "cfg": {"a": 1}}
    refs = list(open_source(sd).layers())
    assert [(r.layer_id, r.name, r.longname, r.layer_type) for r in refs] == [
        (1, "W1", "W1", "dense"), (2, "W2", "W2", "dense")]
    np.testing.assert_array_equal(refs[1].load(), sd["W2"])


def test_bare_arrays_and_tensors_are_one_layer():
    W = np.arange(12.0).reshape(3, 4)
    (ref,) = open_source(W).layers()
    assert (ref.layer_id, ref.name, ref.longname, ref.layer_type, ref.dtype) == (0, "W", "W", "dense", "float64")
    out = ref.load()
    out[0, 0] = 99
    assert W[0, 0] == 0  # a copy
    (ref,) = open_source(np.ones((2, 3, 3), dtype=np.float16), start_id=5).layers()
    assert (ref.layer_id, ref.layer_type, ref.load().dtype) == (5, "conv1d", np.float32)
    (ref,) = open_source(torch.ones(2, 3, 4, 4, dtype=torch.bfloat16)).layers()
    assert (ref.layer_type, ref.dtype, ref.load().dtype) == ("conv2d", "bfloat16", np.float32)
    (ref,) = open_source(np.arange(5)).layers()
    assert ref.layer_type == "norm" and ref.load().dtype == np.float64


@pytest.mark.parametrize("bad", ["x", 1.5, True])
def test_start_id_must_be_an_int(bad):
    with pytest.raises(InvalidParameterError, match="start_id"):
        open_source(np.ones((2, 2)), start_id=bad)


# --------------------------------------------------------------------------------------------
# the same model through every format
# --------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_files(tmp_path):
    model = make_tiny()
    sd = contiguous_sd(model)
    files = {}
    files["pt"] = tmp_path / "tiny.pt"
    torch.save(sd, files["pt"])
    files["safetensors"] = tmp_path / "tiny.safetensors"
    save_safetensors(sd, files["safetensors"])
    files["npz"] = tmp_path / "tiny.npz"
    np.savez(files["npz"], **{k: v.numpy() for k, v in sd.items()})
    files["sharded"] = tmp_path / "sharded"
    write_sharded(sd, files["sharded"], n_shards=3)
    return model, sd, files


def test_same_tensors_through_every_format(tiny_files):
    model, sd, files = tiny_files
    expected = {k[: -len(".weight")]: v.numpy() for k, v in sd.items() if k.endswith(".weight")}
    assert set(expected) == {"embed", "conv1", "conv2", "bn", "fc"}
    by_module = {r.longname: r.load() for r in open_source(model).layers()}
    sources = [sd, files["pt"], str(files["pt"]), files["safetensors"], files["npz"], files["sharded"],
               str(files["sharded"])]
    for src in sources:
        source = open_source(src)
        got = loaded_by_name(source)
        assert set(got) == set(expected), source
        for name, arr in got.items():
            np.testing.assert_array_equal(arr, expected[name])
            np.testing.assert_array_equal(arr, by_module[name])
            assert arr.dtype == np.float32
        refs = list(source.layers())
        first = 0 if isinstance(src, (str, Path)) and Path(src).is_dir() else 1  # folders count from 0
        assert sorted(r.layer_id for r in refs) == list(range(first, first + len(expected)))
        types = {r.name: r.layer_type for r in refs}
        assert types == {"embed": "embedding", "conv1": "conv1d", "conv2": "conv2d", "bn": "norm", "fc": "dense"}
    assert open_source(files["safetensors"]).format == "safetensors"
    assert open_source(files["pt"]).format == "pytorch"
    assert open_source(files["npz"]).format == "npz"
    assert open_source(files["sharded"]).format == "folder"
    assert open_source(files["pt"]).description == str(files["pt"])


def test_key_orders(tiny_files):
    _, sd, files = tiny_files
    from safetensors import safe_open

    with safe_open(str(files["safetensors"]), framework="numpy") as f:
        st_keys = [k[: -len(".weight")] for k in f.keys() if k.endswith(".weight")]
    assert [r.name for r in open_source(files["safetensors"]).layers()] == st_keys
    in_order = [k[: -len(".weight")] for k in sd if k.endswith(".weight")]
    for src in (sd, files["pt"], files["npz"], files["sharded"]):
        assert [r.name for r in open_source(src).layers()] == in_order, src


def test_sharded_folder_order_and_one_numbering(tmp_path):
    rng = np.random.default_rng(2)
    arrays = {f"layers.{i}.weight": rng.standard_normal((4 + i, 3)).astype(np.float32) for i in range(5)}
    from safetensors.numpy import save_file

    # shard names sort differently from the weight_map's listing; keys listed out of file order
    save_file({k: arrays[k] for k in ["layers.0.weight", "layers.4.weight"]}, str(tmp_path / "b.safetensors"))
    save_file({k: arrays[k] for k in ["layers.1.weight", "layers.2.weight", "layers.3.weight"]},
              str(tmp_path / "a.safetensors"))
    weight_map = {"layers.4.weight": "b.safetensors", "layers.3.weight": "a.safetensors",
                  "layers.0.weight": "b.safetensors", "layers.1.weight": "a.safetensors",
                  "layers.2.weight": "a.safetensors"}
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    (tmp_path / "config.json").write_text("{}")
    refs = list(open_source(tmp_path).layers())
    # the reference's ids (shards in file-name order, keys in weight_map order), listed in network order
    assert [(r.layer_id, r.name) for r in refs] == [
        (4, "layers.0"), (1, "layers.1"), (2, "layers.2"), (0, "layers.3"), (3, "layers.4")]
    for r in refs:
        np.testing.assert_array_equal(r.load(), arrays[r.name + ".weight"])
    assert [r.layer_id for r in open_source(tmp_path, start_id=1).layers()] == [5, 2, 3, 1, 4]


def test_sharded_index_problems(tmp_path):
    from safetensors.numpy import save_file

    save_file({"a.weight": np.ones((2, 2), np.float32)}, str(tmp_path / "s1.safetensors"))
    index = tmp_path / "model.safetensors.index.json"
    index.write_text(json.dumps({"weight_map": {"a.weight": "s1.safetensors", "b.weight": "s2.safetensors"}}))
    with pytest.raises(CorruptFileError, match="s2.safetensors"):
        open_source(tmp_path)
    index.write_text(json.dumps({"weight_map": {"a.weight": "s1.safetensors", "zz.weight": "s1.safetensors"}}))
    with pytest.raises(CorruptFileError, match="zz.weight"):
        open_source(tmp_path)
    index.write_text(json.dumps({"weight_map": {"a.weight": "../s1.safetensors"}}))
    with pytest.raises(CorruptFileError, match="outside"):
        open_source(tmp_path)
    index.write_text("{not json")
    with pytest.raises(CorruptFileError, match="index"):
        open_source(tmp_path)


def test_folder_fallbacks(tmp_path):
    sd = contiguous_sd(make_tiny())
    # pytorch_model*.bin shards are read; other .bin files (pickled training state) are not touched
    bins = tmp_path / "bins"
    bins.mkdir()
    keys = list(sd)
    torch.save({k: sd[k] for k in keys[:4]}, bins / "pytorch_model-00001-of-00002.bin")
    torch.save({k: sd[k] for k in keys[4:]}, bins / "pytorch_model-00002-of-00002.bin")
    torch.save(TrainingConfig(), bins / "training_args.bin")
    refs = list(open_source(bins).layers())
    assert [r.name for r in refs] == [k[:-7] for k in keys if k.endswith(".weight")]
    assert [r.layer_id for r in refs] == list(range(len(refs)))
    # plain *.safetensors files, sorted
    st = tmp_path / "st"
    st.mkdir()
    save_safetensors({"z.weight": sd["fc.weight"]}, st / "1.safetensors")
    save_safetensors({"a.weight": sd["embed.weight"]}, st / "2.safetensors")
    assert [(r.layer_id, r.name) for r in open_source(st).layers()] == [(0, "z"), (1, "a")]
    # nothing readable
    junk = tmp_path / "junk"
    junk.mkdir()
    (junk / "README.md").write_text("hi")
    (junk / "training_args.bin").write_bytes(b"x")
    with pytest.raises(UnknownFormatError, match="README.md"):
        open_source(junk)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UnknownFormatError, match="no files"):
        open_source(empty)


# --------------------------------------------------------------------------------------------
# torch files: checkpoints, unsafe pickles, corruption
# --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wrap", ["state_dict", "model_state_dict", "model", "module_prefix", "nested"])
def test_checkpoint_wrappers(tmp_path, wrap):
    sd = contiguous_sd(make_tiny())
    if wrap == "module_prefix":
        obj = {f"module.{k}": v for k, v in sd.items()}
    elif wrap == "nested":
        obj = {"model": {"state_dict": sd}, "step": 5}
    else:
        obj = {wrap: sd, "epoch": 3, "optimizer_state_dict": {"state": {}, "param_groups": [{"lr": 0.1}]}}
    path = tmp_path / "ckpt.ckpt"
    torch.save(obj, path)
    expected = [k[:-7] for k in sd if k.endswith(".weight")]
    for src in (path, obj):
        refs = list(open_source(src).layers())
        assert [r.name for r in refs] == expected
        np.testing.assert_array_equal(refs[-1].load(), sd["fc.weight"].numpy())


def test_module_prefix_stripped_in_safetensors(tmp_path):
    sd = contiguous_sd(make_tiny())
    save_safetensors({f"module.{k}": v for k, v in sd.items()}, tmp_path / "dp.safetensors")
    assert {r.name for r in open_source(tmp_path / "dp.safetensors").layers()} == {
        "embed", "conv1", "conv2", "bn", "fc"}


@pytest.mark.parametrize("payload", ["dataclass", "module"])
def test_pickles_needing_code_are_refused(tmp_path, payload):
    path = tmp_path / "unsafe.pt"
    obj = {"w": torch.ones(2, 2), "cfg": TrainingConfig()} if payload == "dataclass" else make_tiny()
    torch.save(obj, path)
    digest = sha256(path)
    with pytest.raises(UnsafeFileError) as info:
        open_source(path)
    msg = str(info.value)
    assert "pickled Python objects" in msg and "never" in msg and "safetensors" in msg and "state dict" in msg
    assert str(path) in msg
    assert sha256(path) == digest


def test_torch_file_without_state_dict(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([torch.ones(2), torch.ones(3)], path)
    with pytest.raises(UnknownFormatError, match="list"):
        open_source(path)
    path = tmp_path / "meta.pth"
    torch.save({"epoch": 3, "lr": 0.1}, path)
    with pytest.raises(UnknownFormatError, match="epoch"):
        open_source(path)


def test_legacy_torch_format_loads(tmp_path):
    sd = contiguous_sd(make_tiny())
    path = tmp_path / "legacy.pth"
    torch.save(sd, path, _use_new_zipfile_serialization=False)
    got = loaded_by_name(open_source(path))
    np.testing.assert_array_equal(got["conv2"], sd["conv2.weight"].numpy())


def test_corrupt_torch_files(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(contiguous_sd(make_tiny()), good)
    data = good.read_bytes()
    (tmp_path / "half.pt").write_bytes(data[: len(data) // 2])
    (tmp_path / "garbage.bin").write_bytes(np.random.default_rng(0).bytes(500))
    (tmp_path / "empty.pt").write_bytes(b"")
    for name in ("half.pt", "garbage.bin", "empty.pt"):
        with pytest.raises(CorruptFileError, match=name):
            open_source(tmp_path / name)


# --------------------------------------------------------------------------------------------
# safetensors: dtypes, laziness, corruption
# --------------------------------------------------------------------------------------------

def test_bf16_and_fp16_safetensors(tmp_path):
    torch.manual_seed(4)
    sd = {"a.weight": torch.randn(6, 5).to(torch.bfloat16), "b.weight": torch.randn(4, 3).half(),
          "c.weight": torch.randn(3, 2, dtype=torch.float64), "d.weight": torch.arange(6).reshape(2, 3)}
    save_safetensors(sd, tmp_path / "m.safetensors")
    refs = {r.name: r for r in open_source(tmp_path / "m.safetensors").layers()}
    assert {k: r.dtype for k, r in refs.items()} == {"a": "bfloat16", "b": "float16", "c": "float64", "d": "int64"}
    for k, out_dtype in [("a", np.float32), ("b", np.float32), ("c", np.float64), ("d", np.float64)]:
        w = refs[k].load()
        assert w.dtype == out_dtype and w.shape == tuple(sd[f"{k}.weight"].shape)
        np.testing.assert_array_equal(w, sd[f"{k}.weight"].double().numpy())


@pytest.mark.parametrize("fmt", ["float8_e4m3fn", "float8_e5m2", "float8_e8m0fnu"])
def test_float8_safetensors_decoded_exactly(tmp_path, fmt):
    dtype = getattr(torch, fmt, None)
    if dtype is None:
        pytest.skip(f"torch has no {fmt}")
    codes = torch.arange(256, dtype=torch.uint8).view(dtype).reshape(16, 16)
    save_safetensors({"w.weight": codes}, tmp_path / "f8.safetensors")
    (ref,) = open_source(tmp_path / "f8.safetensors").layers()
    assert ref.dtype == fmt
    np.testing.assert_array_equal(ref.load(), codes.float().numpy())  # NaNs compare equal here


def test_safetensors_loads_are_lazy_and_per_tensor(tmp_path, monkeypatch):
    import spectralwatch.io.sources.safetensors_ as st

    sd = contiguous_sd(make_tiny())
    save_safetensors(sd, tmp_path / "m.safetensors")
    calls = []
    real = st.read_safetensors_tensor
    monkeypatch.setattr(st, "read_safetensors_tensor", lambda path, t: calls.append(t.key) or real(path, t))
    refs = list(open_source(tmp_path / "m.safetensors").layers())
    assert calls == []
    refs[0].load()
    assert calls == [refs[0].name + ".weight"]


def test_safetensors_metadata_is_validated_before_reading(tmp_path):
    def write(header: dict, data: bytes, name: str):
        raw = json.dumps(header).encode()
        path = tmp_path / name
        path.write_bytes(len(raw).to_bytes(8, "little") + raw + data)
        return path

    ok = write({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(16), "ok.safetensors")
    assert open_source(ok).layers().__next__().load().shape == (2, 2)
    cases = {
        "size.safetensors": ({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 16]}}, bytes(16), "needs"),
        "beyond.safetensors": ({"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}, bytes(8), "16"),
        "shape.safetensors": ({"w": {"dtype": "F32", "shape": [-1, 2], "data_offsets": [0, 16]}}, bytes(16), "shape"),
        "order.safetensors": ({"w": {"dtype": "F32", "shape": [], "data_offsets": [4, 0]}}, bytes(16), "order"),
        "overlap.safetensors": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                 "v": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}, bytes(12), "overlap"),
        "gap.safetensors": ({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, bytes(12), "bytes"),
        "nodtype.safetensors": ({"w": {"shape": [2], "data_offsets": [0, 8]}}, bytes(8), "dtype"),
        "list.safetensors": ([1, 2], b"", "JSON"),
    }
    for name, (header, data, problem) in cases.items():
        path = write(header, data, name)
        with pytest.raises(CorruptFileError, match=problem) as info:
            open_source(path)
        assert name in str(info.value)


def test_corrupt_safetensors_files(tmp_path):
    sd = contiguous_sd(make_tiny())
    good = tmp_path / "good.safetensors"
    save_safetensors(sd, good)
    data = good.read_bytes()
    bad = {"half.safetensors": data[: len(data) // 2], "tiny.safetensors": data[:5], "empty.safetensors": b"",
           "garbage.safetensors": np.random.default_rng(1).bytes(4096),
           "header_only.safetensors": data[: 8 + int.from_bytes(data[:8], "little")]}
    for name, content in bad.items():
        (tmp_path / name).write_bytes(content)
        with pytest.raises(CorruptFileError, match=name):
            open_source(tmp_path / name)
    # every single-bit flip of the 8-byte header length is detected
    for bit in range(64):
        flipped = bytearray(data)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path = tmp_path / f"flip{bit}.safetensors"
        path.write_bytes(bytes(flipped))
        with pytest.raises(CorruptFileError):
            open_source(path)


def test_files_are_not_modified(tiny_files):
    _, _, files = tiny_files
    for path in files.values():
        before = tree_hashes(path)
        for ref in open_source(path).layers():
            ref.load()[...] = 0
        for ref in open_source(path).layers():
            assert not np.all(ref.load() == 0) or ref.layer_type == "norm"
        assert tree_hashes(path) == before


def test_npz_object_arrays_are_skipped_and_never_unpickled(tmp_path):
    path = tmp_path / "m.npz"
    np.savez(path, **{"a.weight": np.ones((3, 2)), "meta.weight": np.array([{"x": 1}], dtype=object)})
    refs = list(open_source(path).layers())
    assert [(r.layer_id, r.name) for r in refs] == [(1, "a")]
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CorruptFileError, match="bad.npz"):
        open_source(tmp_path / "bad.npz")


# --------------------------------------------------------------------------------------------
# detection errors
# --------------------------------------------------------------------------------------------

def test_missing_path(tmp_path):
    missing = tmp_path / "nope.safetensors"
    for arg in (missing, str(missing)):
        with pytest.raises(ModelFileNotFoundError) as info:
            open_source(arg)
        assert isinstance(info.value, FileNotFoundError) and isinstance(info.value, SpectralWatchError)
        assert str(info.value) == f"No such file or directory: '{missing}'"


@pytest.mark.parametrize("obj", [3, [np.ones((2, 2))], object(), None, b"bytes"])
def test_unknown_objects(obj):
    with pytest.raises(UnknownFormatError) as info:
        open_source(obj)
    msg = str(info.value)
    assert f"'{type(obj).__qualname__}'" in msg or type(obj).__name__ in msg
    assert "torch.nn.Module" in msg and "numpy array" in msg and ".safetensors" in msg
    assert isinstance(info.value, TypeError)


def test_mapping_without_tensors_and_unknown_extension(tmp_path):
    with pytest.raises(UnknownFormatError, match="no tensor values"):
        open_source({"a": 1, "b": "x"})
    with pytest.raises(UnknownFormatError, match="no tensor values"):
        open_source({})
    path = tmp_path / "model.tflite"
    path.write_bytes(b"x")
    with pytest.raises(UnknownFormatError, match=r"\.safetensors, \.pt, \.pth, \.bin, \.ckpt, \.npz, \.gguf, \.onnx"):
        open_source(path)


def test_available_sources():
    listing = available_sources()
    names = [d["name"] for d in listing]
    assert {"torch.nn.Module", "numpy.ndarray", "state dict", "safetensors", "pytorch file", "npz",
            "folder"} <= set(names)
    for d in listing:
        assert set(d) >= {"name", "reads", "module", "extra", "installed"}
        assert isinstance(d["installed"], bool) and d["reads"]
    by_name = {d["name"]: d for d in listing}
    assert by_name["pytorch file"]["module"] == "torch" and by_name["pytorch file"]["extra"] == "torch"
    assert by_name["pytorch file"]["installed"] is True  # torch is installed in this test run
    assert ".safetensors" in by_name["safetensors"]["extensions"]


def test_layers_can_be_iterated_twice(tiny_files):
    model, sd, files = tiny_files
    for src in (model, sd, files["safetensors"], files["sharded"]):
        source = open_source(src)
        assert list(source.layers()) == list(source.layers())

"""Read-only guarantee: every command leaves every input file byte-identical.

One parametrised test, command x input format. Each cell builds small valid inputs (two dense
layers, 16 x 24 and 24 x 16) in folders of their own, takes a snapshot of every file there
(sha256, size and mtime) and of the sub-folders, runs the command with every output written into
a separate folder, and asserts that the snapshot has not changed: no byte, no mtime, no file added
or removed. The formats are the file readers of ``available_sources()`` (a check below fails when
a reader is added without a cell here).
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

import spectralwatch
from spectralwatch.cli import main
from spectralwatch.errors import NotYetSupportedError
from spectralwatch.io.sources import available_sources

# (rows, cols) of the two weight matrices of every model
SHAPES = {"fc1": (16, 24), "fc2": (24, 16)}
LORA_R = 8  # 8 eigenvalues per LoRA product: enough for the default min_evals


# --------------------------------------------------------------------------------------------
# inputs: one builder per format, each writing into a folder of its own
# --------------------------------------------------------------------------------------------

def _weights(seed: int) -> dict:
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in SHAPES.items():
        out[f"{name}.weight"] = rng.standard_normal(shape).astype(np.float32)
        out[f"{name}.bias"] = rng.standard_normal(shape[0]).astype(np.float32)
    return out


def _save_safetensors(tensors: dict, path: Path) -> None:
    from safetensors.numpy import save_file

    save_file({k: np.ascontiguousarray(v) for k, v in tensors.items()}, str(path), metadata={"format": "np"})


def build_npy(folder: Path, seed: int) -> Path:
    path = folder / "model.npy"
    np.save(path, _weights(seed)["fc1.weight"])
    return path


def build_npz(folder: Path, seed: int) -> Path:
    path = folder / "model.npz"
    np.savez(path, **_weights(seed))
    return path


def build_safetensors(folder: Path, seed: int) -> Path:
    path = folder / "model.safetensors"
    _save_safetensors(_weights(seed), path)
    return path


def build_sharded(folder: Path, seed: int) -> Path:
    """A Hugging Face sharded checkpoint: two shards and model.safetensors.index.json."""
    w = _weights(seed)
    shards = {"model-00001-of-00002.safetensors": ["fc1.weight", "fc1.bias"],
              "model-00002-of-00002.safetensors": ["fc2.weight", "fc2.bias"]}
    weight_map = {}
    for shard, keys in shards.items():
        _save_safetensors({k: w[k] for k in keys}, folder / shard)
        weight_map.update({k: shard for k in keys})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return folder


def build_hf(folder: Path, seed: int) -> Path:
    """A Hugging Face model folder: config.json, model.safetensors and tokenizer files beside it."""
    _save_safetensors(_weights(seed), folder / "model.safetensors")
    (folder / "config.json").write_text(json.dumps({"model_type": "mlp", "hidden_size": 16,
                                                    "architectures": ["TinyMLP"]}))
    (folder / "tokenizer_config.json").write_text("{}")
    return folder


def build_pt(folder: Path, seed: int) -> Path:
    torch = pytest.importorskip("torch")
    path = folder / "model.pt"
    torch.save({k: torch.from_numpy(v) for k, v in _weights(seed).items()}, str(path))  # the zip format
    return path


def _keras_h5(path_or_file, w: dict) -> None:
    """The Keras 3 weights layout: ``layers/<name>/vars/<i>``, Dense kernels stored (in, out)."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(path_or_file, "w") as f:
        for group, name in (("dense", "fc1"), ("dense_1", "fc2")):
            vars_ = f.create_group(f"layers/{group}/vars")
            vars_.create_dataset("0", data=w[f"{name}.weight"].T)
            vars_.create_dataset("1", data=w[f"{name}.bias"])
        f.create_group("vars")


def build_keras(folder: Path, seed: int) -> Path:
    """A Keras 3 ``.keras`` archive (config.json, metadata.json, model.weights.h5), written without Keras."""
    import io

    buf = io.BytesIO()
    _keras_h5(buf, _weights(seed))
    config = {"class_name": "Sequential", "config": {"name": "sequential", "layers": [
        {"class_name": "InputLayer", "config": {"name": "input_layer", "batch_shape": [None, 24]}},
        {"class_name": "Dense", "config": {"name": "dense", "units": 16}},
        {"class_name": "Dense", "config": {"name": "dense_1", "units": 24}}]}}
    path = folder / "model.keras"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("metadata.json", json.dumps({"keras_version": "3.0.0"}))
        zf.writestr("config.json", json.dumps(config))
        zf.writestr("model.weights.h5", buf.getvalue())
    return path


def build_h5(folder: Path, seed: int) -> Path:
    path = folder / "model.weights.h5"
    _keras_h5(str(path), _weights(seed))
    return path


def build_onnx(folder: Path, seed: int) -> Path:
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    w = _weights(seed)
    inits = [numpy_helper.from_array(w[k], k) for k in w]
    nodes = [helper.make_node("Gemm", ["x", "fc1.weight", "fc1.bias"], ["h"], name="fc1", transB=1),
             helper.make_node("Gemm", ["h", "fc2.weight", "fc2.bias"], ["y"], name="fc2", transB=1)]
    graph = helper.make_graph(nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 24])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 24])], inits)
    path = folder / "model.onnx"
    onnx.save(helper.make_model(graph), str(path))
    return path


def build_gguf(folder: Path, seed: int) -> Path:
    gguf = pytest.importorskip("gguf", reason="the gguf package (spectralwatch[gguf]) is not installed")
    path = folder / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    for key, value in _weights(seed).items():
        writer.add_tensor(key, value)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def build_peft(folder: Path, seed: int) -> Path:
    """A PEFT LoRA adapter folder (adapter_config.json + adapter_model.safetensors), written by hand."""
    rng = np.random.default_rng(seed)
    tensors = {}
    for name, (rows, cols) in SHAPES.items():
        prefix = f"base_model.model.{name}"
        tensors[f"{prefix}.lora_A.weight"] = rng.standard_normal((LORA_R, cols)).astype(np.float32)
        tensors[f"{prefix}.lora_B.weight"] = rng.standard_normal((rows, LORA_R)).astype(np.float32)
    _save_safetensors(tensors, folder / "adapter_model.safetensors")
    (folder / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "r": LORA_R, "lora_alpha": 16, "target_modules": list(SHAPES),
        "base_model_name_or_path": "base"}))
    return folder


@dataclass(frozen=True)
class Format:
    builder: object
    extension: str = ""      # the reader's extension ('' for a folder)
    api: dict = field(default_factory=dict)   # options every analysis of it needs
    cli: tuple = ()                            # the same on the command line
    editable: bool = True    # svd_smoothing / svd_sharpness write it back (else they refuse)
    n_layers: int = 2        # rows of its details table


FORMATS = {
    "npy": Format(build_npy, ".npy", editable=False, n_layers=1),  # one array: one layer
    "npz": Format(build_npz, ".npz"),
    "safetensors": Format(build_safetensors, ".safetensors"),
    "sharded": Format(build_sharded),
    "hf-folder": Format(build_hf),
    "pt": Format(build_pt, ".pt"),
    "keras": Format(build_keras, ".keras", editable=False),
    "h5": Format(build_h5, ".h5", editable=False),
    "onnx": Format(build_onnx, ".onnx", editable=False),
    "gguf": Format(build_gguf, ".gguf", editable=False),
    "peft": Format(build_peft, api={"peft": True}, cli=("--peft", "true")),
}
READ_EXTENSIONS = {ext for s in available_sources() for ext in s["extensions"]}


@dataclass
class Inputs:
    a: Path              # the model every command reads
    b: Path              # a second model of the same format and architecture (compare, base_model)
    base: Path | None    # the base model of a PEFT adapter (peft='with_base')
    folders: list        # every folder whose content must not change


def _layer_id(path) -> int:
    return int(spectralwatch.describe(path)["layer_id"].iloc[0])


# --------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------

def cli_analyze(fmt: Format, inp: Inputs, out: Path, capsys):
    rc = main(["analyze", str(inp.a), "--no-progress", "--format", "json", "--out", str(out / "details.csv"),
               "--plots", str(out / "figures"), "--html", str(out / "report.html"), *fmt.cli])
    doc = json.loads(capsys.readouterr().out)
    assert rc == 0 and doc["num_layers"] == fmt.n_layers
    assert (out / "details.csv").is_file() and (out / "report.html").is_file() and any((out / "figures").iterdir())


def cli_describe(fmt: Format, inp: Inputs, out: Path, capsys):
    rc = main(["describe", str(inp.a), "--format", "json"])
    # describe has no --peft: an adapter folder is listed as its A and B factor tensors
    expected = 2 * fmt.n_layers if fmt.api.get("peft") else fmt.n_layers
    assert rc == 0 and len(json.loads(capsys.readouterr().out)) == expected


def cli_compare(fmt: Format, inp: Inputs, out: Path, capsys):
    rc = main(["compare", str(inp.a), str(inp.b), "--names", "a,b", "--no-progress", "--format", "json",
               "--out", str(out / "comparison.json"), *fmt.cli])
    assert rc == 0 and json.loads(capsys.readouterr().out)
    assert (out / "comparison.json").is_file()


def api_analyze(fmt: Format, inp: Inputs, out: Path, capsys):
    report = spectralwatch.analyze(inp.a, **fmt.api)
    assert report.num_layers == fmt.n_layers and report.num_failed == 0
    assert report.get_ESD(int(report.details["layer_id"].iloc[0])).size > 0
    report.to_csv(out / "details.csv")


def api_analyze_processes(fmt: Format, inp: Inputs, out: Path, capsys):
    """Two worker processes, which read the tensors from the file themselves where they can."""
    report = spectralwatch.analyze(inp.a, executor="processes", workers=2, **fmt.api)
    assert report.num_layers == fmt.n_layers and report.num_failed == 0


def api_describe(fmt: Format, inp: Inputs, out: Path, capsys):
    assert len(spectralwatch.describe(inp.a, **fmt.api)) == fmt.n_layers


def weightwatcher(fmt: Format, inp: Inputs, out: Path, capsys):
    watcher = spectralwatch.WeightWatcher(model=str(inp.a))
    details = watcher.analyze(**fmt.api)
    assert len(details) == fmt.n_layers and watcher.get_summary()
    assert len(watcher.describe(**fmt.api)) == fmt.n_layers
    assert watcher.get_ESD(layer=_layer_id(inp.a)).size > 0
    assert watcher.get_ESD(layer=_layer_id(inp.a), random=True, rng=0).size > 0


def edit(fmt: Format, inp: Inputs, out: Path, capsys):
    """svd_smoothing and svd_sharpness (and the drop-in's SVDSmoothing) writing new files."""
    folder = inp.a.is_dir()
    target = (lambda name: out / name) if folder else (lambda name: out / f"{name}.safetensors")
    if not fmt.editable:  # the refusal, too, must leave the input as it was
        with pytest.raises(NotYetSupportedError, match="cannot write back"):
            spectralwatch.svd_smoothing(inp.a, method="svd", percent=0.5, out=target("smoothed"))
        return
    smoothed = spectralwatch.svd_smoothing(inp.a, method="svd", percent=0.5, out=target("smoothed"))
    assert smoothed.num_edited >= 1 and os.path.exists(smoothed.path)
    sharpened = spectralwatch.svd_sharpness(inp.a, rng=0, out=target("sharpened"))
    assert os.path.exists(sharpened.path)
    watcher = spectralwatch.WeightWatcher(model=str(inp.a))
    assert os.path.exists(watcher.SVDSmoothing(method="detX", out=str(target("ww"))))


def base_model(fmt: Format, inp: Inputs, out: Path, capsys):
    """Deltas ``W - W_base`` (for an adapter: ``W + s B A`` with the base model's ``W``)."""
    if fmt.api.get("peft"):  # a row for B A and one for W + s B A per adapted layer
        report = spectralwatch.analyze(inp.a, peft="with_base", base_model=inp.base)
        assert report.num_layers == 2 * fmt.n_layers and report.num_failed == 0
        return
    report = spectralwatch.analyze(inp.a, base_model=inp.b)
    assert report.num_layers == fmt.n_layers and report.num_failed == 0


def cache(fmt: Format, inp: Inputs, out: Path, capsys):
    """``cache_dir``: a first run fills the cache, the second reads every spectrum from it."""
    first = spectralwatch.analyze(inp.a, cache_dir=out / "cache", **fmt.api).details
    entries = sorted(p.name for p in (out / "cache").iterdir())
    assert entries
    second = spectralwatch.analyze(inp.a, cache_dir=out / "cache", **fmt.api).details
    assert second["spectrum_route"].str.endswith("+cache").all()
    assert sorted(p.name for p in (out / "cache").iterdir()) == entries
    np.testing.assert_array_equal(first["alpha"].to_numpy(), second["alpha"].to_numpy())


COMMANDS = {"cli-analyze": cli_analyze, "cli-describe": cli_describe, "cli-compare": cli_compare,
            "api-analyze": api_analyze, "api-analyze-processes": api_analyze_processes, "api-describe": api_describe,
            "weightwatcher": weightwatcher, "edit": edit, "base-model": base_model, "cache-dir": cache}


def _cells():
    for fname, fmt in FORMATS.items():
        skip = None
        if fmt.extension and fmt.extension not in READ_EXTENSIONS:
            skip = (f"no reader lists {fmt.extension} in available_sources(): spectralwatch does not read "
                    f"{fname} files, so no command opens one")
        for cname in COMMANDS:
            marks = [pytest.mark.skip(reason=skip)] if skip else []
            yield pytest.param(cname, fname, id=f"{cname}-{fname}", marks=marks)


# --------------------------------------------------------------------------------------------
# snapshots
# --------------------------------------------------------------------------------------------

def snapshot(folder: Path) -> dict:
    """Every file under ``folder``: (size, mtime in ns, sha256); every sub-folder: None."""
    state = {}
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            state[os.path.relpath(os.path.join(root, d), folder) + "/"] = None
        for name in files:
            path = os.path.join(root, name)
            st = os.stat(path)
            with open(path, "rb") as fh:
                digest = hashlib.sha256(fh.read()).hexdigest()
            state[os.path.relpath(path, folder)] = (st.st_size, st.st_mtime_ns, digest)
    return state


def _inputs(root: Path, fname: str, fmt: Format) -> Inputs:
    made = {}
    for which, seed in (("a", 1), ("b", 2)):
        folder = root / which
        folder.mkdir(parents=True)
        made[which] = fmt.builder(folder, seed)
    base = None
    if fmt.api.get("peft"):
        (root / "base").mkdir()
        base = build_safetensors(root / "base", 3)
    return Inputs(made["a"], made["b"], base, [p for p in (root / "a", root / "b", root / "base") if p.exists()])


# --------------------------------------------------------------------------------------------
# the test
# --------------------------------------------------------------------------------------------

def test_every_file_reader_has_a_format_here():
    covered = {f.extension for f in FORMATS.values() if f.extension}
    missing = READ_EXTENSIONS - covered - {".pth", ".bin", ".ckpt", ".hdf5"}  # same readers as .pt / .h5
    assert not missing, f"add a read-only cell for {sorted(missing)}"


@pytest.mark.parametrize(("command", "fmt_name"), list(_cells()))
def test_input_files_are_never_modified(command, fmt_name, tmp_path, monkeypatch, capsys):
    fmt = FORMATS[fmt_name]
    inp = _inputs(tmp_path / "inputs", fmt_name, fmt)
    out = tmp_path / "outputs"
    out.mkdir()
    cwd = tmp_path / "cwd"  # whatever a command might write into the working folder lands here
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    before = {str(f): snapshot(f) for f in inp.folders}
    assert all(before.values())
    COMMANDS[command](fmt, inp, out, capsys)
    after = {str(f): snapshot(f) for f in inp.folders}
    for folder in before:
        assert after[folder] == before[folder], f"{command} changed the input folder {folder}"

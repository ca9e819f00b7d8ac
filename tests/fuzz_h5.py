"""Fuzz corpus of the Keras files: a ``.keras`` archive and a legacy ``.h5`` model, written with h5py
in the layouts Keras 3 writes (``layers/<group>/vars/<i>`` in ``model.weights.h5``; ``model_weights``
with ``layer_names`` / ``weight_names`` attributes in a legacy ``.h5``), and their structured
corruptions: datasets that claim 10^12 elements, point outside the file (external storage, links),
hold strings or records, decompress 1000-fold; configs that are not JSON or nest 100000 deep.
"""

from __future__ import annotations

import io
import json
import random

import numpy as np

from fuzz_mutate import FuzzFormat, Mutant, build_zip, matrix, zip_field_mutants, zip_members

__all__ = ["H5_FORMATS", "keras3_h5", "legacy_h5"]

_LAYERS = (("dense", "fc1", "Dense", ((24, 16), (16,))), ("dense_1", "fc2", "Dense", ((16, 16), (16,))),
           ("conv2d", "conv", "Conv2D", ((3, 3, 3, 8), (8,))))


def _config() -> dict:
    layers = [{"module": "keras.layers", "class_name": "InputLayer", "config": {"batch_shape": [None, 24],
                                                                                 "name": "input_layer"}}]
    for _, name, cls, _shapes in _LAYERS:
        cfg = {"name": name, "trainable": True}
        if cls == "Conv2D":
            cfg.update(filters=8, kernel_size=[3, 3], groups=1)
        else:
            cfg.update(units=16)
        layers.append({"module": "keras.layers", "class_name": cls, "config": cfg})
    return {"module": "keras", "class_name": "Sequential", "config": {"name": "sequential", "layers": layers}}


def _h5(fill) -> bytes:
    import h5py

    buf = io.BytesIO()
    with h5py.File(buf, "w") as f:
        fill(f)
    return buf.getvalue()


def keras3_h5(variant=None) -> bytes:
    """``model.weights.h5`` of the three layers; ``variant(f)`` edits the open file before it is closed."""
    def fill(f):
        seed = 0
        for group, name, _cls, shapes in _LAYERS:
            v = f.create_group(f"layers/{group}/vars")
            v.attrs["name"] = name
            for i, shape in enumerate(shapes):
                seed += 1
                v.create_dataset(str(i), data=matrix(seed, *shape))
        f.create_group("vars").attrs["name"] = "sequential"
        if variant is not None:
            variant(f)

    return _h5(fill)


def legacy_h5(variant=None) -> bytes:
    """A Keras 2-style ``.h5`` model (``model_weights``, ``model_config``)."""
    def fill(f):
        root = f.create_group("model_weights")
        root.attrs["layer_names"] = np.array([name.encode() for _, name, _, _ in _LAYERS])
        f.attrs["model_config"] = json.dumps(_config())
        f.attrs["keras_version"] = "3.15.1"
        seed = 0
        for _group, name, _cls, shapes in _LAYERS:
            g = root.create_group(name)
            wnames = []
            for var, shape in zip(("kernel", "bias"), shapes):
                seed += 1
                g.create_dataset(f"sequential/{name}/{var}", data=matrix(seed, *shape))
                wnames.append(f"sequential/{name}/{var}".encode())
            g.attrs["weight_names"] = np.array(wnames)
        if variant is not None:
            variant(f)

    return _h5(fill)


def _replace(path: str, **kwargs):
    """A variant replacing the dataset at ``path`` with ``create_dataset(**kwargs)``."""
    def edit(f):
        del f[path]
        f.create_dataset(path, **kwargs)

    return edit


def _link(path: str, link_factory):
    def edit(f):
        import h5py

        del f[path]
        f[path] = link_factory(h5py)

    return edit


def _dataset_variants(path: str) -> list:
    """Corruptions of the dataset at ``path`` (a kernel) that a reader must survive."""
    import h5py

    return [
        ("a 10^12-element kernel (never written)", _replace(path, shape=(10 ** 6, 10 ** 6), dtype="f4")),
        ("a 10^12-element chunked kernel", _replace(path, shape=(10 ** 6, 10 ** 6), dtype="f4", chunks=(64, 64))),
        ("a kernel stored in /dev/zero", _replace(path, shape=(24, 16), dtype="f4",
                                                  external=[("/dev/zero", 0, 24 * 16 * 4)])),
        ("a kernel that decompresses 1000-fold", _replace(path, data=np.zeros((2048, 2048), np.float32),
                                                          compression="gzip", chunks=(512, 512))),
        ("a kernel of strings", _replace(path, data=np.array([[b"ab"] * 16] * 24))),
        ("a kernel of records", _replace(path, data=np.zeros((24, 16), dtype=[("a", "<f4"), ("b", "<i2")]))),
        ("a scalar kernel", _replace(path, data=np.float32(3.0))),
        ("a 6-D kernel", _replace(path, data=matrix(9, 1, 2, 2, 2, 3, 4))),
        ("an empty kernel", _replace(path, shape=(0, 16), dtype="f4")),
        ("a kernel of variable-length arrays", _replace(path, shape=(4,), dtype=h5py.vlen_dtype("f4"))),
        ("a soft link to nowhere", _link(path, lambda h5py: h5py.SoftLink("/nowhere"))),
        ("an external link to /etc/passwd", _link(path, lambda h5py: h5py.ExternalLink("/etc/passwd", "/x"))),
        ("a link to the root group", _link(path, lambda h5py: h5py.SoftLink("/"))),
    ]


def _keras_files(h5: bytes, config=None, members=None) -> bytes:
    cfg = json.dumps(_config()).encode() if config is None else config
    meta = json.dumps({"keras_version": "3.15.1", "date_saved": "2025-01-01@00:00:00"}).encode()
    base = [("metadata.json", meta, 0), ("config.json", cfg, 0), ("model.weights.h5", h5, 0)]
    return build_zip(base if members is None else members(base))


def _build_keras() -> dict:
    return {"model.keras": _keras_files(keras3_h5())}


def _keras_headers(files) -> dict:
    data = files["model.keras"]
    start = data.find(b"\x89HDF")
    return {"model.keras": (start if start > 0 else 0) + 2048}


def _set_attr(path, name, value):
    def edit(f):
        f[path].attrs[name] = value

    return edit


def _keras_semantic(files, rng: random.Random) -> list[Mutant]:
    out = []
    for label, variant in _dataset_variants("layers/dense/vars/0"):
        out.append(Mutant(f"model.weights.h5: {label}", {"model.keras": _keras_files(keras3_h5(variant))}))
    groups = [
        ("a variable named 'x'", lambda f: f.move("layers/dense/vars/0", "layers/dense/vars/x")),
        ("a variable index 99999", lambda f: f.move("layers/dense/vars/1", "layers/dense/vars/99999")),
        ("'layers' is a dataset", lambda f: (f.__delitem__("layers"), f.create_dataset("layers", data=[1, 2]))),
        ("a layer name that is not UTF-8", _set_attr("layers/dense/vars", "name", np.bytes_(b"\xff\xfe"))),
        ("a layer name that is a number", _set_attr("layers/dense/vars", "name", 7)),
        ("a 2000-deep chain of groups", lambda f: f.create_group("layers/" + "/".join(["g"] * 2000))),
    ]
    for label, variant in groups:
        out.append(Mutant(f"model.weights.h5: {label}", {"model.keras": _keras_files(keras3_h5(variant))}))
    config = _config()

    def cfg_with(layer_cls=None, **changes):
        c = json.loads(json.dumps(config))
        entry = c["config"]["layers"][1 if layer_cls != "Conv2D" else 3]
        if layer_cls:
            entry["class_name"] = layer_cls
        entry["config"].update(changes)
        return json.dumps(c).encode()

    configs = [
        ("EinsumDense with a garbage equation", cfg_with("EinsumDense", equation="garbage")),
        ("EinsumDense with equation ab,bc->ac", cfg_with("EinsumDense", equation="ab,bc->ac")),
        ("EinsumDense with equation a,b->", cfg_with("EinsumDense", equation="a,b->")),
        ("conv groups 'x'", cfg_with("Conv2D", groups="x")),
        ("conv groups 0", cfg_with("Conv2D", groups=0)),
        ("conv groups -3", cfg_with("Conv2D", groups=-3)),
        ("conv groups 10**30", cfg_with("Conv2D", groups=10 ** 30)),
        ("a DepthwiseConv2D dense kernel", cfg_with("DepthwiseConv2D")),
        ("an LSTMCell of 2-D kernel", cfg_with("LSTMCell")),
        ("config is a list", b"[1, 2]"),
        ("layers is a dict", json.dumps({"class_name": "Sequential", "config": {"layers": {"a": 1}}}).encode()),
        ("config is not JSON", b"{\"class_name\": "),
        ("config is not UTF-8", b"{\"\xff\": 1}"),
        ("config nested 100000 deep", b"[" * 100000 + b"]" * 100000),
    ]
    h5 = keras3_h5()
    for label, cfg in configs:
        out.append(Mutant(f"config.json: {label}", {"model.keras": _keras_files(h5, cfg)}))
    out.append(Mutant("no model.weights.h5", {"model.keras": _keras_files(h5, members=lambda m: m[:2])}))
    out.append(Mutant("model.weights.h5 deflated", {"model.keras": _keras_files(
        h5, members=lambda m: m[:2] + [(m[2][0], m[2][1], 8)])}))
    out.append(Mutant("model.weights.h5 empty", {"model.keras": _keras_files(b"")}))
    out.append(Mutant("model.weights.h5 is a safetensors file", {"model.keras": _keras_files(b"\x08" + b"\0" * 7 + b"{}      ")}))
    out.extend(zip_field_mutants("model.keras", files["model.keras"], rng, 10))
    inner = zip_members(files["model.keras"])[2][1]
    for k in range(12):  # bit flips inside the HDF5 superblock and first object headers, with a valid zip around
        flipped = bytearray(inner)
        pos = rng.randrange(0, min(len(inner), 2048))
        flipped[pos] ^= 1 << rng.randrange(8)
        out.append(Mutant(f"model.weights.h5 bit flip at {pos} (valid zip)", {"model.keras": _keras_files(bytes(flipped))}))
    return out


def _build_h5() -> dict:
    return {"model.h5": legacy_h5()}


def _h5_semantic(files, rng: random.Random) -> list[Mutant]:
    out = []
    for label, variant in _dataset_variants("model_weights/fc1/sequential/fc1/kernel"):
        out.append(Mutant(f"h5: {label}", {"model.h5": legacy_h5(variant)}))
    attrs = [
        ("layer_names naming a missing layer", "model_weights", "layer_names", np.array([b"fc1", b"ghost"])),
        ("layer_names not UTF-8", "model_weights", "layer_names", np.array([b"\xff\xfe", b"fc2"])),
        ("layer_names of numbers", "model_weights", "layer_names", np.array([1, 2, 3])),
        ("layer_names a scalar", "model_weights", "layer_names", 5),
        ("weight_names naming a missing dataset", "model_weights/fc1", "weight_names", np.array([b"x/y/kernel"])),
        ("weight_names naming a group", "model_weights/fc1", "weight_names", np.array([b"sequential/fc1"])),
        ("weight_names of numbers", "model_weights/fc1", "weight_names", np.array([1.5, 2.5])),
        ("weight_names not UTF-8", "model_weights/fc1", "weight_names", np.array([b"sequential/\xff/kernel"])),
        ("model_config not JSON", "/", "model_config", "{\"class_name\": "),
        ("model_config nested 100000 deep", "/", "model_config", "[" * 100000 + "]" * 100000),
        ("model_config a number", "/", "model_config", 3),
        ("model_config a list of numbers", "/", "model_config", np.arange(4)),
        ("model_config not UTF-8", "/", "model_config", np.bytes_(b"{\"\xff\": 1}")),
    ]
    for label, path, name, value in attrs:
        out.append(Mutant(f"h5: {label}", {"model.h5": legacy_h5(_set_attr(path, name, value))}))
    data = files["model.h5"]
    for k in range(12):
        flipped = bytearray(data)
        pos = rng.randrange(0, min(len(data), 2048))
        flipped[pos] ^= 1 << rng.randrange(8)
        out.append(Mutant(f"h5 superblock/object header bit flip at {pos}", {"model.h5": bytes(flipped)}))
    return out


H5_FORMATS = (
    FuzzFormat("keras", _build_keras, "model.keras", _keras_headers, _keras_semantic, requires=("h5py",)),
    FuzzFormat("h5", _build_h5, "model.h5", lambda files: {"model.h5": 2048}, _h5_semantic, requires=("h5py",)),
)

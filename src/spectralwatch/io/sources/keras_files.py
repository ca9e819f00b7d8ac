"""Keras files: ``.keras`` archives and ``.h5`` / ``.weights.h5`` files, read with zipfile + h5py only.

The layer walk and the kernel layouts are those of :mod:`.keras_` (see its docstring). A file is
untrusted input: HDF5 is a complex format and libhdf5 loops forever or crashes on some damaged files,
which no check inside this process could stop. So the structure of the file is read, and every weight
dataset read once, in a child process under a time limit (:data:`SCAN_TIMEOUT` seconds): a file that
hangs or kills the child is a :class:`CorruptFileError` here, never a hang or a crash of the caller. The
layers' loaders then read their datasets in this process, one at a time, after checking that each is an
in-file numeric array that does not decode to more than ``_common.MAX_EXPANSION`` times its stored size.

Containment: every group and dataset is reached through hard links only. An HDF5 soft link, external link
(another file's object, shown as this model's layer) or user-defined link is refused
(:class:`~spectralwatch.errors.UnsafeFileError`), and so are datasets kept in external files or virtual
datasets; a file never makes spectralwatch read another file. A compressed ``model.weights.h5`` member of a
``.keras`` archive is inflated once per process (:func:`inflated_member`), not once per dataset.
"""

from __future__ import annotations

import functools
import io
import math
import os
import re
import threading
import warnings
import zipfile
from typing import Iterator

import numpy as np

from ...deps import require
from ...errors import CorruptFileError, SpectralWatchError, UnsafeFileError
from ._common import (BaseSource, check_expansion, check_start_id, foreign_reason, parse_json, path_text,
                      reraise_access_errors)
from .base import LayerRef
from .budget import DEFAULT_MAX_WORK_RATIO, Budget
from .containment import check_regular, open_regular
from .keras_ import GROUP_CLASS, RNN_PARENTS, VAR_NAMES, KerasLayer, keras_refs

__all__ = ["KerasFileSource", "read_h5_dataset", "SCAN_TIMEOUT"]

#: layer groups nest at most this deep in a weights file (real models: a few levels)
MAX_DEPTH = 64
#: seconds the child process may take to read a file's structure and each of its datasets once
SCAN_TIMEOUT = 120.0


#: what h5py / HDF5 raise on a damaged file
_H5_ERRORS = (OSError, KeyError, ValueError, TypeError, IndexError, AttributeError, RuntimeError, UnicodeDecodeError,
              zipfile.BadZipFile, NotImplementedError, EOFError, RecursionError)


def _zip_member(zf, name: str, path: str):
    info = zf.getinfo(name)
    check_expansion(path, f"the archive member '{name}'", info.file_size, info.compress_size, fmt="Keras file")
    return info


def link_child(group, name: str, path: str):
    """``group[name]`` (``name`` may have several ``/``-separated parts), reached through hard links only;
    None when it does not exist. A soft, external or user-defined link on the way is refused."""
    import h5py

    node = group
    parts = [p for p in str(name).split("/") if p]
    if str(name).startswith("/"):
        node = group.file
    for k, part in enumerate(parts):
        try:
            link = node.get(part, getlink=True)
        except _H5_ERRORS as exc:
            reraise_access_errors(exc)
            raise CorruptFileError(f"The Keras file '{path}' has a link that cannot be read at "
                                   f"'{'/'.join(parts[:k + 1])[:200]}': {foreign_reason(exc)}") from None
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            kind = {h5py.SoftLink: "a soft link", h5py.ExternalLink: "an external link (to another file)"}.get(
                type(link), f"a link of kind {type(link).__name__}")
            where = f"{str(getattr(node, 'name', '') or '').rstrip('/')}/{part}"
            raise UnsafeFileError(f"The Keras file '{path}' holds {kind} at '{where[:200]}': "
                                  "refused, a model file must not make spectralwatch read other objects or files "
                                  "than its own datasets.")
        try:
            node = node[part]
        except _H5_ERRORS as exc:
            reraise_access_errors(exc)
            raise CorruptFileError(f"The Keras file '{path}' has an object that cannot be read at "
                                   f"'{'/'.join(parts[:k + 1])[:200]}': {foreign_reason(exc)}") from None
        if k < len(parts) - 1 and not hasattr(node, "keys"):
            return None
    return node


def _numeric_dataset(ds) -> bool:
    dt = ds.dtype
    return dt.kind in "biufc" and dt.fields is None and dt.subdtype is None


def _dataset(path: str, f, dataset: str) -> np.ndarray:
    """Read one dataset after checking that it is an in-file numeric array of a plausible size."""
    import h5py

    ds = link_child(f, dataset, path)
    if not isinstance(ds, h5py.Dataset):
        raise CorruptFileError(f"'{dataset}' of the Keras file '{path}' is not a dataset.")
    if ds.external or ds.is_virtual:
        raise CorruptFileError(f"The dataset '{dataset}' of the Keras file '{path}' keeps its data outside the file "
                               "(external storage or a virtual dataset): refused, a model file must not make "
                               "spectralwatch read other files.")
    if not _numeric_dataset(ds):
        raise CorruptFileError(f"The dataset '{dataset}' of the Keras file '{path}' holds {ds.dtype} values, not numbers.")
    check_expansion(path, f"the dataset '{dataset}' of shape {ds.shape}", int(ds.size) * ds.dtype.itemsize,
                    int(ds.id.get_storage_size()), fmt="Keras file")
    return np.asarray(ds)


_INFLATED: dict = {}  # (file identity, member) -> its inflated bytes: one entry, the last member inflated
_INFLATED_LOCK = threading.Lock()


def inflated_member(path: str, member: str, zf=None) -> bytes:
    """The inflated bytes of a compressed archive member, inflated once per process.

    The last member inflated is kept (keyed by the archive's path, device, inode, size and modification
    time, so a rewritten archive is inflated again): reading the datasets of a compressed
    ``model.weights.h5`` one after the other costs one inflation, not one per dataset.
    """
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, member)
    with _INFLATED_LOCK:
        if key in _INFLATED:
            return _INFLATED[key]
        if zf is None:
            with zipfile.ZipFile(path) as own:
                _zip_member(own, member, path)
                data = own.read(member)
        else:
            _zip_member(zf, member, path)
            data = zf.read(member)
        _INFLATED.clear()
        _INFLATED[key] = data
        return data


def read_h5_dataset(path: str, member: str | None, dataset: str) -> np.ndarray:
    """One dataset of an ``.h5`` file, or of the ``.h5`` member of a ``.keras`` zip archive."""
    h5py = require("h5py", purpose=f"read the Keras file '{path}'")
    try:
        if member is None:
            with h5py.File(path, "r") as f:
                return _dataset(path, f, dataset)
        with zipfile.ZipFile(path) as zf:
            stored = _zip_member(zf, member, path).compress_type == zipfile.ZIP_STORED
            if stored:
                with zf.open(member) as fh, h5py.File(fh, "r") as f:
                    return _dataset(path, f, dataset)
            data = inflated_member(path, member, zf)
        with h5py.File(io.BytesIO(data), "r") as f:
            return _dataset(path, f, dataset)
    except SpectralWatchError:  # ours (corrupt, unsafe, over budget): as it is
        raise
    except _H5_ERRORS as exc:
        reraise_access_errors(exc)
        raise CorruptFileError(f"Cannot read '{dataset}' of the Keras file '{path}': "
                               f"{foreign_reason(exc)}") from None


def _configs_by_name(config) -> dict:
    """Every ``{'class_name', 'config': {'name'}}`` entry of a Keras config, by layer name."""
    found: dict = {}
    stack = [config]  # depth first, in document order, without recursion (a config may nest deeply)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            cfg = node.get("config")
            if isinstance(node.get("class_name"), str) and isinstance(cfg, dict) and isinstance(cfg.get("name"), str):
                found.setdefault(cfg["name"], (node["class_name"], cfg))
            stack.extend(reversed(list(node.values())))
        elif isinstance(node, list):
            stack.extend(reversed(node))
    return found


def _natural(name: str):
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name)]


def _group_class(group_name: str) -> str:
    base = re.sub(r"_\d+$", "", group_name)
    return GROUP_CLASS.get(base, "")


class _H5Walker:
    """Walks the layer groups of a Keras 3 weights file (``layers/<name>/vars/<i>``)."""

    def __init__(self, path, member, configs: dict, order: list):
        self.path, self.member, self.configs, self.order = path, member, configs, order

    def layers(self, group, path=(), parent_cls="") -> Iterator[KerasLayer]:
        if len(path) > MAX_DEPTH:
            raise CorruptFileError(f"The Keras file '{self.path}' nests layer groups more than {MAX_DEPTH} deep "
                                   f"({'/'.join(path[:5])}/...).")
        subs = []
        for key in group:
            if key == "vars":
                continue
            item = link_child(group, key, self.path)
            if not hasattr(item, "keys"):
                continue
            if key == "layers":
                for k in item:
                    inner = link_child(item, k, self.path)
                    if hasattr(inner, "keys"):
                        subs.append((k, inner))
            else:
                subs.append((key, item))
        rank = {n: i for i, n in enumerate(self.order)}
        subs.sort(key=lambda kv: (rank.get(self._name(kv[0], kv[1]), len(rank)), _natural(kv[0])))
        for key, item in subs:
            name = self._name(key, item)
            cls, cfg = self.configs.get(name, ("", {}))
            if not cls or (parent_cls and key in ("cell", "query_dense", "key_dense", "value_dense", "output_dense")):
                # no config entry (a subclassed model): Keras names groups and layers after the class
                cls = RNN_PARENTS.get(parent_cls) if key == "cell" else (_group_class(key) or cls
                                                                            or _group_class(name))
            yield KerasLayer(path + (name,), cls or "", dict(cfg), self._weights(item, cls or "", key), parent_cls)
            yield from self.layers(item, path + (name,), cls or "")

    def _name(self, key, item) -> str:
        vars_ = link_child(item, "vars", self.path) if hasattr(item, "get") else None
        name = vars_.attrs.get("name") if vars_ is not None and hasattr(vars_, "attrs") else None
        if isinstance(name, bytes):
            name = name.decode("utf-8", errors="replace")
        return str(name) if isinstance(name, (str, bytes)) and name else key

    def _weights(self, item, cls, key) -> list:
        import h5py

        vars_ = link_child(item, "vars", self.path)
        if not isinstance(vars_, h5py.Group):
            return []
        names = VAR_NAMES.get(cls, ())
        out = []
        for idx in sorted((k for k in vars_ if k.isdigit()), key=int):
            ds = link_child(vars_, idx, self.path)
            if not isinstance(ds, h5py.Dataset) or not _numeric_dataset(ds):
                continue  # a dangling link, a group, strings: not a weight
            var = names[int(idx)] if int(idx) < len(names) else ("kernel" if int(idx) == 0 else f"var{idx}")
            loader = functools.partial(read_h5_dataset, self.path, self.member, ds.name)
            out.append((var, tuple(int(s) for s in ds.shape), ds.dtype.name, loader))
        return out


def _text_list(value) -> list[str]:
    """An HDF5 attribute holding names (bytes, str, or an array of them) as a list of str."""
    if isinstance(value, (bytes, str)) or np.ndim(value) == 0:
        value = [value]
    out = []
    for item in value:
        if isinstance(item, bytes):
            item = item.decode("utf-8", errors="replace")
        out.append(str(item))
    return out


def _legacy_layers(path, f, configs) -> Iterator[KerasLayer]:
    """Keras 2 / legacy ``.h5``: ``model_weights/<layer>`` with ``weight_names`` attributes."""
    import h5py

    root = link_child(f, "model_weights", path) if "model_weights" in f else f
    if not isinstance(root, h5py.Group):
        raise CorruptFileError(f"The Keras file '{path}' has a 'model_weights' that is not a group.")
    names = _text_list(root.attrs.get("layer_names", list(root)))
    for lname in names:
        group = link_child(root, lname, path) if lname else None
        if not isinstance(group, h5py.Group):
            continue
        wnames = _text_list(group.attrs.get("weight_names", []))
        by_layer: dict = {}
        for w in wnames:
            parts = w.split(":")[0].split("/")
            by_layer.setdefault(tuple(parts[:-1]) or (lname,), []).append((parts[-1], w))
        for lpath, items in by_layer.items():
            cls, cfg = configs.get(lpath[-1], ("", {}))
            parent = ""
            if not cls and len(lpath) > 1:
                parent = configs.get(lpath[-2], ("", {}))[0]
            found = [(var, link_child(group, w, path)) for var, w in items if w]
            weights = [(var, tuple(int(s) for s in ds.shape), ds.dtype.name,
                        functools.partial(read_h5_dataset, path, None, ds.name)) for var, ds in found
                       if isinstance(ds, h5py.Dataset) and _numeric_dataset(ds)]
            yield KerasLayer(lpath, cls, dict(cfg), weights, parent)


def scan_file(path: str, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> list[KerasLayer]:
    """The layers of a Keras file, read in this process (see :func:`scan_isolated`)."""
    h5py = require("h5py", purpose=f"read the Keras file '{path}'")
    try:
        if path.lower().endswith(".keras"):
            return _scan_archive(path, h5py, max_work_ratio)
        check_regular(path, "Keras file")
        with h5py.File(path, "r") as f:
            return _scan_h5(path, f, None, max_work_ratio=max_work_ratio)
    except SpectralWatchError:  # ours (corrupt, unsafe, over budget): as it is
        raise
    except _H5_ERRORS as exc:
        reraise_access_errors(exc)
        raise CorruptFileError(f"The Keras file '{path}' is corrupted or truncated: "
                               f"{foreign_reason(exc)}") from None


def _scan_archive(path: str, h5py, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> list[KerasLayer]:
    with open_regular(path, "Keras file") as raw, zipfile.ZipFile(raw) as zf:
        names = zf.namelist()
        if "model.weights.h5" not in names:
            raise CorruptFileError(f"The Keras archive '{path}' has no model.weights.h5 "
                                   f"(it holds: {', '.join(names[:10]) or 'nothing'}).")
        config = {}
        if "config.json" in names:
            _zip_member(zf, "config.json", path)
            config = parse_json(zf.read("config.json"), f"the config.json of the Keras archive '{path}'")
        stored = _zip_member(zf, "model.weights.h5", path).compress_type == zipfile.ZIP_STORED
        if stored:  # a stored member is read in place (h5py seeks in it)
            with zf.open("model.weights.h5") as fh, h5py.File(fh, "r") as f:
                return _scan_h5(path, f, "model.weights.h5", config, max_work_ratio)
        data = inflated_member(path, "model.weights.h5", zf)  # a compressed one is inflated, once
    with h5py.File(io.BytesIO(data), "r") as f:
        return _scan_h5(path, f, "model.weights.h5", config, max_work_ratio)


def _check_budget(path: str, f, layers: list, max_work_ratio) -> None:
    """The work budget (:mod:`.budget`): a dataset referenced by many weight names or hard links counts once
    as stored data and once per reference as work."""
    import h5py

    budget = Budget(path, "Keras file", max_work_ratio)
    if not budget.enabled:
        return
    for layer in layers:
        for _var, shape, _dtype, loader in layer.weights:
            ds = link_child(f, loader.args[2], path)
            if not isinstance(ds, h5py.Dataset):
                continue
            block = h5py.h5o.get_info(ds.id).addr
            budget.store(block, int(ds.id.get_storage_size()))
            # (a dataset refused alone fails when its layer is read: _dataset checks its expansion)
            budget.add(loader.args[2], math.prod(shape), note=f"{ds.dtype} {tuple(shape)}", block=block,
                       own_stored=int(ds.id.get_storage_size()))
    budget.check()


def _scan_h5(path: str, f, member, config=None, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> list[KerasLayer]:
    layers = _scan_layers(path, f, member, config)
    _check_budget(path, f, layers, max_work_ratio)
    return layers


def _scan_layers(path: str, f, member, config=None) -> list[KerasLayer]:
    if config is None and "model_config" in f.attrs:
        raw = f.attrs["model_config"]
        raw = raw.item() if isinstance(raw, np.ndarray) and raw.ndim == 0 else raw
        config = parse_json(raw, f"the model_config of the Keras file '{path}'") if isinstance(raw, (bytes, str)) else {}
    configs = _configs_by_name(config or {})
    if "model_weights" in f or "layer_names" in f.attrs:
        return list(_legacy_layers(path, f, configs))
    top = (config or {}).get("config", {}).get("layers", []) if isinstance(config, dict) else []
    order = [e.get("config", {}).get("name") for e in top if isinstance(e, dict)]
    return list(_H5Walker(path, member, configs, order).layers(f))


# --------------------------------------------------------------------------------------------
# the scan in a child process
# --------------------------------------------------------------------------------------------

def _records(layers: list[KerasLayer]) -> list[dict]:
    """Plain data of scanned layers (what crosses from the child): loaders become dataset names."""
    return [{"path": list(layer.path), "cls": layer.cls, "config": layer.config, "parent_cls": layer.parent_cls,
             "weights": [(var, tuple(shape), dtype, loader.args[1], loader.args[2])
                         for var, shape, dtype, loader in layer.weights]} for layer in layers]


def _from_records(path: str, records: list[dict]) -> list[KerasLayer]:
    return [KerasLayer(tuple(r["path"]), r["cls"], r["config"],
                   [(var, tuple(shape), dtype, functools.partial(read_h5_dataset, path, member, name))
                    for var, shape, dtype, member, name in r["weights"]], r["parent_cls"]) for r in records]


def _child(path: str, conn, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> None:
    """In the child: scan the file, read every dataset once, send the layers (or the error) back."""
    try:
        layers = scan_file(path, max_work_ratio)  # (the budget is checked before any dataset is read)
        for layer in layers:
            for weight in layer.weights:
                try:
                    weight[3]()
                except SpectralWatchError:
                    pass  # this layer's loader gives the same error in the parent: its failed row
        conn.send(("layers", _records(layers)))
    except SpectralWatchError as exc:
        conn.send(("error", type(exc).__name__, str(exc)))
    except Exception as exc:  # a bug of this reader, not of the file: reported as such by the parent
        conn.send(("bug", type(exc).__name__, str(exc)[:500]))
    finally:
        conn.close()


def _fork(proc) -> None:
    """Start ``proc`` by forking, holding h5py's lock so that no other thread is inside HDF5 meanwhile.

    The child only runs h5py code and exits: the warnings about forking a multi-threaded process
    (JAX's, Python 3.12's) concern threads of frameworks the child never uses, so they are silenced here.
    """
    from h5py._objects import phil

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        with phil:
            proc.start()


def scan_isolated(path: str, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> list[KerasLayer]:
    """:func:`scan_file` in a child process, under :data:`SCAN_TIMEOUT` seconds.

    A file that makes libhdf5 loop or crash is a :class:`CorruptFileError`. Inside a daemonic
    process (which may not start children) the scan runs in this process.
    """
    import multiprocessing as mp

    from ... import errors

    require("h5py", purpose=f"read the Keras file '{path}'")
    if mp.current_process().daemon:
        return scan_file(path, max_work_ratio)
    fork = "fork" in mp.get_all_start_methods()
    ctx = mp.get_context("fork" if fork else "spawn")
    recv, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(path, send, max_work_ratio), name="spectralwatch-h5-scan")
    if fork:
        _fork(proc)
    else:
        proc.start()
    send.close()
    try:
        message = ("timeout",)
        if recv.poll(SCAN_TIMEOUT):
            try:
                message = recv.recv()
            except EOFError:
                message = ("died",)
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join()
        recv.close()
    kind = message[0]
    if kind == "layers":
        return _from_records(path, message[1])
    if kind == "error":
        cls = getattr(errors, message[1], None)
        raise (cls if isinstance(cls, type) and issubclass(cls, SpectralWatchError) else CorruptFileError)(message[2])
    if kind == "bug":
        raise RuntimeError(f"spectralwatch failed to read the Keras file '{path}' (a bug of its reader, please "
                           f"report it): {message[1]}: {message[2]}")
    what = (f"did not finish within {SCAN_TIMEOUT:g} s" if kind == "timeout"
            else f"crashed the process reading it (exit code {proc.exitcode})")
    raise CorruptFileError(f"The Keras file '{path}' is corrupted: reading its HDF5 structure {what}; libhdf5 "
                           "loops or crashes on some damaged files, so spectralwatch reads them in a child process.")


class KerasFileSource(BaseSource):
    """``.keras`` archives and ``.h5`` files, read with zipfile + h5py (no Keras, no TensorFlow)."""

    name = "keras file"
    reads = (".keras archives and .h5 / .weights.h5 Keras files, read with h5py without importing "
             "Keras or TensorFlow")
    module = "h5py"
    extra = "keras"
    format = "keras"
    extensions = (".keras", ".h5", ".hdf5")

    def __init__(self, path, *, start_id=None, max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        self.path = path_text(path)
        self.description = self.path
        self._start_id = check_start_id(start_id, 0)
        self._layers = scan_isolated(self.path, max_work_ratio)

    def layers(self) -> Iterator[LayerRef]:
        try:
            refs = list(keras_refs(self._layers, self._start_id))  # lazy: nothing is read here
        except (ValueError, TypeError, KeyError, IndexError, ZeroDivisionError) as exc:
            raise CorruptFileError(f"The Keras file '{self.path}' has a layer that cannot be read: "
                                   f"{foreign_reason(exc)}") from None
        return iter(refs)

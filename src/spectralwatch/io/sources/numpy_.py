"""numpy inputs: a bare array (one layer), ``.npz`` archives (read lazily, one array per load), ``.npy`` files.

Nothing is unpickled unless the caller passes ``trust_pickle=True`` (see docs/formats.md).
"""

from __future__ import annotations

import functools
import math
import os
import struct
import threading
import zipfile
import zlib
from collections.abc import Mapping
from typing import Iterator

import numpy as np

from ...errors import CorruptFileError, SpectralWatchError, UnknownFormatError
from ._common import (ARRAY_START_ID, STATE_DICT_START_ID, BaseSource, StateDictLikeSource, TensorEntry,
                      has_tensor_values, check_bytes_available, check_expansion, check_shape, check_start_id,
                      describe_object, foreign_reason, mapping_entries, path_text, reraise_access_errors,
                      type_from_ndim, unsafe_pickle_error, unwrap_checkpoint, warn_trusted_pickle, widen_numpy)
from .base import LayerRef
from .budget import DEFAULT_MAX_WORK_RATIO, Budget, refused_tensor
from .containment import open_regular
from .guarded import check_unchanged, file_identity

__all__ = ["NumpyArraySource", "StateDictSource", "NpzFileSource", "NpyFileSource"]


def single_layer(obj, start_id, to_numpy, dtype: str) -> Iterator[LayerRef]:
    shape = tuple(int(s) for s in obj.shape)
    yield LayerRef(layer_id=start_id, name="W", longname="W", layer_type=type_from_ndim("W", len(shape)),
                   shape=shape, dtype=dtype, loader=lambda: to_numpy(obj))


class NumpyArraySource(BaseSource):
    """A single weight tensor given as a numpy array: one layer named ``W``."""

    name = "numpy.ndarray"
    reads = "a single weight matrix or conv kernel as a numpy array (one layer, named 'W')"
    module = "numpy"
    format = "numpy.ndarray"
    short = "a numpy array"

    @classmethod
    def can_open(cls, obj) -> bool:
        return isinstance(obj, np.ndarray) and not obj.dtype.hasobject

    def __init__(self, obj: np.ndarray, *, start_id=None):
        self._array = obj
        self._start_id = check_start_id(start_id, ARRAY_START_ID)
        self.description = f"numpy array of shape {tuple(obj.shape)} ({obj.dtype})"

    def layers(self) -> Iterator[LayerRef]:
        return single_layer(self._array, self._start_id, widen_numpy, self._array.dtype.name)


class StateDictSource(StateDictLikeSource):
    """A mapping of names to numpy arrays or torch tensors (``model.state_dict()``...)."""

    name = "state dict"
    reads = ("a mapping of names to numpy arrays or torch tensors, e.g. model.state_dict() "
             "(checkpoint wrappers and 'module.' prefixes handled)")
    module = "numpy"
    format = "state_dict"
    short = "a state dict (mapping of names to numpy arrays or torch tensors)"

    @classmethod
    def can_open(cls, obj) -> bool:
        return isinstance(obj, Mapping)

    def __init__(self, obj: Mapping, *, start_id=None, description: str | None = None):
        inner = unwrap_checkpoint(obj)
        if not has_tensor_values(inner):
            raise UnknownFormatError(
                f"Expected a state dict (a mapping of names to numpy arrays or torch tensors) "
                f"but got {describe_object(obj)}."
            )
        self._mapping = inner
        self._start_id = check_start_id(start_id, STATE_DICT_START_ID)
        self.description = description or f"{type(obj).__name__} with {len(inner)} entries"

    def entries(self) -> list[TensorEntry]:
        return mapping_entries(self._mapping)


# --------------------------------------------------------------------------------------------
# .npz and .npy files
# --------------------------------------------------------------------------------------------

#: what reading a damaged zip archive or .npy header can raise (zipfile, zlib, numpy's header parser)
_READ_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
                ValueError, TypeError, KeyError, IndexError, OverflowError, struct.error, UnicodeDecodeError,
                SyntaxError, RecursionError, MemoryError, OSError)


def _reason(exc: BaseException) -> str:
    return foreign_reason(exc)  # never the file's bytes


def _read_npy_header(fh):
    """``(shape, fortran_order, dtype)`` of a ``.npy`` stream, leaving it at the first data byte."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


def _numeric_dtype(dtype: np.dtype) -> bool:
    return dtype.kind in "biufc" and dtype.fields is None and dtype.subdtype is None


def _npy_entry(path: str, name: str, fh, data_bytes) -> tuple[tuple, np.dtype]:
    """Validated ``(shape, dtype)`` of one ``.npy`` stream (``data_bytes(header_end)``: the bytes after it)."""
    try:
        shape, _fortran, dtype = _read_npy_header(fh)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # numpy parses the header text with tokenize/ast: anything can come out
        raise CorruptFileError(f"The array '{name}' of '{path}' has a damaged .npy header: {_reason(exc)}") from None
    shape = check_shape(path, f"array '{name}'", shape)
    if not dtype.hasobject:
        needed = math.prod(shape) * dtype.itemsize
        check_bytes_available(path, f"array '{name}' ({shape}, {dtype})", needed, data_bytes(fh.tell()))
    return shape, dtype


class NpzFileSource(StateDictLikeSource):
    """``.npz`` archive: array headers are read at open, each array only when loaded.

    Members holding Python objects (pickles) are left out, unless ``trust_pickle=True``.
    """

    name = "npz"
    reads = ".npz archives of named numpy arrays (numpy.savez), read one array at a time, never unpickled"
    module = "numpy"
    format = "npz"
    extensions = (".npz",)
    may_unpickle = True
    #: the reference does not read .npz files: numbered in network order (savez of a sorted dict
    #: stores ``layers.10`` before ``layers.2``)
    network_ids = True

    def __init__(self, path, *, start_id=None, trust_pickle: bool = False, max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        self.path = path_text(path)
        self.description = self.path
        self._start_id = check_start_id(start_id, STATE_DICT_START_ID)
        self._trust = bool(trust_pickle)
        self._budget = Budget(self.path, ".npz file", max_work_ratio)
        self._refused: dict = {}  # member -> why the budget refuses it alone (its layer's failed row)
        self._entries = self._scan()
        self._budget.check()  # duplicate members naming one stored array, arrays of zeros...

    def _scan(self) -> list[tuple[str, tuple, str]]:
        found, pickled = [], []
        try:
            with open_regular(self.path, ".npz file") as raw, zipfile.ZipFile(raw, "r") as zf:
                members = zf.infolist()
                self._budget.entries_upfront(len(members), os.fstat(raw.fileno()).st_size, "archive members")
                for info in members:
                    if not info.filename.endswith(".npy"):
                        continue
                    key = info.filename[: -len(".npy")]
                    with zf.open(info, "r") as fh:
                        shape, dtype = _npy_entry(self.path, key, fh, lambda pos: info.file_size - pos)
                    self._budget.store(info.header_offset, info.compress_size)
                    why = self._budget.add(key, math.prod(shape), note=f"{dtype} {shape}", block=info.header_offset,
                                           own_stored=info.compress_size)
                    if why:
                        self._refused[key] = why
                    if dtype.hasobject:
                        pickled.append(key)
                        if not self._trust:
                            continue  # needs pickle: never loaded
                    elif not _numeric_dtype(dtype):
                        continue  # strings, records...: not weights
                    found.append((key, shape, dtype.name))
        except SpectralWatchError:  # ours (corrupt, unsafe, over budget): as it is
            raise
        except _READ_ERRORS as exc:
            reraise_access_errors(exc)
            raise CorruptFileError(f"Cannot read the .npz file '{self.path}' (corrupted or truncated): "
                                   f"{_reason(exc)}") from None
        if pickled and self._trust:
            warn_trusted_pickle(self.path)
        elif pickled and not found:
            raise unsafe_pickle_error(
                self.path, f"holds only arrays of pickled Python objects ({', '.join(pickled[:5])})",
                "Save numeric arrays instead: numpy.savez(path, **{name: numpy.asarray(w, dtype=float)}).")
        return found

    def _loader(self, key: str):
        # picklable (see safetensors_._loader): workers read their own arrays from the file
        if key in self._refused:
            return functools.partial(refused_tensor, self._refused[key])
        return functools.partial(_load_npz_array, self.path, key, self._trust)

    def entries(self) -> list[TensorEntry]:
        items = self._entries
        names = [k for k, _, _ in items]
        strip = bool(names) and all(n.startswith("module.") for n in names)
        return [TensorEntry(k[len("module."):] if strip else k, shape, dt, self._loader(k))
                for k, shape, dt in items]


def _numeric(path: str, key: str, arr: np.ndarray) -> np.ndarray:
    """An unpickled object array as float64 (only reached with ``trust_pickle=True``)."""
    try:
        return np.asarray(arr, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise UnknownFormatError(f"Array '{key}' of '{path}' holds Python objects that are not numbers: "
                                 f"{_reason(exc)}") from None


#: open ``.npz`` archives of this process, by (pid, path, inode, size, mtime): parsing the central
#: directory once per file, not once per array (a 2,000-array file took 30 ms per array to re-parse)
_ARCHIVES: dict = {}
_ARCHIVES_LOCK = threading.Lock()
_MAX_OPEN_ARCHIVES = 8


def _archive(path: str) -> zipfile.ZipFile:
    """The process's open ``ZipFile`` of ``path`` (reopened when the file changed, or in a new
    process: a forked child never shares its parent's file offset)."""
    st = os.stat(path)
    key = (os.getpid(), path, st.st_ino, st.st_size, st.st_mtime_ns)
    with _ARCHIVES_LOCK:
        zf = _ARCHIVES.get(key)
        if zf is None:
            for old in [k for k in _ARCHIVES if k[1] == path or k[0] != key[0]] + list(_ARCHIVES)[:max(
                    0, len(_ARCHIVES) - _MAX_OPEN_ARCHIVES + 1)]:
                stale = _ARCHIVES.pop(old, None)
                if stale is not None and old[0] == key[0]:
                    stale.close()
            zf = _ARCHIVES[key] = zipfile.ZipFile(path)
    return zf


def _load_npz_array(path, key: str, trust_pickle: bool = False) -> np.ndarray:
    """Read one array of an ``.npz`` file (unpickling only with ``trust_pickle``)."""
    try:
        zf = _archive(path)
        info = zf.getinfo(key + ".npy")
        check_expansion(path, f"array '{key}'", info.file_size, info.compress_size, fmt=".npz file")
        with zf.open(info, "r") as fh:  # zipfile serialises the reads of one archive across threads
            arr = np.lib.format.read_array(fh, allow_pickle=bool(trust_pickle))
    except SpectralWatchError:  # ours (corrupt, unsafe, over budget): as it is
        raise
    except _READ_ERRORS as exc:
        reraise_access_errors(exc)
        raise CorruptFileError(f"Cannot read array '{key}' of '{path}' (corrupted or truncated): "
                               f"{_reason(exc)}") from None
    except Exception as exc:  # only a trusted pickle can raise anything else
        raise CorruptFileError(f"Cannot unpickle array '{key}' of '{path}': {_reason(exc)}") from None
    if arr.dtype.hasobject:
        return _numeric(path, key, arr)
    return widen_numpy(arr, copy=False)


def _load_npy_array(path: str, identity: tuple = ()) -> np.ndarray:
    """The array of a ``.npy`` file, read into memory (never memory-mapped: a file cut while it is read is an
    error, not a ``SIGBUS``; never unpickled); the file must still be the one opened (:mod:`.guarded`)."""
    check_unchanged(path, identity)
    try:
        with open_regular(path, ".npy file") as fh:
            arr = np.load(fh, allow_pickle=False)
    except _READ_ERRORS as exc:
        reraise_access_errors(exc)
        check_unchanged(path, identity)
        raise CorruptFileError(f"Cannot read the .npy file '{path}' (corrupted or truncated): {_reason(exc)}") from None
    check_unchanged(path, identity)
    return widen_numpy(arr, copy=False)


class NpyFileSource(BaseSource):
    """A ``.npy`` file: one array (one layer named ``W``), read when analysed.

    A file of pickled Python objects (``numpy.save`` of a dict of arrays, an object array) is
    refused, unless ``trust_pickle=True``: then a saved dict is read as a state dict.
    """

    name = "npy"
    reads = (".npy files holding one array (numpy.save): one layer named 'W'; pickled object arrays "
             "only with trust_pickle=True")
    module = "numpy"
    format = "npy"
    extensions = (".npy",)
    may_unpickle = True

    def __init__(self, path, *, start_id=None, trust_pickle: bool = False, max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        # (no work budget needed: the header's shape must fit in the file's bytes, checked below)
        self.path = path_text(path)
        self.description = self.path
        self._inner = None
        self._identity = file_identity(self.path)
        size = self._identity[2]
        try:
            with open_regular(self.path, ".npy file") as fh:
                self.shape, dtype = _npy_entry(self.path, "W", fh, lambda pos: size - pos)
        except SpectralWatchError:  # ours (corrupt, unsafe, over budget): as it is
            raise
        except _READ_ERRORS as exc:
            reraise_access_errors(exc)
            raise CorruptFileError(f"Cannot read the .npy file '{self.path}' (corrupted or truncated): "
                                   f"{_reason(exc)}") from None
        self.dtype = dtype.name
        if not dtype.hasobject and not _numeric_dtype(dtype):
            raise UnknownFormatError(f"The .npy file '{self.path}' holds an array of {dtype} values, not numbers: "
                                     "it is not a weight matrix.")
        if dtype.hasobject:
            if not trust_pickle:
                raise unsafe_pickle_error(
                    self.path, "holds pickled Python objects (numpy.save of a dict or of an object array)",
                    "Save the arrays themselves instead: numpy.save(path, matrix) for one matrix, "
                    "numpy.savez(path, **arrays) for several.")
            self._inner = self._trusted(start_id)
        self._start_id = check_start_id(start_id, ARRAY_START_ID)

    def _trusted(self, start_id) -> BaseSource:
        warn_trusted_pickle(self.path)
        try:
            obj = np.load(self.path, allow_pickle=True)
        except Exception as exc:  # a trusted pickle can raise anything
            raise CorruptFileError(f"Cannot unpickle the .npy file '{self.path}': {_reason(exc)}") from None
        if obj.ndim == 0 and isinstance(obj.item(), Mapping):
            return StateDictSource(obj.item(), start_id=start_id, description=self.path)
        return NumpyArraySource(_numeric(self.path, "W", obj), start_id=start_id)

    def layers(self) -> Iterator[LayerRef]:
        if self._inner is not None:
            return self._inner.layers()
        shape = self.shape
        loader = functools.partial(_load_npy_array, self.path, self._identity)
        return iter([LayerRef(layer_id=self._start_id, name="W", longname="W",
                              layer_type=type_from_ndim("W", len(shape)), shape=shape, dtype=self.dtype,
                              loader=loader)])

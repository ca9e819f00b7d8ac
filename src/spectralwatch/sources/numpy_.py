"""numpy inputs: a bare array (one layer) and ``.npz`` archives (read lazily, one array per load)."""

from __future__ import annotations

import functools

import os
import zipfile
from collections.abc import Mapping
from typing import Iterator

import numpy as np

from ..errors import CorruptFileError, UnknownFormatError
from ._common import (ARRAY_START_ID, STATE_DICT_START_ID, BaseSource, StateDictLikeSource, TensorEntry,
                      _has_tensor_values, check_start_id, describe_object, mapping_entries, path_text,
                      type_from_ndim, unwrap_checkpoint, widen_numpy)
from .base import LayerRef

__all__ = ["NumpyArraySource", "StateDictSource", "NpzFileSource"]


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
        if not _has_tensor_values(inner):
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
# .npz
# --------------------------------------------------------------------------------------------

def _read_npy_header(fh):
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    return np.lib.format.read_array_header_2_0(fh)


class NpzFileSource(StateDictLikeSource):
    """``.npz`` archive: array headers are read at open, each array only when loaded."""

    name = "npz"
    reads = ".npz archives of named numpy arrays (numpy.savez), read one array at a time"
    module = "numpy"
    format = "npz"
    extensions = (".npz",)

    @classmethod
    def can_open(cls, obj) -> bool:
        return isinstance(obj, (str, os.PathLike)) and path_text(obj).lower().endswith(cls.extensions)

    def __init__(self, path, *, start_id=None):
        self.path = path_text(path)
        self.description = self.path
        self._start_id = check_start_id(start_id, STATE_DICT_START_ID)
        self._entries = self._scan()

    def _scan(self) -> list[tuple[str, tuple, str]]:
        found = []
        try:
            with zipfile.ZipFile(self.path, "r") as zf:
                for info in zf.infolist():
                    if not info.filename.endswith(".npy"):
                        continue
                    with zf.open(info, "r") as fh:
                        shape, _fortran, dtype = _read_npy_header(fh)
                    if dtype.hasobject:
                        continue  # needs pickle: never loaded
                    found.append((info.filename[: -len(".npy")], tuple(shape), dtype.name))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError, OSError) as exc:
            if isinstance(exc, (FileNotFoundError, PermissionError)):
                raise
            raise CorruptFileError(f"Cannot read the .npz file '{self.path}': {exc}") from exc
        return found

    def _loader(self, key: str):
        # picklable (see safetensors_._loader): workers read their own arrays from the file
        return functools.partial(_load_npz_array, self.path, key)

    def entries(self) -> list[TensorEntry]:
        items = self._entries
        names = [k for k, _, _ in items]
        strip = bool(names) and all(n.startswith("module.") for n in names)
        return [TensorEntry(k[len("module."):] if strip else k, shape, dt, self._loader(k))
                for k, shape, dt in items]


def _load_npz_array(path, key: str) -> np.ndarray:
    """Read one array of an ``.npz`` file (never unpickling anything)."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arr = npz[key]
    except (zipfile.BadZipFile, ValueError, EOFError) as exc:
        raise CorruptFileError(f"Cannot read array '{key}' of '{path}': {exc}") from exc
    return widen_numpy(arr, copy=False)

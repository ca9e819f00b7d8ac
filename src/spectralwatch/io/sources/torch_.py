"""PyTorch inputs: ``torch.nn.Module`` objects, single tensors and ``.pt/.pth/.bin/.ckpt`` files.

torch is imported only inside the functions that handle torch objects or files.
"""

from __future__ import annotations

import pickle
import re
import struct
import zipfile
from collections.abc import Mapping
from typing import Iterator

from ...deps import require
from ...errors import BudgetExceededError, CorruptFileError, UnknownFormatError, UnsafeFileError
from ._common import (ARRAY_START_ID, MODULE_START_ID, STATE_DICT_START_ID, BaseSource, StateDictLikeSource,
                      TensorEntry, has_tensor_values, check_start_id, describe_object, foreign_reason, is_torch_module,
                      is_torch_tensor, mapping_entries, path_text, torch_dtype_name, torch_to_numpy,
                      unsafe_pickle_error, unwrap_checkpoint, value_to_numpy, warn_trusted_pickle)
from .base import LayerRef
from .budget import DEFAULT_MAX_WORK_RATIO, Budget
from .containment import check_regular
from .guarded import check_unchanged, copy_mapped, file_identity
from .fused import append_parts, packed_parts
from .numpy_ import single_layer

__all__ = ["TorchModuleSource", "TorchTensorSource", "TorchFileSource", "module_layer_type"]

_REQUIRED_NDIM = {"dense": (2,), "embedding": (2,), "conv1d": (3,), "conv2d": (4,), "conv3d": (5,),
                  "conv_transpose": (3, 4, 5)}


def module_layer_type(module, weight) -> str:
    """Layer type of a torch module holding ``weight``.

    Standard classes are recognised with ``isinstance``; other classes by their name (as
    WeightWatcher does), checked against the weight's rank so that e.g. ``nn.Bilinear`` (3-D
    weight) or ``nn.Conv3d`` are 'unknown' rather than mis-sliced.
    """
    import torch.nn as nn

    ndim = weight.dim()
    if isinstance(module, nn.Linear):
        the_type = "dense"
    elif isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
        the_type = "conv_transpose"
    elif isinstance(module, nn.Conv3d):
        the_type = "conv3d"
    elif isinstance(module, nn.Conv1d):
        the_type = "conv1d"
    elif isinstance(module, nn.Conv2d):
        the_type = "conv2d"
    elif isinstance(module, nn.Embedding):
        the_type = "embedding"
    elif type(module).__name__ == "Conv1D" and ndim == 2:
        return "conv1d"  # Hugging Face GPT-2 layer: a dense (in, out) matrix
    else:
        cls = type(module).__name__.lower()
        if "linear" in cls:
            the_type = "dense"
        elif "convtranspose" in cls:
            the_type = "conv_transpose"
        elif "conv3d" in cls:
            the_type = "conv3d"
        elif "conv1d" in cls:
            the_type = "conv1d"
        elif "conv2d" in cls:
            the_type = "conv2d"
        elif "embedding" in cls:
            the_type = "embedding"
        elif "norm" in cls:
            return "norm"
        else:
            return "unknown"
    if ndim not in _REQUIRED_NDIM[the_type]:
        return "unknown"
    return the_type


def _weight_of(module):
    """``module.weight`` when it is an initialised tensor, else None (never modifies the module)."""
    import torch

    try:
        w = getattr(module, "weight", None)
    except Exception:  # a property that fails to compute: no usable weight
        return None
    if not isinstance(w, torch.Tensor):
        return None
    uninit = getattr(torch.nn.parameter, "UninitializedParameter", None)
    if uninit is not None and isinstance(w, uninit):
        return None
    return w


class TorchModuleSource(BaseSource):
    """A ``torch.nn.Module``: one id per entry of ``named_modules()`` (root = 0)."""

    name = "torch.nn.Module"
    reads = "a PyTorch model object (torch.nn.Module), walked with named_modules()"
    module = "torch"
    extra = "torch"
    format = "torch.nn.Module"
    short = "a torch.nn.Module"

    @classmethod
    def can_open(cls, obj) -> bool:
        return is_torch_module(obj)

    def __init__(self, model, *, start_id=None):
        self._model = model
        self._start_id = check_start_id(start_id, MODULE_START_ID)
        self.description = f"{type(model).__name__} (torch.nn.Module)"

    def layers(self) -> Iterator[LayerRef]:
        parts: list[LayerRef] = []
        return append_parts(self._walk(parts), parts, self._start_id)

    def _walk(self, parts: list) -> Iterator[LayerRef]:
        layer_id = self._start_id
        for path, module in self._model.named_modules():
            weight = _weight_of(module)
            name = path.split(".")[-1] if path else type(module).__name__
            if weight is not None:
                groups = getattr(module, "groups", 1)
                yield LayerRef(layer_id=layer_id, name=name, longname=path,
                               layer_type=module_layer_type(module, weight),
                               shape=tuple(int(s) for s in weight.shape), dtype=torch_dtype_name(weight),
                               loader=self._loader(module),
                               groups=groups if isinstance(groups, int) and groups > 0 else 1)
            parts.extend(_module_parts(module, path))
            layer_id += 1

    @staticmethod
    def _loader(module):
        def load():
            weight = _weight_of(module)
            if weight is None:  # pragma: no cover - the module changed since it was listed
                raise UnknownFormatError(f"The module {type(module).__name__} no longer has a weight tensor.")
            return torch_to_numpy(weight)

        return load


def _param_loader(module, pname: str):
    def load():
        return torch_to_numpy(getattr(module, pname))

    return load


def _module_parts(module, path: str) -> list[LayerRef]:
    """Matrices a module holds besides ``.weight``: packed Q/K/V, recurrent gates (ids set later)."""
    import torch

    params = {n: p for n, p in module.named_parameters(recurse=False)
              if isinstance(p, torch.Tensor) and n != "weight" and n.startswith(("weight_", "in_proj", "q_proj",
                                                                                    "k_proj", "v_proj"))}
    if not params:
        return []
    shapes = {n: tuple(int(s) for s in p.shape) for n, p in params.items()}
    short = path.split(".")[-1] if path else ""
    out = []
    for pname, p in params.items():
        name = f"{short}.{pname}" if short else pname
        longname = f"{path}.{pname}" if path else pname
        out.extend(packed_parts(pname, name, shapes[pname], torch_dtype_name(p), _param_loader(module, pname),
                                shapes, longname=longname))
    return out


class TorchTensorSource(BaseSource):
    """A single torch tensor: one layer named ``W``."""

    name = "torch.Tensor"
    reads = "a single weight tensor as a torch.Tensor (one layer, named 'W')"
    module = "torch"
    extra = "torch"
    format = "torch.Tensor"
    short = "a torch.Tensor"

    @classmethod
    def can_open(cls, obj) -> bool:
        return is_torch_tensor(obj)

    def __init__(self, tensor, *, start_id=None):
        self._tensor = tensor
        self._start_id = check_start_id(start_id, ARRAY_START_ID)
        self.description = f"torch tensor of shape {tuple(tensor.shape)} ({torch_dtype_name(tensor)})"

    def layers(self) -> Iterator[LayerRef]:
        return single_layer(self._tensor, self._start_id, torch_to_numpy, torch_dtype_name(self._tensor))


# --------------------------------------------------------------------------------------------
# files
# --------------------------------------------------------------------------------------------

_UNSAFE_HINT = re.compile(r"GLOBAL\s+([\w.]+)")
_RESAVE = ("Re-save the weights as a plain state dict (torch.save(model.state_dict(), path)) or as safetensors "
           "(safetensors.torch.save_file(model.state_dict(), path)) and pass that file.")
#: what torch.load raises on a damaged file (besides pickle.UnpicklingError)
_LOAD_ERRORS = (RuntimeError, EOFError, OSError, ValueError, IndexError, KeyError, AttributeError, TypeError,
                OverflowError, struct.error, UnicodeDecodeError, MemoryError, zipfile.BadZipFile, RecursionError,
                AssertionError)  # torch asserts on some damaged legacy files


def _corrupt(path: str, exc: BaseException) -> CorruptFileError:
    return CorruptFileError(
        f"The file '{path}' is not a readable PyTorch file (truncated, corrupted or not written by torch.save): "
        f"{foreign_reason(exc)}")


def _torch_load(path: str, trust_pickle: bool = False):
    """``torch.load`` that never executes pickled code unless ``trust_pickle``, mapped to spectralwatch errors.

    The file is always read with ``weights_only=True`` first; only a file that this refuses, and only
    with ``trust_pickle=True``, is read again with ``weights_only=False`` (after a warning).
    """
    torch = require("torch", purpose=f"read the PyTorch file '{path}'")
    try:
        return _load(torch, path, weights_only=True)
    except UnsafeFileError:
        if not trust_pickle:
            raise
    warn_trusted_pickle(path)
    try:
        return _load(torch, path, weights_only=False)
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except Exception as exc:  # a trusted pickle runs arbitrary code: anything can come out of it
        raise CorruptFileError(f"The file '{path}' could not be unpickled, even with trust_pickle=True: "
                               f"{foreign_reason(exc, keep_quoted=True)}") from None


def _load(torch, path: str, *, weights_only: bool):
    def attempt(mmap: bool):
        return torch.load(path, map_location="cpu", weights_only=weights_only, mmap=mmap)

    try:
        try:
            return attempt(True)
        except RuntimeError as exc:
            if "mmap" not in str(exc):
                raise
            return attempt(False)  # legacy (non-zip) format cannot be memory-mapped
    except pickle.UnpicklingError as exc:
        msg = str(exc)
        match = _UNSAFE_HINT.search(msg)
        if weights_only and (match or "Unsupported global" in msg):
            what = f" (it refers to '{match.group(1)}')" if match else ""
            raise unsafe_pickle_error(path, f"contains pickled Python objects{what}", _RESAVE) from None
        raise CorruptFileError(
            f"The file '{path}' is not a readable PyTorch file (truncated, corrupted or not written "
            f"by torch.save): {foreign_reason(exc)}"
        ) from None
    except (FileNotFoundError, PermissionError, IsADirectoryError):
        raise
    except _LOAD_ERRORS as exc:
        raise _corrupt(path, exc) from None


def load_state_dict_file(path: str, trust_pickle: bool = False) -> Mapping:
    """The state dict stored in a torch file (checkpoint wrappers removed)."""
    obj = _torch_load(path, trust_pickle)
    if not isinstance(obj, Mapping):
        raise UnknownFormatError(
            f"The file '{path}' holds {describe_object(obj)}, not a state dict (a mapping of "
            "names to tensors). Save model.state_dict() instead."
        )
    inner = unwrap_checkpoint(obj)
    if not has_tensor_values(inner):
        raise UnknownFormatError(
            f"The file '{path}' holds {describe_object(obj)}; expected a state dict (a mapping of "
            "names to tensors), possibly nested under 'state_dict', 'model_state_dict' or 'model'."
        )
    return inner


#: accessors of the parts of a tensor that is not strided (sparse COO, CSR, CSC, BSR, BSC)
_SPARSE_PARTS = ("_indices", "_values", "crow_indices", "col_indices", "ccol_indices", "row_indices", "values")


def _stored_parts(t) -> list:
    """The strided tensors that hold ``t``'s data: itself, or the indices and values of a sparse tensor."""
    if str(t.layout) == "torch.strided":
        return [t]
    parts = []
    for name in _SPARSE_PARTS:
        try:
            part = getattr(t, name)()
        except (AttributeError, RuntimeError, TypeError, NotImplementedError):
            continue
        if str(part.layout) == "torch.strided" and all(part is not p for p in parts):
            parts.append(part)
    return parts


def _describe_tensor(t) -> str:
    layout = str(t.layout).replace("torch.", "")
    if layout != "strided":
        return f"a {layout} tensor of shape {tuple(t.shape)}"
    try:
        stored = t.untyped_storage().nbytes()
    except (RuntimeError, NotImplementedError):
        return f"shape {tuple(t.shape)}"
    if stored < t.numel() * t.element_size():
        return f"a strided view of shape {tuple(t.shape)} over {stored} stored bytes"
    return f"shape {tuple(t.shape)}"


def check_torch_budget(path: str, mapping: Mapping, max_work_ratio) -> dict:
    """The work budget of a state dict (:mod:`.budget`): sparse and strided tensors are counted by the values
    they densify to, storages once however often referenced. A tensor that alone asks for too much is
    refused alone (returned: ``{key: reason}``, its layer's failed row); a file whose other tensors ask for
    too much together (one storage referenced many times) is refused."""
    budget = Budget(path, "PyTorch file", max_work_ratio)
    refused: dict = {}
    if not budget.enabled:
        return refused
    for key in mapping.keys():
        value = mapping[key]
        if not is_torch_tensor(value):
            continue
        block, own = None, 0
        for part in _stored_parts(value):
            try:
                storage = part.untyped_storage()
                block = ("storage", storage.data_ptr(), storage.nbytes())
                budget.store(block, storage.nbytes())
                own += storage.nbytes()
            except (RuntimeError, NotImplementedError):  # a tensor without a plain storage: its own size
                budget.store(("tensor", id(part)), part.numel() * part.element_size())
                own += part.numel() * part.element_size()
        why = budget.add(str(key), value.numel(), note=_describe_tensor(value), block=block, own_stored=own)
        if why:
            refused[key] = why
    budget.check()
    return refused


def _guarded_copy(t, path: str, identity: tuple, what: str):
    """A strided CPU tensor copied out of its (memory-mapped) storage without touching the mapping
    directly (:func:`.guarded.copy_mapped`): a truncated file is an error, not a ``SIGBUS``."""
    import torch

    shape, stride = tuple(t.shape), tuple(t.stride())
    item = t.element_size()
    if t.numel() == 0:
        return torch.empty(shape, dtype=t.dtype)
    span = 1 + sum((n - 1) * s for n, s in zip(shape, stride))  # elements from the first to the last
    start = t.untyped_storage().data_ptr() + t.storage_offset() * item
    raw = copy_mapped(start, span * item, path, identity, f"tensor '{what}'")
    flat = torch.frombuffer(raw, dtype=torch.uint8).view(t.dtype)
    return torch.as_strided(flat, shape, stride, 0)


def guarded_torch_to_numpy(t, path: str, identity: tuple, what: str):
    """:func:`torch_to_numpy` of a tensor read from ``path``, copied out of the file mapping safely."""
    import torch

    if getattr(t, "is_quantized", False) or t.device.type != "cpu":
        check_unchanged(path, identity, f"tensor '{what}'")
        return torch_to_numpy(t)
    layout = str(t.layout)
    if layout == "torch.strided":
        return torch_to_numpy(_guarded_copy(t, path, identity, what))
    # a sparse tensor is rebuilt from copies of its parts with its invariants checked: torch does not check
    # them when it loads one, and densifying indices out of range writes outside the tensor's memory
    try:
        if layout == "torch.sparse_coo":
            copy = torch.sparse_coo_tensor(_guarded_copy(t._indices(), path, identity, what),
                                           _guarded_copy(t._values(), path, identity, what), t.shape,
                                           check_invariants=True)
        else:
            compressed = layout in ("torch.sparse_csr", "torch.sparse_bsr")
            ci, pi = (t.crow_indices(), t.col_indices()) if compressed else (t.ccol_indices(), t.row_indices())
            copy = torch.sparse_compressed_tensor(
                _guarded_copy(ci, path, identity, what), _guarded_copy(pi, path, identity, what),
                _guarded_copy(t.values(), path, identity, what), t.shape, layout=t.layout, check_invariants=True)
    except RuntimeError as exc:
        raise CorruptFileError(f"The sparse tensor '{what}' of '{path}' is invalid (indices out of its shape or "
                               f"out of order): {foreign_reason(exc)}") from None
    return torch_to_numpy(copy)


class TorchFileSource(StateDictLikeSource):
    """``torch.save`` files, loaded with ``weights_only=True`` and memory-mapped when possible.

    A tensor is copied out of the mapping through :func:`.guarded.copy_mapped` and the file checked against
    its identity at open: a checkpoint rewritten while it is read (a training loop saving ``last.pt``) is an
    error for the layers read after it, never a ``SIGBUS``. Sparse and strided tensors, and storages
    referenced many times, count against the work budget (:mod:`.budget`).
    """

    name = "pytorch file"
    reads = (".pt/.pth/.bin/.ckpt files written by torch.save (state dicts or checkpoints), "
             "loaded without executing pickled code (unless trust_pickle=True)")
    module = "torch"
    extra = "torch"
    format = "pytorch"
    extensions = (".pt", ".pth", ".bin", ".ckpt")
    may_unpickle = True

    def __init__(self, path, *, start_id=None, trust_pickle: bool = False, max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        self.path = path_text(path)
        self.description = self.path
        self._start_id = check_start_id(start_id, STATE_DICT_START_ID)
        check_regular(self.path, "PyTorch file")
        self._identity = file_identity(self.path)
        self._state_dict = load_state_dict_file(self.path, trust_pickle)
        check_unchanged(self.path, self._identity, "while torch.load read it")
        self._refused = check_torch_budget(self.path, self._state_dict, max_work_ratio)

    def _loader(self, key):
        mapping, path, identity = self._state_dict, self.path, self._identity
        refused = self._refused.get(key)

        def load():
            if refused:  # a sparse or strided tensor far larger than what it stores: its own failed row
                raise BudgetExceededError(refused[:1].upper() + refused[1:] + ".")
            value = mapping[key]
            if not is_torch_tensor(value):  # pragma: no cover - entries are tensors
                return value_to_numpy(value)
            return guarded_torch_to_numpy(value, path, identity, str(key))

        return load

    def entries(self) -> list[TensorEntry]:
        return mapping_entries(self._state_dict, loader_for=self._loader)

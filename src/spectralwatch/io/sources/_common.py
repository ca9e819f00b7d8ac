"""Shared pieces of the sources: numbering rules, dtype widening, torch detection without torch.

Nothing here imports torch at module level: torch objects are recognised through
``sys.modules`` (an object cannot be a torch tensor unless torch is already imported).
"""

from __future__ import annotations

import abc
import json
import numbers
import os
import re
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Callable, Iterable, Iterator

import numpy as np

from ...errors import CorruptFileError, InvalidParameterError, UnknownFormatError, UnsafeFileError
from .base import LayerRef

#: Default first ids, as WeightWatcher 0.7.7 numbers each kind of input: a torch module walk
#: starts at its root (0), a state dict at 1 (also used for single files, which the reference
#: does not read), a folder of weight files at 0 (the reference's folder reader does not apply
#: its state-dict offset). A single array is layer 0.
MODULE_START_ID = 0
ARRAY_START_ID = 0
STATE_DICT_START_ID = 1
FOLDER_START_ID = 0

#: checkpoint keys under which a state dict may be nested (checked in this order)
CHECKPOINT_KEYS = ("state_dict", "model_state_dict", "model")


# --------------------------------------------------------------------------------------------
# torch detection (no import)
# --------------------------------------------------------------------------------------------

def _torch():
    return sys.modules.get("torch")


def is_torch_tensor(obj) -> bool:
    torch = _torch()
    if torch is None or not type(obj).__module__.startswith("torch"):
        return False
    tensor_cls = getattr(torch, "Tensor", None)
    return tensor_cls is not None and isinstance(obj, tensor_cls)


def is_torch_module(obj) -> bool:
    torch = _torch()
    if torch is None:
        return False
    nn = getattr(torch, "nn", None)
    module_cls = getattr(nn, "Module", None) if nn is not None else None
    return module_cls is not None and isinstance(obj, module_cls)


def is_tensor_like(obj) -> bool:
    """A value a state dict may hold as a layer: a numeric numpy array or a torch tensor."""
    if isinstance(obj, np.ndarray):
        return not obj.dtype.hasobject
    return is_torch_tensor(obj)


def torch_dtype_name(t) -> str:
    return str(t.dtype).replace("torch.", "")


def array_dtype_name(obj) -> str:
    if isinstance(obj, np.ndarray):
        return obj.dtype.name
    return torch_dtype_name(obj)


# --------------------------------------------------------------------------------------------
# conversion to the loader's contract: numpy, float32 or float64, owning its memory
# --------------------------------------------------------------------------------------------

def widen_numpy(arr: np.ndarray, *, copy: bool = True) -> np.ndarray:
    """Return ``arr`` as float32/float64 (half precision widened losslessly, ints -> float64).

    With ``copy=True`` the result never shares memory with ``arr`` (callers must not be able to
    modify a user's weights through the returned array).
    """
    dt = arr.dtype
    copy = True if copy else None  # False: a copy only when needed (another byte order, another dtype)
    if dt.kind == "f":
        if dt.itemsize < 4:
            return arr.astype(np.float32)
        if dt.itemsize == 4:
            return np.array(arr, dtype=np.float32, copy=copy)
        return np.array(arr, dtype=np.float64, copy=copy)
    if dt.kind in "iub":
        return arr.astype(np.float64)
    if dt.kind == "c":
        return np.array(arr, dtype=dt.newbyteorder("="), copy=copy)
    # extension float types (ml_dtypes bfloat16, float8...): they convert to float32 exactly
    try:
        return arr.astype(np.float32)
    except (TypeError, ValueError) as exc:  # pragma: no cover - exotic dtypes
        raise UnknownFormatError(f"Cannot convert an array of dtype {dt} to floating point.") from exc


def torch_to_numpy(t) -> np.ndarray:
    """A torch tensor -> numpy float32/float64 copy on the CPU (bf16/fp16/fp8 widened)."""
    t = t.detach()
    if getattr(t, "is_quantized", False):
        t = t.dequantize()
    if getattr(t, "is_sparse", False) or str(getattr(t, "layout", "torch.strided")) != "torch.strided":
        t = t.to_dense()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_complex():
        return t.resolve_conj().numpy().copy()
    if t.dtype.is_floating_point:
        if t.element_size() < 4:
            return t.float().numpy()
        return t.numpy().copy()
    return t.double().numpy()


def value_to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return widen_numpy(value)
    return torch_to_numpy(value)


# --------------------------------------------------------------------------------------------
# numbering
# --------------------------------------------------------------------------------------------

def type_from_ndim(name: str, ndim: int) -> str:
    """State-dict / bare-array layer type, from the tensor rank (and the name for embeddings)."""
    if ndim == 2:
        low = name.lower()
        if "embed" in low or "wte" in low or "wpe" in low:
            return "embedding"
        return "dense"
    if ndim == 3:
        return "conv1d"
    if ndim == 4:
        return "conv2d"
    if ndim == 5:
        return "conv3d"
    if ndim == 1:
        return "norm"
    return "unknown"


def check_start_id(start_id, default: int) -> int:
    if start_id is None:
        return default
    if isinstance(start_id, bool) or not isinstance(start_id, numbers.Integral):
        raise InvalidParameterError(
            f"The 'start_id' parameter of open_source must be an int or None. Got {start_id!r}."
        )
    return int(start_id)


@dataclass(frozen=True)
class TensorEntry:
    """One tensor of a state dict or file, before numbering (no data read)."""

    key: str
    shape: tuple
    dtype: str
    loader: Callable[[], np.ndarray]


def inferred_groups(shape: tuple) -> int:
    """Groups of a conv kernel known only by its shape: ``(C, 1, *k)`` is taken as depthwise.

    A state dict does not record ``groups``; a kernel with one input channel per group and
    several outputs is read as depthwise (``groups = C``). Used only by ``grouped_conv='block'``.
    """
    if len(shape) >= 3 and int(shape[1]) == 1 and int(shape[0]) > 1:
        return int(shape[0])
    return 1


def number_entries(entries: Iterable[TensorEntry], start_id: int, *, network_ids: bool = False) -> Iterator[LayerRef]:
    """WeightWatcher's state-dict numbering, listed in network order.

    Every key ending in ``.weight`` takes one id, in order (1-D norm weights included), and is
    named after the key without ``.weight``. When no key ends in ``.weight``, every key is a
    layer keeping its full name. Matrices the reference does not see (packed Q/K/V
    ``in_proj_weight``, recurrent ``weight_ih/hh`` gates) are numbered after all of these.

    The layers are yielded in network order (:func:`.order.network_order`: numbered siblings in
    numeric order), the parts after the others. ``network_ids=False`` (a state dict, a torch file,
    a folder: inputs the reference numbers) numbers them in their stored order, as the reference
    does, so that the ids of a stored-alphabetically model are not monotone in the listing;
    ``network_ids=True`` (single files the reference does not read) numbers them in network order.
    """
    from .fused import append_parts, packed_parts
    from .order import network_order

    entries = list(entries)
    has_weight = any(e.key.endswith(".weight") for e in entries)
    shapes = {e.key: tuple(e.shape) for e in entries}
    parts: list[LayerRef] = []
    layers: list[LayerRef] = []
    if network_ids:
        entries = [entries[i] for i in network_order([e.key for e in entries])]
    layer_id = start_id
    for e in entries:
        if has_weight:
            if not e.key.endswith(".weight"):
                parts.extend(packed_parts(e.key, e.key, tuple(e.shape), e.dtype, e.loader, shapes))
                continue
            name = e.key[: -len(".weight")]
        else:
            name = e.key
        shape = tuple(int(s) for s in e.shape)
        layers.append(LayerRef(layer_id=layer_id, name=name, longname=name,
                               layer_type=type_from_ndim(name, len(e.shape)),
                               shape=shape, dtype=e.dtype, loader=e.loader, groups=inferred_groups(shape)))
        layer_id += 1
    numbered = list(append_parts(layers, parts, start_id))
    main, extra = numbered[:len(layers)], numbered[len(layers):]
    return iter(in_network_order(main) + in_network_order(extra))


def in_network_order(refs: list[LayerRef]) -> list[LayerRef]:
    """``refs`` listed in network order of their long names (their ids unchanged)."""
    from .order import network_order

    return [refs[i] for i in network_order([r.longname or r.name for r in refs])]


# --------------------------------------------------------------------------------------------
# state dicts held in memory (also what torch files contain)
# --------------------------------------------------------------------------------------------

def has_tensor_values(mapping: Mapping) -> bool:
    return any(is_tensor_like(v) for v in mapping.values())


def unwrap_checkpoint(obj: Mapping, depth: int = 2) -> Mapping:
    """The state dict inside a training checkpoint (``{'state_dict': {...}, 'epoch': 3}``...).

    A mapping holding tensors itself is returned unchanged.
    """
    if has_tensor_values(obj) or depth == 0:
        return obj
    for key in CHECKPOINT_KEYS:
        inner = obj.get(key) if isinstance(obj, Mapping) else None
        if isinstance(inner, Mapping):
            found = unwrap_checkpoint(inner, depth - 1)
            if has_tensor_values(found):
                return found
    return obj


def mapping_entries(mapping: Mapping, *, loader_for: Callable | None = None) -> list[TensorEntry]:
    """Entries of the tensor values of a mapping, in key order, with a common ``module.`` prefix
    (``torch.nn.DataParallel``) removed. Non-tensor values are ignored.

    The loaders look the key up again when called, so a lazy mapping is only read on load.
    """
    items = []
    for key in mapping.keys():
        value = mapping[key]
        if is_tensor_like(value):
            items.append((key, str(key), tuple(value.shape), array_dtype_name(value)))
    if items and all(name.startswith("module.") for _, name, _, _ in items):
        items = [(key, name[len("module."):], shape, dt) for key, name, shape, dt in items]

    def make_loader(key):
        if loader_for is not None:
            return loader_for(key)
        return lambda: value_to_numpy(mapping[key])

    return [TensorEntry(name, shape, dt, make_loader(key)) for key, name, shape, dt in items]


def describe_object(obj) -> str:
    """Human description of an unexpected object, for error messages."""
    cls = type(obj)
    qual = cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"
    if isinstance(obj, Mapping):
        keys = list(obj.keys())
        shown = ", ".join(repr(k) for k in keys[:8]) + (", ..." if len(keys) > 8 else "")
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a {qual} with {len(keys)} key(s) ({shown}) and no tensor values (value types: {', '.join(kinds) or 'none'})"
    if isinstance(obj, (list, tuple)):
        return f"a {qual} of {len(obj)} item(s)"
    return f"an object of type {qual}"


def path_text(path) -> str:
    return os.fspath(path) if not isinstance(path, bytes) else path.decode(errors="replace")


# --------------------------------------------------------------------------------------------
# untrusted files: pickles refused unless trusted, sizes checked before allocation
# --------------------------------------------------------------------------------------------

#: how to opt in to unpickling, for error messages
TRUST_PICKLE_HINT = ("only if you trust this file and whoever wrote it, pass trust_pickle=True (command line: "
                     "--trust-pickle), which EXECUTES the Python code the file contains")
#: no dimension of a tensor may exceed this (numpy's own limit on a dimension is 2**63 - 1)
MAX_DIM = (1 << 62) - 1


def unsafe_pickle_error(path: str, what: str, resave: str) -> UnsafeFileError:
    """The refusal of a file that needs unpickling: why, how to re-save it, and the opt-in."""
    return UnsafeFileError(
        f"The file '{path}' {what}, which would have to be executed to read it: spectralwatch never executes "
        f"code from model files by default (a pickle can run any program). {resave} Or, {TRUST_PICKLE_HINT}."
    )


def warn_trusted_pickle(path: str) -> None:
    """The warning given when ``trust_pickle=True`` makes a reader unpickle ``path``."""
    warnings.warn(
        f"trust_pickle=True: unpickling '{path}'. Arbitrary code from this file may run (with your "
        "permissions); use it only for files from a source you trust.",
        UserWarning, stacklevel=3)


#: a compressed member or dataset may decode to at most this many times its stored size (+ 1 MiB):
#: weights never compress that well; a file claiming more is damaged or a decompression bomb
MAX_EXPANSION = 64


def reraise_access_errors(exc: BaseException) -> None:
    """Re-raise a missing file or a permission problem as it is (not a damaged file)."""
    if isinstance(exc, (FileNotFoundError, PermissionError, IsADirectoryError)):
        raise exc


def check_expansion(path: str, what: str, decoded: int, stored: int, *, fmt: str = "file") -> None:
    """:class:`CorruptFileError` when ``what`` decodes to more than :data:`MAX_EXPANSION` times its stored size."""
    if decoded > MAX_EXPANSION * stored + (1 << 20):
        raise CorruptFileError(f"The {fmt} '{path}' is corrupted: {what} claims {decoded} bytes but stores {stored} "
                               "(a damaged size, or a decompression bomb); refused before reading it.")


def check_shape(path: str, what: str, shape, *, fmt: str = "file") -> tuple:
    """``shape`` as a tuple of ints, or :class:`CorruptFileError` naming the file and the tensor.

    Every dimension must be an int in ``[0, MAX_DIM]`` (what a header says is untrusted).
    """
    try:
        dims = tuple(shape)
    except TypeError:
        dims = None
    if dims is None or not all(isinstance(d, numbers.Integral) and not isinstance(d, bool) and 0 <= d <= MAX_DIM
                               for d in dims):
        raise CorruptFileError(f"The {fmt} '{path}' is corrupted: {what} has an invalid shape {shape!r}.")
    return tuple(int(d) for d in dims)


_QUOTED = re.compile(r"""b?'(?:[^'\\\n]|\\.){0,300}'|b?"(?:[^"\\\n]|\\.){0,300}"|0x[0-9a-fA-F]+|\\x[0-9a-fA-F]{2}"""
                     r"""|(?<=operand )\d+|(?<=load key, )\S+""")


def foreign_reason(exc: BaseException, *, keep_quoted: bool = False) -> str:
    """``'Type: first line of the message'`` of an exception raised by a parser of a file, without any of
    the file's bytes.

    Parsers quote what they could not read (``invalid load key, '-'``, ``got b'-----BEG'``, ``can't decode
    byte 0x2d``): a file that is not a model (a private key behind a symlink) must not show up in an error
    message, so quoted text, hexadecimal bytes and opcodes are replaced by ``<...>`` (``keep_quoted``: not,
    for a file already known to be of its format, e.g. a trusted pickle).
    """
    if isinstance(exc, UnicodeDecodeError):
        return f"UnicodeDecodeError: bytes that are not {exc.encoding} text (at byte {exc.start})"
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    text = lines[0][:300] if lines else ""
    if not keep_quoted:
        text = _QUOTED.sub("<...>", text)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def parse_json(raw, where: str):
    """JSON text (bytes or str); :class:`CorruptFileError` when it is not JSON.

    ``where`` names what was read, e.g. ``"the index file '/models/x/model.safetensors.index.json'"``.
    Also catches what ``json`` raises on hostile input besides ``ValueError``: bytes that are not
    UTF-8 and nesting deeper than the interpreter's recursion limit.
    """
    try:
        text = raw.decode("utf-8") if isinstance(raw, (bytes, bytearray, memoryview)) else raw
        return json.loads(text)
    except (UnicodeDecodeError, ValueError, RecursionError, TypeError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else foreign_reason(exc)
        raise CorruptFileError(f"{where[:1].upper()}{where[1:]} is not valid JSON ({reason[:300]}).") from None


def read_json_file(path: str, what: str = "file"):
    """:func:`parse_json` of a file's contents (an ``OSError`` other than a missing file is corruption too).

    Only a regular file is read (a FIFO or a device is refused before reading), of at most
    :data:`~.containment.MAX_JSON_BYTES`.
    """
    from .containment import read_small_file

    try:
        raw = read_small_file(path, what)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as exc:
        raise CorruptFileError(f"The {what} '{path}' cannot be read: {exc.strerror or type(exc).__name__}.") from None
    return parse_json(raw, f"the {what} '{path}'")


def check_bytes_available(path: str, what: str, needed: int, available: int, *, fmt: str = "file") -> None:
    """:class:`CorruptFileError` when a tensor needs more bytes than the file holds (checked before allocating)."""
    if needed > available:
        raise CorruptFileError(
            f"The {fmt} '{path}' is corrupted or truncated: {what} needs {needed} bytes but only {available} "
            "are left in the file.")


class BaseSource(abc.ABC):
    """Common behaviour of the sources: ``format``, ``description``, ``layers()``."""

    #: registry fields (overridden by each source class)
    name: str = ""
    reads: str = ""
    module: str | None = None
    extra: str | None = None
    extensions: tuple = ()
    #: short phrase for error messages, e.g. "a numpy array"
    short: str = ""
    #: a file source whose format may need unpickling: its constructor takes ``trust_pickle``
    may_unpickle: bool = False

    format: str = ""
    description: str = ""

    @classmethod
    def can_open(cls, obj) -> bool:
        """A path whose name ends with one of ``extensions`` (sources of other objects override it)."""
        return isinstance(obj, (str, os.PathLike)) and path_text(obj).lower().endswith(cls.extensions)

    @abc.abstractmethod
    def layers(self) -> Iterator[LayerRef]:
        """The candidate layers, in model order (each source defines it)."""

    def __iter__(self) -> Iterator[LayerRef]:
        return self.layers()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} format={self.format!r} {self.description!r}>"


class StateDictLikeSource(BaseSource):
    """A source whose layers come from named tensors numbered with the state-dict rule."""

    _start_id: int = STATE_DICT_START_ID

    @abc.abstractmethod
    def entries(self) -> list[TensorEntry]:
        """The named tensors, in order (each state-dict-like source defines it)."""

    #: number the layers in network order (formats the reference does not read) rather than in
    #: their stored order (see :func:`number_entries`)
    network_ids: bool = False

    def layers(self) -> Iterator[LayerRef]:
        return number_entries(self.entries(), self._start_id, network_ids=self.network_ids)

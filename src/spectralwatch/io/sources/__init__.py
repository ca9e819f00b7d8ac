"""Model readers: turn whatever the user passes into lazy :class:`~.base.LayerRef` records.

``open_source(model)`` recognises, in this order:

* a path (``str`` / ``os.PathLike``): a folder, or a ``.safetensors``, ``.pt/.pth/.bin/.ckpt``,
  ``.npz``, ``.gguf``, ``.onnx``, ``.keras``, ``.h5`` or ``.npy`` file (read-only, never modified;
  nothing is unpickled unless ``trust_pickle=True``);
* a Keras 3 model, a ``torch.nn.Module`` or a single ``torch.Tensor``, an ``onnx.ModelProto``,
  a Flax NNX module or a JAX array;
* a numpy array (one layer, named ``W``);
* a nested mapping of arrays (a Flax / Optax / Haiku parameter tree);
* a mapping of names to arrays / tensors (a state dict, possibly a wrapped checkpoint);
* ``hf://org/name[@revision]``: a model on the Hugging Face Hub, downloaded into (or, with
  ``HF_HUB_OFFLINE=1``, read from) the ``huggingface_hub`` cache, then read as a folder (:mod:`.hub`);
* anything a reader plugin accepts (below), when no built-in reader does.

Reader plugins: an installed distribution declares a reader class in the entry-point group
``spectralwatch.sources`` (``[project.entry-points."spectralwatch.sources"]`` in its
``pyproject.toml``: ``name = "package.module:ReaderClass"``). The class has the interface of
:class:`BaseSource`: ``can_open(obj)`` (a classmethod; by default true for a path ending in one of
its ``extensions``), a constructor ``ReaderClass(obj, *, start_id=None)``, ``format``,
``description`` and ``layers()``, which yields :class:`LayerRef` records in model order. Built-in
readers are asked first (a plugin cannot take over ``.safetensors``); the plugins are asked, in
the order of their entry-point names, when none accepts the input: a path of an unknown
extension, a folder without weight files, an object of an unknown type. A plugin that fails to
load is skipped with a warning naming it. See docs/integrations.md for a worked example.

:func:`open_model` adds the derived views of ``analyze``'s options: ``peft`` (LoRA products),
``base_model`` (differences with a base model) and ``split_fused``. See ``docs/formats.md``.

Layer ids follow WeightWatcher 0.7.7: a torch module numbers every entry of ``named_modules()``
from 0 (the root); a state dict or a torch file numbers every ``*.weight`` key from 1, in stored
order; a folder of weight files uses the same rule, one numbering across its files, from 0 (as the
reference does); a single safetensors, GGUF or npz file (which the reference does not read)
numbers its ``*.weight`` tensors from 1 in network order; a single array is layer 0. ``start_id``
replaces the first id. Every source lists its layers in network order (:mod:`.order`).

Importing this package imports neither torch nor pandas.
"""

from __future__ import annotations

import os

import warnings

from ...deps import is_available
from ...errors import InvalidParameterError, ModelFileNotFoundError, UnknownFormatError
from ._common import BaseSource, check_start_id, path_text
from .budget import DEFAULT_MAX_WORK_RATIO, check_work_ratio
from .containment import check_model_path
from .base import ANALYSABLE_TYPES, LAYER_TYPES, LayerRef, Source
from .folder import FolderSource, single_model_file
from .gguf_ import GGUFFileSource
from .hub import is_hub_url, looks_like_hub_id, resolve_hub_model
from .jax_ import FlaxNNXSource, JaxArraySource, JaxTreeSource
from .keras_ import KerasModelSource
from .keras_files import KerasFileSource
from .numpy_ import NpyFileSource, NpzFileSource, NumpyArraySource, StateDictSource
from .onnx_ import ONNXFileSource, ONNXModelSource
from .safetensors_ import SafetensorsFileSource
from .torch_ import TorchFileSource, TorchModuleSource, TorchTensorSource

__all__ = [
    "open_source", "available_sources", "Source", "LayerRef", "LAYER_TYPES", "ANALYSABLE_TYPES",
    "ModelFileNotFoundError", "SOURCES", "FILE_SOURCES", "open_model", "BaseSource", "PLUGIN_GROUP",
    "plugin_sources", "looks_like_hub_id", "resolve_model", "input_paths", "COMPANION_FILES",
    "DEFAULT_MAX_WORK_RATIO",
]


#: sources reading a path, tried in order on an existing path
FILE_SOURCES: tuple[type[BaseSource], ...] = (
    FolderSource, SafetensorsFileSource, TorchFileSource, NpzFileSource, GGUFFileSource, ONNXFileSource,
    KerasFileSource, NpyFileSource,
)
#: sources reading an in-memory object, tried in order (Keras before torch: with the torch backend a
#: Keras layer is also a torch module; parameter trees before state dicts)
OBJECT_SOURCES: tuple[type[BaseSource], ...] = (
    KerasModelSource, TorchModuleSource, TorchTensorSource, ONNXModelSource, FlaxNNXSource, JaxArraySource,
    NumpyArraySource, JaxTreeSource, StateDictSource,
)
#: every registered source
SOURCES = OBJECT_SOURCES + FILE_SOURCES

_HINTS = (
    (("tensorflow", "tf_keras"),
     "TensorFlow objects and Keras 2 models are not read directly: save the model to a file "
     "(model.save('model.h5') or 'model.keras') and pass the path, or pass a dict of name -> numpy "
     "array, e.g. {w.name: w.numpy() for w in model.weights}."),
    (("flax", "jax", "jaxlib"),
     "For Flax Linen, pass the parameter tree (variables['params']); for NNX, the nnx.Module itself."),
)


#: the entry-point group of reader plugins
PLUGIN_GROUP = "spectralwatch.sources"
_PLUGINS: list = []  # [(entry point, reader class)], loaded on first use
_PLUGINS_LOADED: list = []


def plugin_sources(*, refresh: bool = False) -> list:
    """The reader classes of the installed plugins: ``[(entry point, class)]`` by entry-point name.

    Loaded once, on first use (``import spectralwatch`` does not scan the installed packages);
    ``refresh=True`` scans again. An entry point that fails to import, or whose object has no
    ``can_open`` or no ``layers``, is skipped with a ``RuntimeWarning`` naming it and its
    distribution.
    """
    if _PLUGINS_LOADED and not refresh:
        return list(_PLUGINS)
    from importlib.metadata import entry_points

    found = []
    for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an unknown distribution"
        try:
            cls = ep.load()
        except Exception as exc:  # a broken plugin must not break spectralwatch
            warnings.warn(f"The spectralwatch reader plugin '{ep.name}' ({ep.value}, from {dist}) could not be "
                          f"loaded and is skipped: {type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=2)
            continue
        if not (callable(getattr(cls, "can_open", None)) and callable(getattr(cls, "layers", None))):
            warnings.warn(f"The spectralwatch reader plugin '{ep.name}' ({ep.value}, from {dist}) is skipped: "
                          "it must be a class with can_open(obj) and layers() (see "
                          "spectralwatch.io.sources.BaseSource).", RuntimeWarning, stacklevel=2)
            continue
        found.append((ep, cls))
    _PLUGINS[:] = found
    _PLUGINS_LOADED[:] = [True]
    return list(found)


def _open_with_plugin(model, start_id):
    """The first plugin reader that accepts ``model``, opened; None when none does."""
    for ep, cls in plugin_sources():
        try:
            accepted = cls.can_open(model)
        except Exception as exc:
            warnings.warn(f"The spectralwatch reader plugin '{ep.name}' failed in can_open and is skipped: "
                          f"{type(exc).__name__}: {exc}", RuntimeWarning, stacklevel=3)
            continue
        if accepted:
            return cls(model, start_id=start_id)
    return None


def _supported_extensions() -> list[str]:
    exts: list[str] = []
    for cls in FILE_SOURCES:
        exts.extend(cls.extensions)
    for _, cls in plugin_sources():
        exts.extend(ext for ext in getattr(cls, "extensions", ()) if ext not in exts)
    return exts


def _accepted_inputs() -> str:
    objects = ", ".join(cls.short for cls in OBJECT_SOURCES)
    return (f"{objects}, a Hugging Face Hub name 'hf://org/name', or a path (str or os.PathLike) to a "
            f"folder or to a file ending in {', '.join(_supported_extensions())}")


def _torch_extra_hint() -> str:
    if is_available("torch"):
        return ""
    return (" PyTorch is not installed: install it with pip install 'spectralwatch[torch]' to read "
            "torch.nn.Module objects and .pt/.pth/.bin/.ckpt files.")


def _open_path(path, start_id, trust_pickle: bool, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> BaseSource:
    text = os.path.expanduser(path_text(path))
    try:
        check_model_path(text)  # missing, a loop of symlinks, a FIFO or a device: refused before opening
    except ModelFileNotFoundError as exc:
        if looks_like_hub_id(text):
            raise ModelFileNotFoundError(f"{exc} (to read the Hugging Face Hub model of that name, pass "
                                         f"'hf://{text}')") from None
        raise
    if os.path.isdir(text):
        text = single_model_file(text) or text
    for cls in FILE_SOURCES:
        if cls.can_open(text):
            try:
                if cls.may_unpickle:
                    return cls(text, start_id=start_id, trust_pickle=trust_pickle, max_work_ratio=max_work_ratio)
                return cls(text, start_id=start_id, max_work_ratio=max_work_ratio)
            except UnknownFormatError:  # a folder without weight files: a plugin may read it
                if cls is not FolderSource:
                    raise
                source = _open_with_plugin(text, start_id)
                if source is None:
                    raise
                return source
    source = _open_with_plugin(text, start_id)
    if source is not None:
        return source
    exts = ", ".join(_supported_extensions())
    raise UnknownFormatError(
        f"spectralwatch cannot read the file '{text}': unknown extension. Supported: a folder, or "
        f"a file ending in {exts}."
    )


def open_source(model, *, start_id=None, trust_pickle: bool = False,
                max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> Source:
    """Open ``model`` for reading, without loading any weights.

    Parameters
    ----------
    model
        A path (``str`` or ``os.PathLike``) to a file or folder, a ``torch.nn.Module``, a
        ``torch.Tensor``, a numpy array or a state dict (mapping of names to arrays/tensors).
    start_id : int, optional
        The first layer id; by default 0 for a torch module, a folder or a single array and 1
        for a state dict or a single file (WeightWatcher's numbering).
    trust_pickle : bool
        Default False: a file that needs unpickling (a checkpoint holding Python objects, a pickled
        ``.npy``) raises :class:`UnsafeFileError`. True reads it with ``pickle``, which EXECUTES any
        code the file contains: only for files from a trusted source (a warning is given).
    max_work_ratio : float or None
        A file is refused (:class:`~spectralwatch.errors.BudgetExceededError`) when the work it asks for
        (decoded values, listed tensors, header parsing) exceeds this many times its stored tensor bytes
        plus 64 MiB (:mod:`.budget`; default 64). ``None`` or 0: no limit, for files you trust. In-memory
        objects are not limited.

    Returns
    -------
    Source
        ``.format``, ``.description`` and ``.layers()`` (a fresh iterator of
        :class:`LayerRef` on each call).

    Raises
    ------
    ModelFileNotFoundError
        A path that does not exist (also a ``FileNotFoundError``).
    UnknownFormatError
        An input no source can read (the message lists the accepted inputs).
    CorruptFileError, UnsafeFileError, MissingDependencyError
        From the file readers.
    """
    check_start_id(start_id, 0)
    if not isinstance(trust_pickle, bool):
        raise InvalidParameterError(f"The 'trust_pickle' parameter of open_source must be True or False. "
                                    f"Got {trust_pickle!r}.")
    max_work_ratio = check_work_ratio(max_work_ratio, "open_source")
    if is_hub_url(model):
        model = resolve_hub_model(model)
    if isinstance(model, (str, os.PathLike)):
        return _open_path(model, start_id, trust_pickle, max_work_ratio)
    for cls in OBJECT_SOURCES:
        if cls.can_open(model):
            return cls(model, start_id=start_id)
    source = _open_with_plugin(model, start_id)
    if source is not None:
        return source
    cls_ = type(model)
    qual = cls_.__qualname__ if cls_.__module__ == "builtins" else f"{cls_.__module__}.{cls_.__qualname__}"
    top = cls_.__module__.split(".")[0]
    hint = next((text for mods, text in _HINTS if top in mods), "")
    if isinstance(model, (list, tuple)):
        hint = "To analyse several matrices, pass a dict such as {'layer1': W1, 'layer2': W2}."
    raise UnknownFormatError(
        f"spectralwatch cannot read an object of type '{qual}'. Accepted inputs: {_accepted_inputs()}."
        + (f" {hint}" if hint else "") + _torch_extra_hint()
    )


def resolve_model(model, revision=None):
    """``model``, with a Hub name ``hf://org/name[@revision]`` replaced by its local snapshot folder.

    ``revision`` (a branch, tag or commit hash) applies to Hub names only.

    Raises
    ------
    InvalidParameterError
        ``revision`` given for a model that is not on the Hub.
    """
    if is_hub_url(model):
        return resolve_hub_model(model, revision)
    if revision is not None:
        hint = (f" To read the Hub model, name it 'hf://{model}'." if looks_like_hub_id(model) else "")
        raise InvalidParameterError("The 'revision' parameter applies only to Hugging Face Hub models "
                                    f"(hf://org/name).{hint}")
    return model


def open_model(model, *, start_id=None, base_model=None, peft=False, split_fused=False,
               trust_pickle: bool = False, revision=None, max_work_ratio=DEFAULT_MAX_WORK_RATIO) -> Source:
    """:func:`open_source`, then the views ``analyze``'s options ask for.

    Parameters
    ----------
    model
        Anything :func:`open_source` reads.
    revision : str, optional
        For a Hub model (``hf://org/name``): the branch, tag or commit hash to read (default: the
        repository's default branch). An error for any other model.
    base_model : optional
        Without ``peft``: analyse ``W - W_base`` per matched layer (:mod:`.deltas`). With ``peft``:
        the model the adapter applies to (its ``W`` for ``peft='with_base'``).
    peft : {False, True, 'with_base'}
        LoRA adapters (:mod:`.lora`).
    split_fused : bool
        Split fused projections that the model's ``config.json`` describes (:mod:`.fused`).
    trust_pickle : bool
        Unpickle files that need it (model and base model), see :func:`open_source`.
    max_work_ratio : float or None
        The work budget of each file read (model and base model), see :func:`open_source`.
    """
    from .deltas import DeltaSource
    from .fused import FusedSplitSource, model_config
    from .lora import LoraSource, adapter_config

    model = resolve_model(model, revision)
    if is_hub_url(base_model):
        base_model = resolve_hub_model(base_model)
    source = open_source(model, start_id=start_id, trust_pickle=trust_pickle, max_work_ratio=max_work_ratio)
    if split_fused:
        source = FusedSplitSource(source, model_config(model))
    base = (open_source(base_model, trust_pickle=trust_pickle, max_work_ratio=max_work_ratio)
            if base_model is not None else None)
    if peft:
        config, _ = adapter_config(model)
        where = f"'{path_text(model)}'" if isinstance(model, (str, os.PathLike)) else source.description
        return LoraSource(source, peft, model=model, base=base, config=config, where=where)
    if base is not None:
        return DeltaSource(source, base)
    return source


#: files beside a model file that the readers may open (peft, split_fused)
COMPANION_FILES = ("config.json", "adapter_config.json")


def input_paths(model, source=None, base_model=None) -> list:
    """The paths a model (and its base model) was read from: what no output may replace or go into.

    For a path: the path itself (a folder protects everything inside it), and for a file, the companion
    files beside it that readers open (:data:`COMPANION_FILES`); then whatever the opened ``source``
    read besides (the shards of a folder, the external data of an ONNX model).
    """
    out = []
    for item in (model, base_model):
        if isinstance(item, (str, os.PathLike)):
            path = os.path.expanduser(path_text(item))
            out.append(path)
            if not os.path.isdir(path):
                folder = os.path.dirname(path) or "."
                out.extend(os.path.join(folder, name) for name in COMPANION_FILES
                           if os.path.isfile(os.path.join(folder, name)))
    stack, seen = [source], set()
    while stack:
        s = stack.pop()
        if s is None or id(s) in seen:
            continue
        seen.add(id(s))
        path = getattr(s, "path", None)
        if isinstance(path, str):
            out.append(path)
        out.extend(getattr(s, "files", None) or ())
        out.extend(getattr(s, "external_files", None) or ())
        stack.extend(getattr(s, "wrapped", None) or ())
    return list(dict.fromkeys(out))


def available_sources() -> list[dict]:
    """The registered readers: ``name``, ``reads``, ``extensions``, ``module``, ``extra``, ``installed``,
    ``plugin`` (the entry point ``name = value`` of a plugin reader, ``''`` for a built-in one)."""
    out = []
    readers = [(cls, "") for cls in SOURCES] + [(cls, f"{ep.name} = {ep.value}") for ep, cls in plugin_sources()]
    for cls, plugin in readers:
        module = getattr(cls, "module", None)
        out.append({
            "name": getattr(cls, "name", "") or cls.__name__,
            "reads": getattr(cls, "reads", ""),
            "extensions": list(getattr(cls, "extensions", ())),
            "module": module,
            "extra": getattr(cls, "extra", None),
            "installed": module is None or is_available(module),
            "plugin": plugin,
        })
    return out

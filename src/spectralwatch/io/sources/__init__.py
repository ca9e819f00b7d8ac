"""Model readers: turn whatever the user passes into lazy :class:`~.base.LayerRef` records.

``open_source(model)`` recognises, in this order:

* a path (``str`` / ``os.PathLike``): a folder, or a ``.safetensors``, ``.pt/.pth/.bin/.ckpt``,
  ``.npz``, ``.gguf``, ``.onnx``, ``.keras``, ``.h5`` or ``.npy`` file (read-only, never modified;
  nothing is unpickled unless ``trust_pickle=True``);
* a Keras 3 model, a ``torch.nn.Module`` or a single ``torch.Tensor``, an ``onnx.ModelProto``,
  a Flax NNX module or a JAX array;
* a numpy array (one layer, named ``W``);
* a nested mapping of arrays (a Flax / Optax / Haiku parameter tree);
* a mapping of names to arrays / tensors (a state dict, possibly a wrapped checkpoint).

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

from ...deps import is_available
from ...errors import InvalidParameterError, ModelFileNotFoundError, UnknownFormatError
from ._common import BaseSource, check_start_id, path_text
from .base import ANALYSABLE_TYPES, LAYER_TYPES, LayerRef, Source
from .folder import FolderSource, single_model_file
from .gguf_ import GGUFFileSource
from .jax_ import FlaxNNXSource, JaxArraySource, JaxTreeSource
from .keras_ import KerasModelSource
from .keras_files import KerasFileSource
from .numpy_ import NpyFileSource, NpzFileSource, NumpyArraySource, StateDictSource
from .onnx_ import ONNXFileSource, ONNXModelSource
from .safetensors_ import SafetensorsFileSource
from .torch_ import TorchFileSource, TorchModuleSource, TorchTensorSource

__all__ = [
    "open_source", "available_sources", "Source", "LayerRef", "LAYER_TYPES", "ANALYSABLE_TYPES",
    "ModelFileNotFoundError", "SOURCES", "FILE_SOURCES", "open_model",
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


def _supported_extensions() -> list[str]:
    exts: list[str] = []
    for cls in FILE_SOURCES:
        exts.extend(cls.extensions)
    return exts


def _accepted_inputs() -> str:
    objects = ", ".join(cls.short for cls in OBJECT_SOURCES)
    return (f"{objects}, or a path (str or os.PathLike) to a folder or to a file ending in "
            f"{', '.join(_supported_extensions())}")


def _torch_extra_hint() -> str:
    if is_available("torch"):
        return ""
    return (" PyTorch is not installed: install it with pip install 'spectralwatch[torch]' to read "
            "torch.nn.Module objects and .pt/.pth/.bin/.ckpt files.")


def _open_path(path, start_id, trust_pickle: bool) -> BaseSource:
    text = os.path.expanduser(path_text(path))
    if not os.path.exists(text):
        raise ModelFileNotFoundError(f"No such file or directory: '{text}'")
    if os.path.isdir(text):
        text = single_model_file(text) or text
    for cls in FILE_SOURCES:
        if cls.can_open(text):
            if cls.may_unpickle:
                return cls(text, start_id=start_id, trust_pickle=trust_pickle)
            return cls(text, start_id=start_id)
    exts = ", ".join(_supported_extensions())
    raise UnknownFormatError(
        f"spectralwatch cannot read the file '{text}': unknown extension. Supported: a folder, or "
        f"a file ending in {exts}."
    )


def open_source(model, *, start_id=None, trust_pickle: bool = False) -> Source:
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
    if isinstance(model, (str, os.PathLike)):
        return _open_path(model, start_id, trust_pickle)
    for cls in OBJECT_SOURCES:
        if cls.can_open(model):
            return cls(model, start_id=start_id)
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


def open_model(model, *, start_id=None, base_model=None, peft=False, split_fused=False,
               trust_pickle: bool = False) -> Source:
    """:func:`open_source`, then the views ``analyze``'s options ask for.

    Parameters
    ----------
    model
        Anything :func:`open_source` reads.
    base_model : optional
        Without ``peft``: analyse ``W - W_base`` per matched layer (:mod:`.deltas`). With ``peft``:
        the model the adapter applies to (its ``W`` for ``peft='with_base'``).
    peft : {False, True, 'with_base'}
        LoRA adapters (:mod:`.lora`).
    split_fused : bool
        Split fused projections that the model's ``config.json`` describes (:mod:`.fused`).
    trust_pickle : bool
        Unpickle files that need it (model and base model), see :func:`open_source`.
    """
    from .deltas import DeltaSource
    from .fused import FusedSplitSource, model_config
    from .lora import LoraSource, adapter_config

    source = open_source(model, start_id=start_id, trust_pickle=trust_pickle)
    if split_fused:
        source = FusedSplitSource(source, model_config(model))
    base = open_source(base_model, trust_pickle=trust_pickle) if base_model is not None else None
    if peft:
        config, _ = adapter_config(model)
        where = f"'{path_text(model)}'" if isinstance(model, (str, os.PathLike)) else source.description
        return LoraSource(source, peft, model=model, base=base, config=config, where=where)
    if base is not None:
        return DeltaSource(source, base)
    return source


def available_sources() -> list[dict]:
    """The registered readers: ``name``, ``reads``, ``extensions``, ``module``, ``extra``, ``installed``."""
    out = []
    for cls in SOURCES:
        out.append({
            "name": cls.name,
            "reads": cls.reads,
            "extensions": list(cls.extensions),
            "module": cls.module,
            "extra": cls.extra,
            "installed": cls.module is None or is_available(cls.module),
        })
    return out

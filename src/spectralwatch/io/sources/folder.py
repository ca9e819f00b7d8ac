"""Folders of weight files (Hugging Face checkpoints and the like): one numbering across files.

Choice of files, first match wins:

1. ``model.safetensors.index.json``: the shards it names, in sorted file-name order; within a
   shard, its keys in the index's ``weight_map`` order;
2. ``*.safetensors`` (sorted);
3. ``pytorch_model.bin.index.json``: its shards (sorted); else ``pytorch_model*.bin``,
   ``adapter_model*.bin``, ``*.pt``, ``*.pth`` (sorted), all loaded without executing pickled code;
4. ``*.npz`` (sorted);
5. a sentence-transformers folder (``modules.json``, or ``0_Transformer``-style sub-folders): the
   weights of each module folder in ``modules.json`` order; keys of the first module keep their
   names, the others are prefixed with their folder (``2_Dense.linear``).

Which of these files make one model is decided by :mod:`.layout`: trainer state (``optimizer.pt``,
``scheduler.pt``, ``rng_state.pth``...) and an adapter beside a full model are left out with a note
(:attr:`FolderSource.notes`); ``-k-of-n`` shards must all be there; files that share tensor names
are separate models and raise :class:`~spectralwatch.errors.SeveralModelsError`.

Containment (:mod:`.containment`): every file read is a regular file inside the folder (a symlink may
point elsewhere inside it, or into the ``blobs`` of a Hugging Face cache snapshot); shards, module
folders and symlinks that lead outside are refused, ``"."`` in ``modules.json`` is the folder itself
(not read twice), and module folders nest at most :data:`MAX_MODULE_DEPTH` deep.

A folder holding none of these but one ``.gguf`` (or the parts of one split GGUF), ``.onnx``,
``.keras`` or ``.h5`` file is read as that file (:func:`single_model_file`); several such files are
separate models (:class:`~spectralwatch.errors.SeveralModelsError`).

Ids start at 0 by default, as WeightWatcher 0.7.7 numbers a folder (a single file starts at 1), in
the files' stored order as the reference does; the layers are listed in network order (:mod:`.order`).
"""

from __future__ import annotations

import os
import re

from ...errors import CorruptFileError, UnknownFormatError, UnsafeFileError
from ._common import FOLDER_START_ID, StateDictLikeSource, TensorEntry, check_start_id, path_text, read_json_file
from . import layout
from .budget import DEFAULT_MAX_WORK_RATIO
from .containment import check_regular, model_roots, resolve_inside

__all__ = ["FolderSource", "SAFETENSORS_INDEX", "single_model_file"]

SAFETENSORS_INDEX = "model.safetensors.index.json"
BIN_INDEX = "pytorch_model.bin.index.json"
_SINGLE_FILE_EXTENSIONS = (".gguf", ".onnx", ".keras", ".h5")
_MODULE_DIR = re.compile(r"^\d+_\w+$")
#: sentence-transformers module folders nest at most this deep (real models: 1)
MAX_MODULE_DEPTH = 4


def _module_index(entry: dict) -> int:
    idx = entry.get("idx", 0)
    return idx if isinstance(idx, int) else 0


_WEIGHT_NAMES = (".safetensors", ".bin", ".pt", ".pth", ".npz", ".json") + _SINGLE_FILE_EXTENSIONS


def _files(folder: str) -> list[str]:
    """The names of the regular files of ``folder`` (symlinks followed; FIFOs, devices, folders left out).

    An entry that cannot be resolved (a loop of symlinks) is refused when its name is one spectralwatch
    would read, and left out otherwise.
    """
    names = []
    with os.scandir(folder) as entries:
        for e in entries:
            try:
                if e.is_file():
                    names.append(e.name)
            except OSError:
                if e.name.lower().endswith(_WEIGHT_NAMES):
                    check_regular(e.path, "file")  # the one-line error (a loop of symlinks...)
                    raise  # pragma: no cover - check_regular raised
    return sorted(names)


class FolderSource(StateDictLikeSource):
    """A folder of safetensors / PyTorch / npz files, numbered as one state dict."""

    name = "folder"
    reads = ("a folder: sharded safetensors (model.safetensors.index.json), *.safetensors, "
             "pytorch_model*.bin / adapter_model*.bin / *.pt / *.pth (these need torch) or *.npz files; "
             "trainer state left out; several separate models refused")
    module = "numpy"
    format = "folder"
    may_unpickle = True

    @classmethod
    def can_open(cls, obj) -> bool:
        return isinstance(obj, (str, os.PathLike)) and os.path.isdir(obj)

    def __init__(self, path, *, start_id=None, trust_pickle: bool = False, roots=None, depth: int = 0,
                 max_work_ratio=DEFAULT_MAX_WORK_RATIO):
        self.path = path_text(path)
        self._ratio = max_work_ratio  # the work budget of each file (budget.py)
        self._start_id = check_start_id(start_id, FOLDER_START_ID)
        self._trust = bool(trust_pickle)
        self._roots = tuple(roots) if roots else model_roots(self.path)  # what this model may read
        self._depth = depth
        #: what was left out of the folder and why (trainer state, an adapter, other formats)
        self.notes: list[str] = []
        self._parts = self._open_parts()
        kinds = sorted({p.format for p in self._parts})
        self.description = f"{self.path} ({len(self._parts)} {'/'.join(kinds)} file{'s' * (len(self._parts) != 1)})"

    def _open_parts(self) -> list[StateDictLikeSource]:
        folder = self.path
        names = _files(folder)
        self._prefixes: list[str] = []
        parts = self._root_parts(names)
        modules = self._module_folders(names)
        self._prefixes = [""] * len(parts)
        for sub, inner in modules:  # sentence-transformers modules: the first weighted one keeps its names
            self._prefixes.extend([f"{sub}." if parts else ""] * len(inner._parts))
            parts.extend(inner._parts)
        if parts:
            return parts
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} files)" if len(names) > 20 else "")
        raise UnknownFormatError(
            f"The folder '{folder}' holds no weight file spectralwatch can read (found: {shown or 'no files'}). "
            f"Expected {SAFETENSORS_INDEX} with its shards, *.safetensors, pytorch_model*.bin, adapter_model*.bin, "
            "*.pt, *.pth or *.npz files (trainer state such as optimizer.pt is not model weights), "
            "sentence-transformers module folders, or one .gguf, .onnx, .keras or .h5 file."
        )

    def _root_parts(self, names: list[str]) -> list[StateDictLikeSource]:
        """The weight files of the folder itself (first matching rule of the module docstring)."""
        from .numpy_ import NpzFileSource
        from .safetensors_ import SafetensorsFileSource
        from .torch_ import TorchFileSource

        own = self._own
        self._note_trainer_state(names)
        if SAFETENSORS_INDEX in names:
            return self._open_index(own(SAFETENSORS_INDEX))
        if BIN_INDEX in names:
            index = own(BIN_INDEX)
            return [TorchFileSource(self._shard_path(index, s), trust_pickle=self._trust, max_work_ratio=self._ratio)
                    for s in sorted(set(self._read_index(index).values()))]
        chosen = [n for n in names if n.lower().endswith(".safetensors")]
        if chosen:
            return self._one_model(chosen, names, lambda name: SafetensorsFileSource(own(name), max_work_ratio=self._ratio))
        chosen = [n for n in names if not layout.is_trainer_state(n) and (
            (n.startswith(("pytorch_model", "adapter_model")) and n.lower().endswith(".bin"))
            or n.lower().endswith((".pt", ".pth")))]
        if chosen:
            return self._one_model(chosen, names, lambda name: TorchFileSource(
                own(name), trust_pickle=self._trust, max_work_ratio=self._ratio))
        chosen = [n for n in names if n.lower().endswith(".npz")]
        return self._one_model(chosen, names, lambda name: NpzFileSource(
            own(name), trust_pickle=self._trust, max_work_ratio=self._ratio))

    # ---- which files make the model (rules in layout.py) ---------------------------------------
    def _note_trainer_state(self, names: list[str]) -> None:
        state = [n for n in names if layout.is_trainer_state(n) or n == "trainer_state.json"]
        if state:
            self.notes.append(f"left out the training state of this checkpoint folder (not model weights): "
                              f"{', '.join(state)}")

    def _one_model(self, chosen: list[str], names: list[str], open_file) -> list[StateDictLikeSource]:
        """The parts of the one model among ``chosen`` (see :mod:`.layout`), with the notes of what is left
        out; ``open_file(name)`` opens one (checked to stay inside the model)."""
        adapters = [n for n in chosen if layout.is_adapter(n)]
        if adapters and len(adapters) < len(chosen):
            chosen = [n for n in chosen if n not in adapters]
            self.notes.append(f"left out the PEFT adapter {', '.join(adapters)} beside the full model (another "
                              "model: pass its file, with peft=True to analyse its LoRA products)")
        others = [n for n in names if n not in chosen and n not in adapters and not layout.is_trainer_state(n)
                  and n.lower().endswith((".safetensors", ".bin", ".pt", ".pth", ".npz") + _SINGLE_FILE_EXTENSIONS)]
        if chosen and others:
            self.notes.append(f"read {', '.join(chosen[:3])}{' ...' if len(chosen) > 3 else ''} only; also in the "
                              f"folder, not read: {', '.join(others[:5])}{' ...' if len(others) > 5 else ''}")
        layout.check_shards(self.path, chosen)
        parts = [open_file(n) for n in chosen]
        layout.check_one_model(self.path, chosen, [[e.key for e in p.entries()] for p in parts])
        return parts

    def _own(self, name: str, what: str = "file", named_by: str = "") -> str:
        """``folder/name``, checked: a regular file that is (or whose symlinks lead) inside the model."""
        full = os.path.join(self.path, name)
        resolve_inside(full, self._roots, what, named_by=named_by)
        check_regular(full, what)
        return full

    def _read_index(self, index_path: str) -> dict:
        index = read_json_file(index_path, "index file")
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CorruptFileError(f"The index file '{index_path}' has no valid 'weight_map' object.")
        return weight_map

    def _shard_path(self, index_path: str, shard: str) -> str:
        if os.path.basename(shard) != shard or shard in ("", ".", ".."):
            raise CorruptFileError(f"The index file '{index_path}' names a shard outside its folder: {shard!r}.")
        shard_path = os.path.join(self.path, shard)
        if not os.path.lexists(shard_path):
            raise CorruptFileError(f"The index file '{index_path}' names the shard '{shard}', "
                                   f"which is missing from '{self.path}'.")
        return self._own(shard, "shard", named_by=f"the index file '{index_path}'")

    def _open_index(self, index_path: str) -> list[StateDictLikeSource]:
        from .safetensors_ import SafetensorsFileSource

        weight_map = self._read_index(index_path)
        parts = []
        for shard in sorted(set(weight_map.values())):
            shard_path = self._shard_path(index_path, shard)
            keys = [k for k, v in weight_map.items() if v == shard]
            parts.append(SafetensorsFileSource(shard_path, order=keys, max_work_ratio=self._ratio))
        return parts

    def _module_folders(self, names: list[str]) -> list[tuple]:
        """Sentence-transformers module folders holding weights, in ``modules.json`` order, each with its
        opened :class:`FolderSource`.

        A module path that leaves the model (``..``, an absolute path, a symlink elsewhere) is refused;
        ``"."`` (or a path that resolves to this folder) is this folder, whose files are already read.
        """
        subs = []
        listing = os.path.join(self.path, "modules.json")
        if "modules.json" in names:
            listed = read_json_file(self._own("modules.json"), "file")
            entries = sorted((m for m in listed if isinstance(m, dict)), key=_module_index) \
                if isinstance(listed, list) else []
            subs = [str(m.get("path", "")) for m in entries if m.get("path")]
        else:
            subs = sorted((e.name for e in os.scandir(self.path) if e.is_dir() and _MODULE_DIR.match(e.name)),
                          key=lambda n: int(n.split("_")[0]))
        out = []
        here = os.path.realpath(self.path)
        for sub in subs:
            full = os.path.join(self.path, sub)
            if os.path.isabs(sub) or ".." in sub.replace("\\", "/").split("/"):
                raise UnsafeFileError(f"The file '{listing}' names the module folder {sub[:200]!r}, outside the "
                                      "model: refused, a model must not make spectralwatch read other files.")
            real = resolve_inside(full, self._roots, "module folder", named_by=f"'{listing}'")
            if real == here or not os.path.isdir(full):
                continue  # "." is this folder (already read); a missing or non-folder module has no weights
            if self._depth >= MAX_MODULE_DEPTH:
                raise UnsafeFileError(f"The folder '{self.path}' nests sentence-transformers module folders more "
                                      f"than {MAX_MODULE_DEPTH} deep: refused (real models nest one level).")
            try:
                inner = FolderSource(full, trust_pickle=self._trust, roots=self._roots, depth=self._depth + 1,
                                     max_work_ratio=self._ratio)
            except UnknownFormatError:
                continue  # a module without weights (pooling, normalisation)
            out.append((sub, inner))
        return out

    @property
    def files(self) -> list[str]:
        """The files read, in order."""
        return [p.path for p in self._parts]

    def entries(self) -> list[TensorEntry]:
        out: list[TensorEntry] = []
        prefixes = self._prefixes or [""] * len(self._parts)
        for prefix, part in zip(prefixes, self._parts):
            for e in part.entries():
                out.append(TensorEntry(prefix + e.key, e.shape, e.dtype, e.loader) if prefix else e)
        return out


def single_model_file(folder: str) -> str | None:
    """The one ``.gguf`` / ``.onnx`` / ``.keras`` / ``.h5`` model of a folder without other weights.

    The parts of a split GGUF are one model (its first part is returned); several models raise
    :class:`~spectralwatch.errors.SeveralModelsError` (see :func:`.layout.single_model_files`).
    """
    names = _files(folder)
    weights = [n for n in names if n.lower().endswith((".safetensors", ".bin", ".pt", ".pth", ".npz"))
               and not layout.is_trainer_state(n)]
    if weights or "modules.json" in names:
        return None
    return layout.single_model_files(folder, names, _SINGLE_FILE_EXTENSIONS)

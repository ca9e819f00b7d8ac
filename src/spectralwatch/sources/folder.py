"""Folders of weight files (Hugging Face checkpoints and the like): one numbering across files.

Choice of files, first match wins:

1. ``model.safetensors.index.json``: the shards it names, in sorted file-name order; within a
   shard, its keys in the index's ``weight_map`` order;
2. ``*.safetensors`` (sorted);
3. ``pytorch_model*.bin``, ``*.pt``, ``*.pth`` (sorted);
4. ``*.npz`` (sorted).

Ids start at 0 by default, as WeightWatcher 0.7.7 numbers a folder (a single file starts at 1).
"""

from __future__ import annotations

import json
import os
from ..errors import CorruptFileError, UnknownFormatError
from ._common import FOLDER_START_ID, StateDictLikeSource, TensorEntry, check_start_id, path_text

__all__ = ["FolderSource", "SAFETENSORS_INDEX"]

SAFETENSORS_INDEX = "model.safetensors.index.json"


def _files(folder: str) -> list[str]:
    return sorted(e.name for e in os.scandir(folder) if e.is_file())


class FolderSource(StateDictLikeSource):
    """A folder of safetensors / PyTorch / npz files, numbered as one state dict."""

    name = "folder"
    reads = ("a folder: sharded safetensors (model.safetensors.index.json), *.safetensors, "
             "pytorch_model*.bin / *.pt / *.pth (these need torch) or *.npz files")
    module = "numpy"
    format = "folder"

    @classmethod
    def can_open(cls, obj) -> bool:
        return isinstance(obj, (str, os.PathLike)) and os.path.isdir(obj)

    def __init__(self, path, *, start_id=None):
        self.path = path_text(path)
        self._start_id = check_start_id(start_id, FOLDER_START_ID)
        self._parts = self._open_parts()
        kinds = sorted({p.format for p in self._parts})
        self.description = f"{self.path} ({len(self._parts)} {'/'.join(kinds)} file{'s' * (len(self._parts) != 1)})"

    def _open_parts(self) -> list[StateDictLikeSource]:
        from .numpy_ import NpzFileSource
        from .safetensors_ import SafetensorsFileSource
        from .torch_ import TorchFileSource

        folder = self.path
        names = _files(folder)
        if SAFETENSORS_INDEX in names:
            return self._open_index(os.path.join(folder, SAFETENSORS_INDEX))
        chosen = [n for n in names if n.lower().endswith(".safetensors")]
        if chosen:
            return [SafetensorsFileSource(os.path.join(folder, n)) for n in chosen]
        chosen = [n for n in names
                  if (n.startswith("pytorch_model") and n.lower().endswith(".bin"))
                  or n.lower().endswith((".pt", ".pth"))]
        if chosen:
            return [TorchFileSource(os.path.join(folder, n)) for n in chosen]
        chosen = [n for n in names if n.lower().endswith(".npz")]
        if chosen:
            return [NpzFileSource(os.path.join(folder, n)) for n in chosen]
        shown = ", ".join(names[:20]) + (f", ... ({len(names)} files)" if len(names) > 20 else "")
        raise UnknownFormatError(
            f"The folder '{folder}' holds no weight file spectralwatch can read (found: {shown or 'no files'}). "
            f"Expected {SAFETENSORS_INDEX} with its shards, *.safetensors, pytorch_model*.bin, *.pt, "
            "*.pth or *.npz files."
        )

    def _open_index(self, index_path: str) -> list[StateDictLikeSource]:
        from .safetensors_ import SafetensorsFileSource

        try:
            with open(index_path, "r", encoding="utf-8") as fh:
                index = json.load(fh)
        except (UnicodeDecodeError, ValueError) as exc:
            raise CorruptFileError(f"The index file '{index_path}' is not valid JSON: {exc}") from None
        weight_map = index.get("weight_map") if isinstance(index, dict) else None
        if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
            raise CorruptFileError(f"The index file '{index_path}' has no valid 'weight_map' object.")
        parts = []
        for shard in sorted(set(weight_map.values())):
            if os.path.basename(shard) != shard or shard in ("", ".", ".."):
                raise CorruptFileError(
                    f"The index file '{index_path}' names a shard outside its folder: {shard!r}.")
            shard_path = os.path.join(self.path, shard)
            if not os.path.isfile(shard_path):
                raise CorruptFileError(f"The index file '{index_path}' names the shard '{shard}', "
                                       f"which is missing from '{self.path}'.")
            keys = [k for k, v in weight_map.items() if v == shard]
            parts.append(SafetensorsFileSource(shard_path, order=keys))
        return parts

    @property
    def files(self) -> list[str]:
        """The files read, in order."""
        return [p.path for p in self._parts]

    def entries(self) -> list[TensorEntry]:
        out: list[TensorEntry] = []
        for part in self._parts:
            out.extend(part.entries())
        return out

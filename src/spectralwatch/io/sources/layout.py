"""What a folder of weight files holds: one model in shards, a training run's checkpoint, or several models.

:class:`~.folder.FolderSource` asks this module which files make the model, before reading any
tensor. The rules (docs/formats.md, "Folders"):

* **Shards of one checkpoint** are one model: the files an index names
  (``model.safetensors.index.json``, ``pytorch_model.bin.index.json``), files named
  ``NAME-0000k-of-0000n.EXT`` (every part must be there: a missing one is an error that names
  it), the parts of a split GGUF, or several files whose tensor names do not overlap.
* **Trainer state** of a Hugging Face ``Trainer`` / Accelerate checkpoint (``optimizer.pt``,
  ``scheduler.pt``, ``scaler.pt``, ``rng_state*.pth``, ``random_states*.pkl``,
  ``training_args.bin``) is not model weights: left out, with a note.
* A **PEFT adapter** (``adapter_model.safetensors`` / ``adapter_model.bin``) is read when it is the
  folder's only weights; beside a full model it is left out with a note (it is another model:
  pass its file, with ``peft=True`` to analyse its LoRA products).
* **Several complete checkpoints** (the same tensor names in two files or more, e.g. a folder of
  15 ``.pt`` models) are refused with :class:`~spectralwatch.errors.SeveralModelsError`, which names
  them and suggests ``compare``. They are never merged: a merged "model" would hold every name
  several times and its averages would mix unrelated networks. Analysing each as its own model is
  what ``spectralwatch compare`` (and ``analyze A B ...``) already does, with one summary each.

Nothing here reads a tensor; tensor names come from the readers' headers.
"""

from __future__ import annotations

import os
import re
from typing import Sequence

from ...errors import CorruptFileError, SeveralModelsError
from .gguf_ import SPLIT_NAME

__all__ = ["TRAINER_STATE", "SHARD_NAME", "is_trainer_state", "is_adapter", "check_shards", "check_one_model",
           "single_model_files"]

#: files a Hugging Face Trainer / Accelerate checkpoint keeps beside the weights
TRAINER_STATE = re.compile(
    r"^(optimizer|scheduler|scaler|rng_state|random_states|training_args)(?:[._-][\w.-]*)?\.(?:pt|pth|bin|pkl)$",
    re.IGNORECASE)
#: ``NAME-00001-of-00003.EXT``: part k of n of one checkpoint
SHARD_NAME = re.compile(r"^(?P<stem>.+)-(?P<k>\d+)-of-(?P<n>\d+)(?P<ext>\.[^.]+)$")
_ADAPTER = re.compile(r"^adapter_model\b", re.IGNORECASE)


def is_trainer_state(name: str) -> bool:
    """A file of a training run's state (optimizer, scheduler, random states, arguments), not weights."""
    return bool(TRAINER_STATE.match(name))


def is_adapter(name: str) -> bool:
    """A PEFT adapter file (``adapter_model.safetensors``, ``adapter_model.bin``...)."""
    return bool(_ADAPTER.match(name))


def _listing(names: Sequence[str], limit: int = 8) -> str:
    names = list(names)
    return ", ".join(names[:limit]) + (f", ... ({len(names)} files)" if len(names) > limit else "")


def check_shards(folder: str, names: Sequence[str]) -> None:
    """:class:`CorruptFileError` when ``names`` are ``-k-of-n`` shards of a checkpoint with parts missing."""
    sets: dict[tuple, set] = {}
    for name in names:
        match = SHARD_NAME.match(name)
        if match:
            key = (match.group("stem"), match.group("n"), match.group("ext"))
            sets.setdefault(key, set()).add(int(match.group("k")))
    for (stem, n_text, ext), found in sets.items():
        n = int(n_text)
        if n > 100_000:  # a file name, not a real checkpoint: no list of missing parts that long
            continue
        missing = [f"{stem}-{k:0{len(n_text)}d}-of-{n_text}{ext}" for k in range(1, n + 1) if k not in found]
        if missing:
            raise CorruptFileError(
                f"The folder '{folder}' holds a checkpoint in {n} shards ({stem}-...-of-{n_text}{ext}) but "
                f"{len(missing)} of them are missing: {_listing(missing, 5)}. Download every shard, then try again.")


def check_one_model(folder: str, files: Sequence[str], keys: Sequence[Sequence[str]]) -> None:
    """:class:`SeveralModelsError` when the files are separate models (a tensor name in two of them).

    ``files[i]`` holds the tensors ``keys[i]``. Shards of one checkpoint partition its tensors, so
    a name found in two files means two models, whatever the files are called.
    """
    if len(files) < 2:
        return
    seen: dict[str, int] = {}
    for i, names in enumerate(keys):
        for key in names:
            j = seen.setdefault(key, i)
            if j != i:
                shown = [os.path.basename(f) for f in files]
                paths = " ".join(os.path.join(folder, f) for f in shown[:3])
                raise SeveralModelsError(
                    f"The folder '{folder}' holds {len(files)} separate models, not the shards of one: the "
                    f"tensor '{key}' is in both {shown[j]} and {shown[i]}. Files: {_listing(shown)}. "
                    f"spectralwatch does not merge them into one model (every name would appear several "
                    f"times and the averages would mix unrelated networks). Analyse one file "
                    f"(spectralwatch analyze {os.path.join(folder, shown[0])}), or compare them, one summary "
                    f"each: spectralwatch compare {paths}{' ...' if len(files) > 3 else ''}",
                    files=[os.path.join(folder, f) for f in shown])


def single_model_files(folder: str, names: Sequence[str], extensions: tuple) -> str | None:
    """The one model file of a folder holding only single-file formats (``.gguf``, ``.onnx``...).

    The parts of one split GGUF count as one file (the first part is returned). Several different
    such files raise :class:`SeveralModelsError`; none gives None.
    """
    single = [n for n in names if n.lower().endswith(extensions)]
    if not single:
        return None
    models: dict[str, list[str]] = {}
    for name in single:
        match = SPLIT_NAME.match(name)
        key = f"{match.group('stem')}-of-{match.group('n')}" if match else name
        models.setdefault(key, []).append(name)
    if len(models) == 1:
        return os.path.join(folder, sorted(single)[0])
    shown = [parts[0] for parts in models.values()]
    raise SeveralModelsError(
        f"The folder '{folder}' holds {len(models)} model files, not one: {_listing(shown)}. Pass one of them "
        f"(spectralwatch analyze {os.path.join(folder, shown[0])}), or compare them: spectralwatch compare "
        + " ".join(os.path.join(folder, n) for n in shown[:3]) + (" ..." if len(shown) > 3 else ""),
        files=[os.path.join(folder, n) for n in shown])

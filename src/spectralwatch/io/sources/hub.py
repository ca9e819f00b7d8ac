"""Models named on the Hugging Face Hub: ``hf://org/name`` (``pip install 'spectralwatch[hub]'``).

:func:`resolve_hub_model` turns ``hf://org/name`` (or ``hf://org/name@revision``) into the local
folder of a snapshot of the repository, downloaded through ``huggingface_hub`` into its cache, and
the folder is then read like any other (:mod:`.folder`). Only weights and configuration files are
fetched (:func:`hub_allow_patterns`): safetensors files and their index, PyTorch ``pytorch_model*.bin``
shards and their index, ``config.json``, ``modules.json`` and the module folders of a
sentence-transformers model, LoRA adapter files. Never optimizer, scheduler or RNG states, training
arguments, or other formats (ONNX, GGUF, TensorFlow, Flax copies of the same weights).

``huggingface_hub`` keeps its cache (``HF_HUB_CACHE``, default ``~/.cache/huggingface/hub``), so a
second analysis of the same revision downloads nothing. With ``HF_HUB_OFFLINE=1`` nothing is
fetched: the snapshot must already be in the cache. Both variables are read when a model is
opened, not when ``huggingface_hub`` was imported. Private or gated repositories use the token
``huggingface_hub`` finds (``HF_TOKEN`` or ``hf auth login``).

PyTorch ``.bin`` shards are read without executing pickled code (see :mod:`.torch_`); a shard
that needs unpickling is refused unless ``trust_pickle=True``.
"""

from __future__ import annotations

import os
import re

from ...errors import InvalidParameterError, MissingDependencyError, ModelFileNotFoundError

__all__ = ["HUB_PREFIX", "is_hub_url", "looks_like_hub_id", "parse_hub_url", "hub_allow_patterns",
           "resolve_hub_model"]

HUB_PREFIX = "hf://"

# Hub repository ids: [namespace/]name, letters, digits, '-', '_', '.', at most 96 characters, no
# '--' or '..', not starting or ending with '-' or '.' (huggingface_hub's validate_repo_id rules)
_PART = r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,94}[A-Za-z0-9_])?"
_REPO_ID = re.compile(rf"^{_PART}/{_PART}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,254}$")
_MODULE_DIR = re.compile(r"^\d+_\w+$")  # sentence-transformers module folders: 0_Transformer, 2_Dense

#: what an offline or unlisted snapshot may hold of interest (fnmatch patterns, as huggingface_hub takes)
DEFAULT_PATTERNS = (
    "config.json", "modules.json", "adapter_config.json", "adapter_model.safetensors", "adapter_model.bin",
    "*.safetensors", "model.safetensors.index.json", "pytorch_model*.bin", "pytorch_model.bin.index.json",
    "[0-9]*_*/config.json", "[0-9]*_*/*.safetensors", "[0-9]*_*/pytorch_model*.bin",
)
#: never fetched, whatever a pattern says
IGNORE_PATTERNS = ("*optimizer*", "*scheduler*", "*rng_state*", "*training_args*", "*trainer_state*")


def is_hub_url(model) -> bool:
    """``model`` is a string of the form ``hf://...``."""
    return isinstance(model, str) and model.startswith(HUB_PREFIX)


def _valid_repo_id(repo_id: str) -> bool:
    return bool(_REPO_ID.match(repo_id)) and "--" not in repo_id and ".." not in repo_id


def looks_like_hub_id(text) -> bool:
    """``text`` reads as a Hub repository id (``org/name``) and no such local path exists.

    For the command line's hint: ``spectralwatch analyze org/name`` with no folder ``org/name``
    probably means the Hub model ``hf://org/name``.
    """
    if not isinstance(text, str) or text.startswith(HUB_PREFIX):
        return False
    return _valid_repo_id(text) and not os.path.exists(os.path.expanduser(text))


def parse_hub_url(url: str, revision=None) -> tuple[str, str | None]:
    """``(repo_id, revision)`` of ``hf://org/name`` or ``hf://org/name@revision``.

    A revision is a branch, a tag or a commit hash; giving one both in the URL and as ``revision``
    is an error unless they agree.

    Raises
    ------
    InvalidParameterError
        A malformed repository id or revision.
    """
    body = url[len(HUB_PREFIX):] if url.startswith(HUB_PREFIX) else url
    repo_id, _, in_url = body.partition("@")
    repo_id = repo_id.rstrip("/")
    if not _valid_repo_id(repo_id):
        raise InvalidParameterError(
            f"'{url}' is not a Hugging Face Hub model: expected hf://org/name (letters, digits, '-', '_', '.'), "
            "optionally followed by @revision.")
    if revision is not None and not isinstance(revision, str):
        raise InvalidParameterError(f"The 'revision' parameter must be a branch, tag or commit hash (str) or "
                                    f"None. Got {revision!r}.")
    if in_url and revision is not None and in_url != revision:
        raise InvalidParameterError(f"Two revisions given for '{url}': '@{in_url}' in the name and "
                                    f"revision={revision!r}. Give one.")
    revision = revision if revision is not None else (in_url or None)
    if revision is not None and (not _REVISION.match(revision) or ".." in revision):
        raise InvalidParameterError(f"The revision {revision!r} of '{url}' is not a branch, tag or commit hash.")
    return repo_id, revision


def hub_allow_patterns(files=None) -> list[str]:
    """What to download from a repository whose file list is ``files`` (None: not known).

    With the list: the exact files the folder reader will read, and the configuration it uses:
    the safetensors files when the repository has them (else the ``pytorch_model*.bin`` shards,
    never both copies of the same weights), the indexes, ``config.json``, ``modules.json`` and the
    weight files of the sentence-transformers module folders it lists, LoRA adapter files. Without
    it (offline), :data:`DEFAULT_PATTERNS`.
    """
    if files is None:
        return list(DEFAULT_PATTERNS)
    files = [f for f in files if isinstance(f, str)]
    top = {f for f in files if "/" not in f}
    modules = {f.split("/", 1)[0] for f in files if f.count("/") == 1 and _MODULE_DIR.match(f.split("/", 1)[0])}

    def weights(names, prefix=""):
        names = sorted(names)
        safe = [n for n in names if n.endswith(".safetensors") and not n.startswith("adapter_model")]
        if safe:
            return safe + [n for n in names if n == "model.safetensors.index.json"]
        return [n for n in names if re.fullmatch(r"pytorch_model.*\.bin", n) or n == "pytorch_model.bin.index.json"]

    chosen = [n for n in ("config.json", "modules.json", "adapter_config.json", "adapter_model.safetensors",
                          "adapter_model.bin") if n in top]
    if "adapter_model.safetensors" in chosen and "adapter_model.bin" in chosen:
        chosen.remove("adapter_model.bin")
    chosen += weights(top)
    for folder in sorted(modules):
        inner = {f.split("/", 1)[1] for f in files if f.startswith(folder + "/") and f.count("/") == 1}
        chosen += [f"{folder}/{n}" for n in ["config.json"] * ("config.json" in inner) + weights(inner)]
    return chosen


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().upper() in ("1", "ON", "YES", "TRUE")


def _hub():
    try:
        import huggingface_hub
    except ImportError as exc:
        raise MissingDependencyError(
            "Reading a model from the Hugging Face Hub (hf://org/name) needs the optional dependency "
            "'huggingface_hub', which is not installed. Install it with: pip install 'spectralwatch[hub]' "
            "(or download the model yourself and pass its folder).") from exc
    return huggingface_hub


def resolve_hub_model(url: str, revision=None) -> str:
    """The local folder of a snapshot of ``hf://org/name[@revision]``, downloaded if needed.

    Parameters
    ----------
    url : str
        ``hf://org/name`` or ``hf://org/name@revision``.
    revision : str, optional
        A branch, tag or commit hash (default: the repository's default branch, ``main``).

    Returns
    -------
    str
        The snapshot folder in the ``huggingface_hub`` cache.

    Raises
    ------
    MissingDependencyError
        ``huggingface_hub`` is not installed.
    ModelFileNotFoundError
        The repository or revision does not exist, is not accessible, or (offline) is not cached.
    """
    repo_id, revision = parse_hub_url(url, revision)
    hub = _hub()
    from huggingface_hub import errors as hub_errors

    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    offline = _offline()
    where = f"'{HUB_PREFIX}{repo_id}'" + (f" at revision '{revision}'" if revision else "")
    try:
        files = None
        if not offline:
            files = hub.list_repo_files(repo_id, revision=revision)
            patterns = hub_allow_patterns(files)
            if not any(p.endswith((".safetensors", ".bin")) for p in patterns):
                shown = ", ".join(sorted(files)[:15]) + (" ..." if len(files) > 15 else "")
                raise ModelFileNotFoundError(
                    f"The Hub repository {where} holds no safetensors or pytorch_model*.bin weights "
                    f"spectralwatch can read (files: {shown}). Download the weight file you want "
                    "(a .gguf, .onnx, .keras file...) and pass its path.")
        return hub.snapshot_download(repo_id, revision=revision, cache_dir=cache_dir,
                                     allow_patterns=hub_allow_patterns(files), ignore_patterns=list(IGNORE_PATTERNS),
                                     local_files_only=offline)
    except hub_errors.LocalEntryNotFoundError as exc:
        why = ("HF_HUB_OFFLINE is set and it is not in the local Hub cache" if offline
               else "the Hub could not be reached and it is not in the local Hub cache")
        raise ModelFileNotFoundError(
            f"Cannot open {where}: {why} ({cache_dir or 'the default cache, HF_HUB_CACHE'}). Download it once "
            "with network access, or point HF_HUB_CACHE at a cache that holds it.") from exc
    except (hub_errors.RepositoryNotFoundError, hub_errors.GatedRepoError) as exc:
        raise ModelFileNotFoundError(
            f"Cannot open {where}: the repository does not exist or is private or gated (log in with "
            f"'hf auth login' or set HF_TOKEN if you have access). {type(exc).__name__}") from exc
    except hub_errors.RevisionNotFoundError as exc:
        raise ModelFileNotFoundError(f"Cannot open {where}: no such revision in the repository.") from exc

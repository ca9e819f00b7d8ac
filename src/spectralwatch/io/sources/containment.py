"""A model reads only its own files: paths named inside a model are resolved and kept inside it.

What a model file or folder names is untrusted input: a shard of an index, a sentence-transformers module
folder (``modules.json``), an ONNX external data file, a companion ``config.json`` or
``adapter_config.json``, a symlink in the folder. Each is resolved (``realpath``: every symlink followed)
and must land inside the model's own *roots*:

* a folder model: the folder itself; for a Hugging Face cache snapshot
  (``.../models--org--name/snapshots/<revision>/``, whose files are symlinks to ``../../blobs/<hash>``),
  also that repository's ``blobs`` folder;
* a single file: the folder holding it (for the companions and external data it names).

A path that leaves the roots (``..``, an absolute path, a symlink to another place) is refused with
:class:`~spectralwatch.errors.UnsafeFileError`; so is, before it is opened, anything that is not a regular
file: a FIFO (opening it would block forever), a socket, a device (``/dev/zero`` never ends). A loop of
symlinks or a path too long is a one-line error, not a raw ``OSError``.

The path the user gives is theirs: it may be a symlink to anywhere, it is only refused when it is not a
regular file or folder.
"""

from __future__ import annotations

import errno
import os
import stat

from ...errors import ModelFileNotFoundError, UnsafeFileError

__all__ = ["check_model_path", "check_regular", "model_roots", "inside_roots", "resolve_inside",
           "open_regular", "read_small_file", "companion_file", "MAX_JSON_BYTES"]

#: a JSON file of a model (config, index, modules list) larger than this is refused unread
MAX_JSON_BYTES = 64 << 20


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe): opening it would wait forever for a writer"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _stat(path: str, what: str) -> os.stat_result:
    try:
        return os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise ModelFileNotFoundError(f"The {what} '{path}' is a symbolic link to something that does not "
                                         "exist.") from None
        raise ModelFileNotFoundError(f"No such file or directory: '{path}'") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeFileError(f"The {what} '{_short(path)}' is a loop of symbolic links.") from None
        if exc.errno == errno.ENAMETOOLONG:
            raise UnsafeFileError(f"The {what} '{_short(path)}' is a path too long for this system (a loop of "
                                  "folders or symbolic links?).") from None
        raise


def _short(path: str, limit: int = 200) -> str:
    return path if len(path) <= limit else path[:80] + f"...({len(path)} characters)..." + path[-80:]


def check_model_path(path: str) -> os.stat_result:
    """The user's model path: it must exist and be a folder or a regular file (after symlinks)."""
    st = _stat(path, "model path")
    if not (stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode)):
        raise UnsafeFileError(f"The model path '{_short(path)}' is {_kind(st.st_mode)}, not a model file or "
                              "folder: refused before opening it.")
    return st


def check_regular(path: str, what: str = "file") -> os.stat_result:
    """Raise unless ``path`` (symlinks followed) is a regular file; nothing is opened."""
    st = _stat(path, what)
    if not stat.S_ISREG(st.st_mode):
        raise UnsafeFileError(f"The {what} '{_short(path)}' is {_kind(st.st_mode)}: refused before opening it "
                              "(a model reads regular files only).")
    return st


def model_roots(folder: str) -> tuple:
    """The folders a model in ``folder`` may read: the folder, and the ``blobs`` of a Hugging Face snapshot."""
    real = os.path.realpath(folder)
    roots = [real]
    parent = os.path.dirname(real)
    if os.path.basename(parent) == "snapshots":
        blobs = os.path.join(os.path.dirname(parent), "blobs")
        if os.path.isdir(blobs):
            roots.append(os.path.realpath(blobs))
    return tuple(roots)


def inside_roots(real: str, roots) -> bool:
    """Whether the resolved path ``real`` is one of ``roots`` or inside one."""
    return any(real == r or real.startswith(r.rstrip(os.sep) + os.sep) for r in roots)


def resolve_inside(path: str, roots, what: str, *, named_by: str = "") -> str:
    """``path`` resolved (symlinks followed); :class:`UnsafeFileError` when it leaves ``roots``.

    ``named_by`` says which file named the path (for the message).
    """
    try:
        real = os.path.realpath(path)
    except (OSError, ValueError) as exc:  # pragma: no cover - realpath rarely raises
        raise UnsafeFileError(f"The {what} '{_short(path)}' cannot be resolved: {exc}.") from None
    if not inside_roots(real, roots):
        by = f" named by {named_by}" if named_by else ""
        raise UnsafeFileError(
            f"The {what} '{_short(path)}'{by} leads outside the model (to '{_short(real)}'): refused, a model "
            "must not make spectralwatch read other files. Copy the file into the model's folder, or pass it "
            "as a model of its own.")
    return real


def open_regular(path: str, what: str = "file"):
    """``open(path, 'rb')`` that cannot block or read a device: the file is opened without waiting
    (``O_NONBLOCK``: a FIFO swapped in since it was checked opens at once) and must be a regular file."""
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENAMETOOLONG):
            _stat(path, what)  # the one-line error
        raise
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise UnsafeFileError(f"The {what} '{_short(path)}' is {_kind(st.st_mode)}: refused (a model reads "
                                  "regular files only).")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_small_file(path: str, what: str = "file", limit: int = MAX_JSON_BYTES) -> bytes:
    """The bytes of a small regular file (a JSON config, an index); larger than ``limit``: refused unread."""
    with open_regular(path, what) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise UnsafeFileError(f"The {what} '{_short(path)}' has {size} bytes, more than the {limit}-byte limit "
                                  "of such a file: refused unread.")
        return fh.read(limit + 1)[:limit]


def companion_file(model_path: str, name: str):
    """The file ``name`` beside a model (in the model folder, or beside the model file), checked: None when
    there is none or it is not a regular file; :class:`UnsafeFileError` when it leads outside the model's
    folder (a symlink elsewhere)."""
    folder = model_path if os.path.isdir(model_path) else (os.path.dirname(model_path) or ".")
    path = os.path.join(folder, name)
    if not os.path.isfile(path):  # (follows symlinks: a FIFO or a device is not a file)
        return None
    resolve_inside(path, model_roots(folder), name)
    return path

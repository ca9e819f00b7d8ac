"""Every file spectralwatch writes goes through here: checked against the inputs, then written atomically.

An output path is refused (:class:`~spectralwatch.errors.OutputPathError`, before anything is written) when

* it resolves (symlinks followed, ``~`` expanded) to an input file, or is the same file (same device and
  inode: a hard link, another spelling on a case-insensitive file system);
* it resolves into an input folder (a report written inside a model folder would be read back as part of
  the model next time);
* it already exists and is not a regular file: a symlink (even one pointing to a regular file), a device
  (``/dev/null``), a FIFO, a socket or a folder. Only regular files are ever replaced.

A file is written beside its target (a temporary ``.NAME.PID.RANDOM.tmp``) and renamed onto it when
complete (:func:`write_atomic`), so a failed write (a full disk) never leaves a half-written file that looks
complete, and the rename replaces the directory entry, never the contents of whatever it pointed to.

The inputs are paths (``str`` / ``os.PathLike``; other objects, such as a model in memory, protect
nothing). :func:`protected_paths` turns them into the files and folders to keep.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path
from typing import Iterable

from ..errors import OutputPathError

__all__ = ["protected_paths", "check_output", "check_output_folder", "write_output", "write_atomic",
           "open_temp", "Protected"]


class Protected:
    """Resolved inputs: files (by path and by device/inode) and folders (a whole tree each)."""

    def __init__(self, files=(), folders=(), ids=()):
        self.files = set(files)
        self.folders = set(folders)
        self.ids = set(ids)

    def __bool__(self) -> bool:
        return bool(self.files or self.folders)

    def __iter__(self):
        """The protected paths (so that a ``Protected`` can stand where a list of input paths is taken)."""
        return iter(sorted(self.files | self.folders))

    def __or__(self, other: "Protected") -> "Protected":
        return Protected(self.files | other.files, self.folders | other.folders, self.ids | other.ids)


def _real(path) -> str:
    return os.path.realpath(os.path.expanduser(os.fspath(path)))


def protected_paths(inputs: Iterable) -> Protected:
    """The files and folders that outputs must never touch, from input paths (others are ignored).

    An existing ``Protected`` among ``inputs`` is merged in.
    """
    out = Protected()
    for item in inputs or ():
        if isinstance(item, Protected):
            out = out | item
            continue
        if not isinstance(item, (str, os.PathLike)):
            continue
        try:
            real = _real(item)
        except (OSError, ValueError, TypeError):
            continue
        try:
            st = os.stat(real)
        except (OSError, ValueError):
            out.files.add(real)  # not there (yet): its path is still an input
            continue
        if stat.S_ISDIR(st.st_mode):
            out.folders.add(real)
        else:
            out.files.add(real)
            out.ids.add((st.st_dev, st.st_ino))
    return out


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _against_inputs(text: str, real: str, protected: Protected, what: str) -> None:
    if real in protected.files:
        raise OutputPathError(f"Refusing to write the {what} '{text}': it is an input file (it would be "
                              "replaced by the output). Choose another path.")
    for folder in protected.folders:
        if _inside(real, folder):
            raise OutputPathError(f"Refusing to write the {what} '{text}': it is inside the input folder "
                                  f"'{folder}' (the next run would read it as part of the model). Choose a "
                                  "path outside it.")


def check_output(path, inputs=(), *, what: str = "output file") -> Path:
    """Raise :class:`OutputPathError` when ``path`` may not be written as a file (see the module docstring).

    Returns the path (``~`` expanded). Nothing is created.
    """
    text = os.path.expanduser(os.fspath(path))
    protected = inputs if isinstance(inputs, Protected) else protected_paths(inputs)
    real = _real(text)
    try:
        st = os.lstat(text)
    except FileNotFoundError:
        st = None
    except OSError as exc:  # a loop of symlinks in the path, a name too long...
        raise OutputPathError(f"Refusing to write the {what} '{text}': {exc.strerror or exc}.") from None
    if st is not None:
        if not stat.S_ISREG(st.st_mode):
            raise OutputPathError(f"Refusing to write the {what} '{text}': it exists and is {_kind(st.st_mode)}; "
                                  "spectralwatch only replaces regular files. Choose another path.")
        if (st.st_dev, st.st_ino) in protected.ids:
            raise OutputPathError(f"Refusing to write the {what} '{text}': it is an input file (it would be "
                                  "replaced by the output). Choose another path.")
    _against_inputs(text, real, protected, what)
    return Path(text)


def check_output_folder(path, inputs=(), *, what: str = "figure folder") -> Path:
    """Raise :class:`OutputPathError` when ``path`` may not be used as a folder to write files into.

    An existing folder is fine (unless it is, or lies inside, an input folder); a symlink, an existing file
    or anything else is refused. Nothing is created.
    """
    text = os.path.expanduser(os.fspath(path))
    protected = inputs if isinstance(inputs, Protected) else protected_paths(inputs)
    try:
        st = os.lstat(text)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise OutputPathError(f"Refusing to write into the {what} '{text}': {exc.strerror or exc}.") from None
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise OutputPathError(f"Refusing to write into the {what} '{text}': it exists and is {_kind(st.st_mode)}"
                              ", not a folder. Choose another path.")
    real = _real(text)
    if real in protected.files:
        raise OutputPathError(f"Refusing to write into the {what} '{text}': it is an input file.")
    for folder in protected.folders:
        if _inside(real, folder):
            raise OutputPathError(f"Refusing to write into the {what} '{text}': it is the input folder '{folder}' "
                                  "or inside it (the next run would read the files as part of the model). Choose "
                                  "a folder outside it.")
    return Path(text)


def open_temp(folder: Path, name: str):
    """A new file beside the target: ``(binary file object, its path)``, with the usual permissions."""
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
    return os.fdopen(fd, "wb"), tmp


def write_atomic(path, data, inputs=(), *, what: str = "output file") -> None:
    """Write ``data`` (str: UTF-8, or bytes) to ``path`` through a file beside it and a rename.

    The path is checked first (:func:`check_output`, against ``inputs``); on any error the temporary file
    is removed and ``path`` is untouched (absent, or its old content).
    """
    path = check_output(path, inputs, what=what)
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    fh, tmp = open_temp(path.parent, path.name)
    try:
        with fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        check_output(path, inputs, what=what)  # (what appeared meanwhile is refused too)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


#: the name used by callers that check and write in one step
write_output = write_atomic

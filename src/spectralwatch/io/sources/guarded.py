"""Reading a file that may change while it is read: a clear error for that file, never a signal.

A training loop that re-saves ``last.pt`` while spectralwatch reads it truncates the file and writes it
again. Memory-mapped data beyond the new end of the file kills the reading process with ``SIGBUS`` (no
message, no table, every other layer lost); data read after the rewrite is another model's (a foreign
matrix shown as this one's). So:

* the readers read tensor data with ``pread`` into their own memory (GGUF, ``.npy``, safetensors), where a
  truncated file is a short read, not a signal;
* PyTorch files stay memory-mapped by ``torch.load(mmap=True)`` (their metadata is a pickle that only torch
  reads), and a tensor's bytes are copied out of the mapping through ``/proc/self/mem`` on Linux
  (:func:`copy_mapped`): the kernel answers a page that no longer exists with an I/O error instead of
  ``SIGBUS``;
* each file's identity (device, inode, size, modification time) is taken when it is opened and checked
  before and after each tensor is read (:func:`check_unchanged`): a file replaced or rewritten meanwhile is a
  :class:`~spectralwatch.errors.CorruptFileError` ("changed while it was being read") for that layer, which
  becomes its failed row.

On systems without ``/proc/self/mem`` (macOS, Windows) a torch tensor is copied directly after the identity
check; a rewrite racing with that copy can still end the process there (documented in docs/robustness.md).
"""

from __future__ import annotations

import errno
import os

import numpy as np

from ...errors import CorruptFileError

__all__ = ["file_identity", "check_unchanged", "read_at", "copy_mapped", "changed_error"]

_PROC_MEM = "/proc/self/mem"
_MEM_FD = (None, -1)  # (pid, fd): an fd of /proc/self/mem reads the memory of the process that opened it


def file_identity(path_or_fd) -> tuple:
    """``(device, inode, size, mtime_ns)`` of a path or an open file descriptor."""
    st = os.fstat(path_or_fd) if isinstance(path_or_fd, int) else os.stat(path_or_fd)
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def changed_error(path: str, what: str = "", truncated: bool = False) -> CorruptFileError:
    how = "was truncated" if truncated else "changed"
    return CorruptFileError(f"The file '{path}' {how} while it was being read{f' ({what})' if what else ''}: "
                            "another program rewrote or replaced it (a training run saving a checkpoint?). "
                            "Analyse a copy that nothing writes to, or run again once it is written.")


def check_unchanged(path: str, identity: tuple, what: str = "") -> None:
    """:func:`changed_error` unless ``path`` still has ``identity`` (an empty identity checks nothing)."""
    if not identity:
        return
    try:
        now = file_identity(path)
    except FileNotFoundError:
        raise changed_error(path, what or "it was removed") from None
    if now != tuple(identity):
        raise changed_error(path, what, truncated=now[2] < identity[2])


def _pread_into(fd: int, view: memoryview, offset: int) -> int:
    done = 0
    while done < len(view):
        if hasattr(os, "preadv"):
            got = os.preadv(fd, [view[done:]], offset + done)
        else:  # pragma: no cover - Windows
            os.lseek(fd, offset + done, os.SEEK_SET)
            got = os.readv(fd, [view[done:]])
        if got <= 0:
            break
        done += got
    return done


def read_at(path: str, offset: int, nbytes: int, identity: tuple = (), what: str = "a tensor") -> np.ndarray:
    """``nbytes`` bytes of ``path`` from ``offset`` as a fresh uint8 array (``pread``: no mmap).

    The file must still have ``identity`` before and after the read; a short read (the file was cut) or a
    changed identity is a :class:`CorruptFileError` naming the file.
    """
    from .containment import open_regular

    check_unchanged(path, identity, what)
    buf = np.empty(int(nbytes), dtype=np.uint8)
    with open_regular(path) as fh:
        got = _pread_into(fh.fileno(), memoryview(buf), int(offset)) if nbytes else 0
    if got != nbytes:
        check_unchanged(path, identity, what)
        raise CorruptFileError(f"The file '{path}' ended before {what} was read completely (truncated, or it "
                               "changed while it was being read).")
    check_unchanged(path, identity, what)
    return buf


def _mem_fd() -> int:
    global _MEM_FD
    pid = os.getpid()
    if _MEM_FD[0] != pid:  # first use, or a forked worker: its own memory, not its parent's
        try:
            fd = os.open(_PROC_MEM, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            fd = -1
        _MEM_FD = (pid, fd)
    return _MEM_FD[1]


def copy_mapped(address: int, nbytes: int, path: str, identity: tuple = (), what: str = "a tensor") -> np.ndarray:
    """A copy of ``nbytes`` of this process's memory at ``address`` (a file mapping) as a uint8 array.

    Through ``/proc/self/mem``: a page of the mapping that the file no longer backs (it was truncated) is an
    ``EIO`` here, turned into a :class:`CorruptFileError` naming ``path``, where touching it directly would
    kill the process with ``SIGBUS``. Without ``/proc/self/mem``, the identity is checked and the memory
    copied directly.
    """
    check_unchanged(path, identity, what)
    buf = np.empty(int(nbytes), dtype=np.uint8)
    fd = _mem_fd()
    if nbytes and fd >= 0:
        try:
            got = _pread_into(fd, memoryview(buf), int(address))
        except OSError as exc:
            if exc.errno not in (errno.EIO, errno.EFAULT):
                raise
            got = -1
        if got != nbytes:
            check_unchanged(path, identity, what)
            raise CorruptFileError(f"The file '{path}' no longer holds {what} (it was truncated or rewritten while "
                                   "it was being read).")
    elif nbytes:  # pragma: no cover - no /proc (macOS, Windows)
        import ctypes

        ctypes.memmove(buf.ctypes.data, address, int(nbytes))
    check_unchanged(path, identity, what)
    return buf

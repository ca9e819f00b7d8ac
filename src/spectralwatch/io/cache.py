r"""The on-disk eigenvalue cache (``cache_dir=``): a layer's eigenvalues kept under a hash of its content.

Each entry is ``<key>.npz`` holding ``evals`` (float64, one row per matrix of the layer) and ``route``; the
key hashes the matrices' content (scaled stack, float64 bits), what shapes the spectrum (the eigenvalue
route and the device), the cache format and the spectralwatch version, so re-running with other fit
options costs only the reading and hashing of the weights, and an upgrade never reads an older version's
entries. Entries are written atomically (a temporary file created exclusively, never through a symlink,
then renamed); a failed write only warns.

An entry is untrusted input (anyone who can write to the folder can plant one), so every hit is checked
against what is cheap to know about the layer before it is used (:func:`verify_entry`):

* the entry is a regular file (not a symlink, a FIFO or a device), of a bounded size, whose members
  (``evals.npy``, ``route.npy``) are bounded before they are inflated;
* ``evals`` has exactly the layer's shape ``(rf, M)``, is float64, finite, non-negative and sorted;
* per matrix :math:`W_i` (scale :math:`s`), the eigenvalues sum to the squared Frobenius norm,
  :math:`\sum_j \lambda_{ij} = s\,\lVert W_i\rVert_F^2` (the trace of :math:`s W_i^T W_i`), within
  :data:`TRACE_RTOL` (the eigensolvers' rounding is far smaller);
* the largest eigenvalue is at least the largest squared row and column norm of :math:`W_i` (times
  :math:`s`): :math:`\lambda_{\max} = \sigma_{\max}^2 \ge \lVert W e_k\rVert^2` and
  :math:`\ge \lVert e_k^T W\rVert^2`;
* the route is one the package writes (``gram``, ``svd``, ``gram+svd``, ``gram-cuda``...).

An entry that fails is recomputed (and rewritten) with a ``RuntimeWarning`` naming it and the reason. These
checks catch damaged entries and planted spectra that do not fit the weights; they cannot tell a forged
spectrum with the right trace and extremes from the true one (only recomputing can): do not share a cache
folder with people you do not trust.

The folder is capped (``cache_max_bytes``, default :data:`DEFAULT_CACHE_MAX_BYTES`): after a write that
takes it over the cap, the least recently used entries (a hit refreshes an entry's time) are removed.
:func:`cache_info` and :func:`clear_cache` back ``spectralwatch cache info|clear DIR``; both touch only
files named like entries (``<40 hex digits>.npz`` and this module's temporary files).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import numbers
import os
import re
import secrets
import stat
import threading
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..core.matrices import LayerMatrices
from ..core.spectrum import Spectrum
from ..errors import InvalidParameterError
from ..options import OPTIONS

__all__ = ["cache_key", "cache_path", "load_entry", "store_entry", "verify_entry", "cache_info", "clear_cache",
           "enforce_cap", "check_cache_max_bytes", "DEFAULT_CACHE_MAX_BYTES", "CACHE_FORMAT", "TRACE_RTOL"]

#: bumped when the entries' layout or meaning changes (part of the key)
CACHE_FORMAT = 2
#: default cap of a cache folder's entries, in bytes (``cache_max_bytes``)
DEFAULT_CACHE_MAX_BYTES = OPTIONS["cache_max_bytes"].default  # the option table's default
#: relative tolerance of the trace check (float64 eigensolvers are within about 1e-12 of it)
TRACE_RTOL = 1e-6
#: the same on Apple's MPS, which computes in float32
TRACE_RTOL_FLOAT32 = 1e-3
_ENTRY = re.compile(r"^[0-9a-f]{40}\.npz$")
_TEMP = re.compile(r"^[0-9a-f]{40}\.[0-9a-f]{16}\.tmp\.npz$")
_ROUTE = re.compile(r"^(gram|svd)(-(cuda|mps))?(\+svd)?$")
_TAG = "CACHEDIR.TAG"
_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
             "# This file is a cache directory tag created by spectralwatch (its eigenvalue cache).\n"
             "# For information about cache directory tags see https://bford.info/cachedir/\n")
_CAP_LOCK = threading.Lock()


def check_cache_max_bytes(value, func: str = "analyze"):
    """Validate ``cache_max_bytes``: None (no cap) or an int >= 0 (validated here until the schema has it)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 0:
        raise InvalidParameterError(f"The 'cache_max_bytes' parameter of {func} must be None (no cap) or an int "
                                    f">= 0 (bytes). Got {value!r}.")
    return int(value)


def cache_key(mats: LayerMatrices, method: str, device: str) -> str:
    """Hash of the matrices' content (scaled stack, float64 bits), what shapes the spectrum, the cache format
    and the spectralwatch version."""
    from .._version import __version__

    h = hashlib.blake2b(digest_size=20)
    h.update(repr((CACHE_FORMAT, __version__, mats.stack.shape, mats.eval_scale, method,
                   device.split(":")[0])).encode())
    h.update(memoryview(np.ascontiguousarray(mats.stack)).cast("B"))
    return h.hexdigest()


def cache_path(cache_dir, mats: LayerMatrices, method: str, device: str) -> Path:
    """Where the entry of these matrices lives in ``cache_dir``."""
    return Path(cache_dir) / f"{cache_key(mats, method, device)}.npz"


# ---- reading, with the checks ------------------------------------------------------------------

class _Invalid(Exception):
    """Why an entry was not used."""


def _open_entry(path: Path):
    """The entry opened for reading: a regular file reached without a symlink, opened without blocking."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(st.st_mode):
        raise _Invalid("it is not a regular file (a symlink, a FIFO, a device or a folder)")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _Invalid("it is not a regular file")
    return os.fdopen(fd, "rb")


def _read_entry(fh, rf: int, m: int) -> tuple:
    """``(evals, route)`` of an entry, its members bounded before they are inflated."""
    expected = 8 * rf * m
    size = os.fstat(fh.fileno()).st_size
    if size > 2 * expected + (1 << 16):
        raise _Invalid(f"it has {size} bytes, more than an entry of {rf} x {m} eigenvalues can have")
    with zipfile.ZipFile(fh) as zf:
        infos = {i.filename: i for i in zf.infolist()}
        if set(infos) != {"evals.npy", "route.npy"} or len(zf.infolist()) != 2:
            raise _Invalid("its members are not evals and route")
        if infos["evals.npy"].file_size > expected + 1024 or infos["route.npy"].file_size > 1024:
            raise _Invalid("its members are larger than an entry of this layer (a decompression bomb?)")
        with zf.open("evals.npy") as member:
            evals = _read_npy(member, lambda shape, dt: shape == (rf, m) and dt == np.dtype("<f8"))
        with zf.open("route.npy") as member:
            route = _read_npy(member, lambda shape, dt: shape == () and dt.kind == "U" and dt.itemsize <= 256)
    return evals, route


def _read_npy(member, fits) -> np.ndarray:
    """One ``.npy`` member; its header's shape and dtype must fit (``fits``) before any data is allocated."""
    version = np.lib.format.read_magic(member)
    read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran, dtype = read_header(member)
    if fortran or dtype.hasobject or not fits(tuple(shape), dtype):
        raise _Invalid(f"it holds an array of shape {tuple(shape)} and dtype {dtype}, not the layer's")
    count = math.prod(shape)
    data = member.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise _Invalid("it is truncated")
    return np.frombuffer(data, dtype=dtype).reshape(shape).copy()


def verify_entry(evals, route, mats: LayerMatrices) -> str:
    """Why ``(evals, route)`` cannot be the spectrum of ``mats`` ('' when every check of the module
    docstring passes)."""
    rf, m = mats.rf, mats.M
    if not isinstance(evals, np.ndarray) or evals.dtype != np.float64 or evals.shape != (rf, m):
        shape = getattr(evals, "shape", None)
        return f"it holds {getattr(evals, 'dtype', type(evals).__name__)} eigenvalues of shape {shape}, not {rf} x {m}"
    if not np.isfinite(evals).all():
        return "it holds eigenvalues that are NaN or infinite"
    if (evals < 0).any():
        return "it holds negative eigenvalues"
    if (np.diff(evals, axis=1) < 0).any():
        return "its eigenvalues are not sorted"
    text = str(route.item()) if isinstance(route, np.ndarray) and route.shape == () and route.dtype.kind == "U" else ""
    if not _ROUTE.match(text):
        return "its route is not one spectralwatch writes"
    rtol = TRACE_RTOL_FLOAT32 if "mps" in text else TRACE_RTOL
    scale = float(mats.eval_scale)
    for i in range(rf):
        W = mats.stack[i]
        rows = np.einsum("ij,ij->i", W, W)
        cols = np.einsum("ij,ij->j", W, W)
        trace = scale * float(cols.sum())
        total = float(evals[i].sum())
        if not math.isclose(total, trace, rel_tol=rtol, abs_tol=1e-300):
            return (f"the eigenvalues of matrix {i} sum to {total:.9g}, but the squared Frobenius norm of its "
                    f"weights is {trace:.9g}")
        floor = scale * max(float(rows.max(initial=0.0)), float(cols.max(initial=0.0)))
        if m and evals[i, -1] < floor * (1 - rtol):
            return (f"the largest eigenvalue of matrix {i} ({evals[i, -1]:.9g}) is below the largest squared row or "
                    f"column norm of its weights ({floor:.9g})")
    return ""


def load_entry(path: Path, mats: LayerMatrices | None = None) -> Spectrum | None:
    """The cached spectrum at ``path`` after the checks of :func:`verify_entry`; None on a miss.

    An entry that cannot be read or fails a check warns (``RuntimeWarning``) and gives None: the spectrum is
    recomputed and the entry rewritten. Without ``mats`` only the file checks are made (no spectrum is
    returned then: there is nothing to check it against).
    """
    if mats is None:
        return None
    try:
        fh = _open_entry(path)
        if fh is None:
            return None
        with fh:
            evals, route = _read_entry(fh, mats.rf, mats.M)
        why = verify_entry(evals, route, mats)
        if why:
            raise _Invalid(why)
    except _Invalid as exc:
        _warn(path, str(exc))
        return None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError, NotImplementedError) as exc:
        _warn(path, f"it cannot be read ({type(exc).__name__})")
        return None
    with contextlib.suppress(OSError):
        os.utime(path)  # most recently used: the last to go when the folder is over its cap
    return Spectrum(evals=evals, svals=np.sqrt(evals), route=str(route.item()) + "+cache")


def _warn(path: Path, why: str) -> None:
    warnings.warn(f"the eigenvalue cache entry {path} was not used: {why}; the layer's spectrum is recomputed "
                  "and the entry rewritten", RuntimeWarning, stacklevel=3)


# ---- writing -------------------------------------------------------------------------------------

def _tag(folder: Path) -> None:
    tag = folder / _TAG
    if not os.path.lexists(tag):
        with contextlib.suppress(OSError):
            fd = os.open(tag, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
            with os.fdopen(fd, "w") as fh:
                fh.write(_TAG_TEXT)


def store_entry(path: Path, spec: Spectrum, max_bytes=DEFAULT_CACHE_MAX_BYTES) -> None:
    """Write a cache entry atomically; a failed write (full disk, read-only folder) only warns: the spectrum
    is computed, the layer's row does not depend on the cache. Then the folder is kept under ``max_bytes``
    (:func:`enforce_cap`)."""
    tmp = path.with_name(f"{path.stem}.{secrets.token_hex(8)}.tmp.npz")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _tag(path.parent)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o666)
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, evals=np.ascontiguousarray(spec.evals, dtype=np.float64), route=np.array(spec.route))
        os.replace(tmp, path)  # atomic: concurrent workers never read a half-written entry
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        warnings.warn(f"could not write the eigenvalue cache entry {path}: {exc.strerror or exc}; the analysis "
                      "goes on without caching this layer", RuntimeWarning, stacklevel=2)
        return
    if max_bytes is not None:
        enforce_cap(path.parent, max_bytes, keep=path)


def _entries(folder: Path) -> list:
    """``(path, size, mtime)`` of the cache's own entry files (regular files named like entries)."""
    out = []
    try:
        with os.scandir(folder) as it:
            for e in it:
                if _ENTRY.match(e.name) or _TEMP.match(e.name):
                    with contextlib.suppress(OSError):
                        st = e.stat(follow_symlinks=False)
                        if stat.S_ISREG(st.st_mode):
                            out.append((Path(e.path), st.st_size, st.st_mtime_ns))
    except FileNotFoundError:
        pass
    return out


def enforce_cap(folder, max_bytes: int, keep: Path | None = None) -> int:
    """Remove the least recently used entries until the folder's entries take at most ``max_bytes``
    (``keep``: never removed). Returns the number of entries removed."""
    folder = Path(folder)
    with _CAP_LOCK:
        entries = [e for e in _entries(folder) if _ENTRY.match(e[0].name)]
        total = sum(size for _, size, _ in entries)
        removed = 0
        for path, size, _ in sorted(entries, key=lambda e: e[2]):
            if total <= max_bytes:
                break
            if keep is not None and path == keep:
                continue
            with contextlib.suppress(OSError):
                path.unlink()
                total -= size
                removed += 1
        return removed


def cache_info(folder) -> dict:
    """``{'location', 'entries', 'bytes', 'temporary', 'tagged'}`` of a cache folder (nothing is changed)."""
    folder = Path(folder)
    files = _entries(folder)
    entries = [f for f in files if _ENTRY.match(f[0].name)]
    return {"location": str(folder.resolve()), "entries": len(entries), "bytes": sum(f[1] for f in entries),
            "temporary": len(files) - len(entries), "tagged": (folder / _TAG).is_file()}


def clear_cache(folder) -> tuple:
    """Remove the cache's own entry files (and leftover temporary files) of ``folder``; nothing else.

    Returns ``(files removed, bytes freed)``.
    """
    count, freed = 0, 0
    for path, size, _ in _entries(Path(folder)):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
            count += 1
            freed += size
    return count, freed

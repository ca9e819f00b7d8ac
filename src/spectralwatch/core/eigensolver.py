"""The symmetric eigensolver of the Gram matrices: numpy's ``dsyevd``, and the two-stage
reduction for wide matrices.

``numpy.linalg.eigvalsh`` (numpy 2.x) releases the GIL while LAPACK runs (measured with
``python benchmarks/bench_scaling.py --parts gil``: a Python loop in the main thread keeps most of
its speed while another thread diagonalises, and drops about 50x beside a call that holds the
GIL), so layers analysed in threads share the cores. Below ``TWO_STAGE_MIN_M`` it is the solver.

From ``TWO_STAGE_MIN_M`` on, the two-stage tridiagonal reduction (``dsyevd_2stage``, LAPACK 3.7;
the dense-to-band step is matrix-matrix work, so it is not bound by memory bandwidth as the
one-stage reduction is) is faster: single-threaded, 1.5x at M = 2048 and 1.6x at M = 4096.
numpy does not expose it, so it is called through :mod:`ctypes` (which also releases the GIL)
from the very LAPACK numpy is linked against (the ILP64 ``64_``-suffixed symbols of numpy's PyPI
wheels, e.g. ``scipy_dsyevd_2stage_64_`` in scipy-openblas64). Its eigenvalues differ from
``eigvalsh``'s in the last bits (relative 1e-15), the same accuracy (both are backward stable),
and are the same wherever a layer runs. The binding is used only after a self-test on first use
reproduces ``eigvalsh`` to 1e-12; otherwise (another numpy build) numpy's solver is used for
every size.
"""

from __future__ import annotations

import ctypes
import os
import threading

import numpy as np

__all__ = ["eigvalsh_inplace", "two_stage_available", "TWO_STAGE_MIN_M"]

_SYMBOLS = ("scipy_dsyevd_64_", "dsyevd_64_", "openblas_dsyevd_64_")
#: matrices at least this wide use the two-stage reduction (below, both take the same time)
TWO_STAGE_MIN_M = 1536
_STATE: dict = {}
_LOCK = threading.Lock()


def _numpy_lapack_paths() -> list:
    """Shared libraries that numpy's own BLAS/LAPACK lives in (its wheel's ``numpy.libs``)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return []
    here = os.path.dirname(os.path.dirname(np.__file__))
    roots = (os.path.join(here, "numpy.libs"), os.path.dirname(np.__file__))
    return [info["filepath"] for info in threadpool_info()
            if info.get("filepath") and info["filepath"].startswith(roots)]


def _bind():
    """The ``dsyevd`` and ``dsyevd_2stage`` functions of numpy's LAPACK (ILP64), or Nones (the
    one-stage symbol is how the library is recognised)."""
    for path in _numpy_lapack_paths():
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        for name in _SYMBOLS:
            func = getattr(lib, name, None)
            if func is not None:
                func.restype = None
                two = getattr(lib, name.replace("dsyevd", "dsyevd_2stage"), None)
                if two is not None:
                    two.restype = None
                return func, two
    return None, None


_I64 = ctypes.c_int64
_DP = ctypes.POINTER(ctypes.c_double)
_IP = ctypes.POINTER(_I64)


def _call_dsyevd(func, a: np.ndarray, w: np.ndarray) -> int:
    """Eigenvalues of the symmetric ``a`` (C-ordered, overwritten) into ``w``; LAPACK's ``info``."""
    n = _I64(a.shape[0])
    jobz, uplo = ctypes.c_char(b"N"), ctypes.c_char(b"L")
    info = _I64(0)
    work_q, iwork_q = np.zeros(1), np.zeros(1, dtype=np.int64)

    def call(work, lwork, iwork, liwork):
        # the two trailing size_t are the lengths of the character arguments (gfortran ABI)
        func(ctypes.byref(jobz), ctypes.byref(uplo), ctypes.byref(n), a.ctypes.data_as(_DP), ctypes.byref(n),
             w.ctypes.data_as(_DP), work.ctypes.data_as(_DP), ctypes.byref(lwork), iwork.ctypes.data_as(_IP),
             ctypes.byref(liwork), ctypes.byref(info), ctypes.c_size_t(1), ctypes.c_size_t(1))

    call(work_q, _I64(-1), iwork_q, _I64(-1))  # workspace query, as numpy does
    if info.value != 0:
        return info.value
    lwork, liwork = max(1, int(work_q[0])), max(1, int(iwork_q[0]))
    call(np.empty(lwork), _I64(lwork), np.empty(liwork, dtype=np.int64), _I64(liwork))
    return info.value


def _self_test(func) -> bool:
    """``func`` reproduces ``eigvalsh`` to 1e-12 relative on a few random Gram matrices."""
    rng = np.random.default_rng(12345)
    for n in (1, 7, 40):
        x = rng.standard_normal((n + 3, n))
        g = x.T @ x
        want = np.linalg.eigvalsh(g)
        a, w = g.copy(), np.empty(n)
        if _call_dsyevd(func, a, w) != 0:
            return False
        if not np.allclose(w, want, rtol=1e-12, atol=1e-12 * want[-1]):
            return False
    return True


def _two_stage():
    """The checked ``dsyevd_2stage`` of numpy's LAPACK, or None (bound once, on first use)."""
    if "two" not in _STATE:
        with _LOCK:
            if "two" not in _STATE:
                two = None
                if os.environ.get("SPECTRALWATCH_NO_TWO_STAGE", "") in ("", "0"):
                    try:
                        _one, two = _bind()
                        if two is not None and not _self_test(two):
                            two = None
                    except (OSError, AttributeError, ValueError):  # pragma: no cover - exotic builds
                        two = None
                _STATE["two"] = two
    return _STATE["two"]


def two_stage_available() -> bool:
    """True when the two-stage reduction is used for matrices from ``TWO_STAGE_MIN_M`` wide."""
    return _two_stage() is not None


def eigvalsh_inplace(gram: np.ndarray) -> np.ndarray:
    """Ascending eigenvalues of each symmetric matrix of a C-ordered stack ``(k, M, M)``.

    The matrices may be overwritten (the Gram buffers are scratch). Equal, bit for bit, to
    ``numpy.linalg.eigvalsh(gram)`` for matrices narrower than ``TWO_STAGE_MIN_M``.
    """
    two = _two_stage() if gram.shape[-1] >= TWO_STAGE_MIN_M else None
    if two is None or gram.dtype != np.float64 or not gram.flags.c_contiguous:
        return np.linalg.eigvalsh(gram)
    k, m = gram.shape[0], gram.shape[-1]
    evals = np.empty((k, m))
    for i in range(k):
        info = _call_dsyevd(two, gram[i], evals[i])
        if info != 0:
            raise np.linalg.LinAlgError(f"the symmetric eigensolver did not converge (LAPACK dsyevd_2stage "
                                        f"info={info})")
    return evals

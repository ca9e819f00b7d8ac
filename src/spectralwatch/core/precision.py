r"""The precision a layer was stored in, and the rank it supports (the ``numerical_rank`` columns).

WeightWatcher's ``matrix_rank`` counts the singular values above ``s_max * N * eps`` with the
machine epsilon of float64, whatever the weights were stored in. A matrix of exact rank ``r``
stored in float32 (or bfloat16, float16, ...) has its ``M - r`` zero singular values replaced by
rounding noise many orders of magnitude above that threshold, so a rank-collapsed float32 layer
gets ``rank_loss = 0``. spectralwatch keeps the reference's columns and adds ``numerical_rank``
and ``numerical_rank_loss``, which count a singular value as zero when it lies within the
rounding error of the *stored* precision.

Notes
-----
**The tolerance.** Rounding each element of an ``N x M`` matrix ``A`` to a format of machine
epsilon :math:`\varepsilon` (spacing of the numbers at 1) perturbs it by :math:`E` with
:math:`|E_{ij}| \le \tfrac{\varepsilon}{2} |A_{ij}|`. By Weyl's inequality every singular value
moves by at most :math:`\|E\|_2`. Rounding errors behave like independent, centred errors (their
relative root-mean-square is about :math:`0.21\,\varepsilon` for round-to-nearest), and the
spectral norm of a matrix with independent centred entries of variances :math:`v_{ij}` is of the
order of :math:`\max_i (\sum_j v_{ij})^{1/2} + \max_j (\sum_i v_{ij})^{1/2}` (Latala, Proc. AMS
133, 2005; Bandeira & van Handel, Ann. Probab. 44, 2016), i.e. here about
:math:`0.21\,\varepsilon\,(r_{max} + c_{max})` with :math:`r_{max}`, :math:`c_{max}` the largest
row and column norms of :math:`A`. The stored-precision tolerance is that bound without the
0.21 (a safety factor of about 5):

.. math::

    \tau_{store} = \varepsilon_{stored}\,(r_{max} + c_{max}),
    \qquad
    \tau = \max\!\left(s_{max} \max(N, M)\,\varepsilon_{float64},\ \tau_{store}\right),

the first term being the reference's tolerance (the error of computing the singular values in
float64). ``numerical_rank`` counts :math:`s_i > \tau` in each matrix of the layer and sums them;
``numerical_rank_loss = num_evals - numerical_rank``. For float64 storage
:math:`\tau = s_{max} \max(N,M) \varepsilon_{float64}` exactly (since :math:`r_{max}, c_{max} \le
s_{max}`), so the columns equal the reference's per-matrix ranks.

*Why not* :math:`s_{max} \max(N, M)\,\varepsilon_{stored}` (NumPy's ``matrix_rank`` rule with
the stored epsilon)? That rule bounds the error of an SVD *computed* in the format; with
bfloat16's :math:`\varepsilon = 2^{-7}` it exceeds :math:`s_{max}` as soon as ``N >= 128`` and
would call every bfloat16 layer rank 0. The rounding-error bound above grows like
:math:`\sqrt N` times the typical entry, as the rounding noise does.

**What is zero at bfloat16.** A square (``Q = 1``) random matrix has singular values down to 0;
about :math:`(2/\pi)\,\tau / \sigma` of them (:math:`\sigma` the MP scale) fall below
:math:`\tau`, about 1-2% in bfloat16, 0.1-0.3% in float16, none in float32: those values are
genuinely at the rounding-noise level of the stored matrix.

**The epsilon of a stored dtype** (:func:`storage_eps`): the machine epsilon of the floating
format, :math:`2^{-p}` with ``p`` the stored mantissa bits: float64 :math:`2^{-52}`, float32
:math:`2^{-23}`, float16 :math:`2^{-10}`, bfloat16 :math:`2^{-7}`, float8 ``e4m3``
:math:`2^{-3}`, float8 ``e5m2`` :math:`2^{-2}`, float6 ``e2m3`` / ``e3m2`` :math:`2^{-3}` /
:math:`2^{-2}`, float4 ``e2m1`` :math:`2^{-1}`, float8 ``e8m0`` (powers of two) 1; complex64 and
complex128 as float32 and float64. Integer and boolean tensors stored as such (``int8``,
``uint8``, ...) hold exact values: :math:`\varepsilon_{stored} = 0` and only the float64 term
remains. *Quantised* weights (a ``quant`` entry: GGUF ``Q4_0``, ``Q8_0``, K-quants...; ONNX
``DequantizeLinear``; torch ``qint8`` / ``quint8``) are analysed as the matrix their dequantisation
gives, which is exactly what the model computes with; rounding that matrix happens in the
dequantised dtype (float32 for all of these), so its epsilon applies. (Quantisation itself adds an
error of up to half a quantisation step, but it does not make a full-rank stored matrix
rank-deficient: the rank of the dequantised matrix is exact.) An unknown dtype name, or ``'mixed'``,
gets float64's epsilon: the reference's rule.
"""

from __future__ import annotations

import re

import numpy as np

__all__ = ["storage_eps", "storage_noise_bound", "FLOAT64_EPS"]

FLOAT64_EPS = float(np.finfo(np.float64).eps)

_EXACT_EPS = {
    "float64": 2.0 ** -52, "double": 2.0 ** -52, "complex128": 2.0 ** -52,
    "float32": 2.0 ** -23, "float": 2.0 ** -23, "single": 2.0 ** -23, "complex64": 2.0 ** -23,
    "tensorfloat32": 2.0 ** -10, "float16": 2.0 ** -10, "half": 2.0 ** -10, "bfloat16": 2.0 ** -7,
}
# torch's quantised dtypes dequantise to float32
_TORCH_QUANT = ("qint8", "quint8", "qint32", "quint4x2", "quint2x4")
_MINIFLOAT = re.compile(r"float\d+_e(\d+)m(\d+)")


def storage_eps(dtype, quant: str = "") -> tuple[float, str]:
    """Machine epsilon of the stored values and, in words, what it is the epsilon of.

    Parameters
    ----------
    dtype : str
        The ``dtype`` column of a layer (``'float32'``, ``'bfloat16'``, ``'torch.float16'``,
        ``'int8'``, ``'float8_e4m3fn'``...).
    quant : str
        The ``quant`` column (``''`` for plain floats, ``'Q4_0'``, ``'int8 (DequantizeLinear)'``...).

    Returns
    -------
    (eps, basis) : (float, str)
        ``eps`` is 0 for exact integers. See the module notes for the table.

    Examples
    --------
    >>> storage_eps("bfloat16")
    (0.0078125, 'bfloat16')
    >>> storage_eps("float32", "Q4_0")
    (1.1920928955078125e-07, 'float32 (dequantised Q4_0)')
    >>> storage_eps("int8")[0]
    0.0
    """
    name = str(dtype or "").strip().lower().replace("torch.", "").replace("numpy.", "")
    q = str(quant or "").strip()
    if name in _TORCH_QUANT:
        return _EXACT_EPS["float32"], f"float32 (dequantised {name})"
    eps = _EXACT_EPS.get(name)
    if eps is None:
        m = _MINIFLOAT.fullmatch(name.split("fn")[0].rstrip("_")) or _MINIFLOAT.match(name)
        if m:
            eps = 2.0 ** -int(m.group(2))
        elif re.fullmatch(r"u?int\d+|bool", name):
            if q:  # integer codes of a quantised tensor whose dequantised values are analysed
                return _EXACT_EPS["float32"], f"float32 (dequantised {q})"
            return 0.0, f"{name}: exact integers"
        else:
            return FLOAT64_EPS, f"float64 (dtype {name or 'unknown'!r} not recognised)"
    return eps, (f"{name} (dequantised {q})" if q else name)


def storage_noise_bound(stack, eps: float, eval_scale: float = 1.0) -> np.ndarray:
    r"""Per matrix, ``eps * (largest row norm + largest column norm)``, in the units of the singular values.

    ``stack`` is the ``(k, N, M)`` stack of a layer's matrices as stored (unscaled); the layer's
    eigenvalues are those of the matrices times ``eval_scale``, so the bound is multiplied by
    ``sqrt(eval_scale)``. See the module notes for why this bounds the rounding noise.
    """
    stack = np.asarray(stack)
    # at float64's epsilon the bound never exceeds the float64 term s_max * max(N, M) * eps: skip it
    if eps <= FLOAT64_EPS or stack.size == 0:
        return np.zeros(stack.shape[0] if stack.ndim == 3 else 1)
    rows = np.sqrt(np.einsum("kij,kij->ki", stack, stack)).max(axis=1)
    cols = np.sqrt(np.einsum("kij,kij->kj", stack, stack)).max(axis=1)
    return eps * (rows + cols) * np.sqrt(eval_scale)

r"""Layer-by-layer distances between two models of the same architecture.

``distances(model_1, model_2, method=...)`` pairs the analysable layers of the two models in
model order (the same selection rules as :func:`spectralwatch.analyze`) and reports, per layer,

``'raw'``
    :math:`\|W_1 - W_2\|_F` over the whole weight tensor, and :math:`\|b_1 - b_2\|_2` for the
    biases when both layers have one of the same size (``delta_b``; 0 and ``b_shape='unknown'``
    otherwise);
``'euclidean'``
    the mean over the layer's matrices (one per kernel position of a convolution) of
    :math:`\|W_1 - W_2\|_F`;
``'cka'``
    the mean over the layer's matrices of

    .. math::

        \frac{\|W_1^T W_2\|_F}{\sqrt{\|W_1^T W_1\|_F \, \|W_2^T W_2\|_F}} \in [0, 1],

    the square root of the uncentred linear CKA similarity of Kornblith, Norouzi, Lee & Hinton,
    "Similarity of neural network representations revisited", ICML 2019 (1 for identical
    matrices, a similarity rather than a distance). Like WeightWatcher 0.7.7, a dense weight is
    taken as stored (``W^T W`` contracts its rows, the outputs of a torch ``Linear``) and a
    convolution's kernel-position matrices oriented tall. The numerator is computed as
    :math:`\langle W_1 W_1^T, W_2 W_2^T\rangle_F^{1/2}` on the smaller side.

Mixed inputs are fine (a torch module against a safetensors checkpoint of it): layers are paired
by position and must have the same shapes. Nothing is modified; tensors are read one pair at a
time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ModelMismatchError
from ..options import Options, defaults_of, keyword_values, suggest_keywords, validate
from ..pipeline.analyze import select_layers

__all__ = ["ModelDistances", "distances", "matrix_distance", "cka_similarity", "METHODS"]

METHODS = ("raw", "euclidean", "cka")
_LEAD = ["method", "layer_id", "name", "delta_W", "delta_b", "M", "N", "b_shape", "longname"]


def cka_similarity(W1: np.ndarray, W2: np.ndarray) -> float:
    r""":math:`\|W_1^T W_2\|_F / \sqrt{\|W_1^T W_1\|_F \|W_2^T W_2\|_F}` (NaN when a matrix is zero)."""
    A, B = np.asarray(W1, dtype=np.float64), np.asarray(W2, dtype=np.float64)
    if A.shape[0] > A.shape[1]:  # A^T B is the small product: compute it
        GA, GB = A.T @ A, B.T @ B
        cross = np.sum((A.T @ B) ** 2)
    else:  # ||A^T B||_F^2 = trace(A A^T B B^T) = <A A^T, B B^T>_F on the small side
        GA, GB = A @ A.T, B @ B.T
        cross = np.sum(GA * GB)
    denom = np.sqrt(np.linalg.norm(GA) * np.linalg.norm(GB))
    if not denom > 0:
        return float("nan")
    return float(np.sqrt(max(cross, 0.0)) / denom)


def matrix_distance(W1: np.ndarray, W2: np.ndarray, method: str = "euclidean") -> float:
    """Distance of two arrays of the same shape: Frobenius (``'raw'``/``'euclidean'``) or CKA."""
    W1, W2 = np.asarray(W1, dtype=np.float64), np.asarray(W2, dtype=np.float64)
    if W1.shape != W2.shape:
        raise ValueError(f"cannot compare arrays of shapes {W1.shape} and {W2.shape}")
    if method == "cka":
        return cka_similarity(W1, W2)
    return float(np.linalg.norm((W1 - W2).ravel()))


@dataclass(frozen=True, eq=False)
class ModelDistances:
    """Result of :func:`distances`.

    Attributes
    ----------
    method : str
    details : pandas.DataFrame
        One row per layer pair (per kernel position with ``pool=False``): ``method, layer_id,
        name, delta_W, delta_b, M, N, b_shape, longname`` (+ ``slice_id``, ``name_2``).
    mean_delta_W, mean_delta_b : float
        Means of the two columns (WeightWatcher's ``avg_dW``, ``avg_db``).
    """

    method: str
    details: object
    mean_delta_W: float
    mean_delta_b: float

    def as_tuple(self):
        """``(avg_dW, avg_db, details indexed by layer_id)``: what WeightWatcher's ``distances`` returns."""
        return self.mean_delta_W, self.mean_delta_b, self.details.set_index("layer_id")

    def __repr__(self) -> str:
        return (f"<ModelDistances method={self.method!r}: {len(self.details)} layers, "
                f"mean delta_W={self.mean_delta_W:.6g}, mean delta_b={self.mean_delta_b:.6g}>")


def _bias_loaders(source, model) -> dict:
    """``{layer name: loader}`` of the biases a source holds (state dicts, files, torch modules)."""
    entries = getattr(source, "entries", None)
    if entries is not None:
        return {e.key[:-len(".bias")]: e.loader for e in entries() if e.key.endswith(".bias")}
    if hasattr(model, "named_modules"):
        from ..io.sources._common import torch_to_numpy

        out = {}
        for path, module in model.named_modules():
            bias = getattr(module, "bias", None)
            if path and bias is not None and hasattr(bias, "detach"):
                out[path] = (lambda b=bias: torch_to_numpy(b))
        return out
    return {}


def _matrices(tensor: np.ndarray, layer_type: str, pool: bool) -> list[np.ndarray]:
    """A 2-D weight as stored; a convolution's kernel-position matrices, tall."""
    from ..core.matrices import layer_matrices

    if np.ndim(tensor) == 2:
        return [np.asarray(tensor, dtype=np.float64)]
    return list(layer_matrices(tensor, layer_type, conv2d_norm=False, pooled=pool).stack)


def _pair_rows(r1, r2, g1, method: str, pool: bool, biases: tuple) -> list[dict]:
    W1, W2 = r1.load(), r2.load()
    base = {"method": method, "layer_id": r1.layer_id, "name": r1.name, "M": g1["M"], "N": g1["N"],
            "b_shape": "unknown", "delta_b": 0.0, "longname": r1.longname, "name_2": r2.name}
    if method == "raw":
        row = dict(base, delta_W=matrix_distance(W1, W2, "raw"))
        b1 = biases[0].get(r1.longname) or biases[0].get(r1.name)
        b2 = biases[1].get(r2.longname) or biases[1].get(r2.name)
        if b1 is not None and b2 is not None:
            v1, v2 = np.asarray(b1()), np.asarray(b2())
            if v1.shape == v2.shape:
                row.update(b_shape=tuple(v1.shape), delta_b=matrix_distance(v1, v2, "raw"))
        return [row]
    mats1, mats2 = _matrices(W1, r1.layer_type, pool), _matrices(W2, r2.layer_type, pool)
    values = [matrix_distance(a, b, method) for a, b in zip(mats1, mats2, strict=True)]
    if pool or len(values) == 1:
        row = dict(base, delta_W=float(np.mean(values)))
        return [row if pool else dict(row, slice_id=0)]
    return [dict(base, delta_W=v, slice_id=i) for i, v in enumerate(values)]

DX = defaults_of("distances")


@suggest_keywords
def distances(model_1, model_2, *,
        method: str = DX.method, layers: Any = DX.layers, pool: bool = DX.pool, start_ids: int | None = DX.start_ids,
        min_evals: int | None = DX.min_evals, max_evals: int | None = DX.max_evals, max_N: int | None = DX.max_N) -> ModelDistances:
    """Per-layer distances between two models of the same architecture (see the module docstring).

    Parameters
    ----------
    model_1, model_2
        Anything :func:`spectralwatch.analyze` reads; layers are paired in model order.
    method : {'raw', 'euclidean', 'cka'}
    layers, min_evals, max_evals, max_N, start_ids
        Layer selection, as in :func:`spectralwatch.analyze` (applied to each model).
    pool : bool
        ``False``: one row per kernel position of a convolution (``slice_id``) for 'euclidean'
        and 'cka' ('raw' compares whole tensors).

    Raises
    ------
    InvalidParameterError
        For a bad option.
    ValueError
        When the two models do not have the same analysable layers (count or shapes).
    """
    import pandas as pd

    values = validate("distances", keyword_values("distances", locals()))
    method = values.pop("method")
    options = Options.from_values(values)
    src1, chosen1, _ = select_layers(model_1, options)
    src2, chosen2, _ = select_layers(model_2, options)
    if len(chosen1) != len(chosen2):
        raise ModelMismatchError(f"model_1 has {len(chosen1)} analysable layers and model_2 has {len(chosen2)}: "
                         "distances needs two models of the same architecture (and the same selection).")
    biases = (_bias_loaders(src1, model_1), _bias_loaders(src2, model_2)) if method == "raw" else ({}, {})
    rows = []
    for (r1, g1), (r2, _g2) in zip(chosen1, chosen2, strict=True):
        if tuple(r1.shape) != tuple(r2.shape):
            raise ModelMismatchError(f"layer {r1.layer_id} ({r1.longname or r1.name}) has shape {tuple(r1.shape)} in "
                             f"model_1 but layer {r2.layer_id} ({r2.longname or r2.name}) of model_2 has shape "
                             f"{tuple(r2.shape)}: the models do not have the same architecture.")
        rows.extend(_pair_rows(r1, r2, g1, method, options.select.pool, biases))
    cols = _LEAD + (["slice_id"] if not options.select.pool else []) + ["name_2"]
    details = pd.DataFrame(rows, columns=cols)
    means = {c: float(details[c].mean()) if len(details) else float("nan") for c in ("delta_W", "delta_b")}
    return ModelDistances(method=method, details=details, mean_delta_W=means["delta_W"],
                          mean_delta_b=means["delta_b"])

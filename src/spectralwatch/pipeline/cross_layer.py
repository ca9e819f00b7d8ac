"""The walks of ``intra=True`` and ``stacked=True``: rows made from several layers at once.

The matrices are built by :mod:`spectralwatch.core.cross_layer` (where the maths is written out);
each is then analysed by the ordinary per-layer pipeline (:func:`spectralwatch.pipeline.layer.spectrum_rows`),
so every column and every optional analysis means the same thing as for a plain layer.
"""

from __future__ import annotations

import numpy as np

from ..core.cross_layer import align_pair, first_matrix, intra_pair_matrix, root_matrices, stack_block, stack_layers
from ..core.matrices import LayerMatrices, NonFiniteWeightsError
from ..core.rng import layer_rng
from ..errors import NoLayersError
from .layer import LayerResult, failed_result, spectrum_rows

__all__ = ["intra_walk", "stacked_walk", "variant_walk"]

_FAILURES = (NonFiniteWeightsError, ValueError, ArithmeticError, np.linalg.LinAlgError, OSError, MemoryError)


def _intra_geometry(prev, cur, X: np.ndarray) -> dict:
    N, M = max(X.shape), min(X.shape)
    return {"layer_id": cur.layer_id, "name": f"{prev.layer_id} X {cur.layer_id}",
            "longname": f"{prev.longname or prev.name} X {cur.longname or cur.name}",
            "layer_type": cur.layer_type, "N": N, "M": M, "Q": N / M, "rf": 1, "num_evals": M,
            "dtype": cur.dtype, "Xflag": True}


def _skip(ref, rule: str, reason: str) -> dict:
    return {"layer_id": ref.layer_id, "name": ref.name, "layer_type": ref.layer_type,
            "shape": tuple(ref.shape), "rule": rule, "reason": reason}


def intra_walk(chosen: list, options, skipped: list):
    """Yield ``(ref, results)`` per layer: the rows of the pair (previous layer, ``ref``).

    ``chosen``: the ``(LayerRef, geometry)`` pairs that would be analysed layer by layer; a pair
    that cannot be formed is appended to ``skipped`` with the reason.
    """
    prev, W_prev = None, None
    for ref, _geometry in chosen:
        try:
            W = first_matrix(ref.load())
        except _FAILURES as exc:
            skipped.append(_skip(ref, "intra", f"could not be read: {type(exc).__name__}: {exc}"))
            prev, W_prev = None, None
            yield ref, []
            continue
        results = []
        if prev is not None:
            pair = align_pair(W_prev, W)
            if pair is None:
                skipped.append(_skip(ref, "intra", f"no size in common with layer {prev.layer_id}: "
                                                   f"{W_prev.shape} and {W.shape}"))
            else:
                results = _intra_pair(prev, ref, pair, options)
        prev, W_prev = ref, W
        yield ref, results


def _intra_pair(prev, cur, pair, options) -> list[LayerResult]:
    W0, W1 = pair
    X = None
    try:
        rng = layer_rng(options.walk.rng, cur.layer_id)
        X = intra_pair_matrix(W0, W1, sparsify=options.walk.sparsify, rng=rng)
        base = _intra_geometry(prev, cur, X)
        if not np.isfinite(X).all():
            raise NonFiniteWeightsError("the product of the two layers has NaN or Inf values")
        # conv2d_norm scales a conv2d's matrices by 1/sqrt(2); WeightWatcher applies it to X
        scale = np.sqrt(0.5) if cur.layer_type == "conv2d" and options.walk.conv2d_norm else 1.0
        return spectrum_rows(base, root_matrices(X, scale), options)
    except _FAILURES as exc:
        shape = X.shape if X is not None else (W0.shape[0], W1.shape[1])
        base = _intra_geometry(prev, cur, np.empty(shape))
        return [failed_result(base, f"{type(exc).__name__}: {exc}")]


def stacked_walk(chosen: list, options, skipped: list):
    """Yield ``(ref, [])`` per layer read, then the stacked matrix's row with the last layer."""
    blocks, dtypes = [], set()
    for i, (ref, _geometry) in enumerate(chosen):
        try:
            blocks.append(stack_block(ref.load(), ref.layer_type))
            dtypes.add(ref.dtype)
        except _FAILURES as exc:
            skipped.append(_skip(ref, "stacked", f"could not be stacked: {type(exc).__name__}: {exc}"))
        if i < len(chosen) - 1:
            yield ref, []
    if not blocks:
        yield chosen[-1][0], []
        return
    W = stack_layers(blocks)
    del blocks
    N, M = W.shape
    base = {"layer_id": 0, "name": "Stacked Layer", "longname": "Stacked Layer", "layer_type": "stacked",
            "N": N, "M": M, "Q": N / M, "rf": 1, "num_evals": M,
            "dtype": dtypes.pop() if len(dtypes) == 1 else "mixed",
            "stacked_layers": len(chosen) - sum(1 for s in skipped if s.get("rule") == "stacked")}
    mats = LayerMatrices(stack=W[None], N=N, M=M, rf=1, eval_scale=1.0)
    try:
        results = spectrum_rows(base, mats, options)
    except _FAILURES as exc:
        results = [failed_result(base, f"{type(exc).__name__}: {exc}")]
    yield chosen[-1][0], results


def variant_walk(chosen: list, options, skipped: list):
    """``(ref, results)`` of the ``intra`` or ``stacked`` walk, like the executors' ``run_layers``.

    Raises :class:`~spectralwatch.errors.NoLayersError` at the end when the walk gave no row.

    The layers are walked in id order, not in the listing's network order: ``intra`` pairs the
    layers WeightWatcher 0.7.7 pairs (for a state dict stored alphabetically, that is its stored
    order; docs/formats.md, "Layer order").
    """
    chosen = sorted(chosen, key=lambda item: item[0].layer_id)
    walk = stacked_walk if options.walk.stacked else intra_walk
    produced = False
    for ref, results in walk(chosen, options, skipped):
        produced = produced or bool(results)
        yield ref, results
    if not produced:
        what = "the stacked matrix" if options.walk.stacked else "a pair of consecutive layers with a size in common"
        reasons = "; ".join(f"layer {r['layer_id']} ({r['name']}): {r['reason']}" for r in skipped
                            if r.get("rule") in ("intra", "stacked"))
        need = "" if options.walk.stacked or len(chosen) > 1 else " intra=True needs at least two analysable layers."
        raise NoLayersError(f"No row could be made from {what} ({len(chosen)} layer(s) selected).{need}"
                            + (f" {reasons[:1000]}" if reasons else ""))

"""The details-table columns of the random-matrix analyses (``mp_fit``, ``randomize``, ``detX``) of one layer.

The maths is in :mod:`spectralwatch.core.rmt` (Marchenko-Pastur fit, randomization, detX) and
:mod:`spectralwatch.core.phases` (the phase of training, with the Tracy-Widom spike test of
:mod:`spectralwatch.core.tracy_widom`); this module only assembles their columns.
"""

from __future__ import annotations

from .phases import classify_phase, entry_tail_index
from .rmt import detx_constraint, fit_marchenko_pastur, randomized_esd

__all__ = ["rmt_columns"]


def rmt_columns(ctx) -> dict:
    """Columns of the ``mp_fit``, ``randomize`` and ``detX`` analyses of one layer (a LayerContext).

    Keys starting with ``_`` are not columns: the Report keeps them per layer (``_rand_evals``
    for ``get_ESD(layer, random=True)``, ``_traps`` for ``get_traps(layer)``).
    """

    opts = ctx.options
    Q, M = ctx.N / ctx.M, ctx.M
    row = ctx.row
    pl_ok = row.get("status") == "success"
    cols: dict = {}
    if opts.mp_fit:
        mp = fit_marchenko_pastur(ctx.evals, Q, M, method=opts.mp_fit_method)
        cols.update(mp.columns())
        alpha = float(row["alpha"]) if pl_ok else float("nan")
        # the entries' tail, unless the stack is not the weights (a pseudo-inverse, a product, a LoRA core)
        weights = getattr(ctx, "weights", True) and (row.get("N"), row.get("M")) == (ctx.N, ctx.M)
        mu = entry_tail_index(ctx.stack) if weights else float("nan")
        ph = classify_phase(ctx.evals, mp, alpha=alpha, tail_index=mu,
                            rank_loss=int(row.get("numerical_rank_loss", row.get("rank_loss", 0))))
        cols.update(phase=ph.label, phase_note=ph.note, tw_spikes=ph.num_spikes, tw_pvalue=ph.pvalue,
                    entry_tail_index=mu)
    if opts.randomize:
        rand = randomized_esd(ctx.stack, ctx.evals, ctx.rng, eval_scale=ctx.eval_scale, method=opts.mp_fit_method)
        cols.update(rand.columns())
        cols["_rand_evals"] = rand.evals
        cols["_traps"] = rand.traps
    if opts.detX:
        det = detx_constraint(ctx.evals)
        cols.update(detX_num=det.num, detX_val=det.val, detX_val_rescaled=det.val_rescaled,
                    num_ERG_spikes=det.num,
                    ERG_gap=det.num - int(row["num_pl_spikes"]) if pl_ok else float("nan"))
    return cols

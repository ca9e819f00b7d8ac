r"""The flags a fit carries when it should not be trusted (the ``fit_quality`` column).

Pure core: reads the results of the fits, the bootstrap and the tail comparison; computes nothing.
"""

from __future__ import annotations

__all__ = ["FEW_TAIL", "UNSTABLE_XMIN", "fit_quality"]

FEW_TAIL = 16  # below this the relative standard error of alpha - 1, 1/sqrt(n_tail), exceeds 25%
UNSTABLE_XMIN = 0.5  # flag when fewer than half of the bootstrap replicates keep the tail


def fit_quality(fit, *, boot=None, comparison=None) -> str:
    """Why a fit should not be trusted, as ``';'``-joined flags (``''`` when nothing is wrong).

    ``few_tail``: fewer than 16 tail eigenvalues (relative error of alpha - 1 above 25%);
    ``lognormal``: a lognormal explains the tail significantly better (needs ``compare_tails``);
    ``unstable_xmin``: fewer than half of the bootstrap replicates keep the tail (needs
    ``bootstrap``). A failed fit is flagged ``failed``.
    """
    if fit is None or getattr(fit, "status", "failed") != "success":
        return "failed"
    flags = []
    if fit.n_tail < FEW_TAIL:
        flags.append("few_tail")
    if comparison is not None:
        lr = comparison.tests.get("lognormal")
        if lr is not None and lr.R < 0 and lr.p < comparison.level:
            flags.append("lognormal")
    if boot is not None and boot.n_boot and boot.xmin_stability < UNSTABLE_XMIN:
        flags.append("unstable_xmin")
    return ";".join(flags)

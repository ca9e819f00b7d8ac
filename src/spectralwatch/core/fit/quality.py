r"""The flags a fit carries when it should not be trusted (the ``fit_quality`` column).

Pure core: reads the results of the fits, the bootstrap and the tail comparison; computes nothing.
"""

from __future__ import annotations

__all__ = ["FEW_TAIL", "UNSTABLE_XMIN", "RELIABLE_MIN_EVALS", "fit_quality", "reliable_fit"]

FEW_TAIL = 16  # below this the relative standard error of alpha - 1, 1/sqrt(n_tail), exceeds 25%
UNSTABLE_XMIN = 0.5  # flag when fewer than half of the bootstrap replicates keep the tail
# fit_reliable: a spectrum of fewer than 50 eigenvalues (depthwise convolutions: 9 or 25 per kernel,
# small heads) has no bulk and tail to tell apart, and even its whole-sample alpha has a relative
# error of (alpha - 1) above 1/sqrt(50) = 14%. (A short KS tail in a larger spectrum is not ruled
# unreliable: a light tail with a handful of values is how a random-like layer looks, and its
# under-trained reading is the signal; fit_quality's few_tail flag marks short tails.)
RELIABLE_MIN_EVALS = 50


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


def reliable_fit(status: str, num_evals) -> bool:
    """Whether a layer's alpha can be read at all (the ``fit_reliable`` column of every layer).

    A successful fit on a spectrum of at least :data:`RELIABLE_MIN_EVALS` eigenvalues. The
    reference's ``warning`` of an unreliable fit (often ``over-trained``: the 9 eigenvalues of a 3x3
    depthwise convolution give alpha 1.5-1.9) is kept as it is; the terminal, the summary and the HTML
    report show such a layer as an unreliable fit.
    """
    if status != "success" or num_evals is None or num_evals != num_evals:
        return False
    return int(num_evals) >= RELIABLE_MIN_EVALS

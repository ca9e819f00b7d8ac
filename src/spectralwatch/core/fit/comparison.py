r"""Which law describes a tail best: likelihood-ratio tests of the power law against the alternatives.

Clauset, Shalizi & Newman, "Power-law distributions in empirical data", SIAM Review 51 (2009)
661-703, section 5 and appendix C; Vuong, "Likelihood ratio tests for model selection and non-nested
hypotheses", Econometrica 57 (1989) 307-333. The laws and their maximum-likelihood fits are in
:mod:`spectralwatch.core.fit.laws` (imported here only when a comparison runs: it loads scipy).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ALTERNATIVES", "SIGNIFICANCE", "TailComparison", "compare_tails"]

#: the alternatives of :func:`compare_tails`, with the column abbreviation of each
ALTERNATIVES = {"lognormal": "lognormal", "exponential": "exp", "stretched_exponential": "stretched_exp",
                "truncated_power_law": "tpl"}
SIGNIFICANCE = 0.1  # CSN (section 5): a sign of R is trusted when p < 0.1


@dataclass(frozen=True, repr=False)
class TailComparison:
    """Power law against the alternatives on one tail.

    Attributes
    ----------
    fits : dict
        ``{law: TailFit | TruncatedPowerLawFit}``, ``'power_law'`` included.
    tests : dict
        ``{alternative: LikelihoodRatio}``, each with ``R > 0`` favouring the power law.
    best : str
        The best-supported law: among the power law and the alternatives that beat it
        significantly (``R < 0``, ``p < level``), the one of smallest AIC
        (:math:`2k - 2\\ln L`, so an extra parameter must buy one unit of log-likelihood).
    level : float
    """

    fits: dict
    tests: dict
    best: str
    level: float

    def columns(self) -> dict:
        """The row columns: ``best_tail`` and ``lr_<alt>``, ``lr_<alt>_z``, ``lr_<alt>_p``."""
        cols = {"best_tail": self.best}
        for alt, short in ALTERNATIVES.items():
            lr = self.tests.get(alt)
            cols[f"lr_{short}"] = lr.R if lr else math.nan
            cols[f"lr_{short}_z"] = lr.normalized_R if lr else math.nan
            cols[f"lr_{short}_p"] = lr.p if lr else math.nan
        return cols

    def __repr__(self) -> str:
        parts = ", ".join(f"{alt}: R={lr.R:.3g} p={lr.p:.3g}" for alt, lr in self.tests.items())
        return f"TailComparison(best={self.best!r}; {parts})"


_N_PARAMS = {"power_law": 1, "exponential": 1, "lognormal": 2, "stretched_exponential": 2,
             "truncated_power_law": 2}


def compare_tails(data, xmin, *, alternatives=tuple(ALTERNATIVES), level=SIGNIFICANCE) -> TailComparison:
    r"""Likelihood-ratio tests of the power law against alternative laws on ``data >= xmin``.

    Every law is fitted by maximum likelihood to the same tail
    (:func:`spectralwatch.distributions.fit_tail`); for each alternative the pointwise
    log-likelihood differences give Vuong's normalised statistic and two-sided p-value (CSN
    section 5 and appendix C); the truncated power law contains the power law (``Lambda = 0``),
    so its p-value is the nested one. When an alternative's maximum is its power-law limit (the
    lognormal with :math:`\sigma \to \infty`, the stretched exponential with :math:`\beta \to 0`)
    and the power law is not worse, the two are indistinguishable: ``p = 1``. See
    :class:`TailComparison` for the choice of ``best``.
    """
    from .laws import fit_tail, likelihood_ratio

    data = np.asarray(data, dtype=np.float64)
    tail = np.sort(data[data >= xmin])
    fits = {"power_law": fit_tail(tail, xmin, "power_law")}
    tests = {}
    for alt in alternatives:
        fits[alt] = fit_tail(tail, xmin, alt)
        if fits["power_law"].success and fits[alt].success:
            lr = likelihood_ratio(fits["power_law"].logpdf(tail), fits[alt].logpdf(tail),
                                  nested=alt == "truncated_power_law", first="power_law", second=alt)
            if "power-law limit" in fits[alt].message and lr.R >= 0:
                # the alternative's supremum is the power law itself (lognormal sigma -> inf, stretched
                # exponential beta -> 0): the two are not distinguishable, whatever Vuong's z says
                lr = dataclasses.replace(lr, normalized_R=0.0, p=1.0)
            tests[alt] = lr
    candidates = ["power_law"] + [a for a, lr in tests.items() if lr.R < 0 and lr.p < level]
    best = min(candidates, key=lambda d: 2 * _N_PARAMS[d] - 2 * fits[d].loglikelihood) \
        if fits["power_law"].success else ""
    return TailComparison(fits, tests, best, level)

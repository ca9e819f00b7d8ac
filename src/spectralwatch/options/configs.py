"""Frozen configurations, one per pipeline stage, built from validated option values.

A stage receives only its own configuration: the readers a :class:`ReadConfig`, the layer
selection a :class:`SelectConfig`, the fit a :class:`FitConfig`, and so on. :class:`Options`
holds them all, for the orchestration that hands each stage its part. Which option is in which
configuration is the option table's ``stages`` (:mod:`spectralwatch.options.schema`); a test checks
that the two agree.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from .layer_filter import LayerFilter
from .schema import OPTIONS
from .validate import validate

__all__ = ["ReadConfig", "SelectConfig", "MatrixConfig", "SpectrumConfig", "FitConfig", "AnalysesConfig",
           "WalkConfig", "SummaryConfig", "FigureConfig", "Options", "STAGE_CONFIGS", "make_options"]


@dataclass(frozen=True, kw_only=True)
class ReadConfig:
    """How the model is opened (:func:`spectralwatch.io.sources.open_model`)."""

    start_ids: int | None
    base_model: Any = dataclasses.field(repr=False, compare=False)
    peft: Any
    split_fused: bool
    trust_pickle: bool
    revision: str | None
    max_work_ratio: float | None


@dataclass(frozen=True, kw_only=True)
class SelectConfig:
    """Which candidate layers are analysed (the geometry and the skip rules)."""

    layers: LayerFilter
    min_evals: int | None
    max_evals: int | None
    max_N: int | None
    pool: bool
    grouped_conv: str


@dataclass(frozen=True, kw_only=True)
class MatrixConfig:
    """How a weight tensor becomes matrices."""

    pool: bool
    conv2d_norm: bool
    grouped_conv: str
    inverse: bool


@dataclass(frozen=True, kw_only=True)
class SpectrumConfig:
    """How and where eigenvalues are computed."""

    svd_method: str
    tolerance: float
    device: str
    cache_dir: str | None
    cache_max_bytes: int | None


@dataclass(frozen=True, kw_only=True)
class FitConfig:
    """The fit of the tail."""

    fit: str
    xmax: Any
    fix_fingers: str | None
    xmin_max: float | None
    max_fingers: int
    finger_thresh: float
    xmin_method: str
    xmin: float | None
    xmin_range: tuple | None


@dataclass(frozen=True, kw_only=True)
class AnalysesConfig:
    """The optional per-layer analyses (random-matrix theory, vectors, fit statistics)."""

    xmin_method: str
    xmin: float | None
    xmin_range: tuple | None
    rng: Any
    mp_fit: bool
    mp_fit_method: str
    randomize: bool
    detX: bool
    vectors: bool
    bootstrap: int
    ci_level: float
    gof_samples: int
    compare_tails: bool
    farms: bool
    farms_q: float
    fit_quality: bool


@dataclass(frozen=True, kw_only=True)
class WalkConfig:
    """The walks that replace the layer-by-layer analysis (``intra``, ``stacked``)."""

    conv2d_norm: bool
    rng: Any
    intra: bool
    sparsify: bool
    stacked: bool


@dataclass(frozen=True, kw_only=True)
class SummaryConfig:
    """What the model summary averages."""

    exclude_flagged: bool


@dataclass(frozen=True, kw_only=True)
class FigureConfig:
    """The figures written by ``analyze(plot=True)``."""

    plot: bool
    savefig: str | None
    deltas: bool


#: stage name -> (attribute of :class:`Options`, configuration class)
STAGE_CONFIGS = {
    "read": ("read", ReadConfig), "select": ("select", SelectConfig), "matrices": ("matrices", MatrixConfig),
    "spectrum": ("spectrum", SpectrumConfig), "fit": ("fitting", FitConfig), "analyses": ("analyses", AnalysesConfig),
    "walk": ("walk", WalkConfig), "summary": ("summary", SummaryConfig), "figures": ("figures", FigureConfig),
}


def _config(cls, values: dict):
    return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


@dataclass(frozen=True, kw_only=True)
class Options:
    """The validated options of one analysis, as one frozen configuration per stage.

    Build it with :func:`make_options` (which validates) or :meth:`from_values` (already valid
    values, e.g. those :func:`~spectralwatch.options.validate.validate` returned). The defaults are
    the option table's: no configuration class has defaults of its own.
    """

    read: ReadConfig
    select: SelectConfig
    matrices: MatrixConfig
    spectrum: SpectrumConfig
    fitting: FitConfig
    analyses: AnalysesConfig
    walk: WalkConfig
    summary: SummaryConfig
    figures: FigureConfig
    items: tuple = dataclasses.field(default=(), repr=False, compare=False)

    @property
    def values(self) -> MappingProxyType:
        """Every option's (normalised) value, by name: a read-only mapping."""
        return MappingProxyType(dict(self.items))

    @classmethod
    def from_values(cls, values: dict) -> "Options":
        """Options from validated values (missing ones take their defaults)."""
        full = dict(_default_values())
        full.update({k: v for k, v in values.items() if k in full})
        configs = {attr: _config(kind, full) for attr, kind in STAGE_CONFIGS.values()}
        return cls(**configs, items=tuple(full.items()))

    def replace(self, **changes) -> "Options":
        """A copy with some option values changed (valid values: they are not checked again)."""
        return Options.from_values({**self.values, **changes})

    def fingerprint(self) -> dict:
        """``{option: canonical text}`` of the options that can change a row (the journal's and the
        cache's notion of "the same analysis")."""
        out = {}
        for name, value in self.values.items():
            if OPTIONS[name].results:
                out[name] = canonical(value)
        return out

    @property
    def base_model(self):
        return self.read.base_model


def canonical(value) -> str:
    """A text of an option value that is the same in every process (sets sorted, paths as given)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        inner = ", ".join(f"{f.name}={canonical(getattr(value, f.name))}" for f in dataclasses.fields(value))
        return f"{type(value).__name__}({inner})"
    if isinstance(value, (set, frozenset)):
        return "{" + ", ".join(sorted(canonical(v) for v in value)) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(canonical(v) for v in value) + "]"
    if isinstance(value, os.PathLike):
        return repr(os.fspath(value))
    return repr(value)


_DEFAULTS: list = []


def _default_values() -> dict:
    """The normalised defaults of the stage options (validated once)."""
    if not _DEFAULTS:
        values = validate("analyze", {})
        _DEFAULTS.append({k: v for k, v in values.items() if OPTIONS[k].stages and "run" not in OPTIONS[k].stages})
    return _DEFAULTS[0]


def make_options(func: str = "analyze", **values) -> Options:
    """Validate analysis option values (as keywords) into :class:`Options`.

    For internal callers and tests; the public functions validate their own keywords the same way.
    Run options (``progress``, ``workers``, ``executor``, ...) are validated and then left out.
    """
    return Options.from_values(validate("analyze", values, func=func))

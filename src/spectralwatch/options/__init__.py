"""Options: one declarative table (:mod:`.schema`), validated once at each public entry
(:mod:`.validate`), handed to each pipeline stage as its own frozen configuration (:mod:`.configs`).
"""

from .configs import (
    AnalysesConfig,
    FigureConfig,
    FitConfig,
    MatrixConfig,
    Options,
    ReadConfig,
    SelectConfig,
    SpectrumConfig,
    SummaryConfig,
    WalkConfig,
    make_options,
)
from .layer_filter import LayerFilter
from .schema import (
    DEFAULTS,
    ENTRIES,
    OPTIONS,
    WW_KEYWORDS,
    Option,
    defaults_of,
    document_options,
    keyword_values,
    numpydoc_table,
    options_of,
    suggest_keywords,
)
from .validate import bad_value, validate

__all__ = ["Options", "ReadConfig", "SelectConfig", "MatrixConfig", "SpectrumConfig", "FitConfig", "AnalysesConfig",
           "WalkConfig", "SummaryConfig", "FigureConfig", "make_options", "LayerFilter", "Option", "OPTIONS",
           "ENTRIES", "DEFAULTS", "WW_KEYWORDS", "defaults_of", "document_options", "keyword_values", "numpydoc_table", "options_of", "suggest_keywords", "validate",
           "bad_value"]

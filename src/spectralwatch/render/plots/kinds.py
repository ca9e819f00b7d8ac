"""The kinds of figure :func:`~spectralwatch.render.plots.layer.save_figures` writes, by name.

Each kind is one picture of the model (``model.{name}.png``) or one or two pictures per layer,
under WeightWatcher 0.7.7's file names (``ww.layer{id}.{file}.png``). :data:`FIGURE_KINDS` lists
them all (docs/figures.md); :data:`DEFAULT_FIGURES` is what ``save_figures`` writes when no kind
is named: the model figures and the log-log ESD with its power-law fit per layer, one figure per
layer instead of five. ``kinds='all'`` writes every figure WeightWatcher's ``plot=True`` writes
for the options the report was made with (``analyze(plot=True)`` does).
"""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import InvalidParameterError

__all__ = ["FigureKind", "FIGURE_KINDS", "DEFAULT_FIGURES", "resolve_kinds", "option_value"]


@dataclass(frozen=True)
class FigureKind:
    """One kind of figure.

    Attributes
    ----------
    name : str
        What ``kinds=`` takes (the command line's ``--figures KIND,KIND``).
    scope : {'model', 'layer'}
        One figure for the model, or per analysed layer.
    files : tuple of str
        The file name parts: ``model.{file}.{fmt}``, or WeightWatcher's ``ww.layer{id}.{file}.{fmt}``.
    shows : str
        What the figure shows, in words.
    needs : str
        The ``analyze`` option without which the figure cannot be drawn ('' when none).
    """

    name: str
    scope: str
    files: tuple
    shows: str
    needs: str = ""


#: every kind of figure, in the order they are written
FIGURE_KINDS: dict = {k.name: k for k in (
    FigureKind("alpha-by-layer", "model", ("alpha-by-layer",),
               "alpha per layer in network order, coloured by warning, with the well-trained band [2, 6] (top); "
               "alpha_weighted on its own axis (bottom)"),
    FigureKind("alpha-histogram", "model", ("alpha-histogram",),
               "the distribution of alpha over the layers, the 2 and 6 thresholds, the mean"),
    FigureKind("layer-groups", "model", ("layer-groups",),
               "alpha by kind of layer (the same role in every block), one box per group"),
    FigureKind("esd", "layer", ("esd",), "log-log ESD with the fitted power law from xmin (slope -alpha)"),
    FigureKind("esd-linear", "layer", ("esd2",), "lin-lin ESD with xmin: the bulk, and how little is tail"),
    FigureKind("esd-loglinear", "layer", ("esd3",), "histogram of log10 lambda with xmin and xmax"),
    FigureKind("ks", "layer", ("esd4",), "KS distance of every candidate xmin, the chosen minimum marked"),
    FigureKind("alpha-xmin", "layer", ("esd5",), "alpha of every candidate xmin, with the 2-6 band"),
    FigureKind("mp-fit", "layer", ("mpfit1", "mpfit2"),
               "the rescaled ESD and its Marchenko-Pastur fit (mpfit1: the quarter circle, square layers only)"),
    FigureKind("randomized", "layer", ("randesd1", "randesd2"),
               "the ESD against that of the element-wise shuffled matrix, linear and log10", needs="randomize"),
    FigureKind("detx", "layer", ("detX",), "log10 of the rescaled ESD with the detX cut and xmin"),
    FigureKind("spacings", "layer", ("deltaEs", "level-stats"),
               "the spacings of the sorted eigenvalues, and their histogram"),
)}

#: what ``save_figures`` writes by default: the model figures and the log-log ESD of each layer
DEFAULT_FIGURES = ("alpha-by-layer", "alpha-histogram", "layer-groups", "esd")

#: the kinds of ``analyze(plot=True)`` for the options that ask for them (WeightWatcher's plot=True)
_OPTION_KINDS = (("mp_fit", "mp-fit"), ("randomize", "randomized"), ("detX", "detx"), ("deltas", "spacings"))
_BY_FILE = {f: k.name for k in FIGURE_KINDS.values() for f in k.files if k.scope == "layer"}


def option_value(options, name: str, default=False):
    """The value of the option ``name`` in a report's options (``default`` when absent or no options)."""
    values = getattr(options, "values", None)
    if values is not None and name in values:
        return values[name]
    return getattr(options, name, default)


def resolve_kinds(kinds, options=None) -> list:
    """The :class:`FigureKind` s that ``kinds`` names, in :data:`FIGURE_KINDS` order.

    Parameters
    ----------
    kinds : None, 'all', str or iterable of str
        None: :data:`DEFAULT_FIGURES`. ``'all'``: the model figures, the five ESD figures and those
        of the optional analyses ``options`` ran (what WeightWatcher's ``plot=True`` writes). A
        comma-separated string or an iterable of kind names; WeightWatcher's file names (``esd2``,
        ``mpfit2``...) name their kind.
    options : Options, optional
        The report's options: ``'all'`` reads which analyses ran; a kind that needs an analysis
        the report lacks (``randomized`` without ``randomize=True``) raises.

    Raises
    ------
    InvalidParameterError
        An unknown name (the message lists the kinds), or a kind the report cannot draw.
    """
    if kinds is None:
        names = list(DEFAULT_FIGURES)
    elif isinstance(kinds, str) and kinds.strip() == "all":
        names = [k.name for k in FIGURE_KINDS.values() if k.scope == "model" or k.name in (
            "esd", "esd-linear", "esd-loglinear", "ks", "alpha-xmin")]
        names += [kind for option, kind in _OPTION_KINDS if option_value(options, option)]
    else:
        given = kinds.split(",") if isinstance(kinds, str) else list(kinds)
        names = []
        for item in given:
            text = str(item).strip()
            name = text if text in FIGURE_KINDS else _BY_FILE.get(text)
            if name is None:
                raise InvalidParameterError(
                    f"Unknown figure kind {text!r}. Figure kinds: {', '.join(FIGURE_KINDS)} (or 'all'); "
                    f"WeightWatcher's file names ({', '.join(_BY_FILE)}) are accepted too.")
            names.append(name)
    chosen = [k for k in FIGURE_KINDS.values() if k.name in set(names)]
    for kind in chosen:
        if kind.needs and options is not None and not option_value(options, kind.needs):
            raise InvalidParameterError(f"The figure kind {kind.name!r} needs the analysis "
                                        f"analyze({kind.needs}=True), which this report was not made with.")
    return chosen

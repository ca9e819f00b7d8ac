"""Exceptions raised by spectralwatch.

Every error the library raises on purpose derives from :class:`SpectralWatchError`, so callers
can catch one type. Invalid arguments are also :class:`ValueError` / :class:`TypeError`, as a
scientific-Python user expects.
"""

from __future__ import annotations

__all__ = [
    "SpectralWatchError",
    "InvalidParameterError",
    "MissingDependencyError",
    "UnknownFormatError",
    "CorruptFileError",
    "ModelFileNotFoundError",
    "UnsafeFileError",
    "NoLayersError",
    "NotYetSupportedError",
    "LayerNotFoundError",
    "NotComputedError",
    "ModelMismatchError",
    "OutputPathError",
    "BudgetExceededError",
    "SeveralModelsError",
]


class SpectralWatchError(Exception):
    """Base class of every error spectralwatch raises on purpose."""


class InvalidParameterError(SpectralWatchError, ValueError):
    """An option has a value outside its allowed set.

    The message names the parameter, the allowed values and the bad value, e.g.
    ``The 'min_evals' parameter of analyze must be an int >= 0. Got -1.``
    """


class MissingDependencyError(SpectralWatchError, ImportError):
    """An optional dependency is needed; the message says which extra installs it."""


class UnknownFormatError(SpectralWatchError, TypeError):
    """The input is not a model or file that any installed source can read."""


class CorruptFileError(SpectralWatchError, ValueError):
    """A model file exists but cannot be parsed (truncated, bad header, bad offsets...)."""


class ModelFileNotFoundError(SpectralWatchError, FileNotFoundError):
    """A model path that does not exist: ``No such file or directory: '...'``."""


class UnsafeFileError(SpectralWatchError, ValueError):
    """A file would need arbitrary (pickled) code to be executed to be read, or would make
    spectralwatch read outside the model (a link, a path with ``..``, a FIFO or a device)."""


class OutputPathError(SpectralWatchError, ValueError):
    """An output path that would destroy an input or something that is not a regular file.

    Raised before anything is written: the path is an input file, lies inside an input folder,
    or names an existing symlink, device, FIFO or socket (docs/robustness.md).
    """


class BudgetExceededError(SpectralWatchError, ValueError):
    """A file asks for far more work than its size justifies (a sparse or strided tensor densified
    into a huge matrix, one stored tensor referenced thousands of times, a header of millions of
    empty tensors). The message names the tensor and the option ``max_work_ratio`` that lifts it."""


class NoLayersError(SpectralWatchError, ValueError):
    """The model holds no layer that can be analysed with the given options."""


class NotYetSupportedError(SpectralWatchError, NotImplementedError):
    """A WeightWatcher option whose capability is not available in this version.

    Raised instead of silently ignoring the option.
    """


class LayerNotFoundError(SpectralWatchError, KeyError):
    """No layer with this id or name in the model or the report (the message says where to look)."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class NotComputedError(SpectralWatchError, KeyError):
    """A result that the analysis was not asked for, or could not compute (the message names the
    option that computes it)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class ModelMismatchError(SpectralWatchError, ValueError):
    """Two models that must have the same architecture do not (layer counts or shapes differ)."""


class SeveralModelsError(SpectralWatchError, ValueError):
    """A folder holds several separate models (not the shards of one): they are never merged.

    ``files`` lists them; the message suggests analysing one, or ``spectralwatch compare``.
    """

    def __init__(self, message: str, files=()):
        super().__init__(message)
        self.files = list(files)

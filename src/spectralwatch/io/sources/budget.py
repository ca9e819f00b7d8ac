"""Work in proportion to the bytes of a file: a small file cannot make spectralwatch do a huge amount of work.

A few hundred bytes can describe a huge amount of work: a sparse (COO) or strided torch tensor of 2 KB that
is densified into a 600-million-entry matrix, one stored tensor referenced by thousands of names (duplicate
``.npz`` members, ONNX initializers sharing one external block, legacy ``.h5`` weight names, HDF5 hard
links), a GGUF or safetensors header of millions of empty tensors. Each file reader therefore counts, once
the file's header is read and before any tensor is decoded,

* the *work*: :data:`BYTES_PER_VALUE` bytes for every value a tensor decodes to (each reference of an
  aliased tensor counts again), :data:`ENTRY_COST` bytes of bookkeeping for every tensor listed, and what
  parsing a text header costs (:data:`HEADER_COST` bytes per header byte);
* the *stored bytes*: the bytes of tensor data in the file(s), each stored block counted once (a header
  earns nothing);

and decides at two levels (:class:`~spectralwatch.errors.BudgetExceededError`, naming the tensor and the
option that lifts the limit):

* a tensor whose own decoded values exceed ``max_work_ratio`` times its own stored bytes plus
  :data:`TENSOR_SLACK` (a sparse or strided tensor, a dataset that claims far more than it stores) is
  refused alone: its layer gets a failed row with the reason, the other layers are analysed, and it does
  not count in the file's total;
* the file is refused as a whole when the rest of its work exceeds

  .. math:: \\text{max\\_work\\_ratio} \\times \\text{stored bytes} + \\text{SLACK}

  (one stored block referenced by many tensors, a header of many empty tensors): these cannot be pinned on
  one layer.

The default ratio (:data:`DEFAULT_MAX_WORK_RATIO`, 64) leaves room for every real format: the most
compact quantisation GGUF knows (about 1.5 bits a value) decodes to 21 times its size, a bfloat16 tensor
to 2 times, tied embeddings to 2 or 4 times; :data:`SLACK` (64 MiB of work) lets small files list many
small tensors. ``max_work_ratio=None`` (or 0) lifts the limit for files you trust.
"""

from __future__ import annotations

import math
import numbers

from ...errors import BudgetExceededError, InvalidParameterError
from ...options import OPTIONS

__all__ = ["Budget", "check_work_ratio", "refused_tensor", "DEFAULT_MAX_WORK_RATIO", "SLACK", "TENSOR_SLACK",
           "ENTRY_COST", "BYTES_PER_VALUE", "HEADER_COST", "OPTION_HINT"]

#: default of the ``max_work_ratio`` option
DEFAULT_MAX_WORK_RATIO = OPTIONS["max_work_ratio"].default  # the option table's default
#: work always allowed, whatever the file's size (bytes)
SLACK = 64 << 20
#: decoded bytes always allowed to one tensor, whatever it stores
TENSOR_SLACK = 1 << 20
#: bookkeeping counted per tensor listed (its record, its row): measured about 1 KiB, counted 4 KiB
ENTRY_COST = 4096
#: bytes counted per decoded value (float32)
BYTES_PER_VALUE = 4
#: bytes counted per byte of a JSON header parsed into Python objects (measured: about 26)
HEADER_COST = 32
#: how to lift the limit, for the messages
OPTION_HINT = ("if you trust the file, lift the limit with max_work_ratio=None (command line: "
               "--max-work-ratio 0) or raise it (max_work_ratio=1000)")


def check_work_ratio(value, func: str = "analyze"):
    """Validate ``max_work_ratio``: None or 0 (no limit), else a positive finite number; returns float or None.

    (Validation in this module until the options schema holds the option.)
    """
    if value is None:
        return None
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value) and value >= 0
    if not ok:
        raise InvalidParameterError(f"The 'max_work_ratio' parameter of {func} must be None, 0 (no limit) or a "
                                    f"positive number. Got {value!r}.")
    return float(value) if value > 0 else None


def _size(n: float) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if n >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} bytes"


class Budget:
    """The work a file asks for, counted tensor by tensor, against what its stored bytes allow.

    ``ratio`` None: nothing is ever refused (the counting is skipped).
    """

    def __init__(self, path: str, fmt: str, ratio):
        self.path, self.fmt = path, fmt
        self.ratio = check_work_ratio(ratio)
        self.work = 0
        self.stored = 0
        self._blocks: set = set()
        self._refs: dict = {}  # block -> [first tensor referencing it, number of references]
        self.worst = ("", 0, "")  # (tensor, its work, what it is)

    @property
    def enabled(self) -> bool:
        return self.ratio is not None

    def allowance(self) -> float:
        return math.inf if self.ratio is None else self.ratio * self.stored + SLACK

    def store(self, block, nbytes: int) -> None:
        """Count ``nbytes`` of stored tensor data once per distinct ``block`` (an offset, a storage id...)."""
        if block not in self._blocks:
            self._blocks.add(block)
            self.stored += max(0, int(nbytes))

    def add(self, name: str, values: int = 0, *, entries: int = 1, note: str = "", block=None,
            own_stored=None) -> str:
        """Count one tensor: its decoded values and its bookkeeping (``block``: the stored data it reads, to
        name a block that many tensors share).

        With ``own_stored`` (the bytes this tensor alone stores), a tensor asking for more than the ratio
        allows on its own is refused alone: the reason is returned (for its layer's failed row) and only its
        bookkeeping is counted. Returns '' otherwise.
        """
        decoded = BYTES_PER_VALUE * max(0, int(values))
        if (self.ratio is not None and own_stored is not None
                and decoded > self.ratio * max(0, int(own_stored)) + TENSOR_SLACK):
            self.work += ENTRY_COST * entries
            return (f"tensor '{str(name)[:200]}' of the {self.fmt} '{self.path}'{f' ({note})' if note else ''} "
                    f"decodes to {_size(decoded)} from {_size(own_stored)} stored, more than {self.ratio:g} times "
                    f"that plus {_size(TENSOR_SLACK)}: refused before reading it; {OPTION_HINT}")
        cost = decoded + ENTRY_COST * entries
        self.work += cost
        if block is not None:
            ref = self._refs.setdefault(block, [str(name), 0])
            ref[1] += 1
        return ""
        if cost > self.worst[1]:
            self.worst = (str(name), cost, note)

    def header(self, nbytes: int, what: str = "the header") -> None:
        """Count parsing a text header of ``nbytes`` bytes (checked at once: before it is parsed)."""
        self.work += HEADER_COST * max(0, int(nbytes))
        if self.ratio is not None and self.work > self.allowance():
            raise BudgetExceededError(
                f"The {self.fmt} '{self.path}' has {what} of {_size(nbytes)} for {_size(self.stored)} of tensor data: "
                f"parsing it would take about {_size(self.work)} of memory, more than {self.ratio:g} times the "
                f"data plus {_size(SLACK)}; refused before parsing it (a damaged or hostile file); {OPTION_HINT}.")

    def entries_upfront(self, count: int, stored_at_most: int, what: str = "tensors") -> None:
        """Refuse a header announcing ``count`` tensors before they are parsed, when even the most the file
        could store (``stored_at_most`` bytes) would not pay for their bookkeeping."""
        if self.ratio is None:
            return
        if ENTRY_COST * count > self.ratio * max(0, stored_at_most) + SLACK:
            raise BudgetExceededError(
                f"The {self.fmt} '{self.path}' announces {count} {what} but has at most {_size(stored_at_most)} "
                f"left for their data: listing them would take more than {self.ratio:g} times that plus "
                f"{_size(SLACK)}; refused before parsing them (a damaged or hostile file); {OPTION_HINT}.")

    def check(self) -> None:
        """:class:`BudgetExceededError` when the work counted exceeds the allowance (names the worst tensor)."""
        if self.ratio is None or self.work <= self.allowance():
            return
        name, cost, note = self.worst
        worst = (f"; tensor '{name[:200]}'{f' ({note})' if note else ''} alone asks for {_size(cost)}"
                 if name else "")
        shared = max(self._refs.values(), key=lambda r: r[1], default=None)
        if shared is not None and shared[1] > 1 and shared[1] * ENTRY_COST * 4 > cost:
            worst = f"; the data of tensor '{shared[0][:200]}' is referenced by {shared[1]} tensors"
        raise BudgetExceededError(
            f"The {self.fmt} '{self.path}' asks for {_size(self.work)} of work from {_size(self.stored)} of stored "
            f"tensor data, more than {self.ratio:g} times it plus {_size(SLACK)}{worst}. A sparse or strided "
            f"tensor densified, one stored tensor referenced many times, or a header of many empty tensors: "
            f"refused before reading it; {OPTION_HINT}.")


def refused_tensor(reason: str):
    """The loader of a tensor refused by the budget: raises :class:`BudgetExceededError` with ``reason``
    (picklable: a worker process raises it too)."""
    raise BudgetExceededError(reason[:1].upper() + reason[1:] + ".")

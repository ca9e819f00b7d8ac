"""``layers=[...]``: which layers to keep, parsed once into a frozen :class:`LayerFilter`."""

from __future__ import annotations

import numbers
from dataclasses import dataclass

from .constraints import Rejected
from .vocabulary import ANALYSABLE_TYPES

__all__ = ["LayerFilter"]


@dataclass(frozen=True)
class LayerFilter:
    """Which layers to keep (WeightWatcher's ``layers=[...]``), combined with AND.

    ``ids``: keep these ids; ``exclude_ids``: drop these (given as negative ids);
    ``types``: keep these layer types; ``names`` / ``exclude_names`` match the short name or the
    long name (names to drop are given with a leading ``'-'``).
    """

    ids: frozenset = frozenset()
    exclude_ids: frozenset = frozenset()
    types: frozenset = frozenset()
    names: frozenset = frozenset()
    exclude_names: frozenset = frozenset()

    @classmethod
    def parse(cls, layers) -> "LayerFilter":
        """``layers`` as given to ``analyze``: None, an int, a str, or a list of ints and strs.

        Raises :class:`~spectralwatch.options.constraints.Rejected` (with what is allowed) for
        anything else.
        """
        if layers is None:
            return cls()
        if isinstance(layers, LayerFilter):
            return layers
        if isinstance(layers, (str, numbers.Integral)):
            layers = [layers]
        try:
            items = list(layers)
        except TypeError:
            raise Rejected("a list of layer ids, layer type names or layer names") from None
        ints = [int(x) for x in items if isinstance(x, numbers.Integral) and not isinstance(x, bool)]
        strs = [x for x in items if isinstance(x, str)]
        if len(ints) + len(strs) != len(items):
            raise Rejected("a list of ints (ids) and strs (types or names)")
        if any(i < 0 for i in ints) and any(i >= 0 for i in ints):
            raise Rejected("either ids to keep (>= 0) or ids to exclude (< 0), not both")
        types = {s for s in strs if s in ANALYSABLE_TYPES}
        names = [s for s in strs if s not in types]
        drop = [s[1:] for s in names if s.startswith("-")]
        keep = [s for s in names if not s.startswith("-")]
        if drop and keep:
            raise Rejected("either names to keep or names to exclude ('-name'), not both")
        return cls(ids=frozenset(i for i in ints if i >= 0), exclude_ids=frozenset(-i for i in ints if i < 0),
                   types=frozenset(types), names=frozenset(keep), exclude_names=frozenset(drop))

    @staticmethod
    def parse_cli(text: str) -> list:
        """The command line's ``--layers 1,2,-3`` / ``dense,-fc1`` as a list for :meth:`parse`."""
        items = []
        for tok in text.split(","):
            tok = tok.strip()
            if tok:
                items.append(int(tok) if tok.lstrip("-").isdigit() else tok)
        return items

    def keeps(self, layer_id: int, name: str, longname: str, layer_type: str) -> bool:
        if self.ids and layer_id not in self.ids:
            return False
        if layer_id in self.exclude_ids:
            return False
        if self.types and layer_type not in self.types:
            return False
        if self.names and name not in self.names and longname not in self.names:
            return False
        if name in self.exclude_names or longname in self.exclude_names:
            return False
        return True

    @property
    def is_all(self) -> bool:
        """True when the filter keeps every layer."""
        return not (self.ids or self.exclude_ids or self.types or self.names or self.exclude_names)

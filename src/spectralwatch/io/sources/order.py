"""Network order: the order of the layers in the network, recovered from names stored alphabetically.

Several formats store their tensors sorted by name (safetensors files, the ``weight_map`` of a
Hugging Face index, many GGUF files converted from them, ``.npz`` archives written from a sorted
dict), so that ``layers.10`` comes right after ``layers.1`` and ``h.2`` after ``h.19``. A model
with ten blocks or more is then listed out of order, and every figure or comparison "by depth"
is wrong.

:func:`network_order` puts such a list back in network order with the smallest change that is
justified by the names alone:

* names are split into components at ``.`` and ``/``; components with the same path prefix
  (siblings) are kept together, in the order the first of them appears;
* numbered siblings with the same text before their first number (``0``, ``1``, ``10``, ``2``;
  ``Dense_2``, ``Dense_10``; ``block2a``, ``block2b``, ``block10a``) are sorted by their numbers,
  in the places that these siblings occupy;
* everything else keeps its stored order (the file records no more: within a transformer block
  stored alphabetically, ``mlp`` stays before ``self_attn``).

A list already in network order (a ``state_dict()`` of a torch module: a depth-first walk whose
numbered children come in ascending order) is returned unchanged.

Which sources use it, and for what (docs/formats.md, "Layer order"): a single safetensors, GGUF
or ``.npz`` file, which WeightWatcher 0.7.7 does not read, is *numbered* in network order; a
state dict, a torch file and a folder of weight files, which the reference numbers in their stored
order, keep the reference's ids and are only *listed* in network order.
"""

from __future__ import annotations

import re
from typing import Sequence

__all__ = ["network_order", "network_ranks", "natural_key"]

_SPLIT = re.compile(r"[./]")
_DIGITS = re.compile(r"\d+")


def natural_key(text: str) -> tuple:
    """Sort key of a name by its numbers first: ``'h2' < 'h10'``, ``'01'`` and ``'1'`` kept apart.

    Numbers are compared by their digits (length without leading zeros, then the digits), never
    converted to int: a name may hold a number of any length.
    """
    digits = (d.lstrip("0") for d in _DIGITS.findall(text))
    return tuple((len(d), d) for d in digits), text


class _Node:
    __slots__ = ("children", "ends")

    def __init__(self):
        self.children: dict[str, _Node] = {}  # insertion order = order of first appearance
        self.ends: list[int] = []  # indices of the names that end at this node


def _ordered_children(node: _Node) -> list:
    keys = list(node.children)
    groups: dict[str, list[int]] = {}
    for slot, key in enumerate(keys):
        first = _DIGITS.search(key)
        if first:  # grouped by the text before the first number: 'block2a', 'block10a', 'block2b'
            groups.setdefault(key[:first.start()], []).append(slot)
    for slots in groups.values():
        if len(slots) > 1:
            members = sorted((keys[s] for s in slots), key=natural_key)
            for s, key in zip(slots, members):
                keys[s] = key
    return [node.children[key] for key in keys]


def _walk(root: _Node) -> list[int]:
    """Pre-order walk (a stack, not recursion: a name may have thousands of components)."""
    out: list[int] = []
    stack = [root]
    while stack:
        node = stack.pop()
        out.extend(node.ends)
        stack.extend(reversed(_ordered_children(node)))
    return out


def network_order(names: Sequence[str]) -> list[int]:
    """The indices of ``names`` in network order (a permutation of ``range(len(names))``).

    Parameters
    ----------
    names : sequence of str
        Tensor or layer names in their stored order, e.g. ``model.layers.10.mlp.up_proj.weight``.

    Returns
    -------
    list of int
        ``order`` such that ``[names[i] for i in order]`` is the network order (see the module
        docstring). Equal names keep their relative order.

    Examples
    --------
    >>> names = ["h.0.w", "h.1.w", "h.10.w", "h.2.w", "wte"]
    >>> [names[i] for i in network_order(names)]
    ['h.0.w', 'h.1.w', 'h.2.w', 'h.10.w', 'wte']
    """
    root = _Node()
    for i, name in enumerate(names):
        node = root
        for part in _SPLIT.split(str(name)):
            child = node.children.get(part)
            if child is None:
                child = node.children[part] = _Node()
            node = child
        node.ends.append(i)
    return _walk(root)


def network_ranks(names: Sequence[str]) -> list[int]:
    """``rank[i]``: the place of ``names[i]`` in network order (the inverse of :func:`network_order`)."""
    ranks = [0] * len(names)
    for place, i in enumerate(network_order(names)):
        ranks[i] = place
    return ranks

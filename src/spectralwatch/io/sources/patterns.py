"""Regular expressions read from files, matched in linear time (never catastrophic backtracking).

PEFT's ``adapter_config.json`` maps module names to per-module ranks and alphas (``rank_pattern``,
``alpha_pattern``); PEFT matches each key as a regular expression, ``re.match(rf"(.*\\.)?({key})$", name)``,
first matching key in the file's order (``peft.utils.other.get_pattern_key``, peft 0.13 to 0.21). Handed to
Python's backtracking ``re``, a key such as ``(a+)+$`` takes exponential time on a long module name: a
config file could hang the analysis.

:func:`pattern_match` gives PEFT's answer without backtracking: the key is parsed by Python's own regular
expression parser (so it means exactly what it means to PEFT), compiled to a Thompson NFA and simulated
state set by state set, in time ``O(len(name) x states)``. Literals, ``.``, character classes and their
categories (``\\d``, ``\\w``, ``\\s``), alternation, groups, the greedy, lazy and possessive quantifiers
(equivalent for a yes/no match) and the anchors ``^ $ \\A \\Z \\b \\B`` are supported. A key using anything
else (back-references, look-around, conditionals, inline flags), one whose NFA would exceed
:data:`MAX_STATES` states, or one longer than :data:`MAX_PATTERN` characters, is matched literally
(equal to the name or to a dotted suffix of it), which is what such a key means for an ordinary module
name. Names longer than :data:`MAX_NAME` characters match no pattern (real module names are < 300).
"""

from __future__ import annotations

import functools

try:  # Python 3.11+
    from re import _constants as _c, _parser as _p  # noqa: N813 - the stdlib's own regular expression parser
except ImportError:  # pragma: no cover - Python < 3.11
    import sre_constants as _c
    import sre_parse as _p

__all__ = ["pattern_match", "peft_pattern_key", "MAX_STATES", "MAX_PATTERN", "MAX_NAME"]

#: the largest NFA a key may compile to
MAX_STATES = 5000
#: keys longer than this are matched literally
MAX_PATTERN = 1000
#: names longer than this match no pattern
MAX_NAME = 10_000


class _Unsupported(Exception):
    pass


class _NFA:
    """States: ``('char', predicate, next)``, ``('split', [next...])``, ``('assert', kind, next)``, ``('match',)``."""

    def __init__(self):
        self.states: list = []

    def add(self, state) -> int:
        if len(self.states) >= MAX_STATES:
            raise _Unsupported("too many states")
        self.states.append(state)
        return len(self.states) - 1


def _category(code):
    cats = {_c.CATEGORY_DIGIT: str.isdigit, _c.CATEGORY_WORD: lambda ch: ch.isalnum() or ch == "_",
            _c.CATEGORY_SPACE: str.isspace}
    negs = {_c.CATEGORY_NOT_DIGIT: _c.CATEGORY_DIGIT, _c.CATEGORY_NOT_WORD: _c.CATEGORY_WORD,
            _c.CATEGORY_NOT_SPACE: _c.CATEGORY_SPACE}
    if code in cats:
        return cats[code]
    if code in negs:
        test = cats[negs[code]]
        return lambda ch: not test(ch)
    raise _Unsupported(f"category {code}")


def _class(items):
    negate = False
    tests = []
    for op, av in items:
        if op is _c.NEGATE:
            negate = True
        elif op is _c.LITERAL:
            tests.append(lambda ch, c=chr(av): ch == c)
        elif op is _c.RANGE:
            tests.append(lambda ch, lo=av[0], hi=av[1]: lo <= ord(ch) <= hi)
        elif op is _c.CATEGORY:
            tests.append(_category(av))
        else:
            raise _Unsupported(f"class item {op}")
    return lambda ch: any(t(ch) for t in tests) != negate


def _build(nfa: _NFA, items, nxt: int) -> int:
    """States matching the sequence ``items`` then continuing at ``nxt``; returns the entry state."""
    for op, av in reversed(list(items)):
        nxt = _one(nfa, op, av, nxt)
    return nxt


def _one(nfa: _NFA, op, av, nxt: int) -> int:
    if op is _c.LITERAL:
        return nfa.add(("char", lambda ch, c=chr(av): ch == c, nxt))
    if op is _c.NOT_LITERAL:
        return nfa.add(("char", lambda ch, c=chr(av): ch != c, nxt))
    if op is _c.ANY:
        return nfa.add(("char", lambda ch: ch != "\n", nxt))
    if op is _c.IN:
        return nfa.add(("char", _class(av), nxt))
    if op is _c.BRANCH:
        return nfa.add(("split", [_build(nfa, alt, nxt) for alt in av[1]]))
    if op is _c.SUBPATTERN:
        group, add_flags, del_flags, sub = av
        if add_flags or del_flags:
            raise _Unsupported("inline flags")
        return _build(nfa, sub, nxt)
    if op in (_c.MAX_REPEAT, _c.MIN_REPEAT) or op is getattr(_c, "POSSESSIVE_REPEAT", None):
        lo, hi, sub = av
        if hi is _c.MAXREPEAT or hi == _c.MAXREPEAT:
            # a loop: entry -> (sub -> entry) | nxt
            split = nfa.add(("split", []))
            body = _build(nfa, sub, split)
            nfa.states[split] = ("split", [body, nxt])
            tail = split
        else:
            if hi - lo > MAX_STATES:
                raise _Unsupported("repeat count")
            tail = nxt
            for _ in range(hi - lo):  # optional copies: x{0,2} = (x(x)?)?
                body = _build(nfa, sub, tail)
                tail = nfa.add(("split", [body, nxt]))
        if lo > MAX_STATES:
            raise _Unsupported("repeat count")
        for _ in range(lo):  # required copies
            tail = _build(nfa, sub, tail)
        return tail
    if op is getattr(_c, "ATOMIC_GROUP", None):
        return _build(nfa, av, nxt)  # the same strings match (only the backtracking differs)
    if op is _c.AT:
        kinds = {_c.AT_BEGINNING: "begin", _c.AT_BEGINNING_STRING: "begin", _c.AT_END: "end",
                 _c.AT_END_STRING: "end_string", _c.AT_BOUNDARY: "boundary", _c.AT_NON_BOUNDARY: "non_boundary"}
        if av not in kinds:
            raise _Unsupported(f"anchor {av}")
        return nfa.add(("assert", kinds[av], nxt))
    raise _Unsupported(f"{op}")


def _word(ch: str) -> bool:
    return ch.isalnum() or ch == "_"


def _holds(kind: str, text: str, pos: int) -> bool:
    if kind == "begin":
        return pos == 0
    if kind == "end":
        return pos == len(text) or (pos == len(text) - 1 and text[-1] == "\n")
    if kind == "end_string":
        return pos == len(text)
    before = pos > 0 and _word(text[pos - 1])
    after = pos < len(text) and _word(text[pos])
    return (before != after) == (kind == "boundary")


@functools.lru_cache(maxsize=256)
def _compile(pattern: str):
    """``(states, start)`` of ``pattern``, or None when it must be matched literally."""
    if len(pattern) > MAX_PATTERN:
        return None
    try:
        parsed = _p.parse(pattern, 0)
    except Exception:  # noqa: BLE001 - re.error and friends: not a regular expression
        return None
    flags = parsed.state.flags & ~(getattr(_c, "SRE_FLAG_UNICODE", 32))
    if flags:
        return None
    nfa = _NFA()
    match = nfa.add(("match",))
    try:
        start = _build(nfa, parsed, match)
    except (_Unsupported, RecursionError, TypeError, ValueError):
        return None
    return tuple(nfa.states), start


def _closure(states, ids, text: str, pos: int) -> set:
    out, stack = set(), list(ids)
    while stack:
        s = stack.pop()
        if s in out:
            continue
        out.add(s)
        state = states[s]
        if state[0] == "split":
            stack.extend(state[1])
        elif state[0] == "assert" and _holds(state[1], text, pos):
            stack.append(state[2])
    return out


def _simulate(compiled, text: str) -> bool:
    """``re.match(pattern, text)`` is not None, without backtracking."""
    states, start = compiled
    current = _closure(states, [start], text, 0)
    for pos, ch in enumerate(text):
        if any(states[s][0] == "match" for s in current):
            return True
        nxt = [states[s][2] for s in current if states[s][0] == "char" and states[s][1](ch)]
        if not nxt:
            return False
        current = _closure(states, nxt, text, pos + 1)
    return any(states[s][0] == "match" for s in current)


def pattern_match(key: str, name: str) -> bool:
    """PEFT's test of one ``rank_pattern`` / ``alpha_pattern`` key against a module name, in linear time.

    Equivalent to ``re.match(rf"(.*\\.)?({key})$", name) is not None`` for every key Python's ``re`` can
    compile and this module supports (see the module docstring); other keys match literally.
    """
    key, name = str(key), str(name)
    if len(name) > MAX_NAME:
        return False
    compiled = _compile(f"(.*\\.)?({key})$")
    if compiled is None:
        return name == key or name.endswith("." + key)
    return _simulate(compiled, name)


def peft_pattern_key(keys, name: str):
    """The first of ``keys`` that matches ``name`` (PEFT's ``get_pattern_key``), or None."""
    for key in keys:
        if pattern_match(key, name):
            return key
    return None

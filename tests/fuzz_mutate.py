"""Deterministic mutants of model files: truncations, bit flips, byte edits, and helpers to corrupt a
file's structure (a zip member, a pickle's integers and names, a JSON header) while keeping the rest
of it valid, so that the readers' deeper checks are reached.

A model is a dict ``{relative path: bytes}``; a :class:`Mutant` is a label and the files it replaces
(``None`` removes a file). Everything is drawn from a ``random.Random`` seeded by the caller, and no
mutant depends on anything but the base files and the seed.
"""

from __future__ import annotations

import io
import pickletools
import random
import struct
import warnings
import zipfile
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

__all__ = ["Mutant", "FuzzFormat", "matrix", "truncations", "random_mutants", "build_zip", "zip_members",
           "zip_field_mutants", "pickle_mutants", "pickle_ops", "INTERESTING_INTS"]

#: integers that break size, count and offset fields in interesting ways
INTERESTING_INTS = (0, 1, -1, 7, 255, 256, 65535, 2 ** 31 - 1, 2 ** 31, 2 ** 32 + 16, 10 ** 6, 10 ** 12,
                    2 ** 62, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1, -(2 ** 31), -(2 ** 63))
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class Mutant:
    """One corrupted model: ``files`` replace (or, when ``None``, remove) the base model's files."""

    label: str
    files: dict = field(default_factory=dict)


@dataclass(frozen=True)
class FuzzFormat:
    """A file format, its valid model and its structured corruptions (see fuzz_formats.py)."""

    name: str
    build: Callable[[], dict]                     # {relative path: bytes}
    target: str                                   # path given to analyze ('' = the folder itself)
    headers: Callable[[dict], dict]               # {relative path: header size in bytes}
    semantic: Callable[[dict, random.Random], list] = lambda files, rng: []
    calls: tuple = (("analyze", {}), ("describe", {}))
    requires: tuple = ()                          # modules the format needs
    weights: dict = field(default_factory=dict)   # relative path -> how often random mutants pick it
    aux: Callable[[], dict] | None = None         # never-mutated files beside the cases ({aux} in calls)


def matrix(seed: int, *shape) -> np.ndarray:
    """A float32 Gaussian matrix, the same on every run."""
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# --------------------------------------------------------------------------------------------
# byte-level mutants of one file
# --------------------------------------------------------------------------------------------

def truncations(name: str, data: bytes, header: int) -> list[Mutant]:
    """The file cut at 0, 1, the header's end (and one byte before), the middle and one byte short."""
    cuts = sorted({0, 1, max(0, header - 1), header, len(data) // 2, max(0, len(data) - 1)})
    return [Mutant(f"truncate {name} to {n} of {len(data)} bytes", {name: data[:n]}) for n in cuts if n < len(data)]


def _flip(data: bytes, rng: random.Random, lo: int, hi: int, count: int) -> tuple[bytes, str]:
    out = bytearray(data)
    where = []
    for _ in range(count):
        pos = rng.randrange(lo, hi)
        bit = rng.randrange(8)
        out[pos] ^= 1 << bit
        where.append(f"{pos}.{bit}")
    return bytes(out), ",".join(where)


def _one_random(name: str, data: bytes, header: int, rng: random.Random) -> Mutant:
    n = len(data)
    head = max(1, min(header, n))
    kind = rng.choice(("flip-header", "flip-header", "flip-body", "bytes-header", "bytes-body", "truncate",
                       "delete", "insert", "zero-run"))
    if n == 0:
        return Mutant(f"{name}: append garbage", {name: bytes(rng.randrange(256) for _ in range(16))})
    if kind == "flip-header":
        out, where = _flip(data, rng, 0, head, rng.choice((1, 1, 2, 3)))
        return Mutant(f"{name}: flip header bits {where}", {name: out})
    if kind == "flip-body":
        out, where = _flip(data, rng, 0, n, rng.choice((1, 2, 4, 8)))
        return Mutant(f"{name}: flip bits {where}", {name: out})
    if kind in ("bytes-header", "bytes-body"):
        pos = rng.randrange(0, head if kind == "bytes-header" else n)
        width = rng.choice((1, 2, 4, 8))
        value = rng.choice((b"\x00", b"\xff", b"\x7f", b"\x80", bytes([rng.randrange(256)])))
        out = bytearray(data)
        out[pos:pos + width] = value * width
        return Mutant(f"{name}: {width} byte(s) at {pos} set to {value.hex()}", {name: bytes(out[:n])})
    if kind == "truncate":
        cut = rng.randrange(0, n)
        return Mutant(f"truncate {name} to {cut} of {n} bytes", {name: data[:cut]})
    if kind == "delete":
        pos = rng.randrange(0, n)
        width = rng.randrange(1, min(64, n - pos) + 1)
        return Mutant(f"{name}: delete {width} byte(s) at {pos}", {name: data[:pos] + data[pos + width:]})
    if kind == "insert":
        pos = rng.randrange(0, n + 1)
        blob = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 33)))
        return Mutant(f"{name}: insert {len(blob)} byte(s) at {pos}", {name: data[:pos] + blob + data[pos:]})
    pos = rng.randrange(0, n)
    width = rng.randrange(1, min(256, n - pos) + 1)
    return Mutant(f"{name}: zero {width} byte(s) at {pos}", {name: data[:pos] + bytes(width) + data[pos + width:]})


def random_mutants(files: dict, headers: dict, rng: random.Random, count: int, weights: dict | None = None
                   ) -> list[Mutant]:
    """``count`` byte-level mutants, each of one file chosen by ``weights`` (default: uniform)."""
    names = sorted(files)
    w = [(weights or {}).get(n, 1.0) for n in names]
    out = []
    for _ in range(count):
        name = rng.choices(names, weights=w)[0]
        out.append(_one_random(name, files[name], headers.get(name, 64), rng))
    return out


# --------------------------------------------------------------------------------------------
# zip archives (npz, torch, .keras)
# --------------------------------------------------------------------------------------------

def zip_members(data: bytes) -> list[tuple[str, bytes, int]]:
    """``(name, content, compress_type)`` of every member, in order."""
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return [(i.filename, zf.read(i.filename), i.compress_type) for i in zf.infolist()]


def build_zip(members: list[tuple[str, bytes, int]]) -> bytes:
    """A zip archive of ``(name, content, compress_type)`` with fixed dates (the same bytes every run)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a duplicated name is one of the corruptions
        for name, content, compress in members:
            info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
            info.compress_type = compress
            info.external_attr = 0o644 << 16
            zf.writestr(info, content)
    return buf.getvalue()


def zip_header_offsets(data: bytes) -> list[tuple[str, int]]:
    """``(kind, offset)`` of the zip structures: local headers, central directory entries, the end record."""
    out = []
    for sig, kind in ((b"PK\x03\x04", "local"), (b"PK\x01\x02", "central"), (b"PK\x05\x06", "end")):
        pos = data.find(sig)
        while pos >= 0:
            out.append((kind, pos))
            pos = data.find(sig, pos + 1)
    return sorted(out, key=lambda kv: kv[1])


def zip_field_mutants(name: str, data: bytes, rng: random.Random, count: int) -> list[Mutant]:
    """Integer fields of the zip structures (sizes, offsets, counts, methods) set to odd values."""
    fields = {"local": [(8, "<H"), (14, "<I"), (18, "<I"), (22, "<I"), (26, "<H"), (28, "<H")],
              "central": [(10, "<H"), (16, "<I"), (20, "<I"), (24, "<I"), (28, "<H"), (30, "<H"), (42, "<I")],
              "end": [(8, "<H"), (10, "<H"), (12, "<I"), (16, "<I"), (20, "<H")]}
    spots = zip_header_offsets(data)
    out = []
    for _ in range(count):
        kind, base = rng.choice(spots)
        off, fmt = rng.choice(fields[kind])
        size = struct.calcsize(fmt)
        if base + off + size > len(data):
            continue
        value = rng.choice((0, 1, 8, 99, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(1 << (8 * size))))
        value &= (1 << (8 * size)) - 1
        patched = bytearray(data)
        struct.pack_into(fmt, patched, base + off, value)
        out.append(Mutant(f"{name}: zip {kind} field +{off} at {base} set to {value}", {name: bytes(patched)}))
    return out


# --------------------------------------------------------------------------------------------
# pickles (torch checkpoints): same structure, other integers / names
# --------------------------------------------------------------------------------------------

def pickle_ops(data: bytes, start: int = 0) -> list[tuple[str, object, int, int]]:
    """``(opcode name, argument, start, end)`` of each op of the pickle starting at ``start``."""
    ops = list(pickletools.genops(io.BytesIO(data[start:])))
    out = []
    for k, (op, arg, pos) in enumerate(ops):
        end = ops[k + 1][2] if k + 1 < len(ops) else pos + 1
        out.append((op.name, arg, start + pos, start + end))
    return out


def _encode_int(value: int) -> bytes:
    if 0 <= value < 256:
        return b"K" + bytes([value])
    if 0 <= value < 65536:
        return b"M" + struct.pack("<H", value)
    if -(2 ** 31) <= value < 2 ** 31:
        return b"J" + struct.pack("<i", value)
    raw = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(raw)]) + raw


def _encode_text(text: str) -> bytes:
    raw = text.encode("utf-8")
    return b"X" + struct.pack("<I", len(raw)) + raw


#: replacement names: other storage types, globals a weights-only loader must refuse, odd keys
PICKLE_TEXTS = ("", "0", "1", "99", "../x", "cpu", "cuda:0", "meta", "a.weight", "x" * 300)
PICKLE_GLOBALS = ("torch HalfStorage", "torch ByteStorage", "torch BFloat16Storage", "torch LongStorage",
                  "torch._utils _rebuild_parameter", "torch._utils _rebuild_qtensor", "collections OrderedDict",
                  "builtins eval", "os system", "torch Tensor", "nosuchmodule Thing")


def pickle_mutants(data: bytes, rng: random.Random, count: int, start: int = 0, end: int | None = None
                   ) -> list[tuple[str, bytes]]:
    """``(label, new pickle bytes)``: one integer, text or global of the pickle in ``data[start:end]`` replaced."""
    end = len(data) if end is None else end
    ops = [op for op in pickle_ops(data[:end], start)]
    ints = [op for op in ops if op[0] in ("BININT", "BININT1", "BININT2", "LONG1")]
    texts = [op for op in ops if op[0] in ("BINUNICODE", "SHORT_BINUNICODE")]
    globals_ = [op for op in ops if op[0] == "GLOBAL"]
    pools = [pool for pool in (ints, ints, ints, texts, globals_) if pool]
    out = []
    for _ in range(count if pools else 0):
        name, arg, a, b = rng.choice(rng.choice(pools))
        if name in ("BININT", "BININT1", "BININT2", "LONG1"):
            value = rng.choice(INTERESTING_INTS + (rng.randrange(-5, 70000),))
            new, what = _encode_int(value), f"int {arg} -> {value}"
        elif name == "GLOBAL":
            text = rng.choice(PICKLE_GLOBALS)
            new, what = b"c" + text.replace(" ", "\n").encode() + b"\n", f"global {arg!r} -> {text!r}"
        else:
            text = rng.choice(PICKLE_TEXTS)
            new, what = _encode_text(text), f"text {arg!r} -> {text[:20]!r}"
        out.append((f"pickle op at {a}: {what}", data[:a] + new + data[b:]))
    return out

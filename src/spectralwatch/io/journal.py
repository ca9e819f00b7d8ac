"""Results that survive a failing run: a journal of finished layers, and files that appear whole.

``spectralwatch analyze PATH --out FILE`` keeps a *journal* ``FILE.partial.jsonl`` beside FILE
while it runs (docs/cli.md). It is JSON lines, appended to and flushed as each layer finishes, so
a run that is killed, runs out of memory or fills the disk keeps every finished layer:

* line 1, the header: ``{"journal": "spectralwatch-layers", "version": 1, "spectralwatch": "0.x",
  "models": [fingerprint, ...], "options": {name: text, ...}}``. A model's fingerprint is its
  resolved path, its number of files and bytes, and a digest of each file's name, size,
  modification time and first and last 64 KiB (cheap for a large checkpoint, and it tells a
  rewritten file apart). The options are those of :class:`~spectralwatch.options.Options` that can
  change a row (not where figures go, not the eigenvalue cache), each as a canonical text.
* then one line per finished layer: ``{"model": i, "layer_id": id, "name": name, "rows": [...],
  "sum": hex}`` (several rows for the slices of ``pool=False``); ``sum`` is a BLAKE2b digest of the
  line's other fields keyed by the header line, so a damaged or edited line (a flipped digit, a forged
  status, a line copied from another journal) is detected. It protects against damage and careless
  edits, not against someone who rewrites the journal and recomputes the digests (the journal is a
  file of the user's own run, not a signed document). Values keep their exact type and value: floats
  are written with ``repr`` precision, and what JSON cannot hold is tagged (``{"$float": "nan"}``,
  ``{"$np": "float32", "v": ...}``, ``{"$tuple": [...]}``). The private ``_...`` entries of
  optional analyses (randomized eigenvalues, traps, statistics objects) are not kept.

``--resume`` reads the journal back (:func:`read_journal`: schema, types, the model index of each line
within the header's models, the layer id and name of each row, the digest of each line; anything wrong
is a :class:`JournalError` naming the line), checks the header against this run
(:func:`header_differences`) and hands the rows to :func:`spectralwatch.analyze.run` as ``done``.
A last line cut short by a killed run is ignored and truncated away before appending. The
journal is deleted once FILE is written.

:func:`write_atomic` (from :mod:`.outputs`, re-exported here) writes a file beside its target and renames
it into place, so a failed write (a full disk) never leaves a half-written file that looks complete.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import stat
from pathlib import Path

from ..errors import SpectralWatchError
from .outputs import write_atomic

__all__ = ["JOURNAL_SUFFIX", "JournalError", "JournalMismatchError", "journal_path", "model_fingerprint",
           "options_fingerprint", "make_header", "header_differences", "encode_row", "decode_row",
           "JournalWriter", "read_journal", "write_atomic", "RunJournal"]

JOURNAL_SUFFIX = ".partial.jsonl"
_KIND = "spectralwatch-layers"
_FORMAT = 2  # 2: a digest per line
_SAMPLE = 1 << 16  # bytes hashed at each end of a model file
class JournalError(SpectralWatchError):
    """A journal file that cannot be read (not a journal, or damaged before its last line)."""


class JournalMismatchError(SpectralWatchError):
    """A journal written by a run with another model, other options or another version."""


def journal_path(out) -> Path:
    """The journal kept beside the output file ``out``."""
    return Path(str(out) + JOURNAL_SUFFIX)


# ---- fingerprints ------------------------------------------------------------------------------

def _file_sample(path: Path, size: int) -> bytes:
    with open(path, "rb") as fh:  # read-only: the model is never modified
        head = fh.read(_SAMPLE)
        if size <= 2 * _SAMPLE:
            return head
        fh.seek(size - _SAMPLE)
        return head + fh.read(_SAMPLE)


def model_fingerprint(path, exclude=()) -> dict:
    """Path, file count, bytes and a digest of a model file or folder (see the module docstring).

    ``exclude``: files or folders inside a model folder that are not part of the model (the run's
    own output); journals are always left out.
    """
    root = Path(path).resolve()
    skip = {Path(p).resolve() for p in exclude}
    if root.is_dir():
        files = sorted(f for f in root.rglob("*") if f.is_file() and not f.name.endswith(JOURNAL_SUFFIX)
                       and not any(s == f or s in f.parents for s in skip))
    elif root.is_file():
        files = [root]
    else:
        return {"path": str(root), "files": 0, "bytes": 0, "digest": ""}
    digest, total = hashlib.sha256(), 0
    for f in files:
        st = f.stat()
        total += st.st_size
        name = f.relative_to(root).as_posix() if f != root else f.name
        digest.update(f"{name}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
        digest.update(_file_sample(f, st.st_size))
    return {"path": str(root), "files": len(files), "bytes": total, "digest": digest.hexdigest()}


def options_fingerprint(options) -> dict:
    """``{option: canonical text}`` of the options that can change a row (see
    :meth:`spectralwatch.options.Options.fingerprint`).

    A ``base_model`` path is replaced by its :func:`model_fingerprint`, so editing the base model
    also counts as a change.
    """
    out = options.fingerprint()
    value = options.read.base_model
    if isinstance(value, (str, os.PathLike)):
        fp = model_fingerprint(value)
        out["base_model"] = f"{fp['path']} ({fp['bytes']} bytes, {fp['digest'][:16]})"
    return out


def make_header(models: list, options: dict) -> dict:
    """The first line of a journal: ``models`` are fingerprints, ``options`` an options fingerprint."""
    from .._version import __version__

    return {"journal": _KIND, "version": _FORMAT, "spectralwatch": __version__, "models": list(models),
            "options": dict(options)}


def header_differences(old: dict, new: dict) -> list:
    """What differs between the header of a journal and that of this run, in words ([] if none)."""
    diffs = []
    if old.get("spectralwatch") != new.get("spectralwatch"):
        diffs.append(f"spectralwatch version {old.get('spectralwatch')} -> {new.get('spectralwatch')}")
    a, b = old.get("models", []), new.get("models", [])
    if [m.get("path") for m in a] != [m.get("path") for m in b]:
        diffs.append("models " + ", ".join(m.get("path", "?") for m in a) + " -> "
                     + ", ".join(m.get("path", "?") for m in b))
    else:
        for x, y in zip(a, b):
            if x != y:
                size = f" ({x.get('bytes')} -> {y.get('bytes')} bytes)" if x.get("bytes") != y.get("bytes") else \
                    " (same size; its modification time or content differs)"
                diffs.append(f"model {y.get('path')} changed{size}")
    oa, ob = old.get("options", {}), new.get("options", {})
    for key in sorted(set(oa) | set(ob)):
        if oa.get(key) != ob.get(key):
            diffs.append(f"option {key} {oa.get(key, '(absent)')} -> {ob.get(key, '(absent)')}")
    return diffs


# ---- exact rows ----------------------------------------------------------------------------------

def _encode(value):
    import numpy as np

    if isinstance(value, np.generic):  # before float: np.float64 is a float
        return {"$np": value.dtype.name, "v": _encode(value.item())}
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        if math.isfinite(value):
            return float(value)
        return {"$float": "nan" if value != value else ("inf" if value > 0 else "-inf")}
    if isinstance(value, tuple):
        return {"$tuple": [_encode(v) for v in value]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, dict):
        return {"$dict": [[_encode(k), _encode(v)] for k, v in value.items()]}
    raise TypeError(f"a value of type {type(value).__name__} cannot be kept in the journal")


#: numpy scalar types a row may hold (a journal is read back: no other dtype is built from its text)
_NP_TYPES = frozenset({"float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16",
                       "uint32", "uint64", "bool"})


def _decode(value):
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    if len(value) == 1 and isinstance(value.get("$float"), str) and value["$float"] in ("nan", "inf", "-inf"):
        return float(value["$float"])
    if set(value) == {"$np", "v"} and value["$np"] in _NP_TYPES and isinstance(value["v"], (int, float, bool, dict)):
        import numpy as np

        try:
            return np.dtype(value["$np"]).type(_decode(value["v"]))
        except (TypeError, ValueError, OverflowError):
            raise JournalError(f"a {value['$np']} value that is not one: {str(value['v'])[:40]}") from None
    if len(value) == 1 and isinstance(value.get("$tuple"), list):
        return tuple(_decode(v) for v in value["$tuple"])
    if len(value) == 1 and isinstance(value.get("$dict"), list) and all(
            isinstance(kv, list) and len(kv) == 2 for kv in value["$dict"]):
        out = {}
        for k, v in value["$dict"]:
            k = _decode(k)
            if isinstance(k, (list, dict)):
                raise JournalError("a mapping key that is a list or a mapping")
            out[k] = _decode(v)
        return out
    raise JournalError(f"an unknown tagged value ({', '.join(sorted(map(str, value)))[:80]})")


def encode_row(row: dict) -> dict:
    """A row as JSON-able data that :func:`decode_row` turns back into an equal row.

    The private ``_...`` entries of optional analyses are left out.
    """
    return {key: _encode(v) for key, v in row.items() if not key.startswith("_")}


def decode_row(data: dict) -> dict:
    return {key: _decode(v) for key, v in data.items()}


def _line(doc: dict) -> bytes:
    return (json.dumps(doc, allow_nan=False, separators=(",", ":")) + "\n").encode("utf-8")


def _key(header_line: bytes) -> bytes:
    """The key of the line digests: a hash of the header line (its exact bytes, without the newline)."""
    return hashlib.sha256(header_line.rstrip(b"\n")).digest()


def _digest(key: bytes, doc: dict) -> str:
    """The digest of a layer line's fields (all but ``sum``), in a canonical JSON text."""
    body = json.dumps({k: doc[k] for k in ("model", "layer_id", "name", "rows")}, allow_nan=False,
                      separators=(",", ":"), sort_keys=True).encode("utf-8")
    return hashlib.blake2b(body, key=key[:64], digest_size=16).hexdigest()


def _open_journal_file(path: Path, mode: str):
    """The journal opened for writing (``'wb'``: created or emptied) or appending (``'r+b'``), never
    through a symlink and only if it is a regular file."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC if mode == "wb" else os.O_RDWR
    fd = os.open(path, flags | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0), 0o666)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise JournalError(f"{path} is not a regular file: it cannot be a journal")
        if hasattr(os, "set_blocking"):
            os.set_blocking(fd, True)
        return os.fdopen(fd, mode)
    except BaseException:
        os.close(fd)
        raise


# ---- writing and reading -------------------------------------------------------------------------

class JournalWriter:
    """Append finished layers to a journal; each line is written whole and flushed.

    ``JournalWriter(path, header)`` starts a new journal; ``JournalWriter(path, keep=n, count=k)``
    goes on with an existing one after its first ``n`` bytes (its complete lines, see
    :func:`read_journal`), which hold ``k`` layers. ``count``: the layers in the file.
    """

    def __init__(self, path, header: dict | None = None, *, keep: int | None = None, count: int = 0):
        self.path = Path(path)
        self.count = count
        if keep is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fh = self._open("wb")
        else:
            self._fh = self._open("r+b")
        try:
            if keep is None:
                first = _line(header)
                self._key = _key(first)
                self._write(first)
            else:
                self._fh.seek(0)
                self._key = _key(self._fh.readline(keep))
                self._fh.truncate(keep)  # drop a last line cut short by a killed run
                self._fh.seek(keep)
                self.size = keep
        except BaseException:
            self.close()
            raise

    def _open(self, mode: str):
        return _open_journal_file(self.path, mode)

    def _write(self, data: bytes) -> None:
        self._fh.write(data)
        self._fh.flush()
        self.size = self._fh.tell()

    def add(self, model: int, layer_id, name: str, rows: list) -> None:
        """Append one finished layer; on an error, the journal is cut back to its last whole line."""
        doc = {"model": model, "layer_id": layer_id, "name": name, "rows": [encode_row(r) for r in rows]}
        doc["sum"] = _digest(self._key, doc)
        data = _line(doc)
        start = self.size
        try:
            self._write(data)
        except OSError:
            try:
                self._fh.truncate(start)
            except OSError:
                pass
            raise
        self.count += 1

    def close(self) -> None:
        if not self._fh.closed:
            try:
                self._fh.close()
            except OSError:  # data still buffered on a full disk: what was flushed is kept
                pass


#: a journal longer than this is not read (a run of a million layers writes far less)
MAX_JOURNAL_BYTES = 1 << 30


def _check_header(path, header) -> None:
    """The header's schema: kind, format, version text, model fingerprints, option texts."""
    if not isinstance(header, dict) or header.get("journal") != _KIND:
        raise JournalError(f"{path} is not a spectralwatch journal (or its first line is damaged)")
    if header.get("version") != _FORMAT:
        raise JournalError(f"{path} is a journal of format {str(header.get('version'))[:20]}, not {_FORMAT} "
                           "(written by another spectralwatch version): remove it to start over")
    models, options = header.get("models"), header.get("options")
    fields = {"path": str, "files": int, "bytes": int, "digest": str}
    ok = (isinstance(header.get("spectralwatch"), str) and isinstance(models, list) and models
          and all(isinstance(m, dict) and set(m) == set(fields)
                  and all(isinstance(m[k], t) and not isinstance(m[k], bool) for k, t in fields.items())
                  for m in models)
          and isinstance(options, dict) and all(isinstance(v, str) for v in options.values()))
    if not ok:
        raise JournalError(f"{path} has a damaged header (its models or options are not what a journal holds): "
                           "remove it to start over")


def _check_layer(doc, key: bytes, n_models: int) -> tuple:
    """``((model, layer_id), (name, rows))`` of one layer line, or :class:`JournalError` saying what is wrong."""
    if not isinstance(doc, dict) or set(doc) != {"model", "layer_id", "name", "rows", "sum"}:
        raise JournalError("it is not a layer line {model, layer_id, name, rows, sum}")
    model, layer_id, name, rows = doc["model"], doc["layer_id"], doc["name"], doc["rows"]
    if not (isinstance(model, int) and not isinstance(model, bool) and 0 <= model < n_models):
        raise JournalError(f"its model index {str(model)[:20]} is not one of the {n_models} models of the header")
    if not (isinstance(layer_id, int) and not isinstance(layer_id, bool)) or not isinstance(name, str):
        raise JournalError("its layer_id is not an int or its name not a text")
    if not isinstance(doc["sum"], str) or not hmac.compare_digest(doc["sum"], _digest(key, doc)):
        raise JournalError("its digest does not match its contents (the line was damaged or edited)")
    if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
        raise JournalError("its rows are not a non-empty list of rows")
    decoded = []
    for row in rows:
        if not all(isinstance(k, str) and not k.startswith("_") for k in row):
            raise JournalError("a row has a column name that is not a text")
        row = decode_row(row)
        if row.get("layer_id") != layer_id or row.get("name") != name:
            raise JournalError("a row's layer_id or name differs from the line's")
        if row.get("status", "success") not in ("success", "failed"):
            raise JournalError(f"a row has the status {str(row.get('status'))[:20]!r}")
        decoded.append(row)
    return (model, layer_id), (name, decoded)


def read_journal(path) -> tuple:
    """``(header, layers, size)``: the header, ``{(model, layer_id): (name, rows)}`` and the length
    in bytes of the complete lines (a last line without its newline is ignored).

    A file without one complete line (its header was being written) gives ``(None, {}, 0)``. Every
    line is checked (see the module docstring); a damaged one is a :class:`JournalError` naming it.
    """
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_JOURNAL_BYTES + 1)
    except OSError as exc:
        raise JournalError(f"{path} cannot be read: {exc.strerror or type(exc).__name__}") from None
    if len(data) > MAX_JOURNAL_BYTES:
        raise JournalError(f"{path} is larger than {MAX_JOURNAL_BYTES} bytes: not a journal of this run")
    end = data.rfind(b"\n") + 1
    lines = data[:end].split(b"\n")[:-1]
    if not lines:
        return None, {}, 0
    try:
        header = json.loads(lines[0])
    except (ValueError, RecursionError):
        header = None
    _check_header(path, header)
    key, n_models = _key(lines[0]), len(header["models"])
    layers = {}
    for number, line in enumerate(lines[1:], start=2):
        try:
            try:
                doc = json.loads(line)
            except (ValueError, RecursionError):
                raise JournalError("it is not JSON") from None
            where, value = _check_layer(doc, key, n_models)
            if where in layers:
                raise JournalError(f"layer {where[1]} of model {where[0]} is already on an earlier line")
        except JournalError as exc:
            raise JournalError(f"line {number} of {path} is damaged: {exc} (remove the journal to start "
                               "over)") from None
        layers[where] = value
    return header, layers, end


# ---- one command-line run ------------------------------------------------------------------------

def _stderr(line: str) -> None:
    import sys

    print(line, file=sys.stderr)


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or " ".join(str(exc).split()) or type(exc).__name__


class RunJournal:
    """The journal of one ``spectralwatch analyze ... --out FILE`` run (one or more models).

    :meth:`open` starts it (or, with ``resume``, goes on with it); :meth:`recorder` gives each
    model's ``on_result``; :meth:`remove` deletes it once FILE is written. Writing it never stops
    the analysis: on an error (a full disk) it stops with a warning and the run goes on.
    ``warn`` prints one line (on stderr in the command line).
    """

    def __init__(self, path, warn):
        self.path = Path(path)
        self.warn = warn
        self.writer = None
        self.failed = None  # why writing stopped
        self.done: list = []  # per model: {layer_id: rows} taken from the journal
        self.kept = 0  # layers in the journal file
        self.resumed = 0  # layers taken from it
        self.mine = False  # the file is this run's (created or taken over)

    @classmethod
    def open(cls, out, models: list, options, *, resume: bool, exclude=(), warn=None) -> "RunJournal":
        """The journal of ``out`` for analysing ``models`` (paths) with ``options`` (an Options).

        Raises :class:`JournalError` when a journal of an unfinished run is there and ``resume`` is
        False, :class:`JournalMismatchError` when resuming one written for other inputs.
        """
        self = cls(journal_path(out), warn or _stderr)
        header = make_header([model_fingerprint(m, exclude) for m in models], options_fingerprint(options))
        self.done = [{} for _ in models]
        old = self._previous(resume)
        if old is None:
            try:
                self.writer = JournalWriter(self.path, header)
            except OSError as exc:
                if self.path.is_file():  # a header cut short: nothing to keep
                    self.mine = True
                    self.remove()
                self._stop(exc, "create")
            else:
                self.mine = True
            return self
        old_header, layers, size = old
        diffs = header_differences(old_header, header)
        if diffs:
            raise JournalMismatchError(
                f"cannot resume: the journal {self.path} was written for another run ({'; '.join(diffs)}). "
                f"Remove {self.path} to start over with these inputs, or resume with the earlier ones.")
        for (model, layer_id), (_, rows) in layers.items():
            self.done[model][layer_id] = rows
        self.kept = self.resumed = len(layers)
        self.warn(f"resuming from {self.path}: {self.resumed} finished layers are taken from it")
        self.mine = True
        try:
            self.writer = JournalWriter(self.path, keep=size, count=len(layers))
        except OSError as exc:
            self._stop(exc, "reopen")
        return self

    def _previous(self, resume: bool):
        """``read_journal`` of a journal to go on with; None to start a new one."""
        try:
            mode = os.lstat(self.path).st_mode
        except FileNotFoundError:
            mode = None
        except OSError as exc:
            raise JournalError(f"the journal {self.path} cannot be checked: {exc.strerror or exc}") from None
        if mode is not None and not stat.S_ISREG(mode):
            raise JournalError(f"the journal {self.path} exists and is not a regular file (a symbolic link, a "
                               "device, a FIFO or a folder): refused; remove it or choose another --out")
        if mode is None:
            if resume:
                self.warn(f"note: --resume: there is no journal {self.path}; analysing from the start")
            return None
        found = read_journal(self.path)
        if found[0] is None:  # its header was being written: nothing to lose
            if resume:
                self.warn(f"note: --resume: the journal {self.path} holds no finished layer; analysing from the start")
            return None
        if resume:
            return found
        if found[1]:
            raise JournalError(
                f"{self.path} holds {len(found[1])} finished layers of an earlier run that did not finish: "
                f"rerun the same command with --resume to go on from there, or remove {self.path} to start over")
        return None  # a header alone: nothing to lose

    def recorder(self, model: int):
        """The ``on_result`` of model number ``model``: appends each finished layer."""
        def record(layer_id, rows):
            writer = self.writer
            if writer is None:
                return
            try:
                writer.add(model, layer_id, rows[0].get("name", ""), rows)
            except (OSError, TypeError, ValueError) as exc:
                self._stop(exc, "write")
            finally:  # (also when interrupted right after the line was written)
                self.kept = writer.count

        return record

    def _stop(self, exc: BaseException, what: str) -> None:
        self.failed = _why(exc)
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        lost = ("the analysis goes on and prints its results at the end, but cannot be resumed"
                if not self.kept else f"it keeps the first {self.kept} layers; the analysis goes on and prints "
                                      "its results at the end")
        self.warn(f"warning: could not {what} the journal {self.path}: {self.failed}; {lost}")

    def close(self) -> None:
        """Close the file; remove it if it holds no layer (nothing to resume)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if not self.kept:
            self.remove()

    def remove(self) -> None:
        """Delete the journal (the results are written in full)."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None
        if not self.mine:
            return
        try:
            self.path.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            self.warn(f"warning: could not remove the journal {self.path}: {_why(exc)}")

    def where(self, then: str = "finish writing", printed: bool = True) -> str:
        """Where the finished layers are, for an error message (``then``: what --resume would do;
        ``printed``: whether the results were printed on stdout)."""
        if self.kept and self.failed is None:
            return (f"the {self.kept} finished layers are kept in {self.path} "
                    f"(rerun the same command with --resume to {then})")
        rest = "only in what was printed on stdout" if printed else "lost"
        if self.kept:
            return (f"{self.path} keeps the first {self.kept} layers (writing it failed: {self.failed}); "
                    f"the other rows are {rest}")
        return f"the rows are {rest}"

"""Fuzzing of every file reader: truncated, bit-flipped and header-corrupted files give a Report
(every row analysed, skipped, or ``status='failed'`` with a message) or a ``SpectralWatchError``
whose message names the file; never another exception, a crash or a hang.

The corpus (tests/fuzz_formats.py and its helpers) holds one small valid model per format the package
reads and deterministic mutants of it. Each format's corpus runs in a subprocess
(tests/fuzz_worker.py), so that a segfault or a hang inside a third-party library (HDF5, protobuf,
torch) fails the test naming the case instead of killing pytest: a case still running after
``CASE_TIMEOUT`` seconds is stopped, the case is recorded, and a new worker carries on after it.

* default suite: the valid model, truncations, every structured corruption and 12 seeded random
  byte mutants per format (about 1-4 s per format);
* long run: ``pytest -m "fuzz and slow" tests/test_fuzz.py``: ``FUZZ_CASES`` random mutants per
  format (default 1000) drawn with ``FUZZ_SEED`` (default 1).

``FUZZ_SUMMARY=path`` appends each format's outcome counts to ``path`` (one JSON line per format).
"""

from __future__ import annotations

import collections
import hashlib
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fuzz_formats import FORMATS, mutants

WORKER = Path(__file__).with_name("fuzz_worker.py")
DEFAULT_RANDOM = 12
DEFAULT_SEED = 0
CASE_TIMEOUT = 60
MAX_INCIDENTS = 5


def _skip_unless_installed(name: str) -> None:
    for module in FORMATS[name].requires:
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")


def _lines(text) -> list[dict]:
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    return [json.loads(line[5:]) for line in (text or "").splitlines() if line.startswith("FUZZ ")]


def run_corpus(name: str, workdir: Path, n_random: int, seed: int, total_timeout: float = 1800):
    """``(results by case, incidents, number of cases)``; an incident is a case that crashed or hung."""
    results: dict = {}
    labels: dict = {}
    incidents: list = []
    start, total = 0, None
    while True:
        cmd = [sys.executable, str(WORKER), name, str(workdir / f"run{len(incidents)}"), "--random", str(n_random),
               "--seed", str(seed), "--start", str(start), "--timeout", str(CASE_TIMEOUT)]
        (workdir / f"run{len(incidents)}").mkdir(parents=True)
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=total_timeout)
            out, err, rc = proc.stdout, proc.stderr, proc.returncode
        except subprocess.TimeoutExpired as exc:
            out, err, rc = exc.stdout, exc.stderr, "killed after the total timeout"
        started = []
        for rec in _lines(out):
            if rec.get("event") == "start":
                started.append(rec["case"])
                labels[rec["case"]] = rec["label"]
            elif rec.get("event") == "done":
                total = rec["cases"]
            else:
                results[rec["case"]] = rec
        if total is not None and rc == 0:
            return results, incidents, total
        unfinished = [k for k in started if k not in results]
        err = err.decode(errors="replace") if isinstance(err, bytes) else (err or "")
        if not unfinished:
            raise AssertionError(f"the fuzz worker of '{name}' failed outside any case (exit {rc}):\n{err[-4000:]}")
        case = unfinished[-1]
        incidents.append({"case": case, "label": labels[case], "exit": rc, "stderr": err[-3000:]})
        if len(incidents) >= MAX_INCIDENTS:
            return results, incidents, None
        start = case + 1


def outcome_counts(results: dict) -> dict:
    """``{call: {outcome class: count}}``; classes: report, failed-rows, error:<SpectralWatchError class>, BAD:..."""
    counts: dict = collections.defaultdict(collections.Counter)
    for rec in results.values():
        for call in rec["calls"]:
            counts[call["call"]][call["outcome"]] += 1
    return {call: dict(sorted(c.items())) for call, c in counts.items()}


def _check(name: str, results: dict, incidents: list, total) -> None:
    assert not incidents, f"'{name}': cases that crashed or hung:\n" + "\n\n".join(
        f"case {i['case']} ({i['label']}), exit {i['exit']}:\n{i['stderr']}" for i in incidents)
    assert total is not None and sorted(results) == list(range(total)), f"'{name}': cases missing"
    valid = results[0]
    assert valid["label"] == "the valid model"
    assert all(c["outcome"] == "report" for c in valid["calls"]), f"'{name}': the valid model fails: {valid['calls']}"
    bad = [(rec["case"], rec["label"], call) for rec in results.values() for call in rec["calls"] if not call["ok"]]
    assert not bad, f"'{name}': {len(bad)} unacceptable outcome(s), first ones:\n" + "\n".join(
        f"case {k} ({label}): {call['call']} -> {call['outcome']}: {call['detail']}" for k, label, call in bad[:5])


def _summarise(name: str, results: dict, n_random: int, seed: int, seconds: float | None = None) -> dict:
    summary = {"format": name, "cases": len(results), "random": n_random, "seed": seed,
               "outcomes": outcome_counts(results)}
    if seconds is not None:
        summary["seconds"] = round(seconds, 1)
    target = os.environ.get("FUZZ_SUMMARY")
    if target:
        with open(target, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(summary) + "\n")
    return summary


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_corrupted_files_give_a_report_or_a_spectralwatch_error(name, tmp_path):
    _skip_unless_installed(name)
    results, incidents, total = run_corpus(name, tmp_path, DEFAULT_RANDOM, DEFAULT_SEED)
    _check(name, results, incidents, total)
    _summarise(name, results, DEFAULT_RANDOM, DEFAULT_SEED)


@pytest.mark.fuzz
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_long_fuzz_run(name, tmp_path):
    import time

    _skip_unless_installed(name)
    n_random = int(os.environ.get("FUZZ_CASES", "1000"))
    seed = int(os.environ.get("FUZZ_SEED", "1"))
    began = time.perf_counter()
    results, incidents, total = run_corpus(name, tmp_path, n_random, seed)
    _check(name, results, incidents, total)
    _summarise(name, results, n_random, seed, time.perf_counter() - began)


# --------------------------------------------------------------------------------------------
# the corpus itself, and the headers that claim more than the file holds
# --------------------------------------------------------------------------------------------

def _digest(cases) -> str:
    h = hashlib.sha256()
    for case in cases:
        h.update(case.label.encode())
        for rel in sorted(case.files):
            h.update(rel.encode() + (case.files[rel] or b"<removed>"))
    return h.hexdigest()


@pytest.mark.fuzz
@pytest.mark.parametrize("name", sorted(FORMATS))
def test_the_corpus_is_deterministic(name):
    _skip_unless_installed(name)
    fmt = FORMATS[name]
    first, second = fmt.build(), fmt.build()
    assert first == second
    cases = mutants(fmt, first, 5, 3)
    assert _digest(cases) == _digest(mutants(fmt, second, 5, 3))
    assert len({c.label for c in cases}) > 10 and all(c.files for c in cases[1:])
    assert _digest(cases) != _digest(mutants(fmt, first, 5, 4))  # the seed matters


def _write(folder: Path, fmt, files: dict, changes: dict) -> str:
    for rel, data in {**files, **changes}.items():
        if data is not None:
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
    return str(folder / fmt.target) if fmt.target else str(folder)


# (format, label of a structured corruption claiming a huge tensor, what the error must name)
HUGE = [("safetensors", "model.safetensors: shape [10**12]", "conv.weight"),
        ("npy", "npy header {'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000, 1000000), }", "'W'"),
        ("npz", "npz member fc1.weight.npy: npy header {'descr': '<f4', 'fortran_order': False, "
                "'shape': (1000000000000, 1000000), }", "fc1.weight"),
        ("gguf", "gguf tensor: token_embd.weight: dims [10**12, 10**12]", "token_embd.weight"),
        ("onnx", "onnx: gemm_w dims [10**6, 10**6]", "gemm_w"),
        ("onnx", "onnx: ext_w dims [10**6, 10**6]", "ext_w")]


@pytest.mark.fuzz
@pytest.mark.parametrize("name,label,tensor", HUGE, ids=[f"{n}-{t}" for n, _, t in HUGE])
def test_a_header_claiming_a_huge_tensor_is_an_error_naming_file_and_tensor(name, label, tensor, tmp_path):
    from spectralwatch.errors import CorruptFileError
    from spectralwatch.io.sources import open_source

    _skip_unless_installed(name)
    fmt = FORMATS[name]
    files = fmt.build()
    matches = [c for c in mutants(fmt, files, 0, 0) if c.label.startswith(label)]
    assert matches, label
    target = _write(tmp_path, fmt, files, matches[0].files)
    with pytest.raises(CorruptFileError) as info:
        list(open_source(target).layers())
    msg = str(info.value)
    assert target in msg and tensor in msg


@pytest.mark.fuzz
@pytest.mark.parametrize("label", ["model.weights.h5: a 10^12-element kernel (never written)",
                                   "model.weights.h5: a kernel that decompresses 1000-fold",
                                   "model.weights.h5: a kernel stored in /dev/zero"])
def test_keras_datasets_are_checked_before_they_are_read(label, tmp_path):
    import numpy as np

    import spectralwatch
    from spectralwatch.errors import CorruptFileError
    from spectralwatch.io.sources import open_source

    _skip_unless_installed("keras")
    fmt = FORMATS["keras"]
    files = fmt.build()
    case = next(c for c in mutants(fmt, files, 0, 0) if c.label == label)
    target = _write(tmp_path, fmt, files, case.files)
    ref = next(r for r in open_source(target).layers() if r.name == "fc1")
    with pytest.raises(CorruptFileError, match="layers/dense/vars/0") as info:
        ref.load()
    assert target in str(info.value)
    details = spectralwatch.analyze(target, max_N=None, max_evals=None, workers=1).details.set_index("name")
    assert details.loc["fc1", "status"] == "failed" and "layers/dense/vars/0" in details.loc["fc1", "message"]
    assert (details.drop("fc1")["status"] == "success").all() and np.isfinite(details.loc["fc2", "alpha"])


@pytest.mark.fuzz
def test_a_file_that_makes_libhdf5_loop_is_a_corrupt_file_error(tmp_path, monkeypatch):
    """Zeroing 201 bytes of the global heap of this legacy .h5 makes libhdf5 1.14 spin forever reading an
    attribute (found by the long fuzz run): the child process reading the structure is stopped instead."""
    import time

    from fuzz_h5 import legacy_h5

    import spectralwatch
    from spectralwatch.errors import CorruptFileError
    from spectralwatch.io.sources import keras_files

    _skip_unless_installed("h5")
    monkeypatch.setattr(keras_files, "SCAN_TIMEOUT", 3.0)
    data = legacy_h5()
    path = tmp_path / "spins.h5"
    path.write_bytes(data[:2051] + bytes(201) + data[2051 + 201:])
    began = time.perf_counter()
    with pytest.raises(CorruptFileError) as info:
        spectralwatch.describe(path)
    assert str(path) in str(info.value) and time.perf_counter() - began < 30
    (tmp_path / "fine.h5").write_bytes(data)  # the same process goes on reading other files
    assert list(spectralwatch.describe(tmp_path / "fine.h5")["name"]) == ["fc1", "fc2", "conv"]

"""Run the fuzz cases of one format in this process; one JSON line per case on stdout.

    python tests/fuzz_worker.py FORMAT WORKDIR [--random N] [--seed S] [--start K] [--timeout T]

Before a case: ``FUZZ {"case": k, "event": "start", ...}``; after it: ``FUZZ {"case": k, "calls": [...]}``
with one entry per call of the format (``analyze`` / ``describe`` with its options): ``outcome`` is
``report`` (every row analysed or skipped), ``failed-rows`` (a Report with ``status='failed'`` rows),
``error:<class>`` (a SpectralWatchError subclass) or ``BAD:<class>`` (anything else); ``ok`` says
whether the outcome is acceptable (a failed row has a message, an error names the file or folder).
A case still running after T seconds is stopped by faulthandler (its traceback on stderr, exit code
1); a crash ends the process: the parent (tests/test_fuzz.py) sees a case that started and never
finished, records it, and starts a new worker after it.
"""

from __future__ import annotations

import argparse
import faulthandler
import json
import os
import shutil
import sys
import time
import traceback
import warnings


def emit(record: dict) -> None:
    sys.stdout.write("FUZZ " + json.dumps(record) + "\n")
    sys.stdout.flush()


def _write(folder: str, files: dict) -> None:
    for rel, data in files.items():
        path = os.path.join(folder, rel)
        if data is None:
            if os.path.exists(path):
                os.remove(path)
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(data)


def _resolve(kwargs: dict, aux: str) -> dict:
    return {k: v.replace("{aux}", aux) if isinstance(v, str) else v for k, v in kwargs.items()}


def run_call(func: str, target: str, kwargs: dict, aux: str = "") -> dict:
    """One call of ``spectralwatch.<func>(target, **kwargs)`` (``{aux}`` in kwargs: the aux folder), classified."""
    import spectralwatch
    from spectralwatch.errors import SpectralWatchError

    entry = {"call": func + (f"({', '.join(f'{k}={v!r}' for k, v in kwargs.items())})" if kwargs else "")}
    kwargs = _resolve(kwargs, aux)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = getattr(spectralwatch, func)(target, **kwargs)
    except SpectralWatchError as exc:
        msg = str(exc)
        return dict(entry, outcome=f"error:{type(exc).__name__}", ok=target in msg, detail=msg[:500])
    except BaseException as exc:  # noqa: BLE001 - anything else is what the fuzzing looks for
        tail = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)[-3:])
        return dict(entry, outcome=f"BAD:{type(exc).__name__}", ok=False, detail=tail[-1500:])
    if func != "analyze":
        return dict(entry, outcome="report", ok=True, detail=f"{len(result)} layer(s)")
    details = result.details
    if "status" not in details:
        return dict(entry, outcome="report", ok=True, detail="no status column")
    failed = details[details["status"] == "failed"]
    messages = list(failed["message"]) if "message" in failed else [""] * len(failed)
    empty = [m for m in messages if not (isinstance(m, str) and m.strip())]
    outcome = "failed-rows" if len(failed) else "report"
    detail = "; ".join(sorted({str(m)[:160] for m in messages}))[:500] or f"{len(details)} row(s)"
    return dict(entry, outcome=outcome, ok=not empty, detail=detail)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("format")
    parser.add_argument("workdir")
    parser.add_argument("--random", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--start", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args(argv)
    faulthandler.enable()

    from fuzz_formats import FORMATS, mutants

    fmt = FORMATS[args.format]
    files = fmt.build()
    cases = mutants(fmt, files, args.random, args.seed)
    aux = os.path.join(args.workdir, "aux")
    os.makedirs(aux, exist_ok=True)
    if fmt.aux is not None:
        _write(aux, fmt.aux())
    import spectralwatch  # noqa: F401 - imported before the first case is timed
    from spectralwatch.io.sources import keras_files

    keras_files.SCAN_TIMEOUT = args.timeout / 4  # a file that hangs libhdf5 is refused well within the case's time

    for k in range(args.start, len(cases)):
        case = cases[k]
        emit({"case": k, "event": "start", "label": case.label})
        folder = os.path.join(args.workdir, f"case{k:05d}")
        os.makedirs(folder)
        _write(folder, files)
        _write(folder, case.files)
        target = os.path.join(folder, fmt.target) if fmt.target else folder
        faulthandler.dump_traceback_later(args.timeout, exit=True)
        start = time.perf_counter()
        calls = [run_call(func, target, kwargs, aux) for func, kwargs in fmt.calls]
        faulthandler.cancel_dump_traceback_later()
        emit({"case": k, "label": case.label, "calls": calls, "seconds": round(time.perf_counter() - start, 4)})
        shutil.rmtree(folder, ignore_errors=True)
    emit({"event": "done", "cases": len(cases)})
    return 0


if __name__ == "__main__":
    sys.exit(main())

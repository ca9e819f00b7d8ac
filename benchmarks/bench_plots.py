"""Time the figures: spectralwatch ``analyze(plot=True)`` against WeightWatcher 0.7.7's, in one run.

    python benchmarks/bench_plots.py                    # all-MiniLM-L6-v2, default options
    python benchmarks/bench_plots.py --rmt              # also mp_fit / randomize / detX figures
    python benchmarks/bench_plots.py --no-reference     # spectralwatch only

For each implementation: one ``analyze()`` without figures and one with ``plot=True`` writing PNG
files into a fresh temporary folder (``savefig=DIR``); the difference is the cost of the figures.
The reference draws with ``pyplot`` and calls ``plt.show()``; here it runs with the non-interactive
Agg backend (``MPLBACKEND=Agg``), so ``show()`` is a no-op and only drawing and saving are timed.
The reference gets the state dict already loaded (it cannot read files); spectralwatch gets the
file path. The printed ratios (reference / spectralwatch) are measured in this run, on this
machine: compare them, not absolute seconds, on a shared machine.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import realmodels  # noqa: E402  (tests/realmodels.py)


def _timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _count(folder: str) -> int:
    return sum(1 for p in Path(folder).iterdir() if p.is_file())


def run_reference(state_dict, extra: dict) -> dict:
    import logging

    import weightwatcher as ww

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    out = {}
    out["no_plot"] = _timed(lambda: ww.WeightWatcher(model=state_dict).analyze(plot=False, **extra))[:2]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "ww-img")
        out["plot"] = _timed(lambda: ww.WeightWatcher(model=state_dict).analyze(
            plot=True, savefig=folder, **extra))[:2]
        out["files"] = _count(folder)
    import matplotlib.pyplot as plt

    plt.close("all")
    return out


def run_spectralwatch(path: str, extra: dict) -> dict:
    import spectralwatch

    out = {}
    out["no_plot"] = _timed(lambda: spectralwatch.analyze(path, **extra))[:2]
    with tempfile.TemporaryDirectory() as tmp:
        folder = os.path.join(tmp, "figures")
        out["plot"] = _timed(lambda: spectralwatch.analyze(path, plot=True, savefig=folder, **extra))[:2]
        out["files"] = _count(folder)
    return out


def _row(name: str, r: dict) -> str:
    (w0, c0), (w1, c1) = r["no_plot"], r["plot"]
    return (f"{name:<16} {w0:9.2f} {w1:9.2f} {w1 - w0:9.2f} {c1 - c0:9.2f} {r['files']:6d} "
            f"{(w1 - w0) / max(r['files'], 1) * 1000:10.1f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-minilm-l6-v2", help="a model of tests/realmodels.py")
    parser.add_argument("--rmt", action="store_true", help="also mp_fit=True, randomize=True, detX=True")
    parser.add_argument("--no-reference", action="store_true")
    args = parser.parse_args(argv)

    try:
        path = realmodels.fetch_or_raise(args.model)
    except realmodels.ModelUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    extra = dict(mp_fit=True, randomize=True, detX=True) if args.rmt else {}
    # warm-up: imports, font cache, lazy initialisation (not timed)
    import numpy as np

    import spectralwatch

    with tempfile.TemporaryDirectory() as tmp:
        spectralwatch.analyze(np.random.default_rng(0).standard_normal((60, 30)), plot=True, savefig=tmp)
    results = {"spectralwatch": run_spectralwatch(str(path), extra)}
    if not args.no_reference:
        try:
            import weightwatcher  # noqa: F401
        except ImportError:
            print("weightwatcher is not installed: timing spectralwatch only")
        else:
            results["weightwatcher"] = run_reference(realmodels.load_state_dict(path), extra)

    print(f"model: {args.model}  options: {extra or 'defaults'}  load average: {os.getloadavg()[0]:.2f} "
          f"on {os.cpu_count()} CPUs")
    print(f"{'':<16} {'no plot s':>9} {'plot s':>9} {'figs s':>9} {'figs cpu':>9} {'files':>6} "
          f"{'ms/file':>10}")
    for name, r in results.items():
        print(_row(name, r))
    if "weightwatcher" in results:
        ref, sw = results["weightwatcher"], results["spectralwatch"]
        total = ref["plot"][0] / sw["plot"][0]
        figs = (ref["plot"][0] - ref["no_plot"][0]) / max(sw["plot"][0] - sw["no_plot"][0], 1e-9)
        per_file = ((ref["plot"][0] - ref["no_plot"][0]) / max(ref["files"], 1)) / max(
            (sw["plot"][0] - sw["no_plot"][0]) / max(sw["files"], 1), 1e-9)
        cpu = (ref["plot"][1] - ref["no_plot"][1]) / max(sw["plot"][1] - sw["no_plot"][1], 1e-9)
        print(f"ratio reference/spectralwatch: analyze(plot=True) total {total:.1f}x; "
              f"figures alone {figs:.1f}x (CPU time {cpu:.1f}x); per file {per_file:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())

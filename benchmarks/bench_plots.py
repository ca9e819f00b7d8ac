"""Time the figures: this tree's ``save_figures`` against an earlier version's (git), and against WeightWatcher.

    python benchmarks/bench_plots.py                          # EfficientNet-Lite0, vs git 74e9a58, 3 repeats
    python benchmarks/bench_plots.py --model all-minilm-l6-v2 --baseline 74e9a58 --repeat 5
    python benchmarks/bench_plots.py --per-kind               # also ms per figure of every kind (this tree)
    python benchmarks/bench_plots.py --reference              # also WeightWatcher 0.7.7's analyze(plot=True)
    python benchmarks/bench_plots.py --rmt --reference        # with mp_fit / randomize / detX figures

**Against an earlier version** (the default): ``git archive BASELINE src`` is unpacked into a temporary
folder and each version runs in its own Python process (``PYTHONPATH`` = its ``src``), on the same
model file: one ``analyze()`` (timed, for scale), a warm-up figure (imports, font cache: not timed),
then ``save_figures`` into a fresh folder, ``--repeat`` times (the fastest run is kept, the usual
way to time on a shared machine). Three comparisons, each printed as wall and CPU seconds, files
written and milliseconds per file, and the ratio baseline / this tree:

* ``--plots``: what the command line's ``--plots DIR`` writes: the baseline's every figure (5 per
  layer + 3 model figures) against this tree's default kinds (the 3 model figures + the log-log ESD
  per layer);
* ``same figures``: the model figures and the log-log ESD per layer in both versions (per-file cost);
* ``plot=True``: every figure WeightWatcher writes (5 per layer + the model figures) in both versions.

**Against WeightWatcher 0.7.7** (``--reference``): ``analyze()`` and ``analyze(plot=True)`` of each
implementation (WeightWatcher on the loaded state dict with ``MPLBACKEND=Agg``, so ``plt.show()`` is a
no-op); the difference is the cost of the figures.

Only ratios measured in one run are comparable; absolute times depend on the machine and its load
(printed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import realmodels  # noqa: E402  (tests/realmodels.py)

DEFAULT_BASELINE = "74e9a58"  # the tree before selectable figure kinds (issue 15)

# run inside each version's own interpreter: analyze once, warm up, time save_figures per spec
_WORKER = r"""
import json, os, sys, tempfile, time
os.environ.setdefault("MPLBACKEND", "Agg")
import numpy as np
import spectralwatch
from spectralwatch.render.plots.layer import save_figures

model, specs, repeat, extra = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
t, c = time.perf_counter(), time.process_time()
report = spectralwatch.analyze(model, **extra)
analyze_s, analyze_cpu = time.perf_counter() - t, time.process_time() - c
with tempfile.TemporaryDirectory() as d:  # warm-up: imports, font cache, first figures (not timed)
    save_figures(spectralwatch.analyze(np.random.default_rng(0).standard_normal((60, 30))), d)
out = {"analyze_s": analyze_s, "analyze_cpu": analyze_cpu, "layers": int(len(report.details)), "runs": {}}
for label, kwargs in specs.items():
    best = None
    for _ in range(repeat):
        with tempfile.TemporaryDirectory() as d:
            wall, cpu = time.perf_counter(), time.process_time()
            n = len(save_figures(report, d, **kwargs))
            run = (time.perf_counter() - wall, time.process_time() - cpu, n)
        best = run if best is None or run[0] < best[0] else best
    out["runs"][label] = best
print("RESULT " + json.dumps(out))
"""


def _timed(fn) -> tuple[float, float, object]:
    """(wall seconds, CPU seconds of this process, result)."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return time.perf_counter() - wall, time.process_time() - cpu, result


def _count(folder: str) -> int:
    return sum(1 for p in Path(folder).iterdir() if p.is_file())


def _baseline_src(rev: str, into: str) -> str:
    """``src`` of git revision ``rev`` unpacked into ``into``; returns the path of that ``src``."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "src"], capture_output=True, check=True).stdout
    tar = Path(into) / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as tf:
        try:
            tf.extractall(into, filter="data")
        except TypeError:  # Python without extraction filters (the archive is git's own output)
            tf.extractall(into)
    return str(Path(into) / "src")


def _worker(src: str, model: str, specs: dict, repeat: int, extra: dict) -> dict:
    env = dict(os.environ, PYTHONPATH=src, MPLBACKEND="Agg")
    proc = subprocess.run([sys.executable, "-c", _WORKER, model, json.dumps(specs), str(repeat), json.dumps(extra)],
                          capture_output=True, text=True, env=env, cwd=tempfile.gettempdir())
    line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
    if proc.returncode or line is None:
        raise RuntimeError(f"the benchmark worker failed ({src}):\n{proc.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def _line(name: str, run) -> str:
    wall, cpu, n = run
    return f"  {name:<34} {wall:8.2f} {cpu:8.2f} {n:6d} {1000 * wall / max(n, 1):9.1f} {1000 * cpu / max(n, 1):9.1f}"


def versions(args, path: Path, extra: dict) -> None:
    core = ["esd", "esd2", "esd3", "esd4", "esd5"]
    with tempfile.TemporaryDirectory() as tmp:
        old_src = _baseline_src(args.baseline, tmp)
        old = _worker(old_src, str(path), {
            "--plots": {},                                   # the baseline's default: every figure
            "same figures": {"kinds": ["esd"]},              # model figures + log-log ESD per layer
            "plot=True": {"kinds": core + (["mpfit1", "mpfit2", "randesd1", "randesd2", "detX"] if args.rmt else [])},
        }, args.repeat, extra)
    specs = {"--plots": {}, "same figures": {}, "plot=True": {"kinds": "all"}}
    new = _worker(str(REPO / "src"), str(path), specs, args.repeat, extra)
    print(f"model: {args.model} ({new['layers']} layers)  options: {extra or 'defaults'}  baseline: git "
          f"{args.baseline}  repeat: {args.repeat} (fastest kept)  load average: {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} CPUs")
    print(f"analyze() without figures: baseline {old['analyze_s']:.2f} s ({old['analyze_cpu']:.2f} s CPU), "
          f"this tree {new['analyze_s']:.2f} s ({new['analyze_cpu']:.2f} s CPU)")
    head = f"  {'':<34} {'wall s':>8} {'cpu s':>8} {'files':>6} {'ms/file':>9} {'cpu ms/f':>9}"
    for label in ("--plots", "same figures", "plot=True"):
        o, n = old["runs"][label], new["runs"][label]
        print(f"\n{label}:\n{head}")
        print(_line(f"baseline {args.baseline}", o))
        print(_line("this tree", n))
        per_old, per_new = o[0] / max(o[2], 1), n[0] / max(n[2], 1)
        cpu_old, cpu_new = o[1] / max(o[2], 1), n[1] / max(n[2], 1)
        print(f"  ratio baseline / this tree: total {o[0] / max(n[0], 1e-9):.1f}x "
              f"(CPU {o[1] / max(n[1], 1e-9):.1f}x); per file {per_old / max(per_new, 1e-9):.2f}x "
              f"(CPU {cpu_old / max(cpu_new, 1e-9):.2f}x)")


def per_kind(args, path: Path, extra: dict) -> None:
    """Milliseconds per file of every kind of this tree, one kind at a time."""
    from spectralwatch.render.plots.kinds import FIGURE_KINDS

    specs = {f"kind {name}": {"kinds": [name], "model": kind.scope == "model"}
             for name, kind in FIGURE_KINDS.items() if not (kind.needs and not extra.get(kind.needs))}
    new = _worker(str(REPO / "src"), str(path), specs, args.repeat, extra)
    print(f"\nthis tree, one kind at a time ({args.model}, {new['layers']} layers, load average "
          f"{os.getloadavg()[0]:.2f}):")
    print(f"  {'':<34} {'wall s':>8} {'cpu s':>8} {'files':>6} {'ms/file':>9} {'cpu ms/f':>9}")
    for label, run in new["runs"].items():
        print(_line(label, run))


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


def reference(args, path: Path, extra: dict) -> None:
    import numpy as np

    import spectralwatch

    with tempfile.TemporaryDirectory() as tmp:  # warm-up: imports, font cache (not timed)
        spectralwatch.analyze(np.random.default_rng(0).standard_normal((60, 30)), plot=True, savefig=tmp)
    results = {"spectralwatch": run_spectralwatch(str(path), extra)}
    try:
        import weightwatcher  # noqa: F401
    except ImportError:
        print("weightwatcher is not installed: timing spectralwatch only")
    else:
        results["weightwatcher"] = run_reference(realmodels.load_state_dict(path), extra)
    print(f"\nanalyze(plot=True) against WeightWatcher 0.7.7 (every figure):")
    print(f"{'':<16} {'no plot s':>9} {'plot s':>9} {'figs s':>9} {'figs cpu':>9} {'files':>6} {'ms/file':>10}")
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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="efficientnet-lite0", help="a model of tests/realmodels.py")
    parser.add_argument("--baseline", default=DEFAULT_BASELINE, help="the git revision to compare with")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per case (the fastest is kept)")
    parser.add_argument("--per-kind", action="store_true", help="also time every figure kind of this tree")
    parser.add_argument("--rmt", action="store_true", help="also mp_fit=True, randomize=True, detX=True")
    parser.add_argument("--reference", action="store_true", help="also time WeightWatcher 0.7.7's plot=True")
    parser.add_argument("--no-baseline", action="store_true", help="skip the comparison with --baseline")
    args = parser.parse_args(argv)
    import timeit

    loop = min(timeit.repeat("sum(range(10**6))", number=3, repeat=5)) / 3
    print(f"machine: sum(range(10**6)) takes {1000 * loop:.1f} ms here (a pure-Python yardstick of this "
          "machine's speed and load, to compare runs)")

    try:
        path = realmodels.fetch_or_raise(args.model)
    except realmodels.ModelUnavailable as exc:
        print(f"skipped: {exc}")
        return 0
    extra = dict(mp_fit=True, randomize=True, detX=True) if args.rmt else {}
    if not args.no_baseline:
        versions(args, path, extra)
    if args.per_kind:
        per_kind(args, path, extra)
    if args.reference:
        reference(args, path, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())

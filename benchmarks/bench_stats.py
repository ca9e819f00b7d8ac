"""Cost of the fit statistics (docs/statistics.md) relative to the plain analysis, in one run.

    python benchmarks/bench_stats.py                         # all-MiniLM-L6-v2, median of 3
    python benchmarks/bench_stats.py --repeat 5 --bootstrap 200 --gof 100
    python benchmarks/bench_stats.py --threads 1 --json stats.json

On all-MiniLM-L6-v2 (a real model, fetched once from a PyPI wheel, see tests/realmodels.py) it times,
interleaved so that a noisy machine slows every variant alike:

* ``plain``: ``spectralwatch.analyze(path)`` with default options;
* ``full statistics``: ``analyze(path, bootstrap=B, compare_tails=True, rng=0)`` -- the bootstrap
  interval and xmin stability plus the four likelihood-ratio tests on every layer (the issue's
  budget: within 2x the plain analysis);
* ``+ gof``: the same plus ``gof_samples=G`` (Clauset et al.'s goodness-of-fit p-value);
* ``farms``: ``analyze(path, farms=True)`` (the extra eigenvalues of the sub-matrices);

and prints each median with its ratio to ``plain``. It also measures, layer by layer on the same
model, the default power-law fit against the eigenvalue computation it follows (Gram matrix +
symmetric eigensolver, float64): the fit must stay a small fraction of it. Nothing is asserted:
compare ratios measured in one run, on one machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

import realmodels  # noqa: E402  (tests/realmodels.py)

_THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _timed(fn) -> float:
    gc.collect()
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def time_variants(path: str, variants: dict, repeat: int) -> dict:
    """Median seconds of each variant, run round-robin ``repeat`` times (after one warm-up each)."""
    import spectralwatch

    runs: dict = {name: [] for name in variants}
    reports: dict = {}
    for name, kw in variants.items():  # warm-up: imports, lazy initialisation, file cache
        reports[name] = spectralwatch.analyze(path, **kw)
    for _ in range(repeat):
        for name, kw in variants.items():
            runs[name].append(_timed(lambda kw=kw: spectralwatch.analyze(path, **kw)))
    return {name: {"median_s": statistics.median(ts), "runs_s": ts, "layers": reports[name].num_layers}
            for name, ts in runs.items()}, reports


def fit_vs_eigen(path: str, repeat: int) -> dict:
    """Seconds of the eigenvalue step and of the default fit, summed over the layers of the model."""
    import numpy as np
    from safetensors.numpy import load_file

    from spectralwatch import fit_power_law

    eig = fit = 0.0
    n = 0
    for name, w in load_file(path).items():
        if w.ndim != 2 or min(w.shape) < 8 or max(w.shape) > 50000:
            continue
        W = w.astype(np.float64)
        if W.shape[0] < W.shape[1]:
            W = W.T
        t_e, t_f = [], []
        for _ in range(repeat):
            t0 = time.perf_counter()
            ev = np.linalg.eigvalsh(W.T @ W)
            t_e.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            fit_power_law(ev, ties="reference", thresh=1e-5)  # the fit analyze() runs on every layer
            t_f.append(time.perf_counter() - t0)
        eig += min(t_e)
        fit += min(t_f)
        n += 1
    return {"layers": n, "eigen_s": eig, "fit_s": fit, "fit_over_eigen": fit / eig}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--bootstrap", type=int, default=200, help="bootstrap replicates (default 200)")
    p.add_argument("--gof", type=int, default=100, help="goodness-of-fit samples (default 100; 0 skips)")
    p.add_argument("--no-farms", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="pin BLAS/OpenMP threads (restarts itself)")
    p.add_argument("--json", default=None, help="write the results to this file")
    args = p.parse_args(argv)
    if args.threads and os.environ.get("OMP_NUM_THREADS") != str(args.threads):
        env = dict(os.environ, **{v: str(args.threads) for v in _THREAD_VARS})
        return subprocess.call([sys.executable, __file__, *(argv if argv is not None else sys.argv[1:])], env=env)

    try:
        path = str(realmodels.fetch_or_raise("all-minilm-l6-v2"))
    except realmodels.ModelUnavailable as exc:
        print(f"all-MiniLM-L6-v2 unavailable: {exc}")
        return 1
    full = {"bootstrap": args.bootstrap, "compare_tails": True, "rng": 0}
    variants = {"plain": {}, "full statistics": full}
    if args.gof:
        variants["+ gof"] = dict(full, gof_samples=args.gof)
    if not args.no_farms:
        variants["farms"] = {"farms": True}
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"all-MiniLM-L6-v2, median of {args.repeat}; load average {load:.1f} on {os.cpu_count()} CPUs; "
          f"threads {os.environ.get('OMP_NUM_THREADS', 'default')}")
    results, reports = time_variants(path, variants, args.repeat)
    base = results["plain"]["median_s"]
    print(f"{'variant':<18}{'options':<62}{'median s':>10}{'x plain':>9}")
    for name, res in results.items():
        opts = ", ".join(f"{k}={v}" for k, v in variants[name].items()) or "(defaults)"
        res["ratio"] = res["median_s"] / base
        print(f"{name:<18}{opts:<62}{res['median_s']:>10.3f}{res['ratio']:>9.2f}")
    stats_report = reports["full statistics"]
    flagged = int((stats_report.details["fit_quality"] != "").sum())
    print(f"full statistics: {stats_report.num_layers} layers, {flagged} flagged "
          f"({', '.join(sorted(set(';'.join(stats_report.details['fit_quality']).split(';')) - {''}))}); "
          f"best tails {stats_report.details['best_tail'].value_counts().to_dict()}")
    fe = fit_vs_eigen(path, args.repeat)
    print(f"default fit vs eigenvalues over {fe['layers']} matrices: fit {fe['fit_s']:.3f} s, "
          f"eigenvalues {fe['eigen_s']:.3f} s, ratio {fe['fit_over_eigen']:.3f}")
    if args.json:
        Path(args.json).write_text(json.dumps({"variants": results, "fit_vs_eigen": fe, "load": load}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

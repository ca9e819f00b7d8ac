"""Time and peak memory of the goodness-of-fit test and the bootstrap, against the `powerlaw` package.

    python benchmarks/bench_gof.py                          # fires, 200 GoF samples, 2 powerlaw samples
    python benchmarks/bench_gof.py --data cities --gof 2500 --powerlaw-samples 3
    python benchmarks/bench_gof.py --json gof.json

On one of Clauset, Shalizi & Newman's (2009) data sets bundled with the `powerlaw` package 2.0
(``powerlaw.load_test_dataset``; default ``fires``, 203785 values), it measures, each in a fresh
Python process so that the peak memory of one does not hide another's:

* ``spectralwatch gof``: ``goodness_of_fit(fit, G)`` of the fit ``fit_power_law(data, ties='merge',
  thresh=0)`` -- G synthetic data sets of the data's size, each re-fitted with its own KS scan;
* ``spectralwatch bootstrap``: ``bootstrap_alpha(fit, B)``;
* ``powerlaw gof``: the same test written with the `powerlaw` package (which has no goodness-of-fit
  function): per synthetic data set (drawn the same way), ``powerlaw.Fit(sample,
  parameter_ranges={'alpha': [1, 50]})``, its own KS scan. It takes seconds per data set, so only
  ``--powerlaw-samples`` of them are fitted and the time per data set is compared.

Seconds come from an untraced run; peak memory from a second run under ``tracemalloc`` (numpy
reports its arrays to it): the most memory allocated at once during the call, above what the data,
the imports and the fit already hold (for powerlaw, while fitting one synthetic data set: it holds
one at a time). Nothing is asserted: compare the ratios of one run on one machine.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

_PRELUDE = textwrap.dedent("""
    import json, sys, time, warnings
    import numpy as np, powerlaw
    sys.path.insert(0, {src!r})
    from spectralwatch import fit_power_law
    from spectralwatch.core.fit.uncertainty import bootstrap_alpha, goodness_of_fit
    data = powerlaw.load_test_dataset({name!r})
    fit = fit_power_law(data, ties="merge", thresh=0)
    TRACE = {trace!r}
    if TRACE:
        import tracemalloc
    def start():
        if TRACE:
            tracemalloc.start()
        return time.perf_counter()
    def stop(t0):
        seconds = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1] / 2**20 if TRACE else float("nan")
        return dict(seconds=seconds, peak_mb=peak)
""")

_SW_GOF = """
t = start()
res = goodness_of_fit(fit, {count}, np.random.default_rng(0))
out = dict(stop(t), p=res.p, samples=res.n_samples)
"""

_SW_BOOT = """
t = start()
res = bootstrap_alpha(fit, {count}, np.random.default_rng(0))
out = dict(stop(t), low=res.low, high=res.high, samples=res.n_boot)
"""

_PL_GOF = """
rng = np.random.default_rng(0)
n = data.size
body = np.sort(data[data < fit.xmin])
t = start()
ds = []
for _ in range({count}):  # CSN section 4.1, as goodness_of_fit draws it
    from_tail = rng.random(n) < fit.n_tail / n
    synth = fit.xmin * (1.0 - rng.random(n)) ** (-1.0 / (fit.alpha - 1.0))
    synth = np.where(from_tail, synth, body[rng.integers(0, body.size, n)])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds.append(float(powerlaw.Fit(synth, parameter_ranges={{"alpha": [1, 50]}}, verbose=0).D))
out = dict(stop(t), samples=len(ds), p=float(np.mean(np.array(ds) >= fit.D)))
"""


def run(name: str, body: str, count: int, trace: bool) -> dict:
    code = _PRELUDE.format(src=str(REPO / "src"), name=name, trace=trace) + body.format(count=count) + \
        "\nprint(json.dumps(out))\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(name: str, body: str, count: int, trace_count: int) -> dict:
    """Seconds from an untraced run of ``count`` samples; peak memory from a traced run of ``trace_count``."""
    timed = run(name, body, count, False)
    traced = run(name, body, trace_count, True)
    return dict(timed, peak_mb=traced["peak_mb"], peak_samples=traced["samples"])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="fires", help="a continuous data set of powerlaw.load_test_dataset")
    ap.add_argument("--gof", type=int, default=200, help="goodness-of-fit samples of spectralwatch")
    ap.add_argument("--bootstrap", type=int, default=2500, help="bootstrap replicates of spectralwatch")
    ap.add_argument("--powerlaw-samples", type=int, default=2, help="synthetic data sets fitted by powerlaw")
    ap.add_argument("--json", help="write the results to this file")
    args = ap.parse_args(argv)

    results = {
        "spectralwatch gof": measure(args.data, _SW_GOF, args.gof, args.gof),
        "spectralwatch bootstrap": measure(args.data, _SW_BOOT, args.bootstrap, args.bootstrap),
        "powerlaw gof": measure(args.data, _PL_GOF, args.powerlaw_samples, 1),
    }
    print(f"data set {args.data}")
    print(f"{'variant':<26}{'samples':>9}{'seconds':>10}{'s / sample':>12}{'peak MB':>10}")
    for key, r in results.items():
        print(f"{key:<26}{r['samples']:>9}{r['seconds']:>10.2f}{r['seconds'] / max(r['samples'], 1):>12.4f}"
              f"{r['peak_mb']:>10.1f}")
    sw, pl = results["spectralwatch gof"], results["powerlaw gof"]
    per_sw, per_pl = sw["seconds"] / sw["samples"], pl["seconds"] / pl["samples"]
    print(f"time per goodness-of-fit sample: powerlaw / spectralwatch = {per_pl / per_sw:.1f}x")
    print(f"peak memory: spectralwatch with {sw['samples']} samples {sw['peak_mb']:.0f} MB; powerlaw fitting one "
          f"sample {pl['peak_mb']:.0f} MB (spectralwatch / powerlaw = {sw['peak_mb'] / max(pl['peak_mb'], 1e-9):.2f})")
    if args.json:
        Path(args.json).write_text(json.dumps({"data": args.data, **results}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""How often the likelihood-ratio tests name the true law of a tail, with xmin known and with xmin scanned.

    python benchmarks/bench_tail_choice.py                  # 100 draws per law and size
    python benchmarks/bench_tail_choice.py --reps 200 --sizes 300 1000 5000 --json choice.json

Samples are drawn exactly from five laws above xmin = 1 (tests/test_stats.py's samplers: power law
alpha 2.5, lognormal mu 0.5 sigma 1, exponential rate 1, truncated power law (1.5, 0.05), stretched
exponential beta 0.5 Lambda 0.2; ``--sizes`` values each) and the best-supported law
(``TailComparison.best``, the ``best_tail`` column) is found two ways:

* ``xmin known``: ``compare_tails(x, 1.0)``, every law fitted above the true xmin (what
  tests/test_stats.py's ``test_tests_choose_the_right_law*`` measure);
* ``xmin scanned``: ``fit_power_law(x, thresh=0).compare()``, every law fitted above the power law's
  KS-chosen xmin, as ``analyze(compare_tails=True)`` and Clauset et al.'s procedure do.

It prints, per law and size, the rate of naming the true law and the rate of naming the power law,
for both. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "tests"))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=100)
    ap.add_argument("--sizes", type=int, nargs="+", default=[300, 1000, 5000])
    ap.add_argument("--json")
    args = ap.parse_args(argv)

    from test_stats import TAIL_SAMPLERS  # tests/test_stats.py: exact samplers above xmin = 1

    from spectralwatch import fit_power_law
    from spectralwatch.core.fit.comparison import compare_tails

    rows = []
    print(f"{args.reps} draws per law and size; rate of naming the true law (and the power law), xmin known | scanned")
    print(f"{'true law':<24}{'n':>6}{'known: true':>13}{'known: PL':>11}{'scanned: true':>15}{'scanned: PL':>13}"
          f"{'median n_tail scanned':>23}")
    for law, sampler in TAIL_SAMPLERS.items():
        for n in args.sizes:
            rng = np.random.default_rng(n + len(law))
            known, scanned, n_tail = [], [], []
            for _ in range(args.reps):
                x = sampler(n, rng)
                known.append(compare_tails(x, 1.0).best)
                fit = fit_power_law(x, thresh=0)
                scanned.append(fit.compare().best)
                n_tail.append(fit.n_tail)
            row = {"law": law, "n": n, "known_true": np.mean([b == law for b in known]),
                   "known_power_law": np.mean([b == "power_law" for b in known]),
                   "scanned_true": np.mean([b == law for b in scanned]),
                   "scanned_power_law": np.mean([b == "power_law" for b in scanned]),
                   "median_n_tail": float(np.median(n_tail))}
            rows.append(row)
            print(f"{law:<24}{n:>6}{row['known_true']:>13.2f}{row['known_power_law']:>11.2f}"
                  f"{row['scanned_true']:>15.2f}{row['scanned_power_law']:>13.2f}{row['median_n_tail']:>23.0f}",
                  flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps({"reps": args.reps, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

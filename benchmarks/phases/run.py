"""The labelled phase benchmark: confusion matrix of spectralwatch's ``phase`` column, spike power, false positives.

Every matrix of :mod:`generators` (six phases x six shapes x float32/float64 per seed) goes
through ``spectralwatch.analyze(model, mp_fit=True)``, the same pipeline as a real model (the
stored dtype enters the rank at the stored precision). The thresholds of
``spectralwatch.core.phases`` were chosen by looking at the tuning seeds only (``--tune-seeds``,
default 0-11); the confusion matrix that docs/rmt.md reports is the one of the test seeds
(``--test-seeds``, default 100-119), never looked at while tuning.

The spike study plants one rank-one signal of a given strength (in units of the BBP threshold
``c**(1/4)``, see :mod:`generators`) in a Gaussian matrix and counts how often it is found by
the Tracy-Widom test (``tw_spikes``, false-positive rate 1%) and by WeightWatcher's margin rule
(``num_spikes``); strength 0 is pure noise, where any spike is a false positive.

    python benchmarks/phases/run.py                        # test seeds, sweeps, power (minutes: see README)
    python benchmarks/phases/run.py --tune                 # also the tuning seeds
    python benchmarks/phases/run.py --reduced              # 2 test seeds, small sweeps and power study
    python benchmarks/phases/run.py --json results.json    # also write every row
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generators as gen  # noqa: E402

POWER_STRENGTHS = (0.0, 1.1, 1.2, 1.3, 1.5, 2.0, 3.0)
POWER_SHAPES = ((200, 100), (512, 128), (600, 300), (1000, 500), (256, 256))


def _seeds(text: str) -> list:
    out = []
    for part in text.split(","):
        a, _, b = part.partition("-")
        out.extend(range(int(a), int(b) + 1) if b else [int(a)])
    return out


def classify_seed(seed: int, shapes=gen.SHAPES, dtypes=gen.DTYPES, workers: int = 2) -> list:
    """Rows (truth, label, note, features) of one seed's matrices, through ``spectralwatch.analyze``."""
    import spectralwatch

    model, truth = {}, {}
    for case in gen.cases([seed], shapes=shapes, dtypes=dtypes):
        key = f"{case.phase}|{case.N}x{case.M}|{case.dtype}|{case.seed}"
        model[key + ".weight"] = case.W
        truth[key] = case
    details = spectralwatch.analyze(model, mp_fit=True, workers=workers, executor="processes" if workers > 1
                                    else "serial").details
    rows = []
    for r in details.to_dict("records"):
        case = truth[r["name"]]
        rows.append({"seed": seed, "truth": case.phase, "label": r["phase"], "N": case.N, "M": case.M,
                     "dtype": case.dtype, "note": r.get("phase_note", ""), "tw_spikes": r.get("tw_spikes"),
                     "numerical_rank_loss": r["numerical_rank_loss"], "rank_loss": r["rank_loss"],
                     "alpha": r["alpha"], "entry_tail_index": r.get("entry_tail_index"),
                     "params": json.dumps(case.params)})
    return rows


def confusion(rows) -> tuple:
    """``(matrix, labels)``: counts of (true phase, label) over ``rows``."""
    labels = list(gen.PHASES) + sorted({r["label"] for r in rows} - set(gen.PHASES))
    counts = Counter((r["truth"], r["label"]) for r in rows)
    return [[counts[(t, p)] for p in labels] for t in gen.PHASES], labels


def confusion_markdown(rows) -> str:
    mat, labels = confusion(rows)
    head = "| true \\ label | " + " | ".join(x or "(none)" for x in labels) + " | right |"
    rule = "|---|" + "---:|" * (len(labels) + 1)
    body = []
    for t, line in zip(gen.PHASES, mat):
        total = sum(line)
        right = line[labels.index(t)] / total if total else float("nan")
        body.append(f"| {t} | " + " | ".join(str(c) for c in line) + f" | {100 * right:.1f}% |")
    return "\n".join([head, rule, *body])


def breakdown(rows, key: str) -> str:
    """Share right per value of ``key`` (shape, dtype)."""
    out = []
    for value in sorted({r[key] if key != "shape" else (r["N"], r["M"]) for r in rows}):
        sel = [r for r in rows if (r[key] if key != "shape" else (r["N"], r["M"])) == value]
        right = sum(r["truth"] == r["label"] for r in sel)
        out.append(f"{value}: {right}/{len(sel)} ({100 * right / len(sel):.1f}%)")
    return "; ".join(out)


def _power_cell(args) -> dict:
    from spectralwatch.core.rmt import fit_marchenko_pastur
    from spectralwatch.core.tracy_widom import tracy_widom_spikes
    from threadpoolctl import threadpool_limits

    N, M, s, reps, seed = args
    rng = np.random.default_rng([seed, N, M, int(round(100 * s))])
    tw = ww = 0
    with threadpool_limits(1):
        for _ in range(reps):
            W = gen.add_spikes(gen.noise(N, M, rng), [s] if s > 0 else [], rng)
            ev = np.linalg.eigvalsh(W.T @ W)
            tw += tracy_widom_spikes(ev, N, M).num >= 1
            ww += fit_marchenko_pastur(ev, N / M, M).num_spikes >= 1
    return {"N": N, "M": M, "strength": s, "tw": tw / reps, "ww": ww / reps,
            "location": gen.spike_location(s, N, M) if s > 0 else float("nan")}


def spike_power(reps: int, shapes=POWER_SHAPES, strengths=POWER_STRENGTHS, seed: int = 7, workers: int = 2) -> list:
    """Share of matrices in which one planted spike (or, at strength 0, none) is detected.

    Rows ``(N, M, strength, tw, ww, location)``: ``tw`` the share with ``tw_spikes >= 1``, ``ww``
    with WeightWatcher's ``num_spikes >= 1``; ``location`` the asymptotic eigenvalue of the spike
    over the bulk edge.
    """
    cells = [(N, M, s, reps, seed) for N, M in shapes for s in strengths]
    if workers <= 1:
        return [_power_cell(c) for c in cells]
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(workers) as pool:
        return list(pool.map(_power_cell, cells))


def power_markdown(rows) -> str:
    strengths = sorted({r["strength"] for r in rows})
    head = ("| N x M | " + " | ".join("noise (FPR)" if s == 0 else
                                     f"{s:g} ({100 * (gen.spike_location(s, 2, 1) - 1):.0f}%*)" for s in strengths)
            + " |")
    rule = "|---|" + "---:|" * len(strengths)
    body = []
    for shape in dict.fromkeys((r["N"], r["M"]) for r in rows):
        cells = []
        for s in strengths:
            r = next(x for x in rows if (x["N"], x["M"]) == shape and x["strength"] == s)
            cells.append(f"{100 * r['tw']:.0f}% / {100 * r['ww']:.0f}%")
        body.append(f"| {shape[0]} x {shape[1]} | " + " | ".join(cells) + " |")
    return "\n".join([head, rule, *body])


SWEEP_SHAPE = (600, 300)


def _sweep_models(reps: int, seed: int = 11) -> dict:
    """Matrices along three knobs that cross phase boundaries (600 x 300, float32), by knob and value."""
    N, M = SWEEP_SHAPE
    models = {}
    for s in (1.0, 1.2, 1.4, 1.7, 2.0, 2.5, 3.0):  # one spike: random-like -> bleeding-out -> bulk+spikes
        rng = np.random.default_rng([seed, 1, int(100 * s)])
        models[("one spike, strength", s)] = [gen.add_spikes(gen.noise(N, M, rng), [s], rng) for _ in range(reps)]
    for mu in (2.5, 3.0, 3.5, 4.0, 4.5, 5.0):  # Pareto entries: heavy-tailed -> random-like
        rng = np.random.default_rng([seed, 2, int(100 * mu)])
        models[("Pareto entries, mu", mu)] = [gen.heavy_entries(N, M, rng, mu, "pareto") for _ in range(reps)]
    for a in (2.5, 3.5, 4.5, 6.0, 8.0, 12.0):  # bent ESD tail from u0 = 0.7: heavy-tailed -> bulk-decay
        rng = np.random.default_rng([seed, 3, int(100 * a)])
        models[("bent tail (u0 = 0.7), alpha", a)] = [
            gen.with_spectrum(gen.bent_spectrum(N, M, rng, a, 0.7), N, rng) for _ in range(reps)]
    return models


def sweeps(reps: int, workers: int = 2) -> list:
    """Share of each label along the knobs of :func:`_sweep_models`."""
    import spectralwatch

    out = []
    for (knob, value), mats in _sweep_models(reps).items():
        model = {f"m{i}.weight": W.astype(np.float32) for i, W in enumerate(mats)}
        d = spectralwatch.analyze(model, mp_fit=True, workers=workers,
                                  executor="processes" if workers > 1 else "serial").details
        shares = d["phase"].value_counts(normalize=True).to_dict()
        out.append({"knob": knob, "value": value, "shares": shares})
    return out


def sweeps_markdown(rows) -> str:
    lines = []
    for knob in dict.fromkeys(r["knob"] for r in rows):
        cells = []
        for r in (x for x in rows if x["knob"] == knob):
            top = sorted(r["shares"].items(), key=lambda kv: -kv[1])
            cells.append(f"{r['value']:g}: " + ", ".join(f"{100 * v:.0f}% {k}" for k, v in top))
        lines.append(f"- {knob}: " + "; ".join(cells))
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tune-seeds", default="0-11", help="seeds the thresholds were tuned on (default 0-11)")
    parser.add_argument("--test-seeds", default="100-119", help="held-out seeds of the reported confusion matrix")
    parser.add_argument("--power-reps", type=int, default=100, help="matrices per (shape, strength) in the spike study")
    parser.add_argument("--reduced", action="store_true", help="2 test seeds, 40 reps: a quick check")
    parser.add_argument("--tune", action="store_true", help="also rerun the tuning seeds")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write every row to this file")
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    test_seeds = _seeds(args.test_seeds)[:2] if args.reduced else _seeds(args.test_seeds)
    reps = 40 if args.reduced else args.power_reps
    t0 = time.time()
    result = {}
    for name, seeds in (("tune", _seeds(args.tune_seeds) if args.tune else []),
                        ("test", test_seeds)):
        if not seeds:
            continue
        rows = [r for s in seeds for r in classify_seed(s, workers=args.workers)]
        result[name] = rows
        right = sum(r["truth"] == r["label"] for r in rows)
        print(f"\n## {name} seeds {seeds[0]}-{seeds[-1]}: {len(rows)} matrices, {right} right "
              f"({100 * right / len(rows):.1f}%)\n")
        print(confusion_markdown(rows), flush=True)
        print("\nby shape: " + breakdown(rows, "shape"))
        print("by dtype: " + breakdown(rows, "dtype"))
        noted = [r for r in rows if r["note"]]
        wrong_noted = sum(r["truth"] != r["label"] for r in noted)
        print(f"labels with a phase_note: {len(noted)} ({wrong_noted} of them wrong); wrong without a note: "
              f"{sum(r['truth'] != r['label'] and not r['note'] for r in rows)}")
    sweep = sweeps(20 if args.reduced else 50, workers=args.workers)
    result["sweeps"] = sweep
    print(f"\n## labels along three knobs ({SWEEP_SHAPE[0]} x {SWEEP_SHAPE[1]}, float32)\n", flush=True)
    print(sweeps_markdown(sweep), flush=True)
    power = spike_power(reps, workers=args.workers)
    result["power"] = power
    print(f"\n## spike detection, one planted spike, {reps} matrices per cell: Tracy-Widom test (FPR 1%) / "
          "WeightWatcher margin\n(* the spike's asymptotic distance above the bulk edge at Q = 2)\n")
    print(power_markdown(power))
    print(f"\n{time.time() - t0:.0f} s")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1, default=float))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

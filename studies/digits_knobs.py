r"""Don't peek, checked: do spectralwatch's metrics rank networks like their test accuracy does?

Small MLPs (``64 -> width -> ... -> width -> 10``, ReLU) are trained on scikit-learn's bundled digits
data set (1797 8x8 images; no download) along one knob at a time, every other setting held at the
baseline, three seeds per setting. For every network: the accuracy on a held-out split the training
never saw, and the model metrics of ``spectralwatch.analyze(model, mp_fit=True).summary``. For each
knob and each metric: Spearman's rho and Kendall's tau-b with test accuracy and seeded bootstrap
intervals (:mod:`studies.correlation`), and whether the sign is the one Heavy-Tailed
Self-Regularization predicts (smaller metric, better network).

Run from the repository root (writes ``docs/study/``)::

    python -m studies.digits_knobs --workers 2

Everything is seeded (the split, the initial weights, the label noise, the order of the batches,
the bootstrap), and each network trains on one thread, so a rerun on the same machine writes the
same ``networks.csv`` and ``correlations.csv`` byte for byte (timings go to ``run.json`` only).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):  # run as a file: make ``studies`` importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from studies.correlation import bootstrap_indices, correlate  # noqa: E402

__all__ = ["METRICS", "ROBUST_METRICS", "PREDICTED_SIGN", "Config", "Design", "DERIVED_KNOBS", "FULL", "tiny_design",
           "load_split", "train_network", "measure", "run_networks", "knob_networks", "correlation_table",
           "run_study", "markdown_table", "knob_means", "save_figures", "write_outputs", "main"]

#: the model metrics of ``analyze(model, mp_fit=True).summary``, in the order the tables show them
METRICS = ("alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "log_norm", "stable_rank",
           "mp_softrank")
#: robust variants, reported after the standard ones: the median of the layers' alpha; the mean over the
#: layers whose fit is not flagged (``fit_quality``: fewer than 16 tail eigenvalues); FARMS's alpha
#: (Hu et al., ICML 2025: eigenvalues of square windows, no aspect-ratio bias), averaged over layers
ROBUST_METRICS = ("alpha_median", "alpha_unflagged", "farms_alpha")
#: -1: HTSR predicts that a smaller value goes with a better network (a negative correlation with
#: accuracy). alpha, alpha_weighted, log_alpha_norm, log_spectral_norm, log_norm: Martin, Peng &
#: Mahoney, Nature Communications 12, 4122 (2021). stable_rank and mp_softrank: Martin & Mahoney,
#: JMLR 22(165) (2021) describe both shrinking as training builds correlations into the weights; they
#: do not propose them as quality metrics, so their row tests that reading, not a stated claim.
PREDICTED_SIGN = {m: -1 for m in METRICS + ROBUST_METRICS}

N_TRAIN = 1200  # of digits' 1797 images; the other 597 are the held-out test split
SPLIT_SEED = 0
MOMENTUM = 0.9


@dataclass(frozen=True, order=True)
class Config:
    """One network: its architecture, its training, its seed."""

    width: int = 128
    depth: int = 2           # hidden layers
    batch_size: int = 32
    lr: float = 0.05         # SGD, momentum 0.9
    steps: int = 600         # optimizer steps
    label_noise: float = 0.0  # fraction of training labels replaced by another class
    weight_decay: float = 0.0
    seed: int = 0


def _fixed_epochs(base: Config, batch_size: int) -> Config:
    """Batch size at the baseline's number of epochs: steps scale as 1 / batch size."""
    return dataclasses.replace(base, batch_size=batch_size,
                               steps=max(1, round(base.steps * base.batch_size / batch_size)))


#: knobs that are not one Config field: name -> function(baseline, value) -> Config
DERIVED_KNOBS = {"batch_size_fixed_epochs": _fixed_epochs}


@dataclass(frozen=True)
class Design:
    """A baseline and, per knob, the values it takes; every value x every seed.

    A knob is a :class:`Config` field (that field takes the value, the others keep the baseline's) or a
    name of :data:`DERIVED_KNOBS` (a rule that sets several fields from one value).
    """

    baseline: Config
    knobs: dict = field(default_factory=dict)  # knob -> tuple of values
    seeds: tuple = (0, 1, 2)

    def __post_init__(self):
        names = ({f.name for f in dataclasses.fields(Config)} - {"seed"}) | set(DERIVED_KNOBS)
        for knob, values in self.knobs.items():
            if knob not in names:
                raise ValueError(f"unknown knob {knob!r}; knobs are fields of Config or derived knobs: "
                                 f"{sorted(names)}")
            if len(values) < 2 or len(set(values)) != len(values):
                raise ValueError(f"knob {knob!r} needs at least 2 distinct values; got {values!r}")
        if not self.seeds:
            raise ValueError("a design needs at least one seed")

    def config(self, knob: str, value, seed: int) -> Config:
        if knob in DERIVED_KNOBS:
            return dataclasses.replace(DERIVED_KNOBS[knob](self.baseline, value), seed=seed)
        return dataclasses.replace(self.baseline, **{knob: value}, seed=seed)

    def configs(self, knob: str) -> list:
        """The networks of one knob as (value, Config): each value x each seed."""
        return [(v, self.config(knob, v, s)) for v in self.knobs[knob] for s in self.seeds]

    def all_configs(self) -> list:
        """Every network of the design once (the baseline is shared by the knobs that contain it)."""
        return sorted({c for knob in self.knobs for _, c in self.configs(knob)})


#: the design of docs/study.md
FULL = Design(
    baseline=Config(),
    knobs={
        "batch_size": (8, 16, 32, 64, 128, 256, 512),  # at a fixed number of steps
        "batch_size_fixed_epochs": (8, 16, 32, 64, 128, 256, 512, 1024),  # 16 epochs: 2400 ... 19 steps
        "lr": (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2),
        "label_noise": (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6),
        "steps": (25, 50, 100, 200, 400, 800, 1600, 3200),
        "width": (16, 32, 64, 128, 256, 512),
        "depth": (1, 2, 3, 4, 6),
        "weight_decay": (0.0, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2),
    },
    seeds=(0, 1, 2),
)

KNOB_LABELS = {"batch_size": "batch size (fixed steps)", "batch_size_fixed_epochs": "batch size (fixed epochs)",
               "lr": "learning rate", "label_noise": "label noise",
               "steps": "training steps", "width": "width", "depth": "depth (hidden layers)",
               "weight_decay": "weight decay"}


def tiny_design() -> Design:
    """2 knobs x 2 values x 2 seeds of narrow, briefly trained networks: seconds (for the tests)."""
    return Design(baseline=Config(width=16, steps=30, batch_size=16),
                  knobs={"batch_size": (8, 64), "width": (16, 32)}, seeds=(0, 1))


# ---- data and training ------------------------------------------------------------------------------

def load_split():
    """Digits scaled to [0, 1], split once by a fixed permutation: (X_train, y_train, X_test, y_test)."""
    from sklearn.datasets import load_digits

    X, y = load_digits(return_X_y=True)
    idx = np.random.default_rng(SPLIT_SEED).permutation(len(X))
    X = (X / 16.0).astype(np.float32)
    y = y.astype(np.int64)
    return X[idx[:N_TRAIN]], y[idx[:N_TRAIN]], X[idx[N_TRAIN:]], y[idx[N_TRAIN:]]


def noisy_labels(y: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A copy of ``y`` whose ``round(fraction * n)`` entries (chosen by ``seed``) get another class."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"label_noise must be in [0, 1]; got {fraction}")
    rng = np.random.default_rng([seed, 1])
    y = y.copy()
    k = int(round(fraction * len(y)))
    which = rng.choice(len(y), size=k, replace=False)
    y[which] = (y[which] + rng.integers(1, 10, size=k)) % 10  # uniform over the 9 other classes
    return y


def build_mlp(cfg: Config):
    import torch
    from torch import nn

    torch.manual_seed(cfg.seed)
    layers, fan_in = [], 64
    for _ in range(cfg.depth):
        layers += [nn.Linear(fan_in, cfg.width), nn.ReLU()]
        fan_in = cfg.width
    layers.append(nn.Linear(fan_in, 10))
    return nn.Sequential(*layers)


def train_network(cfg: Config, data):
    """Train one MLP; returns (model, test accuracy, train accuracy on the clean labels, diverged).

    SGD with momentum 0.9 and a constant learning rate (the update of ``torch.optim.SGD``, written
    out: it spares each process the import of ``torch.optim``'s compiler hooks), ``steps`` steps of
    ``batch_size`` distinct training images drawn anew each step, cross-entropy on the (possibly
    noisy) labels, PyTorch's default initialisation, float32, on the calling thread.
    """
    import torch
    from torch import nn

    Xtr, ytr, Xte, yte = data
    model = build_mlp(cfg)
    y_fit = torch.from_numpy(noisy_labels(ytr, cfg.label_noise, cfg.seed))
    Xtr_t, Xte_t = torch.from_numpy(Xtr), torch.from_numpy(Xte)
    params = list(model.parameters())
    buffers = [None] * len(params)
    gen = torch.Generator().manual_seed(cfg.seed)
    bs = min(cfg.batch_size, len(Xtr))
    diverged = False
    for _ in range(cfg.steps):
        b = torch.randperm(len(Xtr), generator=gen)[:bs]
        for p in params:
            p.grad = None
        loss = nn.functional.cross_entropy(model(Xtr_t[b]), y_fit[b])
        if not torch.isfinite(loss):
            diverged = True
            break
        loss.backward()
        with torch.no_grad():
            # torch.optim.SGD(momentum=MOMENTUM, weight_decay=wd), written out: d = g + wd p;
            # v = d (first step), v = MOMENTUM v + d (then); p = p - lr v
            for i, p in enumerate(params):
                d = p.grad if not cfg.weight_decay else p.grad.add(p, alpha=cfg.weight_decay)
                if buffers[i] is None:
                    buffers[i] = d.clone()
                else:
                    buffers[i].mul_(MOMENTUM).add_(d)
                p.add_(buffers[i], alpha=-cfg.lr)
    with torch.no_grad():
        test_acc = float((model(Xte_t).argmax(1).numpy() == yte).mean())
        train_acc = float((model(Xtr_t).argmax(1).numpy() == ytr).mean())
    return model, test_acc, train_acc, diverged


def _alpha_columns(details) -> dict:
    import pandas as pd

    from spectralwatch.results.report import summarize

    ok = details[details["status"] == "success"] if "status" in details else details
    alphas = pd.to_numeric(ok["alpha"], errors="coerce")
    farms = pd.to_numeric(ok["farms_alpha"], errors="coerce") if "farms_alpha" in ok else pd.Series(dtype=float)
    farms = farms[farms > 0]
    unflagged = summarize(details, exclude_flagged=True)
    return {"alpha_median": float(alphas.median()) if len(alphas) else math.nan,
            "alpha_unflagged": unflagged.get("alpha", math.nan) if unflagged.get("num_averaged", 0) else math.nan,
            "farms_alpha": float(farms.mean()) if len(farms) else math.nan,
            "layer_alphas": ";".join(f"{a:.6g}" for a in alphas),
            "layer_evals": ";".join(str(int(n)) for n in ok["num_evals"])}


def measure(cfg: Config, data=None) -> tuple:
    """Train ``cfg`` and analyse it: (row of results, timings). The row holds no timing (reproducible)."""
    import spectralwatch

    data = load_split() if data is None else data
    t0 = time.perf_counter()
    model, test_acc, train_acc, diverged = train_network(cfg, data)
    t1 = time.perf_counter()
    row = {**dataclasses.asdict(cfg), "test_acc": test_acc, "train_acc": train_acc, "diverged": diverged}
    if diverged:
        row.update({m: math.nan for m in METRICS + ROBUST_METRICS})
    else:
        # fit_quality and farms add columns and leave the summary as analyze(model, mp_fit=True) gives it
        # (checked in tests/test_study.py)
        report = spectralwatch.analyze(model, mp_fit=True, fit_quality=True, farms=True, workers=1)
        row.update({m: float(report.summary.get(m, math.nan)) for m in METRICS})
        row.update(_alpha_columns(report.details))
    return row, {"train_s": t1 - t0, "analyze_s": time.perf_counter() - t1}


_WORKER_DATA = None


def _init_worker():
    import torch

    global _WORKER_DATA
    torch.set_num_threads(1)
    _WORKER_DATA = load_split()


def _measure_in_worker(cfg: Config):
    return measure(cfg, _WORKER_DATA)


def _cost(cfg: Config) -> float:
    """A rough relative training cost, to start the longest jobs first."""
    params = 64 * cfg.width + (cfg.depth - 1) * cfg.width ** 2 + 10 * cfg.width
    return cfg.steps * (1.0 + cfg.batch_size * params / 3e5)


def run_networks(configs, *, workers: int = 1, progress=None):
    """Train and measure every config; a DataFrame in the order of ``configs`` and the total timings.

    ``workers > 1`` runs that many single-threaded processes ("spawn"); each network is trained on
    one thread whatever ``workers`` is, so the numbers do not depend on it.
    """
    import pandas as pd
    import torch

    configs = list(configs)
    if workers < 1:
        raise ValueError(f"workers must be >= 1; got {workers}")
    results = {}
    if workers == 1:
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            data = load_split()
            for i, cfg in enumerate(configs):
                results[cfg] = measure(cfg, data)
                if progress:
                    progress(i + 1, len(configs), cfg)
        finally:
            torch.set_num_threads(threads)
    else:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        order = sorted(configs, key=_cost, reverse=True)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_init_worker) as pool:
            futures = {pool.submit(_measure_in_worker, cfg): cfg for cfg in order}
            for i, fut in enumerate(as_completed(futures)):
                results[futures[fut]] = fut.result()
                if progress:
                    progress(i + 1, len(configs), futures[fut])
    table = pd.DataFrame([results[c][0] for c in configs])
    timings = {"train_s": sum(results[c][1]["train_s"] for c in configs),
               "analyze_s": sum(results[c][1]["analyze_s"] for c in configs)}
    return table, timings


# ---- the correlation table --------------------------------------------------------------------------

def knob_networks(networks, design: Design, knob: str):
    """The rows of ``networks`` that belong to one knob, with the knob's setting in a ``value`` column."""
    fields = [f.name for f in dataclasses.fields(Config)]
    value_of = {dataclasses.astuple(c): v for v, c in design.configs(knob)}
    keys = [tuple(r) for r in networks[fields].itertuples(index=False)]
    mask = np.array([k in value_of for k in keys], dtype=bool)
    sub = networks[mask].copy()
    sub["value"] = [value_of[k] for k, m in zip(keys, mask) if m]
    return sub


def _verdict(lo: float, hi: float, sign: int) -> str:
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "n/a"
    if (hi < 0 and sign < 0) or (lo > 0 and sign > 0):
        return "as predicted"
    if (lo > 0 and sign < 0) or (hi < 0 and sign > 0):
        return "reversed"
    return "unclear"


def correlation_table(networks, design: Design, *, metrics=METRICS + ROBUST_METRICS, n_boot: int = 2000,
                      seed: int = 0, level: float = 0.95, pooled: bool = True):
    """Knob x metric: Spearman, Kendall, bootstrap intervals, the predicted sign and whether it held.

    Each knob's networks are resampled ``n_boot`` times from ``numpy.random.default_rng([seed, k])``
    (k: the knob's position; the pooled row uses k = number of knobs), the same resamples for every
    metric. Networks whose training diverged or whose metric is not finite are left out (``n``).

    Columns: ``knob, metric, n, spearman, spearman_lo, spearman_hi, kendall, kendall_lo, kendall_hi,
    n_boot_valid, predicted, sign_as_predicted`` (``yes``: both statistics have the predicted sign,
    ``no``: both the other, ``mixed``/``zero`` otherwise) and ``verdict`` from the Spearman interval
    (``as predicted``: entirely on the predicted side; ``reversed``: entirely on the other;
    ``unclear``: it contains 0).
    """
    import pandas as pd

    groups = [(knob, knob_networks(networks, design, knob)) for knob in design.knobs]
    if pooled:
        groups.append(("all (pooled)", networks.drop_duplicates(subset=[f.name for f in dataclasses.fields(Config)])))
    rows = []
    for k, (knob, sub) in enumerate(groups):
        sub = sub[~sub["diverged"].astype(bool)]
        if len(sub) < 2:
            raise ValueError(f"knob {knob!r} has {len(sub)} usable networks; a correlation needs at least 2")
        shared = bootstrap_indices(len(sub), n_boot, [seed, k])
        for j, metric in enumerate(metrics):
            values = sub[metric].to_numpy(dtype=float)
            finite = np.isfinite(values)
            sign = PREDICTED_SIGN[metric]
            if finite.sum() < 2:
                rows.append({"knob": knob, "metric": metric, "n": int(finite.sum()),
                             "predicted": "-" if sign < 0 else "+",
                             "sign_as_predicted": "n/a", "verdict": "n/a"})
                continue
            # a metric undefined for some networks (e.g. no unflagged layer) is resampled on its own
            idx = shared if finite.all() else bootstrap_indices(int(finite.sum()), n_boot, [seed, k, j + 1])
            acc = sub["test_acc"].to_numpy(dtype=float)[finite]
            stats = correlate(values[finite], acc, indices=idx, level=level)
            signs = {int(np.sign(stats["spearman"])), int(np.sign(stats["kendall"]))}
            ok = ("yes" if signs == {sign} else "no" if signs == {-sign} else
                  "zero" if signs == {0} else "mixed")
            rows.append({"knob": knob, "metric": metric, **stats, "predicted": "-" if sign < 0 else "+",
                         "sign_as_predicted": ok,
                         "verdict": _verdict(stats["spearman_lo"], stats["spearman_hi"], sign)})
    return pd.DataFrame(rows)


def run_study(design: Design = FULL, *, workers: int = 1, n_boot: int = 2000, seed: int = 0, progress=None):
    """Train and measure the design, then correlate: (networks, table, timings)."""
    networks, timings = run_networks(design.all_configs(), workers=workers, progress=progress)
    table = correlation_table(networks, design, n_boot=n_boot, seed=seed)
    return networks, table, timings


def markdown_table(table, metrics=None) -> str:
    """The correlation table as markdown: one row per knob x metric."""
    lines = ["| knob | metric | n | Spearman [95% CI] | Kendall [95% CI] | sign as predicted (-) | CI verdict |",
             "|---|---|---:|---|---|---|---|"]
    for r in table.itertuples():
        if metrics is not None and r.metric not in metrics:
            continue
        if not np.isfinite(r.spearman):
            lines.append(f"| {KNOB_LABELS.get(r.knob, r.knob)} | {r.metric} | {r.n} | n/a | n/a | n/a | n/a |")
            continue
        lines.append(f"| {KNOB_LABELS.get(r.knob, r.knob)} | {r.metric} | {r.n} | "
                     f"{r.spearman:+.2f} [{r.spearman_lo:+.2f}, {r.spearman_hi:+.2f}] | "
                     f"{r.kendall:+.2f} [{r.kendall_lo:+.2f}, {r.kendall_hi:+.2f}] | {r.sign_as_predicted} | "
                     f"{r.verdict} |")
    return "\n".join(lines) + "\n"


def knob_means(networks, design: Design, metrics=("alpha", "alpha_weighted", "log_spectral_norm")) -> str:
    """Markdown: per knob and value, the mean over seeds of test accuracy and a few metrics."""
    cols = ["test_acc", "train_acc", *metrics]
    lines = ["| knob | value | networks | " + " | ".join(cols) + " |", "|---|---:|---:|" + "---:|" * len(cols)]
    for knob in design.knobs:
        sub = knob_networks(networks, design, knob)
        for value in design.knobs[knob]:
            s = sub[sub["value"] == value]
            means = " | ".join(f"{s[c].mean():.3f}" for c in cols)
            lines.append(f"| {KNOB_LABELS.get(knob, knob)} | {value:g} | {len(s)} | {means} |")
    return "\n".join(lines) + "\n"


# ---- figures ----------------------------------------------------------------------------------------

def save_figures(networks, table, design: Design, out: Path) -> list:
    """Write the study's PNG figures into ``out``; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    metrics = list(METRICS + ROBUST_METRICS)
    knobs = list(dict.fromkeys(table["knob"]))

    # 1. heatmap of Spearman's rho, knob x metric
    grid = np.full((len(knobs), len(metrics)), np.nan)
    decided = np.zeros_like(grid, dtype=bool)
    for r in table.itertuples():
        if r.metric in metrics:
            i, j = knobs.index(r.knob), metrics.index(r.metric)
            grid[i, j] = r.spearman
            decided[i, j] = r.verdict in ("as predicted", "reversed")
    fig, ax = plt.subplots(figsize=(10, 0.45 * len(knobs) + 1.8))
    im = ax.imshow(grid, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    for i in range(len(knobs)):
        for j in range(len(metrics)):
            if np.isfinite(grid[i, j]):
                ax.text(j, i, f"{grid[i, j]:+.2f}", ha="center", va="center", fontsize=8,
                        fontweight="bold" if decided[i, j] else "normal",
                        color="white" if abs(grid[i, j]) > 0.6 else "black")
    ax.axvline(len(METRICS) - 0.5, color="k", lw=1)
    ax.set_xticks(range(len(metrics)), metrics, rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(len(knobs)), [KNOB_LABELS.get(k, k) for k in knobs], fontsize=8)
    ax.set_title("Spearman rho of metric vs test accuracy (HTSR predicts negative = blue; "
                 "bold: 95% CI excludes 0)", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.03)
    fig.tight_layout()
    paths.append(out / "spearman_heatmap.png")
    fig.savefig(paths[-1], dpi=90)
    plt.close(fig)

    # 2. metric vs accuracy, one panel per knob, coloured by the knob's value (by rank)
    for metric in ("alpha", "alpha_weighted", "log_spectral_norm"):
        n = len(design.knobs)
        cols = min(n, 4)
        rows_ = math.ceil(n / cols)
        fig, axes = plt.subplots(rows_, cols, figsize=(3.0 * cols, 2.6 * rows_), squeeze=False)
        for ax, knob in zip(axes.flat, design.knobs):
            sub = knob_networks(networks, design, knob)
            sub = sub[~sub["diverged"].astype(bool)]
            values = list(design.knobs[knob])
            colours = plt.cm.viridis(np.linspace(0, 1, len(values)))
            for v, c in zip(values, colours):
                s = sub[sub["value"] == v]
                ax.scatter(s[metric], s["test_acc"], color=c, s=14, label=f"{v:g}")
            row = table[(table["knob"] == knob) & (table["metric"] == metric)]
            rho = float(row["spearman"].iloc[0]) if len(row) else math.nan
            ax.set_title(f"{KNOB_LABELS.get(knob, knob)}: rho {rho:+.2f}", fontsize=8)
            ax.set_xlabel(metric, fontsize=7)
            ax.set_ylabel("test accuracy", fontsize=7)
            ax.tick_params(labelsize=6)
            ax.legend(fontsize=5, title=KNOB_LABELS.get(knob, knob), title_fontsize=5, loc="best",
                      markerscale=0.6)
        for ax in list(axes.flat)[n:]:
            ax.axis("off")
        fig.tight_layout()
        paths.append(out / f"{metric}_vs_accuracy.png")
        fig.savefig(paths[-1], dpi=80)
        plt.close(fig)

    # 3. per-layer alpha against width: what moves the mean when the width varies
    if "width" in design.knobs:
        sub = knob_networks(networks, design, "width")
        fig, ax = plt.subplots(figsize=(5, 3.2))
        per_layer = {}
        for r in sub.itertuples():
            for pos, a in enumerate(str(r.layer_alphas).split(";")):
                per_layer.setdefault(pos, []).append((r.width, float(a)))
        names = {0: "input layer (64 x width)", len(per_layer) - 1: "output layer (width x 10)"}
        for pos, pts in sorted(per_layer.items()):
            w, a = np.array(pts).T
            ax.scatter(w, a, s=12, label=names.get(pos, f"hidden layer {pos} (width x width)"))
        ax.set_xscale("log", base=2)
        ax.set_xlabel("width")
        ax.set_ylabel("layer alpha")
        ax.set_title("Per-layer alpha as the width varies", fontsize=9)
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "width_layer_alphas.png")
        fig.savefig(paths[-1], dpi=90)
        plt.close(fig)
    return paths


# ---- command line -----------------------------------------------------------------------------------

def write_outputs(networks, table, design: Design, out) -> list:
    """``networks.csv``, ``correlations.csv``/``.md``, ``knob_means.md`` and the figures in ``out``.

    Returns the paths of the figures.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    networks.to_csv(out / "networks.csv", index=False, float_format="%.10g")
    table.to_csv(out / "correlations.csv", index=False, float_format="%.6g")
    (out / "correlations.md").write_text(markdown_table(table))
    (out / "knob_means.md").write_text(knob_means(networks, design))
    return save_figures(networks, table, design, out)


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (the training processes), user + system."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default="docs/study", help="folder for the tables and figures (default docs/study)")
    p.add_argument("--workers", type=int, default=2, help="training processes, one thread each (default 2)")
    p.add_argument("--boot", type=int, default=2000, help="bootstrap resamples (default 2000)")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap (default 0)")
    p.add_argument("--tiny", action="store_true", help="the tiny design of the tests (seconds)")
    args = p.parse_args(argv)
    design = tiny_design() if args.tiny else FULL
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    load_before = os.getloadavg()

    def progress(i, n, cfg):
        print(f"\r{i}/{n} networks ({time.perf_counter() - start:.0f} s)", end="", file=sys.stderr, flush=True)

    networks, table, timings = run_study(design, workers=args.workers, n_boot=args.boot, seed=args.seed,
                                         progress=progress)
    print(file=sys.stderr)
    figures = write_outputs(networks, table, design, out)
    wall = time.perf_counter() - start
    import torch

    run = {"command": " ".join(["python -m studies.digits_knobs", *(argv if argv is not None else sys.argv[1:])]),
           "networks": len(networks), "diverged": int(networks["diverged"].sum()), "workers": args.workers,
           "wall_s": round(wall, 1), "cpu_s": round(_cpu_seconds(), 1), "train_s_total": round(timings["train_s"], 1),
           "analyze_s_total": round(timings["analyze_s"], 1), "cpus": os.cpu_count(),
           "loadavg_1min_start_end": [round(load_before[0], 2), round(os.getloadavg()[0], 2)],
           "python": platform.python_version(), "torch": torch.__version__, "numpy": np.__version__}
    (out / "run.json").write_text(json.dumps(run, indent=1) + "\n")
    print(markdown_table(table, metrics=METRICS))
    print(f"{len(networks)} networks in {wall:.0f} s with {args.workers} workers; wrote {out}/networks.csv, "
          f"correlations.csv, correlations.md, knob_means.md, run.json and {len(figures)} figures")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

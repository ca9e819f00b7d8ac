"""Model comparison: the statistics on planted and hand-computed values, and on networks trained here."""

import json
import math

import numpy as np
import pytest

import spectralwatch
from spectralwatch.cli import main
from spectralwatch.tools.compare import COMPARE_METRICS, Comparison, compare, fit_metric
from spectralwatch.errors import InvalidParameterError

EXACT = 1e-12  # closed-form least squares on a handful of points: only rounding separates the results


def test_hand_computed_values():
    # x = 1..4, y = 2, 1, 4, 3: means 2.5; Sxy = 3, Sxx = 5 -> slope 0.6, intercept 1.0;
    # residuals 0.4, -1.2, 1.2, -0.4 -> SSres = 3.2, RMSE = sqrt(0.8); SStot = 5 -> R^2 = 0.36;
    # pairs: 4 concordant, 2 discordant, no ties -> tau = 2/6
    fit = fit_metric([1, 2, 3, 4], [2, 1, 4, 3], metric="m")
    assert fit.slope == pytest.approx(0.6, abs=EXACT)
    assert fit.intercept == pytest.approx(1.0, abs=EXACT)
    assert fit.rmse == pytest.approx(math.sqrt(0.8), abs=EXACT)
    assert fit.r2 == pytest.approx(0.36, abs=EXACT)
    assert fit.kendall_tau == pytest.approx(1 / 3, abs=EXACT)
    assert fit.n == 4 and fit.metric == "m"


def test_kendall_tau_b_with_ties_matches_scipy():
    from scipy.stats import kendalltau

    rng = np.random.default_rng(0)
    for _ in range(20):
        x = rng.integers(0, 4, 12).astype(float)  # many ties in both
        y = rng.integers(0, 3, 12).astype(float)
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            continue
        assert fit_metric(x, y).kendall_tau == pytest.approx(kendalltau(x, y).statistic, abs=EXACT)


def test_planted_linear_relation_is_recovered():
    rng = np.random.default_rng(1)
    x = rng.uniform(2, 6, 40)
    noise = rng.normal(0, 0.01, 40)
    fit = fit_metric(x, 0.95 - 0.05 * x + noise)
    # with 40 points and noise 0.01 on a range of 0.2, the slope is known to about 1e-3
    assert fit.slope == pytest.approx(-0.05, abs=3e-3)
    assert fit.intercept == pytest.approx(0.95, abs=1.5e-2)
    assert fit.rmse == pytest.approx(0.01, rel=0.3)
    assert fit.r2 > 0.95 and fit.kendall_tau < -0.8
    exact = fit_metric(x, 0.95 - 0.05 * x)
    assert exact.r2 == pytest.approx(1.0, abs=EXACT) and exact.kendall_tau == -1.0 and exact.rmse < 1e-12


def test_fit_metric_errors():
    with pytest.raises(ValueError, match="at least 2"):
        fit_metric([1.0], [0.5])
    with pytest.raises(ValueError, match="same value"):
        fit_metric([2.0, 2.0, 2.0], [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="2 metric values but 3"):
        fit_metric([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="NaN"):
        fit_metric([1, np.nan], [1, 2])
    assert math.isnan(fit_metric([1, 2, 3], [0.5, 0.5, 0.5]).r2)


def planted(alpha, seed):
    """A one-layer model whose ESD tail has a planted power-law exponent."""
    rng = np.random.default_rng(seed)
    u, _ = np.linalg.qr(rng.standard_normal((400, 200)))
    v, _ = np.linalg.qr(rng.standard_normal((200, 200)))
    lam = rng.pareto(alpha - 1, 200) + 1.0
    return {"fc.weight": (u * np.sqrt(lam)) @ v.T}


def test_compare_ranks_and_fits_planted_models():
    reports = [spectralwatch.analyze(planted(a, s), workers=1) for s, a in enumerate((2.2, 3.0, 4.5))]
    alphas = [r.summary["alpha"] for r in reports]
    acc = [1.2 - 0.1 * a for a in alphas]  # a planted exact linear relation with the measured alpha
    comp = compare(reports, names=["a", "b", "c"], accuracies=acc)
    assert isinstance(comp, Comparison) and comp.names == ("a", "b", "c")
    assert comp.ranking("alpha") == ["a", "b", "c"]
    fit = next(f for f in comp.fits if f.metric == "alpha")
    assert fit.slope == pytest.approx(-0.1, abs=1e-9) and fit.r2 == pytest.approx(1.0, abs=1e-9)
    assert fit.kendall_tau == -1.0
    table = comp.fit_table()
    # issue 14 added the p-value of tau and the check against HTSR's predicted sign
    assert list(table.columns) == ["slope", "intercept", "rmse", "r2", "kendall_tau", "n", "kendall_p", "htsr",
                                   "agrees"]
    assert set(table.index) <= set(COMPARE_METRICS)
    curves = comp.alpha_curves()
    assert [len(c) for c in curves.values()] == [1, 1, 1]
    doc = json.loads(json.dumps(comp.to_dict()))
    assert doc["models"][0]["model"] == "a" and doc["models"][2]["accuracy"] == pytest.approx(acc[2])


def test_compare_validates_its_arguments():
    W = {"fc.weight": np.random.default_rng(0).standard_normal((60, 30))}
    with pytest.raises(InvalidParameterError, match="at least 2"):
        compare([W])
    with pytest.raises(InvalidParameterError, match="'accuracies' parameter of compare"):
        compare([W, W], accuracies=[0.9])
    with pytest.raises(InvalidParameterError, match="distinct names"):
        compare([W, W], names=["x", "x"])
    comp = compare([W, W], workers=1)  # no accuracies: no fits, and the ranking still works
    assert comp.fits == () and len(comp.ranking()) == 2


# ---- networks trained in the test ------------------------------------------------------------

def _digits():
    datasets = pytest.importorskip("sklearn.datasets")
    X, y = datasets.load_digits(return_X_y=True)  # bundled with scikit-learn: no download
    idx = np.random.default_rng(0).permutation(len(X))
    X = (X / 16.0).astype(np.float32)
    return X[idx[:1200]], y[idx[:1200]], X[idx[1200:]], y[idx[1200:]]


def train_mlp(data, *, batch_size, width=256, epochs=20, lr=0.05, seed=0):
    """An MLP 64-width-width-10 trained with SGD + momentum; returns (module, held-out accuracy)."""
    torch = pytest.importorskip("torch")
    from torch import nn

    Xtr, ytr, Xte, yte = (torch.from_numpy(a) for a in data)
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(64, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(), nn.Linear(width, 10))
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    gen = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        perm = torch.randperm(len(Xtr), generator=gen)
        for i in range(0, len(Xtr), batch_size):
            b = perm[i:i + batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(model(Xtr[b]), ytr[b].long()).backward()
            opt.step()
    with torch.no_grad():
        acc = float((model(Xte).argmax(1) == yte).float().mean())
    return model, acc


def _train_and_compare(tmp_path, capsys, configs, epochs):
    torch = pytest.importorskip("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small matrices: threads only add overhead (and noise)
    try:
        data = _digits()
        paths, accs, names = [], [], []
        for width, bs in configs:
            model, acc = train_mlp(data, batch_size=bs, width=width, epochs=epochs)
            path = tmp_path / f"mlp_w{width}_b{bs}.pt"
            torch.save(model.state_dict(), path)
            paths.append(str(path)), accs.append(acc), names.append(f"w{width}-b{bs}")
    finally:
        torch.set_num_threads(threads)
    acc_arg = ",".join(f"{a:.4f}" for a in accs)
    argv = ["compare", *paths, "--accuracy", acc_arg, "--names", ",".join(names), "--workers", "1"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert main(argv + ["--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    shown = " ".join(a[len(str(tmp_path)) + 1:] if a.startswith(str(tmp_path)) else a for a in argv)
    print(f"\n$ spectralwatch {shown}\n{table}")  # shown with pytest -s (and on failure)
    return accs, table, doc


def _check(accs, table, doc):
    assert min(accs) > 0.85, accs  # every network learned the task
    assert "How well each metric predicts the accuracy" in table and "kendall_tau" in table
    # the printed statistics are those of fit_metric on the printed summary values
    for f in doc["fits"]:
        values = [m[f["metric"]] for m in doc["models"]]
        ref = fit_metric(values, [round(a, 4) for a in accs], metric=f["metric"])
        assert f["slope"] == pytest.approx(ref.slope) and f["r2"] == pytest.approx(ref.r2, abs=1e-12)
        assert f["kendall_tau"] == pytest.approx(ref.kendall_tau)
    return {f["metric"]: f for f in doc["fits"]}


def test_compare_mlps_trained_with_different_batch_sizes(tmp_path, capsys):
    """Smaller batches: heavier-tailed layers (smaller alpha) and, here, better held-out accuracy."""
    accs, table, doc = _train_and_compare(tmp_path, capsys, [(256, bs) for bs in (16, 64, 256, 1024)], epochs=20)
    fits = _check(accs, table, doc)
    # HTSR's prediction: smaller alpha, better model (Martin & Mahoney 2021); at most one of the six
    # pairs of models may disagree
    assert fits["alpha"]["kendall_tau"] <= -0.6, fits["alpha"]


@pytest.mark.slow
def test_compare_a_grid_of_mlps(tmp_path, capsys):
    configs = [(w, bs) for w in (128, 256, 512) for bs in (16, 128, 1024)]
    accs, table, doc = _train_and_compare(tmp_path, capsys, configs, epochs=30)
    fits = _check(accs, table, doc)
    assert fits["alpha"]["kendall_tau"] < 0, fits["alpha"]


# ---- the verdicts against the theory (issue 14) ----------------------------------------------

def test_kendall_p_is_the_exact_permutation_p():
    import itertools

    x = np.array([3.1, 2.2, 4.5, 1.0, 5.2, 3.9])
    y = np.array([0.71, 0.80, 0.60, 0.90, 0.52, 0.75])
    fit = fit_metric(x, y, metric="alpha")
    taus = [fit_metric(x, np.array(p)).kendall_tau for p in itertools.permutations(y)]
    exact = np.mean(np.abs(taus) >= abs(fit.kendall_tau) - 1e-12)
    assert fit.kendall_p == pytest.approx(exact, abs=1e-12)
    three = fit_metric([1.0, 2.0, 3.0], [0.7, 0.8, 0.9], metric="alpha")
    assert three.kendall_tau == 1.0 and three.kendall_p == pytest.approx(1 / 3)


def test_each_metric_is_read_against_the_sign_htsr_predicts():
    from spectralwatch.tools.compare import HTSR_SIGN

    assert all(HTSR_SIGN[m] == -1 for m in COMPARE_METRICS)  # smaller is better, for all five
    wrong = fit_metric([1.0, 2.0, 3.0], [0.7, 0.8, 0.9], metric="alpha")
    right = fit_metric([1.0, 2.0, 3.0], [0.9, 0.8, 0.7], metric="log_norm")
    unknown = fit_metric([1.0, 2.0, 3.0], [0.9, 0.8, 0.7], metric="stable_rank")
    assert wrong.agrees is False and "OPPOSITE" in wrong.reading
    assert right.agrees is True and "the sign HTSR predicts" in right.reading
    assert unknown.agrees is None and unknown.predicted_sign == 0


@pytest.fixture(scope="module")
def planted_reports():
    return {a: spectralwatch.analyze(planted(a, s), workers=1) for s, a in enumerate((2.2, 2.6, 3.0, 3.6, 4.5, 5.5))}


def _emit(comparison, fmt="table"):
    import io

    from spectralwatch.cli.output import emit_comparison

    buf = io.StringIO()
    emit_comparison(comparison, fmt, buf)
    return buf.getvalue()


def test_compare_says_when_the_sign_is_wrong_and_warns_below_five_models(planted_reports):
    alphas = (2.2, 3.0, 4.5)
    reps = [planted_reports[a] for a in alphas]
    acc = [0.5 + 0.1 * r.summary["alpha"] for r in reps]  # accuracy grows with alpha: against HTSR
    comp = compare(reps, names=["a", "b", "c"], accuracies=acc)
    fit = next(f for f in comp.fits if f.metric == "alpha")
    assert fit.kendall_tau == 1.0 and fit.agrees is False and fit.kendall_p == pytest.approx(1 / 3)
    assert any("only 3 models" in w for w in comp.warnings)
    assert any("against HTSR's prediction" in w and "alpha (tau +1.00" in w for w in comp.warnings)
    text = _emit(comp)
    assert "Strongest rank agreement" not in text  # the old line called a wrong sign an agreement
    assert "alpha              tau +1.000 (p 0.33): OPPOSITE to HTSR's prediction" in text
    assert "Warning: only 3 models" in text
    doc = json.loads(_emit(comp, "json"))
    f = next(f for f in doc["fits"] if f["metric"] == "alpha")
    assert f["agrees_with_htsr"] is False and f["kendall_p"] == pytest.approx(1 / 3)
    assert f["htsr_prediction"] == "smaller is better" and doc["warnings"] == comp.warnings


def test_compare_with_enough_models_and_the_predicted_sign(planted_reports):
    reps = list(planted_reports.values())
    acc = [1.2 - 0.1 * r.summary["alpha"] for r in reps]
    comp = compare(reps, names=[f"m{i}" for i in range(6)], accuracies=acc)
    fit = next(f for f in comp.fits if f.metric == "alpha")
    assert fit.agrees is True and fit.kendall_tau == -1.0 and fit.kendall_p == pytest.approx(2 / 720)
    assert not any("models:" in w for w in comp.warnings)
    assert "Strongest rank correlation with the sign HTSR predicts: alpha" in _emit(comp)


def test_figure_titles_carry_the_warnings(planted_reports):
    pytest.importorskip("matplotlib")
    from spectralwatch.tools.compare import plot_metric_vs_accuracy

    reps = [planted_reports[a] for a in (2.2, 3.0, 4.5)]
    comp = compare(reps, names=["a", "b", "c"], accuracies=[0.5 + 0.1 * r.summary["alpha"] for r in reps])
    title = plot_metric_vs_accuracy(comp, "alpha").get_title()
    assert "OPPOSITE to HTSR" in title and "only 3 models" in title

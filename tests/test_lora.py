"""LoRA / PEFT adapters (``peft=``) and deltas against a base model (``base_model=``)."""

from __future__ import annotations

import numpy as np
import pytest

import spectralwatch
from spectralwatch import WeightWatcher
from spectralwatch.errors import InvalidParameterError
from spectralwatch.core.matrices import low_rank_core

torch = pytest.importorskip("torch")
nn = torch.nn


def nonzero_evals(W, r):
    return np.sort(np.linalg.svd(np.asarray(W, dtype=np.float64), compute_uv=False)[:r] ** 2)


# --------------------------------------------------------------------------------------------
# the low-rank core
# --------------------------------------------------------------------------------------------

def test_low_rank_core_has_the_planted_singular_values():
    rng = np.random.default_rng(0)
    s = np.array([9.0, 4.0, 2.5, 1.0, 0.3])
    U, _ = np.linalg.qr(rng.standard_normal((300, 5)))
    V, _ = np.linalg.qr(rng.standard_normal((200, 5)))
    B, A = U * s, V.T  # B @ A = U diag(s) V^T
    core = low_rank_core(B, A)
    assert core.shape == (5, 5)
    np.testing.assert_allclose(np.sort(np.linalg.svd(core, compute_uv=False)), np.sort(s), rtol=1e-12)
    with pytest.raises(ValueError, match="LoRA factors"):
        low_rank_core(B, A[:4])


def test_a_huge_lora_product_is_never_formed():
    # B @ A would be 30000 x 20000 (4.8 GB in float64); its 8 eigenvalues come from the factors
    rng = np.random.default_rng(1)
    s = np.linspace(1.0, 8.0, 8)
    U, _ = np.linalg.qr(rng.standard_normal((30000, 8)))
    V, _ = np.linalg.qr(rng.standard_normal((20000, 8)))
    adapter = {"layer.lora_A.weight": V.T.astype(np.float32), "layer.lora_B.weight": (U * s).astype(np.float32)}
    report = spectralwatch.analyze(adapter, peft=True)
    row = report.details.iloc[0]
    assert (row["name"], row["layer_type"], row["N"], row["M"], row["num_evals"]) == (
        "layer.lora_BA", "lora", 30000, 20000, 8)
    np.testing.assert_allclose(report.get_ESD("layer.lora_BA"), s ** 2, rtol=1e-5)


# --------------------------------------------------------------------------------------------
# PEFT adapters made with the peft package
# --------------------------------------------------------------------------------------------

class Net(nn.Module):
    def __init__(self, hidden=60):
        super().__init__()
        self.fc1 = nn.Linear(40, hidden)
        self.fc2 = nn.Linear(hidden, 30)
        self.head = nn.Linear(30, 5)


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    """A base model (saved as safetensors), a PEFT model on it (r=8, alpha=16) and its adapter folder."""
    peft = pytest.importorskip("peft", reason="peft (with transformers) is not installed")
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("lora")
    torch.manual_seed(0)
    base = Net()
    base_sd = {k: v.detach().clone() for k, v in base.state_dict().items()}
    save_file(base_sd, str(root / "base.safetensors"))
    config = peft.LoraConfig(r=8, lora_alpha=16, target_modules=["fc1", "fc2"], init_lora_weights=False)
    model = peft.get_peft_model(base, config)
    model.save_pretrained(str(root / "adapter"))
    factors = {name: (getattr(model.base_model.model, name).lora_A["default"].weight.detach().double().numpy(),
                      getattr(model.base_model.model, name).lora_B["default"].weight.detach().double().numpy())
               for name in ("fc1", "fc2")}
    return {"root": root, "model": model, "base_sd": base_sd, "factors": factors}


def test_adapter_folder_gives_the_products(lora):
    report = spectralwatch.analyze(lora["root"] / "adapter", peft=True, min_evals=1)
    d = report.details.set_index("name")
    assert list(d.index) == ["base_model.model.fc1.lora_BA", "base_model.model.fc2.lora_BA"]
    assert list(d["layer_type"]) == ["lora", "lora"] and list(d["num_evals"]) == [8, 8]
    assert (d.loc["base_model.model.fc1.lora_BA", "N"], d.loc["base_model.model.fc1.lora_BA", "M"]) == (60, 40)
    for name in ("fc1", "fc2"):
        A, B = lora["factors"][name]
        np.testing.assert_allclose(report.get_ESD(f"base_model.model.{name}.lora_BA"), nonzero_evals(B @ A, 8),
                                   rtol=1e-6)
    # the adapter file alone finds adapter_config.json beside it
    single = spectralwatch.analyze(lora["root"] / "adapter" / "adapter_model.safetensors", peft=True)
    np.testing.assert_allclose(single.details["alpha"], d["alpha"], rtol=1e-12)


def test_peft_model_in_memory_true_and_with_base(lora):
    model = lora["model"]
    only = spectralwatch.analyze(model, peft=True)
    assert set(only.details["layer_type"]) == {"lora"}
    assert set(only.details["name"]) == {"fc1.lora_BA", "fc2.lora_BA"}
    assert (only.skipped["rule"] == "source").any()  # the other layers: skipped with the reason
    assert "only the LoRA products" in only.skipped["reason"].iloc[0]
    both = spectralwatch.analyze(model, peft="with_base", min_evals=1)
    names = set(both.details["longname"])
    assert {"base_model.model.fc1.lora_BA", "base_model.model.fc1.lora_W_plus_AB", "base_model.model.head"} <= names
    A, B = lora["factors"]["fc1"]
    W = lora["base_sd"]["fc1.weight"].double().numpy()
    merged = W + 2.0 * (B @ A)  # PEFT's scale lora_alpha / r = 16 / 8
    np.testing.assert_allclose(both.get_ESD("base_model.model.fc1.lora_W_plus_AB"),
                               np.sort(np.linalg.svd(merged, compute_uv=False) ** 2), rtol=1e-6)


def test_adapter_folder_with_base_model_path(lora):
    report = spectralwatch.analyze(lora["root"] / "adapter", peft="with_base",
                                   base_model=lora["root"] / "base.safetensors", min_evals=1)
    d = report.details
    merged_rows = d[d["name"].str.endswith("lora_W_plus_AB")]
    assert list(merged_rows["name"]) == ["base_model.model.fc1.lora_W_plus_AB", "base_model.model.fc2.lora_W_plus_AB"]
    A, B = lora["factors"]["fc2"]
    W = lora["base_sd"]["fc2.weight"].double().numpy()
    np.testing.assert_allclose(report.get_ESD("base_model.model.fc2.lora_W_plus_AB"),
                               np.sort(np.linalg.svd(W + 2.0 * B @ A, compute_uv=False) ** 2), rtol=1e-6)


def test_adapter_errors_name_the_files(lora, tmp_path):
    from safetensors.torch import save_file

    adapter = lora["root"] / "adapter"
    with pytest.raises(InvalidParameterError, match=r"with_base.*adapter.*base_model="):
        spectralwatch.analyze(adapter, peft="with_base")
    torch.manual_seed(1)
    save_file(Net(hidden=70).state_dict(), str(tmp_path / "other.safetensors"))  # fc1 is 70 x 40, not 60 x 40
    with pytest.raises(InvalidParameterError, match=r"fc1.*does not match the LoRA adapter '.*adapter'"):
        spectralwatch.analyze(adapter, peft=True, base_model=tmp_path / "other.safetensors")
    save_file({"encoder.weight": torch.zeros(3, 3)}, str(tmp_path / "unrelated.safetensors"))
    with pytest.raises(InvalidParameterError, match=r"unrelated\.safetensors.*does not match.*no layer 'fc1'"):
        spectralwatch.analyze(adapter, peft=True, base_model=tmp_path / "unrelated.safetensors")
    with pytest.raises(InvalidParameterError, match="holds no LoRA adapter"):
        spectralwatch.analyze(lora["root"] / "base.safetensors", peft=True)
    with pytest.raises(InvalidParameterError, match="'peft' parameter"):
        spectralwatch.analyze(adapter, peft="yes")


# --------------------------------------------------------------------------------------------
# deltas
# --------------------------------------------------------------------------------------------

def test_delta_of_matched_layers_and_the_mismatches_are_reported():
    rng = np.random.default_rng(4)
    base = {"a.weight": rng.standard_normal((50, 30)), "b.weight": rng.standard_normal((40, 20)),
            "gone.weight": rng.standard_normal((20, 20))}
    delta = rng.standard_normal((50, 30)) * 0.1
    tuned = {"a.weight": base["a.weight"] + delta, "b.weight": rng.standard_normal((40, 21)),
             "new.weight": rng.standard_normal((30, 30))}
    report = spectralwatch.analyze(tuned, base_model=base)
    assert list(report.details["name"]) == ["a"]
    np.testing.assert_allclose(report.get_ESD("a"), np.sort(np.linalg.svd(delta, compute_uv=False) ** 2),
                               rtol=1e-9)
    reasons = dict(zip(report.skipped["name"], report.skipped["reason"]))
    assert "differs from the base layer 'b'" in reasons["b"]
    assert "no layer 'new' in the base model" in reasons["new"]
    assert "only in the base model" in reasons["gone"]
    listed = spectralwatch.describe(tuned, base_model=base, skipped=True)
    assert list(listed["analysed"]) == [True, False, False, False]


def test_delta_across_formats_and_prefixes(tmp_path):
    from safetensors.torch import save_file

    torch.manual_seed(2)
    base = Net()
    tuned = Net()
    save_file({f"bert.{k}": v for k, v in base.state_dict().items()}, str(tmp_path / "base.safetensors"))
    report = spectralwatch.analyze(tuned, base_model=tmp_path / "base.safetensors", min_evals=1)
    assert list(report.details["longname"]) == ["fc1", "fc2", "head"]
    diff = (tuned.head.weight - base.head.weight).detach().double().numpy()
    np.testing.assert_allclose(report.get_ESD("head"), np.sort(np.linalg.svd(diff, compute_uv=False) ** 2), rtol=1e-6)
    ww = WeightWatcher(model=tuned, base_model=tmp_path / "base.safetensors")
    np.testing.assert_allclose(ww.analyze(min_evals=1)["alpha"], report.details["alpha"])
    assert list(ww.describe(min_evals=1)["name"]) == ["fc1", "fc2", "head"]


def test_cli_describe_lists_the_adapter_products(lora, capsys):
    from spectralwatch.cli import main

    folder = str(lora["root"] / "adapter")
    assert main(["describe", folder, "--peft", "true", "--min-evals", "1", "--format", "csv"]) == 0
    out = capsys.readouterr().out
    assert out.count("lora_BA") == 4 and "lora_A" not in out  # name and longname of 2 rows;  # one row per product B·A, not the raw factors
    assert main(["describe", folder, "--format", "csv", "--min-evals", "1"]) == 0
    raw = capsys.readouterr().out
    assert "lora_BA" not in raw and "lora_A" in raw

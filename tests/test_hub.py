"""Hub models (hf://org/name) read offline from a pre-populated huggingface_hub cache; only weights and configs."""

import json
import os

import numpy as np
import pandas as pd
import pytest

import spectralwatch
from spectralwatch.errors import InvalidParameterError, MissingDependencyError, ModelFileNotFoundError
from spectralwatch.io.sources import open_model, resolve_model
from spectralwatch.io.sources.hub import hub_allow_patterns, looks_like_hub_id, parse_hub_url

pytest.importorskip("huggingface_hub", reason="the [hub] extra (huggingface_hub) is not installed")
safetensors_numpy = pytest.importorskip("safetensors.numpy")

COMMIT_MAIN = "a" * 40
COMMIT_V1 = "b" * 40


def _weights(seed):
    rng = np.random.default_rng(seed)
    return {"encoder.layer.0.dense.weight": rng.standard_normal((96, 48)).astype(np.float32),
            "encoder.layer.1.dense.weight": rng.standard_normal((64, 48)).astype(np.float32),
            "encoder.norm.weight": np.ones(48, dtype=np.float32)}


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A huggingface_hub cache holding org/tiny at two revisions, laid out as the library writes it."""
    cache = tmp_path / "hub"
    repo = cache / "models--org--tiny"
    for commit, seed in ((COMMIT_MAIN, 0), (COMMIT_V1, 1)):
        snap = repo / "snapshots" / commit
        snap.mkdir(parents=True)
        safetensors_numpy.save_file(_weights(seed), str(snap / "model.safetensors"))
        (snap / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 48}))
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT_MAIN)
    (repo / "refs" / "v1").write_text(COMMIT_V1)
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    return repo


def test_a_hub_model_is_read_offline_from_the_cache(hub_cache):
    report = spectralwatch.analyze("hf://org/tiny")
    direct = spectralwatch.analyze({k: v for k, v in _weights(0).items()}, start_ids=0)
    assert list(report.details["name"]) == ["encoder.layer.0.dense", "encoder.layer.1.dense"]
    assert str(hub_cache / "snapshots" / COMMIT_MAIN) in report.source
    cols = ["N", "M", "alpha", "log_norm", "stable_rank"]
    pd.testing.assert_frame_equal(report.details[cols], direct.details[cols], check_exact=True)


def test_a_revision_by_parameter_or_in_the_name(hub_cache):
    by_param = open_model("hf://org/tiny", revision="v1")
    assert COMMIT_V1 in by_param.description
    assert COMMIT_V1 in open_model("hf://org/tiny@v1").description
    assert COMMIT_V1 in resolve_model("hf://org/tiny", revision=COMMIT_V1)
    with pytest.raises(InvalidParameterError, match="Two revisions"):
        resolve_model("hf://org/tiny@v1", revision="main")


def test_offline_and_not_cached_is_a_clear_error(hub_cache):
    with pytest.raises(ModelFileNotFoundError, match="HF_HUB_OFFLINE is set and it is not in the local Hub cache"):
        spectralwatch.analyze("hf://org/absent")
    with pytest.raises(ModelFileNotFoundError, match="HF_HUB_OFFLINE"):
        open_model("hf://org/tiny", revision="no-such-branch")


def test_bad_names_and_revisions():
    for bad in ("hf://org", "hf://org/na me", "hf://../x", "hf://org/a--b", "hf://org/name/extra"):
        with pytest.raises(InvalidParameterError, match="not a Hugging Face Hub model"):
            parse_hub_url(bad)
    with pytest.raises(InvalidParameterError, match="not a branch, tag or commit"):
        parse_hub_url("hf://org/name", "../../etc")
    with pytest.raises(InvalidParameterError, match="applies only to Hugging Face Hub models.*hf://org/name"):
        resolve_model("org/name", revision="main")
    assert parse_hub_url("hf://org/name@v2.0") == ("org/name", "v2.0")


def test_looks_like_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert looks_like_hub_id("bert-base/uncased") and looks_like_hub_id("org/model.v2")
    (tmp_path / "org" / "local").mkdir(parents=True)
    assert not looks_like_hub_id("org/local")  # a folder of that name exists
    assert not looks_like_hub_id("model.safetensors") and not looks_like_hub_id("a/b/c")
    assert not looks_like_hub_id("hf://org/name") and not looks_like_hub_id(None)
    with pytest.raises(ModelFileNotFoundError, match="pass 'hf://org/missing'"):
        spectralwatch.analyze("org/missing")


def test_only_weights_and_configs_are_downloaded():
    files = ["config.json", "model.safetensors", "pytorch_model.bin", "tf_model.h5", "flax_model.msgpack",
             "optimizer.pt", "scheduler.pt", "training_args.bin", "rng_state.pth", "tokenizer.json",
             "onnx/model.onnx", "modules.json", "1_Pooling/config.json", "2_Dense/config.json",
             "2_Dense/model.safetensors", "2_Dense/pytorch_model.bin", "unet/diffusion_pytorch_model.safetensors"]
    assert hub_allow_patterns(files) == ["config.json", "modules.json", "model.safetensors", "1_Pooling/config.json",
                                         "2_Dense/config.json", "2_Dense/model.safetensors"]
    shards = ["pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
              "pytorch_model.bin.index.json", "optimizer.bin", "adapter_config.json", "adapter_model.bin"]
    assert hub_allow_patterns(shards) == ["adapter_config.json", "adapter_model.bin",
                                          "pytorch_model-00001-of-00002.bin", "pytorch_model-00002-of-00002.bin",
                                          "pytorch_model.bin.index.json"]
    offline = hub_allow_patterns(None)
    assert "*.safetensors" in offline and not any("optimizer" in p or p.endswith(".pt") for p in offline)


def test_a_clear_message_when_the_extra_is_missing(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_hub(name, *args, **kwargs):
        if name == "huggingface_hub" or name.startswith("huggingface_hub."):
            raise ImportError("No module named 'huggingface_hub'")
        return real(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_hub)
    with pytest.raises(MissingDependencyError, match=r"pip install 'spectralwatch\[hub\]'"):
        spectralwatch.analyze("hf://org/tiny")


def test_the_command_line_reads_hub_names(hub_cache, tmp_path, monkeypatch, capsys):
    from spectralwatch.cli import main

    monkeypatch.chdir(tmp_path)  # no local folder 'org/tiny' here: the name is the Hub's
    assert main(["analyze", "org/tiny", "-f", "csv"]) == 0
    captured = capsys.readouterr()
    assert "encoder.layer.1.dense" in captured.out and "Hugging Face Hub" in captured.err
    assert main(["analyze", "hf://org/tiny", "--revision", "v1", "-f", "json", "-q"]) == 0
    v1 = capsys.readouterr().out
    assert main(["describe", "org/tiny"]) == 0 and "encoder.layer.0.dense" in capsys.readouterr().out
    assert main(["analyze", "org/tiny", "--revision", "v1", "-f", "json", "-q"]) == 0
    assert capsys.readouterr().out == v1
    local = tmp_path / "m.npz"
    np.savez(local, **{"a.weight": np.ones((20, 10))})
    assert main(["analyze", str(local), "--revision", "v1"]) == 2  # a revision of a local file: a usage error
    assert "Hugging Face Hub" in capsys.readouterr().err

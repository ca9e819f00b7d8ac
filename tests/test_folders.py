"""Folders of weight files: shards are one model, trainer state is left out, adapters are read,
separate checkpoints are refused (never merged), split GGUF files are one model."""

from __future__ import annotations

import json

import numpy as np
import pytest

import spectralwatch
from spectralwatch.errors import CorruptFileError, SeveralModelsError
from spectralwatch.io.sources import open_source
from spectralwatch.render.text import summary_lines

torch = pytest.importorskip("torch")


def weights(seed=0, blocks=3, prefix="layers"):
    """A small state dict: ``{prefix}.{i}.fc.weight`` (+ bias) per block, torch tensors."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for i in range(blocks):
        sd[f"{prefix}.{i}.fc.weight"] = torch.randn(24 + i, 16, generator=g)
        sd[f"{prefix}.{i}.fc.bias"] = torch.zeros(24 + i)
    return sd


def save_st(sd, path):
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in sd.items()}, str(path))


def names(source):
    return [r.name for r in source.layers()]


# ---- Hugging Face Trainer checkpoints --------------------------------------------------------

def trainer_folder(folder, weights_name="pytorch_model.bin"):
    folder.mkdir(parents=True, exist_ok=True)
    sd = weights()
    if weights_name.endswith(".safetensors"):
        save_st(sd, folder / weights_name)
    else:
        torch.save(sd, folder / weights_name)
    model = torch.nn.Linear(16, 8)
    opt = torch.optim.AdamW(model.parameters())
    model(torch.randn(2, 16)).sum().backward()
    opt.step()
    torch.save(opt.state_dict(), folder / "optimizer.pt")  # holds tensors, but no state dict of weights
    torch.save(torch.optim.lr_scheduler.StepLR(opt, 1).state_dict(), folder / "scheduler.pt")
    torch.save({"python": 1, "cpu": torch.get_rng_state()}, folder / "rng_state.pth")
    (folder / "training_args.bin").write_bytes(b"\x80\x04not a weight file")  # a pickle we must never open
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": 10}))
    return sd


@pytest.mark.parametrize("weights_name", ["pytorch_model.bin", "model.safetensors"])
def test_trainer_checkpoint_folder_skips_the_training_state_with_a_note(tmp_path, weights_name):
    sd = trainer_folder(tmp_path / "checkpoint-10", weights_name)
    source = open_source(tmp_path / "checkpoint-10")
    assert names(source) == [k[: -len(".weight")] for k in sd if k.endswith(".weight")]
    (note,) = source.notes
    for name in ("optimizer.pt", "scheduler.pt", "rng_state.pth", "training_args.bin", "trainer_state.json"):
        assert name in note
    report = spectralwatch.analyze(tmp_path / "checkpoint-10", workers=1)
    assert report.num_layers == 3 and report.notes == [note]
    assert json.loads(report.to_json())["notes"] == [note]
    assert any("optimizer.pt" in line for line in summary_lines(report))
    assert "optimizer.pt" in report.to_html(figures=False)
    assert spectralwatch.describe(tmp_path / "checkpoint-10").attrs["notes"] == [note]


def test_trainer_state_alone_is_no_model(tmp_path):
    folder = tmp_path / "state-only"
    trainer_folder(folder)
    (folder / "pytorch_model.bin").unlink()
    with pytest.raises(spectralwatch.UnknownFormatError, match="trainer state"):
        open_source(folder)


# ---- PEFT adapters -----------------------------------------------------------------------------

def adapter_weights(r=4):
    g = torch.Generator().manual_seed(3)
    prefix = "base_model.model.layers.0.fc"
    return {f"{prefix}.lora_A.weight": torch.randn(r, 16, generator=g),
            f"{prefix}.lora_B.weight": torch.randn(24, r, generator=g)}


def test_peft_folder_with_adapter_model_bin_is_read(tmp_path):
    torch.save(adapter_weights(), tmp_path / "adapter_model.bin")
    (tmp_path / "adapter_config.json").write_text(json.dumps({"r": 4, "lora_alpha": 8}))
    assert sorted(names(open_source(tmp_path))) == ["base_model.model.layers.0.fc.lora_A",
                                                    "base_model.model.layers.0.fc.lora_B"]
    report = spectralwatch.analyze(tmp_path, peft=True, min_evals=1, workers=1)
    assert list(report.details["layer_type"]) == ["lora"] and int(report.details["num_evals"].iloc[0]) == 4


def test_adapter_beside_a_full_model_is_left_out_with_a_note(tmp_path):
    save_st(weights(), tmp_path / "model.safetensors")
    save_st(adapter_weights(), tmp_path / "adapter_model.safetensors")
    source = open_source(tmp_path)
    assert names(source) == ["layers.0.fc", "layers.1.fc", "layers.2.fc"]
    assert any("adapter_model.safetensors" in n and "peft=True" in n for n in source.notes)


def test_weights_of_another_format_are_named_in_a_note(tmp_path):
    save_st(weights(), tmp_path / "model.safetensors")
    torch.save(weights(), tmp_path / "pytorch_model.bin")  # the same model twice, as many Hub repos ship it
    source = open_source(tmp_path)
    assert source.files == [str(tmp_path / "model.safetensors")]
    assert any("pytorch_model.bin" in n and "not read" in n for n in source.notes)


# ---- separate checkpoints ----------------------------------------------------------------------

@pytest.mark.parametrize("ext", [".pt", ".safetensors"])
def test_a_folder_of_separate_checkpoints_is_refused_never_merged(tmp_path, ext):
    files = [f"ligandmpnn_v_32_0{k}0_25{ext}" for k in range(4)]
    for k, name in enumerate(files):
        sd = weights(seed=k)
        torch.save(sd, tmp_path / name) if ext == ".pt" else save_st(sd, tmp_path / name)
    with pytest.raises(SeveralModelsError) as info:
        open_source(tmp_path)
    text = str(info.value)
    assert "4 separate models" in text and "spectralwatch compare" in text
    assert all(name in text for name in files) and "layers.0.fc." in text
    assert sorted(info.value.files) == sorted(str(tmp_path / n) for n in files)
    with pytest.raises(SeveralModelsError):
        spectralwatch.analyze(tmp_path)


def test_files_with_disjoint_tensors_are_one_model(tmp_path):
    sd = weights(blocks=4)
    keys = list(sd)
    save_st({k: sd[k] for k in keys[:4]}, tmp_path / "encoder.safetensors")
    save_st({k: sd[k] for k in keys[4:]}, tmp_path / "head.safetensors")
    assert names(open_source(tmp_path)) == [f"layers.{i}.fc" for i in range(4)]


# ---- shards ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["safetensors", "bin"])
def test_shards_without_an_index_are_one_model_and_a_missing_shard_is_named(tmp_path, kind):
    sd = weights(blocks=6)
    keys = list(sd)
    stem = "model" if kind == "safetensors" else "pytorch_model"
    for k in range(3):
        part = {key: sd[key] for key in keys[4 * k:4 * (k + 1)]}
        path = tmp_path / f"{stem}-{k + 1:05d}-of-00003.{kind}"
        save_st(part, path) if kind == "safetensors" else torch.save(part, path)
    source = open_source(tmp_path)
    assert names(source) == [f"layers.{i}.fc" for i in range(6)]
    assert [r.layer_id for r in source.layers()] == list(range(6))
    (tmp_path / f"{stem}-00002-of-00003.{kind}").unlink()
    with pytest.raises(CorruptFileError, match=f"missing: {stem}-00002-of-00003.{kind}"):
        open_source(tmp_path)


# ---- split GGUF --------------------------------------------------------------------------------

gguf = pytest.importorskip("gguf")


def write_gguf(path, tensors: dict, split=None):
    writer = gguf.GGUFWriter(str(path), "llama")
    if split is not None:
        writer.add_uint16("split.no", split[0])
        writer.add_uint16("split.count", split[1])
        writer.add_int32("split.tensors.count", split[2])
    for name, array in tensors.items():
        writer.add_tensor(name, np.asarray(array, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def split_model(folder, n=3):
    rng = np.random.default_rng(7)
    tensors = {"token_embd.weight": rng.standard_normal((40, 32))}
    tensors.update({f"blk.{i}.attn_q.weight": rng.standard_normal((32, 32)) for i in range(5)})
    tensors["output.weight"] = rng.standard_normal((40, 32))
    keys = list(tensors)
    per = -(-len(keys) // n)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for k in range(n):
        part = {key: tensors[key] for key in keys[k * per:(k + 1) * per]}
        paths.append(write_gguf(folder / f"tiny-{k + 1:05d}-of-{n:05d}.gguf", part, split=(k, n, len(keys))))
    return tensors, paths


def test_split_gguf_is_one_model_from_any_part_or_its_folder(tmp_path):
    tensors, paths = split_model(tmp_path / "m")
    want = [k[: -len(".weight")] for k in tensors]
    for given in (paths[0], paths[1], tmp_path / "m"):
        source = open_source(given)
        assert names(source) == want, given
        assert "split into 3 files" in source.description
    refs = {r.name: r for r in open_source(paths[2]).layers()}
    np.testing.assert_array_equal(refs["output"].load(), tensors["output.weight"].astype(np.float32))
    np.testing.assert_array_equal(refs["token_embd"].load(), tensors["token_embd.weight"].astype(np.float32))
    report = spectralwatch.analyze(tmp_path / "m", workers=1, min_evals=1)
    assert report.num_layers == len(tensors)


def test_split_gguf_missing_part_and_inconsistent_metadata(tmp_path):
    _, paths = split_model(tmp_path / "m")
    paths[1].rename(tmp_path / "elsewhere.gguf")
    with pytest.raises(CorruptFileError, match="tiny-00002-of-00003.gguf"):
        open_source(paths[0])
    (tmp_path / "elsewhere.gguf").rename(paths[1])
    write_gguf(paths[2], {"output.weight": np.ones((4, 32))}, split=(1, 3, 7))  # says it is part 2
    with pytest.raises(CorruptFileError, match="split.no = 1"):
        open_source(paths[0])


def test_a_folder_of_unrelated_gguf_files_is_refused(tmp_path):
    rng = np.random.default_rng(0)
    for name in ("a.Q4_0.gguf", "b.Q8_0.gguf"):
        write_gguf(tmp_path / name, {"blk.0.attn_q.weight": rng.standard_normal((32, 32))})
    with pytest.raises(SeveralModelsError, match="2 model files, not one: a.Q4_0.gguf, b.Q8_0.gguf"):
        open_source(tmp_path)

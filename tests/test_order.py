"""Network order: ``layers.2`` before ``layers.10`` for inputs stored alphabetically, in rows, describe(),
figures, compare and HTML; the reference's ids kept where it numbers the same input."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import spectralwatch
from spectralwatch.io.sources import ANALYSABLE_TYPES, open_source
from spectralwatch.io.sources.order import natural_key, network_order, network_ranks

BLOCKS = 12
LEAVES = ("mlp.down_proj", "mlp.up_proj", "self_attn.k_proj", "self_attn.q_proj")


def network_names(blocks=BLOCKS):
    """A 12-block transformer's weights in network order (a depth-first state_dict())."""
    names = ["model.embed_tokens.weight"]
    for i in range(blocks):
        names += [f"model.layers.{i}.{leaf}.weight" for leaf in LEAVES]
    return names + ["model.norm.weight", "lm_head.weight"]


def alphabetical(names):
    return sorted(names)


def reorder(names):
    return [names[i] for i in network_order(names)]


# ---- the ordering itself -------------------------------------------------------------------------

def test_alphabetical_blocks_come_back_in_numeric_order():
    got = reorder(alphabetical(network_names()))
    blocks = [int(m.group(1)) for n in got for m in [re.match(r"model\.layers\.(\d+)\.", n)] if m]
    assert blocks == sorted(blocks) and blocks[0] == 0 and blocks[-1] == BLOCKS - 1
    # what the names cannot tell stays as stored: lm_head sorts first, mlp before self_attn in a block
    assert got[0] == "lm_head.weight"
    assert got[2:6] == [f"model.layers.0.{leaf}.weight" for leaf in LEAVES]


def test_a_list_in_network_order_is_unchanged():
    names = network_names()
    assert network_order(names) == list(range(len(names)))


def test_gguf_converted_order_keeps_the_top_level_and_sorts_blocks():
    stored = ["token_embd.weight"] + [f"blk.{i}.{p}.weight" for i in sorted(map(str, range(12)))
                                      for p in ("attn_norm", "ffn_down", "attn_q")] + ["output_norm.weight",
                                                                                         "output.weight"]
    got = reorder(stored)
    assert got[0] == "token_embd.weight" and got[-2:] == ["output_norm.weight", "output.weight"]
    assert [n.split(".")[1] for n in got[1:-2:3]] == [str(i) for i in range(12)]


@pytest.mark.parametrize("stored,want", [
    (["Dense_0", "Dense_1", "Dense_10", "Dense_2"], ["Dense_0", "Dense_1", "Dense_2", "Dense_10"]),
    (["block10a", "block2a", "block2b"], ["block2a", "block2b", "block10a"]),
    (["bn1", "bn2", "conv1", "conv10", "conv2"], ["bn1", "bn2", "conv1", "conv2", "conv10"]),
    (["h.1.w", "h.10.w", "h.2.w", "wte"], ["h.1.w", "h.2.w", "h.10.w", "wte"]),
    (["a/kernel:0", "a/10/kernel", "a/9/kernel"], ["a/kernel:0", "a/9/kernel", "a/10/kernel"]),
])
def test_numbered_siblings(stored, want):
    assert reorder(stored) == want


def test_hostile_names_do_not_break_it():
    huge = "x." + "9" * 5000 + ".w"  # past int()'s digit limit
    deep = ".".join(["a"] * 20000)  # deeper than the recursion limit
    assert sorted(network_order([huge, "x.1.w", deep, "x.1.w"])) == [0, 1, 2, 3]
    assert natural_key("h2") < natural_key("h10") and natural_key("h01") != natural_key("h1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.lists(st.sampled_from(["a", "b", "0", "1", "2", "10", "x3", "x12"]), min_size=1, max_size=4)
                .map(".".join), max_size=30))
def test_properties(names):
    order = network_order(names)
    assert sorted(order) == list(range(len(names)))  # a permutation
    again = [names[i] for i in order]
    assert network_order(again) == list(range(len(again)))  # idempotent
    ranks = network_ranks(names)
    assert [names[i] for i in sorted(range(len(names)), key=ranks.__getitem__)] == again


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 25), st.randoms(use_true_random=False))
def test_any_storage_order_of_a_block_model_gives_numeric_blocks(blocks, rnd):
    names = network_names(blocks)
    shuffled = names[:]
    rnd.shuffle(shuffled)
    got = reorder(sorted(shuffled))
    assert got == reorder(alphabetical(names))  # only the stored (sorted) order matters
    nums = [int(n.split(".")[2]) for n in got if n.startswith("model.layers.")]
    assert nums == sorted(nums)


# ---- the sources ---------------------------------------------------------------------------------

def model_arrays(seed=0, blocks=BLOCKS):
    rng = np.random.default_rng(seed)
    return {n: rng.standard_normal((24 + k % 5, 16)).astype(np.float32) for k, n in enumerate(network_names(blocks))}


def listed(source):
    return [(r.layer_id, r.name) for r in source.layers()]


def in_network_order(names_listed):
    want = [n[: -len(".weight")] for n in reorder(alphabetical(network_names()))]
    return [n for _, n in names_listed] == want


def test_a_single_safetensors_file_is_numbered_in_network_order(tmp_path):
    from safetensors.numpy import save_file

    save_file(model_arrays(), str(tmp_path / "m.safetensors"))
    rows = listed(open_source(tmp_path / "m.safetensors"))
    assert in_network_order(rows)
    assert [i for i, _ in rows] == list(range(1, len(rows) + 1))  # ids follow the listing


def test_an_npz_file_is_numbered_in_network_order(tmp_path):
    arrays = model_arrays()
    np.savez(tmp_path / "m.npz", **{k: arrays[k] for k in sorted(arrays)})  # stored alphabetically
    rows = listed(open_source(tmp_path / "m.npz"))
    assert in_network_order(rows) and [i for i, _ in rows] == list(range(1, len(rows) + 1))


def test_a_gguf_file_is_numbered_in_network_order(tmp_path):
    gguf = pytest.importorskip("gguf")
    rng = np.random.default_rng(1)
    writer = gguf.GGUFWriter(str(tmp_path / "m.gguf"), "llama")
    stored = ["token_embd.weight"] + [f"blk.{i}.attn_q.weight" for i in sorted(map(str, range(12)))]
    for name in stored:
        writer.add_tensor(name, rng.standard_normal((32, 32)).astype(np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    rows = listed(open_source(tmp_path / "m.gguf"))
    assert [n for _, n in rows] == ["token_embd"] + [f"blk.{i}.attn_q" for i in range(12)]
    assert [i for i, _ in rows] == list(range(1, 14))


def test_a_state_dict_keeps_the_reference_ids_and_is_listed_in_network_order():
    arrays = model_arrays()
    sd = {k: arrays[k] for k in sorted(arrays)}  # as safetensors.load_file returns it
    rows = listed(open_source(sd))
    assert in_network_order(rows)
    stored = [k[: -len(".weight")] for k in sd]
    assert sorted(rows) == [(i + 1, n) for i, n in enumerate(stored)]  # ids: the stored order, from 1


def test_a_folder_keeps_the_reference_ids_and_is_listed_in_network_order(tmp_path):
    from safetensors.numpy import save_file

    arrays = model_arrays()
    keys = sorted(arrays)
    save_file({k: arrays[k] for k in keys[:25]}, str(tmp_path / "model-00001-of-00002.safetensors"))
    save_file({k: arrays[k] for k in keys[25:]}, str(tmp_path / "model-00002-of-00002.safetensors"))
    rows = listed(open_source(tmp_path))
    assert in_network_order(rows)
    assert sorted(rows) == [(i, k[: -len(".weight")]) for i, k in enumerate(keys)]  # from 0, file order


@pytest.mark.reference
def test_folder_and_state_dict_ids_are_the_reference_ids(tmp_path):
    import logging
    import warnings

    torch = pytest.importorskip("torch")
    ww = pytest.importorskip("weightwatcher")
    from safetensors.numpy import save_file

    arrays = model_arrays()
    sd = {k: torch.from_numpy(arrays[k]) for k in sorted(arrays)}
    save_file({k: arrays[k] for k in sorted(arrays)}, str(tmp_path / "model.safetensors"))
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    for model in (sd, str(tmp_path)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = ww.WeightWatcher().describe(model=model)
        want = sorted((int(r.layer_id), str(r.name)) for r in ref.itertuples())
        ours = sorted((r.layer_id, r.name) for r in open_source(model).layers() if r.layer_type in ANALYSABLE_TYPES)
        assert ours == want


# ---- every consumer keeps the order --------------------------------------------------------------

@pytest.fixture(scope="module")
def alpha_sd():
    arrays = model_arrays(blocks=11)
    names = [n for n in network_names(11) if ".layers." in n and "up_proj" in n]
    return {k: np.asarray(arrays[k], dtype=np.float32) for k in sorted(names)}


def test_rows_describe_and_compat_order(alpha_sd):
    report = spectralwatch.analyze(alpha_sd, workers=1, min_evals=1)
    blocks = [int(n.split(".")[2]) for n in report.details["name"]]
    assert blocks == list(range(11))
    assert list(report.details["layer_id"]) != sorted(report.details["layer_id"])  # the reference's ids kept
    d = spectralwatch.describe(alpha_sd, min_evals=1, skipped=True)
    assert [int(n.split(".")[2]) for n in d["name"]] == list(range(11))
    ww = spectralwatch.WeightWatcher(model=alpha_sd)
    assert list(ww.analyze(min_evals=1)["layer_id"]) == sorted(report.details["layer_id"])  # reference order
    assert list(ww.describe(min_evals=1)["layer_id"]) == sorted(report.details["layer_id"])


def test_figures_compare_and_html_follow_network_order(alpha_sd, tmp_path):
    pytest.importorskip("matplotlib")
    from spectralwatch.render.plots.model import alpha_by_layer
    from spectralwatch.tools.compare import compare

    report = spectralwatch.analyze(alpha_sd, workers=1, min_evals=1)
    alphas = report.details["alpha"].to_numpy(dtype=float)
    ax = alpha_by_layer(report.details, weighted=False)
    line = ax.lines[0]
    assert list(line.get_xdata()) == list(range(11)) and np.allclose(line.get_ydata(), np.minimum(alphas, 12))
    comp = compare([alpha_sd, alpha_sd], workers=1, min_evals=1)
    curve = json.loads(json.dumps(comp.to_dict()))["alpha_curves"]
    first = list(curve.values())[0] if isinstance(curve, dict) else curve[0]["alpha"]
    assert np.allclose(np.asarray(first, dtype=float), alphas)
    html = report.to_html(figures=False)
    where = [html.index(f">model.layers.{i}.mlp.up_proj<") for i in range(11)]
    assert where == sorted(where)


def test_intra_pairs_the_reference_pairs(alpha_sd):
    pairs = spectralwatch.analyze(alpha_sd, intra=True, workers=1, min_evals=1, sparsify=False).details
    ids = sorted(r.layer_id for r in open_source(alpha_sd).layers())
    assert list(pairs["name"]) == [f"{a} X {b}" for a, b in zip(ids, ids[1:])]  # consecutive ids, as the reference

"""The option table (spectralwatch.options.schema): every option has a validation, a flag, a stage;
the public functions take their defaults from it; invalid values are refused at the call."""

import dataclasses
import inspect
import math
import re
from pathlib import Path

import numpy as np
import pytest

import spectralwatch
from spectralwatch.cli.app import analysis_option_names, main
from spectralwatch.errors import InvalidParameterError
from spectralwatch.options import (
    DEFAULTS,
    ENTRIES,
    OPTIONS,
    Options,
    defaults_of,
    make_options,
    options_of,
    validate,
)
from spectralwatch.options import constraints as C
from spectralwatch.options.configs import STAGE_CONFIGS
from spectralwatch.options.schema import GROUPS, STAGES
from spectralwatch.pipeline.analyze import esd
from spectralwatch.tools.compare import compare

SRC = Path(spectralwatch.__file__).parent

#: a value each kind of constraint refuses
_BAD = {C.Bool: "yes", C.Int: -7, C.Real: math.nan, C.Count: 1, C.Xmax: 2.5, C.Range: (3, 1), C.Path: 42,
        C.Folder: 42, C.Seed: -1, C.Device: "gpu", C.Executor: "threadz", C.CallableOrNone: 3,
        C.MappingOrNone: 3, C.Custom: 2.5}


def _bad_value(o):
    if isinstance(o.constraint, C.Choice):
        return "not-a-choice"
    if isinstance(o.constraint, C.Custom):  # the first of a few usual mistakes that it refuses
        for candidate in (2.5, -2.5, "nonsense value", [1, -2], object()):
            try:
                o.constraint.check(candidate)
            except C.Rejected:
                return candidate
        return None
    return _BAD.get(type(o.constraint))


ALL = sorted({(entry, o.name) for entry, opts in ENTRIES.items() for o in opts})


@pytest.mark.parametrize("entry, name", ALL)
def test_every_option_has_a_validation_that_names_it(entry, name):
    o = next(x for x in options_of(entry) if x.name == name)
    assert o.help and o.kind and o.group in GROUPS and set(o.stages) <= set(STAGES)
    bad = _bad_value(o)
    if isinstance(o.constraint, C.Anything):  # a model: checked by the reader that opens it
        return
    assert bad is not None, f"no invalid example for {type(o.constraint).__name__}"
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of {entry} must be"):
        validate(entry, {name: bad})


@pytest.mark.parametrize("entry", ["analyze", "describe", "compare"])
def test_every_flag_is_on_the_command_line_and_in_its_help(entry, capsys):
    names = analysis_option_names(entry)
    flagged = {o.name for o in options_of(entry) if o.flag} - {"progress", "on_result", "done", "plot", "savefig"}
    assert set(names) == flagged
    assert main([entry, "--help"]) == 0
    text = capsys.readouterr().out
    for name in names:
        assert OPTIONS.get(name, next(o for o in options_of(entry) if o.name == name)).flag_name in text, name


def test_the_statistics_options_have_flags(capsys):
    assert main(["analyze", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--bootstrap", "--gof-samples", "--ci-level", "--compare-tails", "--xmin-method", "--xmin",
                 "--xmin-range", "--farms", "--farms-q", "--fit-quality", "--exclude-flagged"):
        assert flag in text, flag


def test_statistics_flags_reach_the_analysis(tmp_path, capsys):
    import json

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "m.npz", **{"a.weight": rng.standard_normal((80, 60))})
    assert main(["analyze", str(tmp_path / "m.npz"), "--format", "json", "--bootstrap", "20", "--rng", "3",
                 "--xmin-range", "0.5,", "--compare-tails"]) == 0
    row = json.loads(capsys.readouterr().out)["details"][0]
    assert "alpha_ci_low" in row and "best_tail" in row and "fit_quality" in row


_PUBLIC = {"analyze": spectralwatch.analyze, "iter_analyze": spectralwatch.iter_analyze,
           "describe": spectralwatch.describe, "compare": compare, "distances": spectralwatch.distances,
           "svd_smoothing": spectralwatch.svd_smoothing, "svd_sharpness": spectralwatch.svd_sharpness,
           "get_ESD": esd, "fit_power_law": spectralwatch.fit_power_law}


@pytest.mark.parametrize("entry", sorted(_PUBLIC))
def test_public_signatures_are_the_table(entry):
    params = inspect.signature(_PUBLIC[entry]).parameters
    kw = [p for p in params.values() if p.kind is p.KEYWORD_ONLY and p.name not in (
        "names", "accuracies", "metrics", "random")]
    assert [p.name for p in kw] == [o.name for o in options_of(entry)]
    defaults = defaults_of(entry)
    for p in kw:
        assert p.default is getattr(defaults, p.name) or p.default == getattr(defaults, p.name), p.name
    assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), "no catch-all **kwargs"


def test_a_default_is_written_once():
    """The defaults live in options/schema.py; the public functions read them from there."""
    names = ("min_evals", "max_evals", "max_N", "max_fingers", "finger_thresh", "ci_level", "farms_q", "tolerance")
    pattern = re.compile("|".join(rf"\b{n}\s*(:\s*[^=,)]+)?=\s*{re.escape(repr(OPTIONS[n].default))}\b" for n in names))
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "schema.py":
            continue
        for i, line in enumerate(path.read_text().splitlines(), 1):
            if pattern.search(line) and not line.lstrip().startswith(("#", "``", "*")):
                offenders.append(f"{path.relative_to(SRC)}:{i}: {line.strip()}")
    assert not offenders, offenders


def test_stage_configurations_agree_with_the_table():
    by_stage = {stage: {o.name for o in OPTIONS.values() if stage in o.stages} for stage in STAGES}
    for stage, (attr, cls) in STAGE_CONFIGS.items():
        fields = {f.name for f in dataclasses.fields(cls)}
        assert fields == by_stage[stage], stage
    options = make_options(min_evals=3, fit="TPL", rng=5, intra=True)
    assert options.select.min_evals == 3 and options.fitting.fit == "truncated_power_law"
    assert options.analyses.rng == 5 and options.walk.rng == 5 and options.walk.intra


@pytest.mark.parametrize("values", [
    {}, {"fit": "E_TPL"}, {"xmin": 2.0}, {"xmin_range": (1, None)}, {"bootstrap": 10, "exclude_flagged": True},
    {"layers": [1, "dense"], "max_evals": 0, "start_ids": 0}, {"savefig": True, "plot": True}, {"peft": "with_base"},
])
def test_validation_is_idempotent(values):
    once = validate("analyze", values)
    assert validate("analyze", once) == once


@pytest.mark.parametrize("kwargs, name", [
    ({"fix_fingers": "clip_xmax", "finger_thresh": -1}, "finger_thresh"),
    ({"finger_thresh": float("nan")}, "finger_thresh"),
    ({"fix_fingers": "xmin_peak", "xmin_max": float("inf")}, "xmin_max"),
    ({"tolerance": float("inf")}, "tolerance"),
    ({"max_fingers": -1}, "max_fingers"),
])
def test_invalid_values_are_refused_at_the_call_before_anything_is_read(kwargs, name):
    # a model path that does not exist: the option error comes first, nothing is opened
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of analyze"):
        spectralwatch.analyze("/no/such/model.safetensors", **kwargs)
    with pytest.raises(InvalidParameterError, match=f"'{name}' parameter of iter_analyze"):
        spectralwatch.iter_analyze("/no/such/model.safetensors", **kwargs)


def test_max_fingers_zero_means_the_same_everywhere():
    rng = np.random.default_rng(1)
    W = rng.standard_normal((120, 80))
    row = spectralwatch.analyze(W, fix_fingers="clip_xmax", max_fingers=0).details.iloc[0]
    fit = spectralwatch.fit_power_law(spectralwatch.analyze(W).get_ESD(0), fix_fingers="clip_xmax", max_fingers=0)
    assert row["num_fingers"] == 0 and row["alpha"] == pytest.approx(fit.alpha, rel=1e-12)


def test_fingerprint_holds_the_options_that_change_results():
    a = make_options(cache_dir="/tmp/x", trust_pickle=True, deltas=True).fingerprint()
    b = make_options().fingerprint()
    assert a == b
    assert make_options(min_evals=3).fingerprint() != b
    assert set(b) == {o.name for o in OPTIONS.values() if o.results and "run" not in o.stages}


def test_weightwatcher_aliases_go_through_the_drop_in_class():
    W = np.random.default_rng(2).standard_normal((100, 50))
    ww = spectralwatch.WeightWatcher().analyze(W, ERG=True, min_evals=0)
    assert "detX_num" in ww.columns
    with pytest.raises(TypeError, match="spectralwatch's option is 'detX'"):
        spectralwatch.analyze(W, ERG=True)
    with pytest.raises(TypeError, match="Did you mean 'min_evals'"):
        spectralwatch.describe(W, min_eval=3)


def test_deprecated_peak_spelling_warns_and_means_xmin_peak():
    W = np.random.default_rng(3).standard_normal((150, 100))
    with pytest.warns(FutureWarning, match="fix_fingers='xmin_peak'"):
        peak = spectralwatch.analyze(W, xmin_method="peak").details
    ref = spectralwatch.analyze(W, fix_fingers="xmin_peak").details
    np.testing.assert_array_equal(peak["alpha"], ref["alpha"])


def test_docstrings_are_written_from_the_table():
    for entry in ("analyze", "iter_analyze", "describe", "compare"):
        doc = _PUBLIC[entry].__doc__
        assert "{options}" not in doc
        for o in options_of(entry):
            assert f"\n    {o.name} : " in doc, (entry, o.name)


def test_options_are_frozen():
    options = make_options()
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.select.min_evals = 3  # type: ignore[misc]
    assert options.replace(min_evals=3).select.min_evals == 3 and options.select.min_evals == DEFAULTS.min_evals
    assert isinstance(options, Options)

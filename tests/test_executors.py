"""Executors: serial, local processes and Dask give bit-identical tables; dead workers cost nothing."""

import functools
import os

import numpy as np
import pandas as pd
import pytest

import spectralwatch
from spectralwatch.pipeline.executors import resolve_executor, run_layers
from spectralwatch.pipeline.layer import layer_geometry
from spectralwatch.options import make_options
from spectralwatch.io.sources.base import LayerRef


@pytest.fixture(scope="module")
def npz_model(tmp_path_factory):
    rng = np.random.default_rng(0)
    path = tmp_path_factory.mktemp("m") / "model.npz"
    arrays = {f"l{i}.weight": rng.standard_normal((rng.integers(40, 200), rng.integers(20, 100)))
              for i in range(12)}
    arrays["conv.weight"] = rng.standard_normal((32, 16, 3, 3))
    np.savez(path, **arrays)
    return path


def test_processes_threads_and_serial_tables_are_bit_identical(npz_model):
    serial = spectralwatch.analyze(npz_model, workers=1).details
    procs = spectralwatch.analyze(npz_model, executor="processes", workers=2).details
    pd.testing.assert_frame_equal(serial, procs, check_exact=True)
    for workers in (2, 3):
        threads = spectralwatch.analyze(npz_model, executor="threads", workers=workers).details
        pd.testing.assert_frame_equal(serial, threads, check_exact=True)
    default = spectralwatch.analyze(npz_model).details
    pd.testing.assert_frame_equal(serial, default, check_exact=True)


def test_default_executor_uses_threads_when_the_linear_algebra_pays():
    from spectralwatch.pipeline.executors import _auto_kind

    tasks = [(None, {"N": 1536, "M": 384, "rf": 1})] * 10
    tiny = [(None, {"N": 64, "M": 64, "rf": 1})] * 60
    assert _auto_kind(tasks, None) == ("threads", min(len(os.sched_getaffinity(0)), 10)) or \
        len(os.sched_getaffinity(0)) == 1
    assert _auto_kind(tasks[:1], None) == ("serial", 1)
    assert _auto_kind(tasks, 3) == ("threads", 3)
    assert _auto_kind(tiny, None) == ("serial", 1)  # threads would only add their overhead
    assert _auto_kind(tiny, 2) == ("threads", 2)

def test_thread_executor_starts_the_largest_layer_first_and_yields_in_model_order(monkeypatch):
    import threading

    import spectralwatch.pipeline.executors as executors

    started = []
    lock = threading.Lock()
    real = executors.analyze_layer

    def spy(ref, options, geometry):
        with lock:
            started.append(ref.name)
        return real(ref, options, geometry)

    monkeypatch.setattr(executors, "analyze_layer", spy)
    refs = _refs(8)
    refs[6] = LayerRef(layer_id=6, name="big", longname="big", layer_type="dense", shape=(300, 200),
                       dtype="float64", loader=functools.partial(_weights, 6, (300, 200)))
    rows = _run(refs, executor="threads", workers=2)
    assert started[0] == "big"
    assert [r["name"] for r in rows] == [r.name for r in refs]
    serial = _run(refs, workers=1)
    assert [r["alpha"] for r in rows] == [r["alpha"] for r in serial]


def test_memory_error_in_a_thread_costs_only_its_layer():
    def boom():
        raise MemoryError

    refs = _refs(6)
    refs[2] = LayerRef(layer_id=2, name="l2", longname="l2", layer_type="dense", shape=(60, 30),
                       dtype="float64", loader=boom)
    rows = _run(refs, executor="threads", workers=2)
    assert rows[2]["status"] == "failed" and "out of memory" in rows[2]["message"]
    assert all(r["status"] == "success" for k, r in enumerate(rows) if k != 2)


def test_in_memory_model_runs_in_processes_too():
    rng = np.random.default_rng(1)
    model = {f"l{i}.weight": rng.standard_normal((80, 40)) for i in range(6)}
    a = spectralwatch.analyze(model, workers=1).details
    b = spectralwatch.analyze(model, executor="processes", workers=2).details
    pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_bad_executor_arguments():
    with pytest.raises(ValueError, match="'workers' parameter"):
        resolve_executor(None, -1)
    with pytest.raises(ValueError, match="'executor' parameter"):
        resolve_executor("fibers", None)
    assert resolve_executor("threads", 2) == ("threads", 2)
    assert resolve_executor("dask://localhost:8786", None) == ("dask", "tcp://localhost:8786")


def _weights(seed, shape=(60, 30)):
    return np.random.default_rng(seed).standard_normal(shape)


def _die_once(marker, seed):
    """Kill the process the first time it is called (marker file absent), then behave."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(13)
    return _weights(seed)


def _die_always(seed):
    os._exit(13)


def _refs(n, killer=None):
    refs = []
    for i in range(n):
        loader = killer(i) if killer and killer(i) else functools.partial(_weights, i)
        refs.append(LayerRef(layer_id=i, name=f"l{i}", longname=f"l{i}", layer_type="dense", shape=(60, 30),
                             dtype="float64", loader=loader))
    return refs


def _run(refs, **kw):
    options = make_options()
    tasks = [(r, layer_geometry(r, options)) for r in refs]
    return [results[0].row for _, results in run_layers(tasks, options, **kw)]


def test_a_worker_killed_mid_run_loses_nothing(tmp_path):
    marker = str(tmp_path / "died")
    refs = _refs(50, killer=lambda i: functools.partial(_die_once, marker, i) if i == 20 else None)
    rows = _run(refs, executor="processes", workers=2)
    assert os.path.exists(marker)  # the worker did die
    assert len(rows) == 50 and all(r["status"] == "success" for r in rows)
    reference = _run(_refs(50), workers=1)
    assert [r["alpha"] for r in rows] == [r["alpha"] for r in reference]


def test_a_layer_that_always_kills_its_worker_gets_a_failed_row():
    refs = _refs(12, killer=lambda i: functools.partial(_die_always, i) if i == 5 else None)
    rows = _run(refs, executor="processes", workers=2)
    assert len(rows) == 12
    assert rows[5]["status"] == "failed" and "worker process died" in rows[5]["message"]
    assert all(r["status"] == "success" for k, r in enumerate(rows) if k != 5)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed", reason="dask.distributed is not installed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                       dashboard_address=None, silence_logs=50)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.dask
def test_dask_gives_the_serial_table(npz_model, dask_client):
    serial = spectralwatch.analyze(npz_model, workers=1).details
    on_dask = spectralwatch.analyze(npz_model, executor=dask_client).details
    pd.testing.assert_frame_equal(serial, on_dask, check_exact=True)
    address = dask_client.scheduler.address
    by_address = spectralwatch.analyze(npz_model, executor=address.replace("tcp://", "dask://")).details
    pd.testing.assert_frame_equal(serial, by_address, check_exact=True)


@pytest.mark.dask
def test_dask_survives_a_killed_worker(tmp_path, dask_client):
    marker = str(tmp_path / "died")
    refs = _refs(20, killer=lambda i: functools.partial(_die_once, marker, i) if i == 7 else None)
    rows = _run(refs, executor=dask_client)
    assert os.path.exists(marker)
    assert len(rows) == 20 and all(r["status"] == "success" for r in rows)


@pytest.mark.dask
def test_cli_scheduler_and_workers(npz_model, dask_client, capsys):
    from spectralwatch.cli import main

    assert main(["analyze", str(npz_model), "--workers", "2", "--format", "csv"]) == 0
    procs = capsys.readouterr().out
    assert main(["analyze", str(npz_model), "--scheduler", dask_client.scheduler.address, "--format", "csv"]) == 0
    assert capsys.readouterr().out == procs


def test_cli_executor_choice_gives_the_same_table(npz_model, capsys):
    from spectralwatch.cli import main

    outputs = []
    for extra in (["--workers", "1"], ["--executor", "threads", "--workers", "2"],
                  ["--executor", "processes", "--workers", "2"]):
        assert main(["analyze", str(npz_model), "--format", "csv", "--no-progress", *extra]) == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert main(["analyze", str(npz_model), "--executor", "fibers"]) == 2


def test_a_dominant_layer_gets_every_core_for_its_gram_before_the_others_start(monkeypatch):
    import threading

    import spectralwatch.pipeline.executors as executors
    import spectralwatch.core.spectrum as spectrum

    log = []
    lock = threading.Lock()
    real_layer, real_done = executors.analyze_layer, spectrum._gram_done

    def spy_layer(ref, options, geometry):
        with lock:
            log.append(("start", ref.name))
        return real_layer(ref, options, geometry)

    def spy_done():
        with lock:
            log.append(("gram", threading.current_thread().name))
        real_done()

    monkeypatch.setattr(executors, "analyze_layer", spy_layer)
    monkeypatch.setattr(spectrum, "_gram_done", spy_done)
    refs = _refs(6)
    refs[3] = LayerRef(layer_id=3, name="big", longname="big", layer_type="dense", shape=(900, 600),
                       dtype="float64", loader=functools.partial(_weights, 3, (900, 600)))
    rows = _run(refs, executor="threads", workers=2)
    assert log[0] == ("start", "big") and log[1][0] == "gram"  # nothing else started before its Gram
    assert sorted(name for kind, name in log if kind == "start") == sorted(r.name for r in refs)
    assert [r["alpha"] for r in rows] == [r["alpha"] for r in _run(refs, workers=1)]

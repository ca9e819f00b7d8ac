"""Any concurrent.futures.Executor as ``executor=``: model order, bit-identical to serial, failures as rows."""

import functools
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import spectralwatch
from spectralwatch.io.sources.base import LayerRef
from spectralwatch.options import make_options
from spectralwatch.pipeline.executors import is_executor, resolve_executor, run_layers
from spectralwatch.pipeline.layer import layer_geometry


@pytest.fixture(scope="module")
def npz_model(tmp_path_factory):
    rng = np.random.default_rng(3)
    path = tmp_path_factory.mktemp("m") / "model.npz"
    arrays = {f"l{i}.weight": rng.standard_normal((rng.integers(40, 160), rng.integers(20, 80)))
              for i in range(10)}
    arrays["conv.weight"] = rng.standard_normal((24, 12, 3, 3))
    np.savez(path, **arrays)
    return path


@pytest.fixture(scope="module")
def serial(npz_model):
    return spectralwatch.analyze(npz_model, workers=1).details


def test_a_thread_pool_gives_the_serial_table(npz_model, serial):
    with ThreadPoolExecutor(max_workers=3) as pool:
        table = spectralwatch.analyze(npz_model, executor=pool).details
        again = spectralwatch.analyze(npz_model, executor=pool).details  # not shut down by analyze
    pd.testing.assert_frame_equal(serial, table, check_exact=True)
    pd.testing.assert_frame_equal(serial, again, check_exact=True)


def test_a_process_pool_gives_the_serial_table(npz_model, serial):
    with ProcessPoolExecutor(max_workers=2) as pool:
        table = spectralwatch.analyze(npz_model, executor=pool).details
    pd.testing.assert_frame_equal(serial, table, check_exact=True)


def test_an_in_memory_model_on_a_process_pool():
    rng = np.random.default_rng(1)
    model = {f"l{i}.weight": rng.standard_normal((70, 30)) for i in range(5)}
    with ProcessPoolExecutor(max_workers=2) as pool:
        table = spectralwatch.analyze(model, executor=pool).details
    pd.testing.assert_frame_equal(spectralwatch.analyze(model, workers=1).details, table, check_exact=True)


def test_loky_gives_the_serial_table(npz_model, serial):
    loky = pytest.importorskip("loky", reason="loky is not installed")
    pool = loky.get_reusable_executor(max_workers=2)
    table = spectralwatch.analyze(npz_model, executor=pool).details
    pd.testing.assert_frame_equal(serial, table, check_exact=True)


class _Flaky(Executor):
    """An executor whose task for one layer raises, as a lost node or a dead worker would."""

    def __init__(self, bad_name):
        self.pool, self.bad_name = ThreadPoolExecutor(max_workers=2), bad_name

    def submit(self, fn, *args, **kwargs):
        if args[0].name == self.bad_name:
            def lost():
                raise ConnectionError("node 3 went away")
            return self.pool.submit(lost)
        return self.pool.submit(fn, *args, **kwargs)

    def shutdown(self, wait=True, **kwargs):
        self.pool.shutdown(wait=wait)


def _weights(seed, shape=(60, 30)):
    return np.random.default_rng(seed).standard_normal(shape)


def _rows(executor, n=8):
    options = make_options()
    refs = [LayerRef(layer_id=i, name=f"l{i}", longname=f"l{i}", layer_type="dense", shape=(60, 30),
                     dtype="float64", loader=functools.partial(_weights, i)) for i in range(n)]
    tasks = [(r, layer_geometry(r, options)) for r in refs]
    return [results[0].row for _, results in run_layers(tasks, options, executor=executor)]


def test_a_task_the_executor_loses_becomes_a_failed_row_in_its_place():
    flaky = _Flaky("l3")
    try:
        rows = _rows(flaky)
    finally:
        flaky.shutdown()
    assert [r["name"] for r in rows] == [f"l{i}" for i in range(8)]
    assert rows[3]["status"] == "failed"
    assert "_Flaky" in rows[3]["message"] and "ConnectionError: node 3 went away" in rows[3]["message"]
    serial = _rows("serial")
    assert all(rows[i]["alpha"] == serial[i]["alpha"] for i in range(8) if i != 3)


def test_a_shut_down_executor_is_a_clear_error():
    pool = ThreadPoolExecutor(max_workers=1)
    pool.shutdown()
    with pytest.raises(ValueError, match="does not accept tasks"):
        _rows(pool)


def test_executor_recognition():
    with ThreadPoolExecutor(1) as pool:
        assert resolve_executor(pool, None) == ("executor", pool)

    class DuckPool:  # no base class, the Executor methods
        def submit(self, fn, *a): ...
        def map(self, fn, *a): ...
        def shutdown(self, wait=True): ...

    assert is_executor(DuckPool()) and not is_executor("threads") and not is_executor(object())
    with pytest.raises(ValueError, match="concurrent.futures.Executor"):
        resolve_executor(object(), None)

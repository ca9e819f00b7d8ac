"""Where layers are analysed: in this process (one thread or several), a process pool, Dask, or
any :class:`concurrent.futures.Executor` the caller owns (loky, ``mpi4py.futures``, Ray's executor...).

Every executor runs the same pure per-layer function (:func:`spectralwatch.layer.analyze_layer`)
and yields results in model order, so the table is identical whichever runs it. Tasks carry a
*reference* to their tensor when the tensor lives in a file (a safetensors/npz path and the
tensor's name and byte range, a few hundred bytes): the worker reads it itself, so no weight
crosses from the driver. Tensors that exist only in the driver's memory (a torch module, a dict
of arrays) are read by the driver and shipped one at a time.

Threads are the default way to use several cores: every heavy step of a layer (reading, the Gram
product, the eigensolver called through :mod:`spectralwatch._lapack`) releases the GIL, and
threads cost nothing to start and share the driver's memory. Processes isolate layers from each
other (a worker killed by the out-of-memory killer costs one layer) and also run the Python parts
of the fit side by side.

At most ``2 x workers`` tasks are in flight, so the driver never holds more than a few tensors.
A worker process that dies (killed, out of memory) costs only its layer: the pool is rebuilt and
the pending layers are resubmitted; a layer that kills a worker twice gets a ``failed`` row.

An executor passed in by the caller is used as it is and never shut down: spectralwatch cannot
rebuild it, so a layer whose task raises (a dead worker, a lost node) gets a ``failed`` row
naming the executor and the error, and the other layers go on.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import pickle
import threading
from collections import deque
from typing import Iterator

import numpy as np

from ..errors import InvalidParameterError, SpectralWatchError
from .layer import LayerResult, analyze_layer, failed_result

__all__ = ["resolve_executor", "run_layers", "is_executor"]

_MAX_REF_BYTES = 1 << 16  # a picklable tensor reference larger than this is not a file reference
# below ~10 ms of linear algebra (60 layers of 64 x 64) threads only add their overhead (measured:
# 0.25 s with 2 threads against 0.23 s in one)
_AUTO_MIN_THREAD_FLOPS = 3e8


def _blas_limit(threads: int) -> None:
    """Worker initializer: give each worker its share of the cores (no oversubscription)."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - threadpoolctl is a dependency
        return
    from ..core.spectrum import set_gram_threads

    set_gram_threads(threads)
    threadpool_limits(limits=max(1, threads))


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        return os.cpu_count() or 1


def _flops(geometry: dict) -> float:
    N, M, rf = geometry["N"], geometry["M"], geometry["rf"]
    return rf * (N * M * M + 4.0 * M ** 3)


def _auto_kind(tasks: list, workers):
    """The executor chosen by ``executor=None``: threads of this process (the eigensolver and the
    Gram products release the GIL), or one thread when the linear algebra is too small to pay for
    them."""
    if not workers and sum(_flops(g) for _, g in tasks) < _AUTO_MIN_THREAD_FLOPS:
        return ("serial", 1)
    n = workers if workers else min(_cpu_count(), len(tasks))
    return ("threads", n) if n > 1 and len(tasks) > 1 else ("serial", 1)


def _payload(ref):
    """What to send to a worker: the reference itself if it points into a file, else the tensor."""
    try:
        blob = pickle.dumps(ref.loader)
        if len(blob) <= _MAX_REF_BYTES:
            return ref
    except Exception:  # closures over in-memory models are not picklable: ship the array
        pass
    return dataclasses.replace(ref, loader=functools.partial(np.asarray, ref.load()))


def _task(ref, options, geometry) -> list[LayerResult]:
    from ..core.spectrum import one_blas_thread

    with one_blas_thread():
        return analyze_layer(ref, options, geometry)


def resolve_executor(executor, workers):
    """Normalise ``executor`` / ``workers`` into ``('serial'|'processes'|'dask', detail)``."""
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 0):
        raise InvalidParameterError(f"The 'workers' parameter of analyze must be None or an int >= 0. Got {workers!r}.")
    if executor is None or executor == "auto":
        return ("auto", workers)
    if executor == "serial":
        return ("serial", 1)
    if executor == "processes":
        return ("processes", workers)
    if executor == "threads":
        return ("threads", workers)
    if isinstance(executor, str) and executor.startswith(("dask://", "tcp://", "tls://", "inproc://")):
        return ("dask", executor.replace("dask://", "tcp://", 1))
    if type(executor).__module__.startswith("distributed") and hasattr(executor, "submit"):
        return ("dask", executor)
    if is_executor(executor):
        return ("executor", executor)
    raise InvalidParameterError(
        "The 'executor' parameter of analyze must be None, 'serial', 'threads', 'processes', a dask "
        "distributed.Client, a scheduler address 'dask://host:port' or a concurrent.futures.Executor "
        f"(loky, mpi4py.futures, Ray...). Got {executor!r}.")


def is_executor(obj) -> bool:
    """A :class:`concurrent.futures.Executor`, or an object with its methods (``submit``, ``map``,
    ``shutdown``) such as executors that do not derive from the standard class."""
    from concurrent.futures import Executor

    if isinstance(obj, Executor):
        return True
    return not isinstance(obj, (str, bytes)) and all(callable(getattr(obj, m, None))
                                                     for m in ("submit", "map", "shutdown"))


def run_layers(tasks: list, options, *, executor=None, workers=None) -> Iterator[tuple]:
    """Yield ``(ref, results)`` for each ``(ref, geometry)`` task, in task order."""
    kind, detail = resolve_executor(executor, workers)
    if kind == "auto":
        kind, detail = _auto_kind(tasks, detail)
    if kind in ("threads", "processes"):
        n = detail or _cpu_count()
        if n > 1 and len(tasks) > 1:
            runner = _run_threads if kind == "threads" else _run_processes
            yield from runner(tasks, options, min(n, len(tasks)))
            return
        kind = "serial"
    if kind == "dask":
        yield from _run_dask(tasks, options, detail)
        return
    if kind == "executor":
        yield from _run_executor(tasks, options, detail)
        return
    from ..core.spectrum import one_blas_thread

    with one_blas_thread():  # every step of every layer, as in the workers: bit-identical results
        for ref, geometry in tasks:
            yield ref, analyze_layer(ref, options, geometry)


def _run_threads(tasks: list, options, n: int) -> Iterator[tuple]:
    """Layers side by side in ``n`` threads of this process, results in task order.

    The largest layers start first (longest-processing-time-first): the last layer of a network
    is often its biggest (a classifier, an LM head), and started last it would leave the other
    threads idle while it alone is solved. When one layer is more than a worker's share of the
    whole model, it is the critical path: the other layers wait until its Gram product (spread
    over every core) is done, then run beside its single-threaded eigensolver. Queued tasks hold only a reference to their tensor
    (threads read it when they start it), so at most ``n`` tensors are in memory at once.
    BLAS stays on one thread per call for the whole run (bit-identical results, no
    oversubscription); a large Gram product may still spread its fixed blocks over every core:
    started first, the largest layer's product uses the cores the small layers leave free (VGG11's
    25088 x 4096 classifier: 5.7 s on one core, 3.0 s on two).
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..core.spectrum import one_blas_thread, gram_threads, set_gram_threads

    saved = gram_threads()
    flops = [_flops(g) for _, g in tasks]
    order = sorted(range(len(tasks)), key=lambda i: (-flops[i], i))
    futures = [None] * len(tasks)
    with one_blas_thread(), ThreadPoolExecutor(max_workers=n, thread_name_prefix="spectralwatch") as pool:
        set_gram_threads(_cpu_count())
        try:
            first = order[0]
            if flops[first] * n > sum(flops):  # one layer is the critical path: its Gram gets every core
                gram_ready = threading.Event()
                futures[first] = pool.submit(_layer_then_signal, tasks[first], options, gram_ready)
                while not gram_ready.wait(0.05) and not futures[first].done():
                    pass
                order = order[1:]
            for i in order:
                futures[i] = pool.submit(analyze_layer, tasks[i][0], options, tasks[i][1])
            for (ref, _), future in zip(tasks, futures):
                yield ref, future.result()
        finally:
            for future in futures:
                if future is not None:
                    future.cancel()
            set_gram_threads(saved)


def _layer_then_signal(task, options, event) -> list[LayerResult]:
    """Analyse one layer, setting ``event`` as soon as its Gram matrices exist (or it ends)."""
    from ..core.spectrum import on_gram_done

    try:
        with on_gram_done(event.set):
            return analyze_layer(task[0], options, task[1])
    finally:
        event.set()


def _new_pool(n: int):
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    threads = max(1, _cpu_count() // n)
    # fork where the platform has it: 'spawn'/'forkserver' re-run the user's main script in every
    # worker, which turns a script without an `if __name__ == "__main__":` guard into a fork bomb.
    # The workers only run numpy/LAPACK code on the tensors they are sent.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    return ProcessPoolExecutor(max_workers=n, mp_context=ctx, initializer=_blas_limit, initargs=(threads,))


def _run_processes(tasks: list, options, n: int) -> Iterator[tuple]:
    """Process pool with bounded in-flight tasks and recovery from dead workers.

    After a worker dies, every unfinished task is resubmitted to a fresh pool. If a worker dies
    again, the pool switches to one task at a time, so the layer that kills a worker is known
    exactly: that layer alone gets a ``failed`` row, every other layer is still analysed.
    """
    from concurrent.futures.process import BrokenProcessPool

    pool, breaks = _new_pool(n), 0
    queue = deque(range(len(tasks)))  # task indices not yet submitted, in order
    pending: deque = deque()  # (index, future), in order
    try:
        while queue or pending:
            limit = 2 * n if breaks < 2 else 1
            while queue and len(pending) < limit:
                i = queue.popleft()
                try:
                    pending.append((i, pool.submit(_task, _payload(tasks[i][0]), options, tasks[i][1])))
                except BrokenProcessPool:  # a pending task broke the pool since: its result says so below
                    queue.appendleft(i)
                    if not pending:
                        raise
                    break
            index, future = pending.popleft()
            ref, geometry = tasks[index]
            try:
                results = future.result()
            except BrokenProcessPool:
                breaks += 1
                pool.shutdown(wait=False, cancel_futures=True)
                pool = _new_pool(n)
                if breaks >= 3 and not pending:  # alone in the pool: this layer killed the worker
                    yield ref, [failed_result(geometry, "the worker process died while analysing this layer "
                                                        "(killed, or out of memory)")]
                    breaks = 2
                else:
                    queue.extendleft(reversed([index] + [i for i, _ in pending]))
                pending.clear()
                continue
            yield ref, results
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _run_executor(tasks: list, options, pool) -> Iterator[tuple]:
    """Layers on a caller's executor, at most ``2 x`` its workers in flight, results in task order.

    A :class:`~concurrent.futures.ThreadPoolExecutor` runs in this process: its threads are given
    the references themselves (they read their tensors when they start) and BLAS is held to one
    thread for the whole run here, as :func:`_run_threads` does. Any other executor is taken to
    run elsewhere: it gets what :func:`_payload` ships, and each task holds BLAS to one thread in
    its worker. Either way every layer is computed as in the serial run, bit for bit.
    """
    from concurrent.futures import ThreadPoolExecutor

    from ..core.spectrum import one_blas_thread

    in_process = isinstance(pool, ThreadPoolExecutor)
    size = getattr(pool, "_max_workers", None)  # the standard executors and loky keep their size there
    window = 2 * (size if isinstance(size, int) and size > 0 else _cpu_count())
    where = type(pool).__name__
    pending: deque = deque()  # (index, future or the exception submit raised), in order
    nxt = 0
    with one_blas_thread():
        try:
            while nxt < len(tasks) or pending:
                while nxt < len(tasks) and len(pending) < window:
                    ref, geometry = tasks[nxt]
                    try:
                        future = (pool.submit(analyze_layer, ref, options, geometry) if in_process
                                  else pool.submit(_task, _payload(ref), options, geometry))
                    except RuntimeError as exc:  # shut down, or broken by an earlier task
                        if nxt == 0:
                            raise InvalidParameterError(f"The executor {where} given to analyze does not accept "
                                                        f"tasks ({exc}): pass one that is running.") from exc
                        future = exc
                    pending.append((nxt, future))
                    nxt += 1
                index, future = pending.popleft()
                ref, geometry = tasks[index]
                try:
                    if isinstance(future, BaseException):
                        raise future
                    results = future.result()
                except SpectralWatchError:
                    raise
                except Exception as exc:  # a dead worker, a lost node, an unpicklable task...
                    results = [failed_result(geometry, f"lost in the executor {where}: "
                                                       f"{type(exc).__name__}: {exc}")]
                yield ref, results
        finally:
            for _, future in pending:
                if not isinstance(future, BaseException):
                    future.cancel()


def _run_dask(tasks: list, options, client_or_address) -> Iterator[tuple]:
    from ..deps import require

    distributed = require("distributed", purpose="run on a Dask cluster")
    own = isinstance(client_or_address, str)
    client = distributed.Client(client_or_address) if own else client_or_address
    try:
        window = max(2, 2 * len(client.scheduler_info().get("workers", {})) or 2)
        pending: deque = deque()
        nxt = 0
        while nxt < len(tasks) or pending:
            while nxt < len(tasks) and len(pending) < window:
                ref, geometry = tasks[nxt]
                future = client.submit(_task, _payload(ref), options, geometry, pure=False, retries=2)
                pending.append((nxt, future))
                nxt += 1
            index, future = pending.popleft()
            ref, geometry = tasks[index]
            try:
                yield ref, future.result()
            except Exception as exc:  # the task failed on every retry (e.g. workers kept dying)
                if isinstance(exc, SpectralWatchError):
                    raise
                yield ref, [failed_result(geometry, f"lost on the Dask cluster: {type(exc).__name__}: {exc}")]
    finally:
        if own:
            client.close()

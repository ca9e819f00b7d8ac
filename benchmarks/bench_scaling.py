"""Speed and memory at scale: the LAPACK floor, model size, workers, Dask (issue: fast at every scale).

    python benchmarks/bench_scaling.py                    # everything below, default sizes
    python benchmarks/bench_scaling.py --parts floor workers --repeat 3
    python benchmarks/bench_scaling.py --parts size --sizes gpt2-small llama-1b

Parts (each prints a table; ratios are measured in the same run, on the same machine):

* ``floor``  spectralwatch end to end (``workers=1``, and default settings: threads in one process)
  vs the *floor*: the sum over the analysed layers of the fastest single float64 eigenvalue call for
  that layer's matrices (Gram product + ``eigvalsh``, Gram product + the two-stage
  ``dsyevd_2stage``, or ``gesdd``, on the machine's default BLAS threads, whichever is fastest), on
  GPT-2-small-shaped and VGG11-shaped checkpoints generated on disk; with ``--reference`` also
  WeightWatcher 0.7.7 on the same weights.
* ``size``   time and peak RSS of ``analyze(path)`` in a fresh subprocess for generated safetensors
  checkpoints from GPT-2-small (its 86M block parameters) to TinyLlama-1.1B's blocks (0.97B), with
  the floor of each (so the growth of time can be compared with the growth of the floor).
* ``workers`` 1 vs 2 workers on models of >= 50 layers: threads (the default kind) and processes.
* ``dask``   a dask.distributed LocalCluster (2 workers) vs the local process pool.

Generated checkpoints are written to a temporary folder (``--tmp``) and deleted afterwards. The
weights are random Gaussian: the time of the linear algebra does not depend on the values.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

# shapes (name, rows, cols, count) of generated checkpoints
SHAPES = {
    "gpt2-small": [("attn.c_attn", 768, 2304, 12), ("attn.c_proj", 768, 768, 12),
                   ("mlp.c_fc", 768, 3072, 12), ("mlp.c_proj", 3072, 768, 12), ("wpe", 1024, 768, 1)],
    "vgg11": [("features.0", (64, 3, 3, 3), None, 1), ("features.3", (128, 64, 3, 3), None, 1),
              ("features.6", (256, 128, 3, 3), None, 1), ("features.8", (256, 256, 3, 3), None, 1),
              ("features.11", (512, 256, 3, 3), None, 1), ("features.13", (512, 512, 3, 3), None, 1),
              ("features.16", (512, 512, 3, 3), None, 1), ("features.18", (512, 512, 3, 3), None, 1),
              ("classifier.0", 4096, 25088, 1), ("classifier.3", 4096, 4096, 1), ("classifier.6", 1000, 4096, 1)],
    "many-small": [("fc", 64, 64, 60)],
    "llama-250m": [("q", 1024, 1024, 16), ("k", 1024, 1024, 16), ("v", 1024, 1024, 16), ("o", 1024, 1024, 16),
                   ("gate", 2816, 1024, 16), ("up", 2816, 1024, 16), ("down", 1024, 2816, 16)],
    # TinyLlama-1.1B's blocks: 22 x 7 matrices, 0.97B parameters (without the embeddings)
    "llama-1b": [("q", 2048, 2048, 22), ("k", 256, 2048, 22), ("v", 256, 2048, 22), ("o", 2048, 2048, 22),
                 ("gate", 5632, 2048, 22), ("up", 5632, 2048, 22), ("down", 2048, 5632, 22)],
}


def tensors(model: str):
    """Yield (key, shape) of a generated checkpoint."""
    for name, a, b, count in SHAPES[model]:
        shape = a if isinstance(a, tuple) else (a, b)
        for i in range(count):
            key = f"blocks.{i}.{name}.weight" if count > 1 else f"{name}.weight"
            yield key, shape


def write_checkpoint(model: str, folder: Path) -> tuple[Path, int]:
    """A safetensors file of random float32 weights, written tensor by tensor (bounded memory)."""
    import struct

    rng = np.random.default_rng(0)
    entries, offset = {}, 0
    for key, shape in tensors(model):
        n = int(np.prod(shape)) * 4
        entries[key] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    header = json.dumps(entries, separators=(",", ":")).encode()
    header += b" " * (-len(header) % 8)
    path = folder / f"{model}.safetensors"
    params = 0
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)))
        f.write(header)
        for key, shape in tensors(model):
            w = (rng.standard_normal(shape, dtype=np.float32) * 0.02).astype("<f4")
            params += w.size
            f.write(w.tobytes())
    return path, params


def floor_seconds(path: Path) -> float:
    """Sum over analysed layers of the fastest float64 eigenvalue route (default BLAS threads)."""
    import scipy.linalg

    import spectralwatch
    from spectralwatch.core.matrices import layer_matrices
    from spectralwatch.io.sources import open_source

    from spectralwatch.core.eigensolver import _call_dsyevd, _solver

    _solver()
    two_stage = _solver(two_stage=True) if _solver(two_stage=True) is not _solver() else None
    analysed = set(spectralwatch.describe(path)["layer_id"])
    total = 0.0
    for ref in open_source(path).layers():
        if ref.layer_id not in analysed:
            continue
        mats = layer_matrices(ref.load(), ref.layer_type)
        best = float("inf")
        for route in ("gram", "gram-2stage", "svd"):
            if route == "gram-2stage" and two_stage is None:
                continue
            t = time.perf_counter()
            for W in mats.stack:
                if route == "gram":
                    np.linalg.eigvalsh(W.T @ W)
                elif route == "gram-2stage":
                    _call_dsyevd(two_stage, W.T @ W, np.empty(W.shape[1]))
                else:
                    scipy.linalg.svd(W, compute_uv=False)
            best = min(best, time.perf_counter() - t)
        total += best
    return total


def timed_subprocess(code: str) -> tuple[float, float]:
    """Run ``code`` in a fresh interpreter; return (its own measured seconds, peak RSS in MiB)."""
    wrapper = ("import resource, time, sys\n" + code +
               "\nprint('RESULT', T, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", wrapper], capture_output=True, text=True, check=True).stdout
    line = [ln for ln in out.splitlines() if ln.startswith("RESULT")][-1].split()
    return float(line[1]), float(line[2])


def analyze_code(path: Path, **kw) -> str:
    args = ", ".join(f"{k}={v!r}" for k, v in kw.items())
    return ("import spectralwatch\nt = time.perf_counter()\n"
            f"spectralwatch.analyze({str(path)!r}{', ' if args else ''}{args})\nT = time.perf_counter() - t")


def median(fn, repeat):
    return statistics.median(fn() for _ in range(repeat))


def part_floor(tmp: Path, repeat: int, reference: bool) -> None:
    print("\n== floor: end to end vs the float64 LAPACK floor ==")
    print(f"{'model':<12}{'floor s':>9}{'sw 1 worker':>12}{'ratio':>7}{'sw default':>12}{'ratio':>7}"
          + (f"{'reference':>11}{'ref/sw':>8}" if reference else ""))
    for model in ("gpt2-small", "vgg11"):
        path, _ = write_checkpoint(model, tmp)
        floor = median(lambda: floor_seconds(path), 1)
        one = median(lambda: timed_subprocess(analyze_code(path, workers=1))[0], repeat)
        auto = median(lambda: timed_subprocess(analyze_code(path))[0], repeat)
        line = f"{model:<12}{floor:9.2f}{one:12.2f}{one / floor:7.2f}{auto:12.2f}{auto / floor:7.2f}"
        if reference:
            code = ("import weightwatcher as ww, safetensors.torch, logging\nlogging.disable(50)\n"
                    f"sd = safetensors.torch.load_file({str(path)!r})\nt = time.perf_counter()\n"
                    "ww.WeightWatcher().analyze(model=sd)\nT = time.perf_counter() - t")
            ref = median(lambda: timed_subprocess(code)[0], 1)
            line += f"{ref:11.2f}{ref / auto:8.2f}"
        print(line, flush=True)
        path.unlink()


def part_size(tmp: Path, sizes: list) -> None:
    print("\n== size: time and peak RSS vs model size (fresh subprocess, default settings) ==")
    print(f"{'model':<12}{'params':>8}{'file GB':>9}{'floor s':>9}{'sw s':>8}{'sw/floor':>9}{'peak RSS MB':>13}")
    base = timed_subprocess("import spectralwatch\nT = 0.0")[1]
    for model in sizes:
        path, params = write_checkpoint(model, tmp)
        floor = floor_seconds(path)
        secs, rss = timed_subprocess(analyze_code(path))
        print(f"{model:<12}{params / 1e6:7.0f}M{path.stat().st_size / 1e9:9.2f}{floor:9.2f}{secs:8.2f}"
              f"{secs / floor:9.2f}{rss:13.0f}", flush=True)
        path.unlink()
    print(f"(interpreter + spectralwatch baseline RSS: {base:.0f} MB)")


def part_workers(tmp: Path, repeat: int) -> None:
    print("\n== workers: 1 vs 2 (>= 50 layers; threads = the default kind, and processes) ==")
    print(f"{'model':<12}{'layers':>7}{'1 worker':>10}{'2 threads':>11}{'speed-up':>9}{'2 procs':>9}{'speed-up':>9}")
    for model in ("gpt2-small", "llama-250m", "many-small"):
        path, _ = write_checkpoint(model, tmp)
        one = median(lambda: timed_subprocess(analyze_code(path, workers=1))[0], repeat)
        two = median(lambda: timed_subprocess(analyze_code(path, executor="threads", workers=2))[0], repeat)
        procs = median(lambda: timed_subprocess(analyze_code(path, executor="processes", workers=2))[0], repeat)
        print(f"{model:<12}{sum(1 for _ in tensors(model)):>7}{one:9.2f}s{two:10.2f}s{one / two:8.2f}x"
              f"{procs:8.2f}s{one / procs:8.2f}x", flush=True)
        path.unlink()


def part_dask(tmp: Path, repeat: int) -> None:
    print("\n== dask: LocalCluster (2 workers x 1 thread) vs local processes ==")
    path, _ = write_checkpoint("gpt2-small", tmp)
    code = ("import spectralwatch, distributed\n"
            "c = distributed.Client(distributed.LocalCluster(n_workers=2, threads_per_worker=1, "
            "dashboard_address=None, silence_logs=50))\nt = time.perf_counter()\n"
            f"spectralwatch.analyze({str(path)!r}, executor=c)\nT = time.perf_counter() - t\nc.close()")
    procs = median(lambda: timed_subprocess(analyze_code(path, executor="processes", workers=2))[0], repeat)
    dask = median(lambda: timed_subprocess(code)[0], repeat)
    print(f"gpt2-small  processes {procs:6.2f}s  dask {dask:6.2f}s  dask/processes {dask / procs:5.2f}x")
    path.unlink()


def part_gil(repeat: int) -> None:
    """Does the eigensolver release the GIL? A Python loop in the main thread is timed alone, beside a
    thread that calls numpy.linalg.eigvalsh (and, for comparison, beside one that sorts a Python list,
    which holds the GIL): its speed beside eigvalsh stays near the first, far from the last."""
    import threading

    import numpy as np
    from threadpoolctl import threadpool_limits

    print("\n== GIL: main-thread Python loop speed beside a busy thread (1 BLAS thread) ==")
    threadpool_limits(1)
    x = np.random.default_rng(0).standard_normal((800, 800))
    gram, values = x.T @ x, list(np.random.default_rng(1).standard_normal(2_000_000))

    def busy(kind, stop):
        while not stop.is_set():
            if kind == "eigvalsh":
                np.linalg.eigvalsh(gram)
            elif kind == "sorted(list)":
                sorted(values)
            else:
                time.sleep(0.01)

    def loops(seconds=1.0):
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            n += 1
        return n / seconds

    rates = {}
    for kind in ("idle", "eigvalsh", "sorted(list)"):
        runs = []
        for _ in range(repeat):
            stop = threading.Event()
            thread = threading.Thread(target=busy, args=(kind, stop))
            thread.start()
            time.sleep(0.05)
            runs.append(loops())
            stop.set()
            thread.join()
        rates[kind] = sorted(runs)[len(runs) // 2]
    for kind, rate in rates.items():
        print(f"beside {kind:<14} {rate:12.0f} loops/s  ({rate / rates['idle']:.2f} of idle)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--parts", nargs="+", default=["floor", "size", "workers", "dask"],
                        choices=["floor", "size", "workers", "dask", "gil"])
    parser.add_argument("--sizes", nargs="+", default=["gpt2-small", "llama-250m", "llama-1b"],
                        choices=list(SHAPES))
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--reference", action="store_true", help="also time WeightWatcher 0.7.7 (slow)")
    parser.add_argument("--tmp", default=None, help="folder for the generated checkpoints")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="sw-bench-", dir=args.tmp))
    try:
        print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
        if "floor" in args.parts:
            part_floor(tmp, args.repeat, args.reference)
        if "size" in args.parts:
            part_size(tmp, args.sizes)
        if "workers" in args.parts:
            part_workers(tmp, args.repeat)
        if "dask" in args.parts:
            part_dask(tmp, args.repeat)
        if "gil" in args.parts:
            part_gil(args.repeat)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()

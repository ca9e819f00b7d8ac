"""Peak memory of analysing a multi-GB safetensors checkpoint: one tensor in memory at a time.

    python benchmarks/bench_memory.py                       # ~3 GB: 12 tensors of 16384 x 4096 float32
    python benchmarks/bench_memory.py --tensors 6 --rows 8192 --cols 4096 --json out.json

A safetensors file is written in /tmp (tensor by tensor: the writer never holds the checkpoint) and
deleted afterwards. A fresh interpreter then imports spectralwatch and analyses a small matrix (so
that numpy, scipy and pandas are loaded), then analyses the file
with ``workers=1`` (the in-process pipeline; a process pool multiplies the tensors in flight by
the number of workers) and reports its peak RSS (``VmHWM`` of ``/proc/self/status``; Linux only).
The baseline is the resident memory just before the big analysis. The claim checked is

    peak RSS <= baseline + 3 x (bytes of the largest tensor)

(the tensor as stored, its float64 matrix, and the M x M Gram matrix of the spectrum at most).
Nothing is asserted; the script prints the figures and exits 1 if the bound is exceeded.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

_CHILD = r"""
import json, sys, time
import numpy as np
import spectralwatch

def status(key):  # kB -> KiB; VmHWM is this process image's peak (ru_maxrss would include the parent's)
    with open("/proc/self/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key + ":"))

spectralwatch.analyze(np.random.default_rng(0).standard_normal((300, 200)), workers=1)
base = status("VmRSS")
warm_peak = status("VmHWM")
t = time.perf_counter()
report = spectralwatch.analyze(sys.argv[1], workers=1, max_evals=None, max_N=None)
elapsed = time.perf_counter() - t
print(json.dumps({"baseline_kib": base, "warmup_peak_kib": warm_peak, "peak_kib": status("VmHWM"),
                  "seconds": elapsed, "layers": report.num_layers, "failed": report.num_failed,
                  "alpha": report.summary.get("alpha")}))
"""


def write_checkpoint(path: str, n: int, rows: int, cols: int, seed: int = 0) -> int:
    """Write ``n`` float32 ``rows x cols`` tensors with heavy-tailed-ish spectra; returns the file size."""
    nbytes = rows * cols * 4
    header = {f"layers.{i}.weight": {"dtype": "F32", "shape": [rows, cols],
                                     "data_offsets": [i * nbytes, (i + 1) * nbytes]} for i in range(n)}
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    rng = np.random.default_rng(seed)
    with open(path, "wb") as fh:
        fh.write(len(raw).to_bytes(8, "little"))
        fh.write(raw)
        for _ in range(n):
            W = rng.standard_normal((rows, cols), dtype=np.float32)
            W[:, : cols // 8] *= 3.0  # a few stronger directions: not a pure Marchenko-Pastur bulk
            fh.write(W.tobytes())
            del W
    return os.path.getsize(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tensors", type=int, default=12)
    p.add_argument("--rows", type=int, default=16384)
    p.add_argument("--cols", type=int, default=4096)
    p.add_argument("--dir", default=tempfile.gettempdir(), help="where the checkpoint is written (default /tmp)")
    p.add_argument("--json", help="write the figures to this file")
    args = p.parse_args(argv)

    fd, path = tempfile.mkstemp(suffix=".safetensors", prefix="sw-bench-memory-", dir=args.dir)
    os.close(fd)
    try:
        t = time.perf_counter()
        size = write_checkpoint(path, args.tensors, args.rows, args.cols)
        print(f"wrote {size / 2**30:.2f} GiB ({args.tensors} x {args.rows} x {args.cols} float32) to {path} "
              f"in {time.perf_counter() - t:.0f} s", flush=True)
        out = subprocess.run([sys.executable, "-c", _CHILD, path], capture_output=True, text=True)
        if out.returncode != 0:
            print(out.stderr, file=sys.stderr)
            return 2
        res = json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        os.remove(path)
    largest = args.rows * args.cols * 4
    base_mib, peak_mib, largest_mib = res["baseline_kib"] / 1024, res["peak_kib"] / 1024, largest / 2**20
    bound_mib = base_mib + 3 * largest_mib
    res.update(file_gib=size / 2**30, largest_tensor_mib=largest_mib, baseline_mib=base_mib, peak_mib=peak_mib,
               bound_mib=bound_mib, growth_in_largest_tensors=(peak_mib - base_mib) / largest_mib)
    print(f"checkpoint           {res['file_gib']:.2f} GiB, {res['layers']} layers analysed in {res['seconds']:.0f} s "
          f"({res['failed']} failed)")
    print(f"largest tensor       {largest_mib:.0f} MiB")
    print(f"baseline RSS         {base_mib:.0f} MiB (interpreter + spectralwatch + numpy/scipy/pandas, after a "
          f"small analysis)")
    print(f"analysis peak RSS    {peak_mib:.0f} MiB = baseline + {res['growth_in_largest_tensors']:.2f} x largest tensor")
    print(f"bound                {bound_mib:.0f} MiB (baseline + 3 x largest tensor): "
          f"{'OK' if peak_mib <= bound_mib else 'EXCEEDED'}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(res, fh, indent=2)
    return 0 if peak_mib <= bound_mib else 1


if __name__ == "__main__":
    sys.exit(main())

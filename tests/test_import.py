"""`import spectralwatch` stays light: no framework, no plotting, no pandas, and quick."""

import subprocess
import sys

HEAVY = ["torch", "tensorflow", "matplotlib", "dask", "pandas", "jax", "keras", "onnx", "scipy"]


def test_import_pulls_no_heavy_module():
    code = ("import sys, spectralwatch; heavy = %r; "
            "print(','.join(m for m in heavy if m in sys.modules))" % HEAVY)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "", f"import spectralwatch imported: {out}"


def test_import_is_fast():
    code = ("import time; t = time.perf_counter(); import spectralwatch; "
            "print(time.perf_counter() - t)")
    # generous bound for a loaded CI machine; benchmarks/ measures the real figure (~0.1 s)
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                  check=True).stdout) for _ in range(3)]
    assert min(times) < 1.0, times

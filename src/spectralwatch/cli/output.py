"""What the command line prints and writes: tables, CSV, JSON, parquet, markdown (see docs/cli.md).

One report gives the details table as it is; several reports (``analyze A B``) give one table
with a leading ``model`` column, and a JSON array of report documents. The JSON document of a
report is :meth:`Report.to_json`, whose schema is in docs/report.md.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..deps import is_available
from ..render.safe_text import csv_frame, term_text
from ..render.text import render_markdown, render_table, summary_panel, terminal_columns
from ..core.columns import TERMINAL_COLUMNS
from ..errors import InvalidParameterError, MissingDependencyError
from ..tools.compare import format_p

__all__ = ["model_names", "emit_reports", "write_reports", "check_format", "emit_frame", "emit_comparison",
           "write_comparison", "comparison_verdict"]


def _table_columns():
    return TERMINAL_COLUMNS


def model_names(paths) -> list:
    """Short distinct names for model paths: the file name, with its folder when names collide."""
    parts = [Path(str(p)).resolve().parts for p in paths]
    for depth in range(1, max(len(x) for x in parts) + 1):
        names = ["/".join(x[-depth:]) for x in parts]
        if len(set(names)) == len(names):
            return names
    return [str(p) for p in paths]


def _combined(reports, names):
    import pandas as pd

    if len(reports) == 1:
        return reports[0].details
    frames = [r.details.assign(model=n) for r, n in zip(reports, names)]
    frame = pd.concat(frames, ignore_index=True)
    return frame[["model"] + [c for c in frame.columns if c != "model"]]


def _json_text(reports) -> str:
    if len(reports) == 1:
        return reports[0].to_json()
    return json.dumps([json.loads(r.to_json()) for r in reports], indent=2)


def _need_parquet() -> None:
    if not (is_available("pyarrow") or is_available("fastparquet")):
        raise MissingDependencyError("Writing parquet needs 'pyarrow' (or 'fastparquet'), which is not installed. "
                                     "Install it with: pip install 'spectralwatch[parquet]'")


def _parquet_bytes(frame) -> bytes:
    _need_parquet()
    import io

    buf = io.BytesIO()
    frame.to_parquet(buf, index=False)
    return buf.getvalue()


def emit_reports(reports, names, fmt: str, out, *, color=False, wide=False) -> None:
    """Print the reports on ``out`` in format ``fmt`` (parquet: binary, never to a terminal).

    On a terminal the table and the summary fit its width (low-priority columns left out, named
    under the table) unless ``wide``; to a pipe or a file they do not depend on any terminal.
    """
    if fmt == "table":
        unicode = (getattr(out, "encoding", "") or "").lower().replace("-", "") in ("utf8", "utf_8")
        width = terminal_columns(out)
        for i, (report, name) in enumerate(zip(reports, names)):
            if len(reports) > 1:
                print(("\n" if i else "") + f"== {term_text(name)} ==", file=out)
            print(render_table(report.details, _table_columns(), color=color, width=width, wide=wide), file=out)
            print("", file=out)
            print(summary_panel(report, title=f"Summary of {name}", color=color, unicode=unicode, width=width),
                  file=out)
        return
    frame = _combined(reports, names)
    if fmt == "csv":  # text cells made harmless for spreadsheets (docs/report.md)
        out.write(csv_frame(frame).to_csv(index=False))
    elif fmt == "json":
        out.write(_json_text(reports) + "\n")
    elif fmt == "markdown":
        out.write(render_markdown(frame) + "\n")
    elif fmt == "parquet":
        _write_binary(out, _parquet_bytes(frame))
    else:  # pragma: no cover - argparse restricts the choices
        raise InvalidParameterError(f"unknown output format {fmt!r}")


def _write_binary(out, data: bytes) -> None:
    if getattr(out, "isatty", lambda: False)():
        raise InvalidParameterError("Refusing to write binary parquet to a terminal: use --out FILE.parquet or redirect stdout.")
    stream = getattr(out, "buffer", None)
    if stream is None:
        raise InvalidParameterError("This output stream cannot take binary data: use --out FILE.parquet.")
    out.flush()
    stream.write(data)
    stream.flush()


def check_format(fmt: str) -> None:
    """Raise now, before any layer is analysed, if format ``fmt`` cannot be written at the end."""
    if fmt == "parquet":
        _need_parquet()


def write_reports(reports, names, path, fmt: str, *, inputs=()) -> None:
    """Write the reports to ``path`` in format ``fmt`` ('table' writes the plain-text table).

    The file appears whole or not at all, and never over an input (``inputs``) or anything but a regular
    file (:func:`spectralwatch.io.outputs.write_atomic`).
    """
    from ..io.outputs import check_output, write_atomic

    check_output(path, inputs, what="--out file")
    if fmt == "parquet":
        write_atomic(path, _parquet_bytes(_combined(reports, names)), inputs, what="--out file")
        return
    import io

    buf = io.StringIO()
    emit_reports(reports, names, fmt, buf, color=False)
    write_atomic(path, buf.getvalue(), inputs, what="--out file")


def emit_frame(frame, fmt: str, out) -> None:
    """A plain DataFrame (``describe``) in one of table, csv, json, markdown."""
    if fmt == "csv":
        out.write(csv_frame(frame).to_csv(index=False))
    elif fmt == "json":
        out.write(frame.to_json(orient="records", indent=2) + "\n")
    elif fmt == "markdown":
        out.write(render_markdown(frame) + "\n")
    else:
        print(render_table(frame, list(frame.columns)), file=out)


def _comparison_frames(comparison):
    summary = comparison.summary.reset_index()
    for metric in ("alpha_weighted", "alpha"):
        if metric in summary:
            summary[f"rank_{metric}"] = summary[metric].rank(method="min").astype("Int64")
    fits = comparison.fit_table().reset_index() if comparison.fits else None
    return summary, fits


def emit_comparison(comparison, fmt: str, out, *, color=False) -> None:
    """Print a comparison: the models side by side, then (with accuracies) the metric fits."""
    summary, fits = _comparison_frames(comparison)
    if fmt == "json":
        out.write(json.dumps(comparison.to_dict(), indent=2) + "\n")
        return
    if fmt == "csv":
        out.write(csv_frame(summary).to_csv(index=False))
        if fits is not None:
            out.write("\n" + csv_frame(fits).to_csv(index=False))
        return
    render = render_markdown if fmt == "markdown" else (lambda f: render_table(f, list(f.columns), color=color))
    print(render(summary), file=out)
    lines = [f"  by {m:<15} {' > '.join(term_text(n) for n in comparison.ranking(m))}"
             for m in ("alpha", "alpha_weighted")
             if m in comparison.summary]
    if lines:
        print("\nPredicted from the weights alone, best first (smaller is better):", *lines, sep="\n", file=out)
        print("  (one architecture trained differently: read alpha; different depths or architectures: "
              "alpha_weighted)", file=out)
    if fits is not None:
        print("\nHow well each metric predicts the accuracy (least-squares line; Martin, Peng & Mahoney 2021, "
              "Table 1; Kendall tau with its two-sided p-value; htsr: the sign the theory predicts):", file=out)
        print(render(fits), file=out)
        for line in comparison_verdict(comparison):
            print(line, file=out)


def comparison_verdict(comparison) -> list:
    """The closing lines of a comparison with accuracies: each metric against HTSR's prediction, the
    best metric that has the predicted sign (if any), and the warnings (fewer than 5 models, wrong signs)."""
    lines = ["", "Against the theory:"]
    agree = [f for f in comparison.fits if f.agrees]
    for f in comparison.fits:
        lines.append(f"  {f.metric:<18} tau {f.kendall_tau:+.3f} (p {format_p(f.kendall_p)}): {f.reading}")
    if agree:
        best = max(agree, key=lambda f: abs(f.kendall_tau))
        lines.append(f"Strongest rank correlation with the sign HTSR predicts: {best.metric} (Kendall tau "
                     f"{best.kendall_tau:+.3f}, p {format_p(best.kendall_p)}; R^2 {best.r2:.3f})")
    elif comparison.fits:
        lines.append("No metric's rank correlation with the accuracy has the sign HTSR predicts.")
    for w in comparison.warnings:
        lines.append(f"Warning: {w}.")
    return lines


def write_comparison(comparison, path, fmt: str, *, inputs=()) -> None:
    """Write a comparison to ``path``: parquet holds the models' summary table (checked and written like
    :func:`write_reports`)."""
    import io

    from ..io.outputs import check_output, write_atomic

    check_output(path, inputs, what="--out file")
    if fmt == "parquet":
        write_atomic(path, _parquet_bytes(_comparison_frames(comparison)[0]), inputs, what="--out file")
        return
    buf = io.StringIO()
    emit_comparison(comparison, fmt, buf, color=False)
    write_atomic(path, buf.getvalue(), inputs, what="--out file")

"""One self-contained HTML file that shows a sweep: ``runmanager report LOG_DIR``.

The file holds everything it shows (styles inline, figures as inline SVG, no
script, style or font from elsewhere), so it opens offline, can be mailed, and
stays readable after the log_dir is gone. Sections: the best runs, the summary
(aggregated over repeats when the sweep has them, the configurations tied with the best
in bold: Welch's t-test when scipy is installed), the Pareto front of a sweep of several
objectives, learning curves of each metric, the params against the metric (parallel
coordinates), each param's effect, and the runs that did not complete with their errors.
"""

from __future__ import annotations

import html
import io
import math
import os
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, LogDirError
from runmanager.events import Status, resolve_mode
from runmanager.storage import REPORT_NAME

__all__ = ["REPORT_NAME", "build_report", "default_metric", "report", "why_diverged"]

#: How many best runs (or configurations) the report lists first.
BEST_ROWS = 5
#: The metric a report is about when none is given: the first of these the runs logged.
PREFERRED_METRICS = ("val_accuracy", "val_loss", "accuracy", "loss")

_STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 2rem auto;
       max-width: 1200px; padding: 0 1rem; color: #1f2328; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2.2rem;
       border-bottom: 1px solid #d0d7de; padding-bottom: .3rem; }
.meta { color: #57606a; margin-top: 0; }
table { border-collapse: collapse; font-size: .85rem; font-variant-numeric: tabular-nums; }
th, td { padding: .25rem .6rem; border-bottom: 1px solid #eaeef2; text-align: left; white-space: nowrap; }
th { background: #f6f8fa; position: sticky; top: 0; }
td.num { text-align: right; }
.wide { overflow-x: auto; max-width: 100%; }
.scroll { max-height: 32rem; overflow: auto; border: 1px solid #d0d7de; display: inline-block; max-width: 100%; }
.figure svg { max-width: 100%; height: auto; }
.status-failed, .status-diverged { color: #cf222e; } .status-pruned, .status-interrupted { color: #9a6700; }
td.error { white-space: pre-wrap; font-family: ui-monospace, monospace; font-size: .8rem; max-width: 50rem; }
details pre { font-size: .75rem; white-space: pre-wrap; }
.note { color: #57606a; font-style: italic; }
"""


def default_metric(metrics: Sequence[str]) -> str | None:
    """The metric a report ranks by when none is given.

    Examples:
        >>> default_metric(["loss", "accuracy", "val_loss", "val_accuracy"])
        'val_accuracy'
    """
    for name in PREFERRED_METRICS:
        if name in metrics:
            return name
    return metrics[0] if metrics else None


def _svg(fig: Any) -> str:
    """A figure as inline SVG markup, text kept as text (no embedded font outlines); a text
    drawn shorter than it is gets its whole text as a tooltip (an SVG ``<title>``)."""
    import matplotlib

    from runmanager.plotting import TITLED

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none"}):
        fig.savefig(buffer, format="svg")
    text = buffer.getvalue()
    text = text[text.index("<svg"):]
    for artist in fig.findobj(lambda a: str(a.get_gid() or "").startswith(TITLED)):
        opening = f'<g id="{artist.get_gid()}">'
        text = text.replace(opening, f"{opening}<title>{html.escape(artist.get_label())}</title>", 1)
    return text


def _cell(column: str, value: Any, params: Sequence[str]) -> str:
    from runmanager.display import format_value

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<td></td>"
    if column == "error":  # the whole message: the page has room, a terminal table has not
        return f'<td class="error">{html.escape(str(value))}</td>'
    text = html.escape(format_value(column, value, param=column in params))
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if column == "status":
        return f'<td class="status-{html.escape(str(value))}">{text}</td>'
    return f'<td class="num">{text}</td>' if numeric else f"<td>{text}</td>"


def _wide(table: str, *, scroll: bool = False) -> str:
    """A table in a box that scrolls sideways (and, with ``scroll``, down) when the table is
    wider than the page, so nothing runs off it."""
    return f'<div class="{"scroll" if scroll else "wide"}">{table}</div>'


def _table(frame: Any, params: Sequence[str] = (), *, scroll: bool = False, most_completed: int | None = None) -> str:
    """An HTML table of ``frame``; an aggregated frame shows ``mean ± std`` cells, marks a
    configuration with fewer completed runs than ``most_completed`` (default: the most of any row),
    and, tested (``aggregate(test=...)``), has its tied-best cells bold."""
    from runmanager.tables import (
        FEWER_MARK,
        fewer_completed,
        fewer_completed_note,
        mean_std_text,
        shown_columns,
        tied_best_note,
    )

    columns, combined = shown_columns(frame)
    fewer = fewer_completed(frame, most_completed)
    tested = frame.attrs.get("significance") if "tied_best" in frame.columns else None
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = []

    def mean_cell(column: str, row: dict[str, Any]) -> str:
        text = html.escape(mean_std_text(column, row[f"{column}_mean"], row[f"{column}_std"]))
        if tested and column == tested["metric"] and text and row["tied_best"] is True:
            text = f"<strong>{text}</strong>"
        return f'<td class="num">{text}</td>'

    for row, marked in zip(frame.to_dict("records"), fewer):  # ints stay ints
        cells = [mean_cell(c, row) if c in combined else _cell(c, row[c], params) for c in columns]
        if marked:
            at = columns.index("completed")
            cells[at] = cells[at].replace("</td>", f'<span class="mark">{FEWER_MARK}</span></td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    table = _wide(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>", scroll=scroll)
    if any(fewer):
        most = most_completed if most_completed is not None else int(frame["completed"].max())
        table += f'<p class="note">{html.escape(fewer_completed_note(most))}</p>'
    if tested and tested["metric"] in combined:
        table += f'<p class="note">{html.escape(tied_best_note(tested))}</p>'
    return table


def _tested(summary: Any, metric: str, mode: str) -> tuple[Any, str]:
    """The aggregated table, each configuration tested against the best with Welch's t-test when
    scipy is installed; and, when it is not, a sentence that says how to add the test."""
    from runmanager.analysis import aggregate
    from runmanager.errors import MissingExtraError

    try:
        return aggregate(summary, metric, mode, test="welch"), ""
    except MissingExtraError:
        sentence = ('Which configurations are tied with the best is not tested: pip install "runmanager[stats]" '
                    "(scipy) adds Welch's t-test against the best.")
        return aggregate(summary, metric, mode), f'<p class="note">{html.escape(sentence)}</p>'


def _figure(fig: Any, title: str = "") -> str:
    caption = f"<h3>{html.escape(title)}</h3>" if title else ""
    return f'<div class="figure">{caption}{_svg(fig)}</div>'


def why_diverged(epochs: Iterable[tuple[int, Mapping[str, Any]]]) -> str | None:
    """Why a run diverged, from its ``(epoch, metrics)``: which losses became NaN or infinite at
    the first epoch where one did; None when none did.

    Examples:
        >>> why_diverged([(1, {"loss": 0.5, "accuracy": 0.7}), (2, {"loss": float("nan"), "val_loss": float("inf")})])
        'loss became nan, val_loss became inf at epoch 2'
    """
    from runmanager.display import format_value
    from runmanager.events import is_lower_better

    for epoch, metrics in epochs:
        bad = [f"{name} became {format_value(name, float(value))}" for name, value in metrics.items()
               if is_lower_better(name) and isinstance(value, (int, float)) and not math.isfinite(value)]
        if bad:
            return f"{', '.join(bad)} at epoch {epoch}"
    return None


def _diverged_from_rows(frame: Any, run: int) -> str | None:
    """Why a run diverged, from its epoch rows (a log_dir without its journal): its last epoch,
    where training stopped. A NaN there may also be an inf that a JSON export wrote as null."""
    from runmanager.analysis import metric_columns

    rows = frame[frame["run"] == run]
    if rows.empty:
        return None
    last = rows.iloc[-1]
    metrics = {name: last[name] for name in metric_columns(frame) if not isinstance(last[name], str)}
    return why_diverged([(int(last["epoch"]), metrics)])


def build_report(summary: Any, frame: Any, *, title: str, metric: str | Sequence[str] | None = None,
                 mode: str | Sequence[str | None] | None = None, by: str | None = None,
                 tracebacks: dict[int, str] | None = None, reasons: dict[int, str] | None = None) -> str:
    """The report's HTML for a summary and its epoch rows (see :func:`report`); ``reasons``
    says why a run diverged (default: read from its last epoch row)."""
    from runmanager.analysis import aggregate, metric_columns, param_columns
    from runmanager.objectives import recorded_objectives, resolve_objectives
    from runmanager.plotting import (
        curves_figure,
        effects_figure,
        epoch_metrics,
        influence,
        parallel_figure,
        require_matplotlib,
    )
    from runmanager.repeats import REPEAT

    require_matplotlib()
    counts = summary["status"].value_counts().to_dict() if len(summary) else {}
    stamp = time.strftime("%Y-%m-%d %H:%M")
    parts = [f"<h1>{html.escape(title)}</h1>"]
    if summary.empty:
        parts.append(f'<p class="meta">Written {stamp}.</p><p class="note">This sweep is empty: it has no runs '
                     "yet. Run a sweep into this log_dir, then write the report again.</p>")
        return _page(title, parts)
    params = param_columns(summary)
    configuration = [name for name in params if name != REPEAT]
    diverged = (summary["status"] == Status.DIVERGED) & summary["error"].isna()
    if diverged.any():  # a diverged run has no error of its own: say which loss became NaN/inf, when
        reasons = reasons or {}
        summary = summary.copy()
        summary["error"] = summary["error"].astype(object)
        for position in summary.index[diverged]:
            run = int(summary.at[position, "run"])
            summary.at[position, "error"] = reasons.get(run) or _diverged_from_rows(frame, run)
    repeats = REPEAT in params
    logged = set(epoch_metrics(frame))
    metrics = [name for name in metric_columns(summary) if name in logged]
    # Several objectives (given, or recorded by the sweep): ranked by the first, the front drawn.
    objectives = resolve_objectives(metric, mode, who="report") if metric is not None \
        else recorded_objectives(summary)
    if objectives:
        metric, mode = objectives[0]
    for name, _ in objectives:
        if name not in metrics:
            raise InvalidArgumentError(
                f"Unknown metric {name!r}; the runs logged {', '.join(metrics) or 'no metrics'}."
            )
    if metric is None:
        metric = default_metric(metrics)
    if by is not None and by not in configuration:
        raise InvalidArgumentError(
            f"Unknown param {by!r} to colour by; the sweep's params are {', '.join(configuration) or 'none'}."
        )
    status_text = ", ".join(f"{count} {status}" for status, count in sorted(counts.items()))
    mode = resolve_mode(metric, mode, who="report") if metric is not None else None
    shape = ""
    if repeats:
        configurations = len(aggregate(summary))
        shape = f" ({configurations} configurations × up to {int(summary[REPEAT].max())} repeats)"
    about = f"; ranked by {html.escape(metric)} ({'higher' if mode == 'max' else 'lower'} is better)" if metric else ""
    parts.append(f'<p class="meta">{len(summary)} runs{shape}: {html.escape(status_text)}{about}. '
                 f"Written {stamp}.</p>")
    done = summary[summary["status"] == Status.COMPLETED]
    finite = done[done[metric].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))] if metric else done
    if metric is not None and by is None and configuration and len(finite) > 1:
        shares = influence(finite, configuration, metric)
        by = max(shares, key=lambda name: shares[name])
        parts.append(f'<p class="meta">Colours show {html.escape(by)}, the param that explains most of the '
                     f"spread of {html.escape(metric)} ({shares[by]:.0%} of its variance).</p>")

    # The best runs, and the summary.
    if metric is not None and not finite.empty:
        if repeats:
            table, untested = _tested(summary, metric, mode)
            parts.append(f"<h2>Best configurations by mean {html.escape(metric)}</h2>")
            parts.append(_table(table.head(BEST_ROWS), configuration, most_completed=int(table["completed"].max())))
            parts.append(untested)
            parts.append("<h2>Summary over repeats</h2>")
            parts.append(_table(table, configuration, scroll=True))
        else:
            ranked = finite.sort_values(metric, ascending=mode == "min", kind="stable")
            parts.append(f"<h2>Best runs by {html.escape(metric)}</h2>")
            parts.append(_table(ranked.head(BEST_ROWS).drop(columns=["error"]), params))
    elif metric is not None:
        parts.append(f'<p class="note">No run completed with a finite {html.escape(metric)}, so nothing is '
                     "ranked or plotted.</p>")
    if not repeats:
        parts.append("<h2>Summary</h2>")
        shown = summary.drop(columns=["error"]) if summary["error"].isna().all() else summary
        parts.append(_table(shown, params, scroll=True))
    if len(objectives) > 1 and not finite.empty:
        parts.append(_pareto_section(summary, objectives, params))

    # Figures.
    if metric is not None and not finite.empty:
        parts.append("<h2>Learning curves</h2>")
        if repeats:
            parts.append('<p class="meta">One line per configuration: the mean over its repeats, with a band of '
                         "one standard deviation.</p>")
        for name in [metric, *[m for m in metrics if m != metric]]:
            fig = curves_figure(frame, name, by, bands=repeats, group=configuration)
            parts.append(_figure(fig, name))
        if configuration:
            per_run = aggregate(finite, metric, mode).rename(columns={f"{metric}_mean": metric}) if repeats \
                else finite
            parts.append(f"<h2>Params against {html.escape(metric)}</h2>")
            parts.append('<p class="meta">Parallel coordinates: one line per '
                         f"{'configuration (mean over repeats)' if repeats else 'completed run'}, the best on "
                         "top.</p>")
            parts.append(_figure(parallel_figure(per_run, configuration, metric, mode)))
            parts.append(f"<h2>Effect of each param on {html.escape(metric)}</h2>")
            parts.append('<p class="meta">The mean over the completed runs with each value, ± one standard '
                         "deviation (numeric params with many values in quantile bins).</p>")
            parts.append(_figure(effects_figure(finite, configuration, metric)))

    # Runs that did not complete.
    from runmanager.display import value_text

    bad = summary[summary["status"].isin([Status.FAILED, Status.DIVERGED, Status.PRUNED, Status.INTERRUPTED,
                                          Status.RUNNING])]
    parts.append("<h2>Runs that did not complete</h2>")
    if bad.empty:
        parts.append('<p class="note">Every run completed.</p>')
    else:
        rows = []
        for row in bad.to_dict("records"):
            values = ", ".join(f"{name}={value_text(row[name])}" for name in params)
            error = row["error"] if isinstance(row["error"], str) else ""
            trace = (tracebacks or {}).get(int(row["run"]))
            detail = (f"<details><summary>traceback</summary><pre>{html.escape(trace)}</pre></details>"
                      if trace else "")
            rows.append(f'<tr><td class="num">{int(row["run"])}</td><td>{html.escape(values)}</td>'
                        f'<td class="status-{html.escape(row["status"])}">{html.escape(row["status"])}</td>'
                        f'<td class="num">{int(row["epochs"])}</td>'
                        f'<td class="error">{html.escape(error)}{detail}</td></tr>')
        parts.append(_wide("<table><thead><tr><th>run</th><th>params</th><th>status</th><th>epochs</th>"
                           f"<th>error</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"))
    return _page(title, parts)


def _listed(names: Sequence[str]) -> str:
    """Names as a sentence lists them: ``a and b``, ``a, b and c``.

    Examples:
        >>> _listed(["val_accuracy", "params"]), _listed(["a", "b", "c"])
        ('val_accuracy and params', 'a, b and c')
    """
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"


def _pareto_section(summary: Any, objectives: Sequence[tuple[str, str]], params: Sequence[str]) -> str:
    """The Pareto front of a sweep of several objectives: the runs (configurations, by their means,
    with repeats) in the plane of the first two objectives, the front drawn, and a table of it."""
    from runmanager.analysis import aggregate
    from runmanager.display import value_text
    from runmanager.objectives import pareto_mask
    from runmanager.pareto import pareto
    from runmanager.plotting import pareto_figure, short_labels
    from runmanager.repeats import REPEAT

    names, modes = [name for name, _ in objectives], [how for _, how in objectives]
    configuration = [name for name in params if name != REPEAT]
    repeats = REPEAT in params
    if repeats:
        table = aggregate(summary)
        points = table[table["completed"] > 0].rename(columns={f"{name}_mean": name for name in names})
        texts = [", ".join(value_text(row[name]) for name in configuration) for row in points.to_dict("records")]
        shown = short_labels(texts, width=24)
        labels = [shown[text] for text in texts]
        what, each = "configurations", "configuration (the mean over its completed repeats)"
    else:
        points = summary[summary["status"] == Status.COMPLETED]
        labels = [str(int(run)) for run in points["run"]]
        what, each = "completed runs", "completed run"
    usable = [all(isinstance(v, (int, float)) and math.isfinite(v) for v in values)
              for values in points[names].itertuples(index=False, name=None)]
    points = points[usable]
    labels = [label for label, keep in zip(labels, usable) if keep]
    front = pareto(summary, names, modes)
    mask = pareto_mask(points, names, modes)
    judged = " and ".join(f"{html.escape(name)} ({'higher' if how == 'max' else 'lower'} is better)"
                          for name, how in objectives)
    parts = ['<section id="pareto">', f"<h2>Pareto front of {html.escape(_listed(names))}</h2>"]
    parts.append(f'<p class="meta">{len(front)} of {len(points)} {what} are on the front of {judged}: no other '
                 "one is at least as good on every objective and better on one. One point per "
                 f"{each}; the front is red, labelled with its {'params' if repeats else 'run'}"
                 + (", and the step line is the edge of what it dominates." if len(objectives) == 2 else
                    f". The front is over all {len(objectives)} objectives and the plane shows the first two, so "
                    "no step line is drawn.") + "</p>")
    fig = pareto_figure(points, names[1], names[0], (modes[1], modes[0]), mask, labels, step=len(objectives) == 2)
    parts.append(_figure(fig))
    if repeats:
        columns = [*configuration, "runs", "completed", *(f"{name}_{stat}" for name in names for stat in ("mean", "std"))]
    else:
        columns = ["run", *params, *names]
    parts.append(_table(front[columns], configuration if repeats else params))
    parts.append("</section>")
    return "\n".join(parts)


def _page(title: str, parts: list[str]) -> str:
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n{body}\n</body></html>\n")


def report(log_dir: str | os.PathLike[str], path: str | os.PathLike[str] | None = None,
           metric: str | Sequence[str] | None = None, *, mode: str | Sequence[str | None] | None = None,
           by: str | None = None) -> Path:
    """Write one self-contained HTML report of the sweep in ``log_dir``; return its path.

    The file opens offline (no external scripts, styles or fonts; figures are inline SVG):
    the best runs, the summary (aggregated over repeats when the sweep has them), learning
    curves of each metric, the params against ``metric`` (parallel coordinates), each
    param's effect on it, and the runs that failed, diverged, were pruned or interrupted,
    with their errors. For a sweep of several objectives (or a list of metrics), a section
    ``Pareto front`` shows the runs in the plane of the first two, the front drawn, and lists it. Needs ``runmanager[report]`` (matplotlib). Reading never needs the
    log_dir's lock, so a report can be written while the sweep runs.

    Args:
        log_dir: a log_dir (or a results ``.csv``/``.json`` beside its summary).
        path: the file to write, or an existing folder to write ``report.html`` into;
            default ``LOG_DIR/report.html``.
        metric: the metric to rank and judge by, or a list of them (ranked by the first, the
            Pareto front of all drawn); default the sweep's objectives where it recorded several,
            else the first of ``val_accuracy``, ``val_loss``, ``accuracy``, ``loss`` the runs logged.
        mode: ``"min"`` or ``"max"`` (a list, with a list of metrics); default ``"min"`` for
            losses and errors, else ``"max"``.
        by: the param that colours the learning curves; default the one that explains
            most of the spread of ``metric``.

    Raises:
        LogDirError: ``log_dir`` holds no runmanager results, or ``path``'s folder does not exist.
        InvalidArgumentError: an unknown metric or param.
        MissingExtraError: matplotlib is not installed.

    Examples:
        path = runmanager.report("runs/digits", metric="val_accuracy")
        print(f"open {path}")
    """
    from runmanager.plotting import require_matplotlib
    from runmanager.storage import JOURNAL_NAME, atomic_write, load_results, load_summary, read_log_dir

    require_matplotlib()
    if not isinstance(log_dir, (str, os.PathLike)):
        raise InvalidArgumentTypeError(f"report needs the path of a log_dir, got {log_dir!r}.")
    source = Path(log_dir)
    journal = source / JOURNAL_NAME
    if not (journal.is_file() or source.is_dir() or source.suffix in (".csv", ".json")):
        raise LogDirError(f"{str(source)!r} is not a log_dir; give the folder a sweep wrote.")
    folder = source if source.is_dir() else source.parent
    target = _report_path(path, folder)  # a bad path is said before the sweep is read
    tracebacks: dict[int, str] = {}
    reasons: dict[int, str] = {}
    if journal.is_file():
        results = read_log_dir(source)
        summary, frame = results.summary(), results.frame()
        tracebacks = {n: r.traceback for n, r in results.runs.items() if r.traceback}
        reasons = {n: why for n, r in results.runs.items() if r.status == Status.DIVERGED
                   and (why := why_diverged((e.epoch, e.metrics) for e in r.epochs))}
    else:
        summary, frame = load_summary(folder), load_results(folder)
    title = f"Sweep report: {folder.resolve().name}"
    page = build_report(summary, frame, title=title, metric=metric, mode=mode, by=by, tracebacks=tracebacks,
                        reasons=reasons)
    atomic_write(target, page)
    return target


def _report_path(path: str | os.PathLike[str] | None, log_dir: Path) -> Path:
    """Where the report goes: ``path``, or ``REPORT_NAME`` inside it when it is a folder (as
    ``cp`` does), or in ``log_dir`` when None; checked before the report is built."""
    if path is None:
        return log_dir / REPORT_NAME
    if not isinstance(path, (str, os.PathLike)):
        raise InvalidArgumentTypeError(f"report's path must be a file or folder path, got {path!r}.")
    target = Path(path)
    if target.is_dir():
        return target / REPORT_NAME
    if os.fspath(path).endswith(("/", os.sep)):
        raise LogDirError(f"Cannot write the report into {os.fspath(path)!r}: that folder does not exist; "
                          "create it first, or give a file name.")
    folder = target.parent
    if not folder.exists():
        raise LogDirError(f"Cannot write the report to {str(target)!r}: its folder does not exist; "
                          f"create {str(folder)!r} first, or give another path.")
    if not folder.is_dir():
        raise LogDirError(f"Cannot write the report to {str(target)!r}: {str(folder)!r} is a file, not a folder.")
    return target


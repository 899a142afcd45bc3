"""The ``runmanager`` command: run the demo, and look at finished sweeps.

    runmanager demo [--log-dir DIR] [--epochs N]
    runmanager [--verbose] COMMAND ...
    runmanager show LOG_DIR [--epochs] [--info] [--aggregate] [--metric NAME] [--where EXPR]
                            [--test welch|mannwhitney] [--alpha A] [--format plain|github|latex|csv]
    runmanager compare LOG_DIR [LOG_DIR_B] --metric NAME [--mode min|max] [--test welch|mannwhitney|paired]
                               [--alpha A] [--format plain|github|latex|csv]
    runmanager best LOG_DIR --metric NAME [--mode min|max] [--format plain|github|latex|csv]
    runmanager best LOG_DIR --metric NAME[:min|max] --metric NAME[:min|max] ...   (the Pareto front)
    runmanager best LOG_DIR --model [--metric NAME]
    runmanager report LOG_DIR [-o FILE|DIR] [--metric NAME] [--by PARAM]
    runmanager tensorboard LOG_DIR [--port N]
    runmanager mlflow LOG_DIR [--tracking-uri URI] [--experiment NAME]

``--where`` takes a filter over the table's columns, in the ordinary part of pandas'
``DataFrame.query`` language: comparisons (chained too), ``in [...]``, ``and``/``or``/``not``,
``+ - * /``, e.g. ``"0.001 < lr <= 0.1 and optimizer in ['adam', 'sgd']"``. It is parsed and
walked (runmanager.query), never run as Python: a filter cannot call, import or write anything.

Errors (a bad path, an unknown metric, a filter that is refused) are one line on stderr and exit code 2.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from runmanager.demo import DEMO_EPOCHS
from runmanager.errors import InvalidArgumentError, LogDirError, RunManagerError
from runmanager.tables import FORMATS

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from runmanager.analysis import best_run
    from runmanager.demo import DEMO_PARAMS, load_digits_data, train_digits
    from runmanager.tracking import RunManager

    log_dir = Path(args.log_dir or f"runs/demo-{time.strftime('%Y%m%d-%H%M%S')}")
    load_digits_data()  # fail fast, before Keras is imported, if scikit-learn is missing
    grid_size = 1
    for values in DEMO_PARAMS.values():
        grid_size *= len(values)
    print(f"Sweeping {grid_size} runs of a small MLP on scikit-learn's digits "
          f"({args.epochs} epochs each); results go to {log_dir}/")
    start = time.perf_counter()
    manager = RunManager(log_dir)
    summary = manager.sweep(functools.partial(train_digits, epochs=args.epochs), DEMO_PARAMS, seed=0)
    manager.close()
    best = best_run(summary, "val_accuracy")
    params = ", ".join(f"{name}={best[name]}" for name in DEMO_PARAMS)
    print(f"\nBest run: {int(best['run'])} ({params}) with val_accuracy {best['val_accuracy']:.4f}")
    print(f"Files: {log_dir}/results.csv, results.json, summary.csv, summary.json, journal.jsonl")
    print(f"Took {time.perf_counter() - start:.1f}s. Next: runmanager show {log_dir}")
    return 0


def _positive_int(text: str) -> int:
    """An argparse type: a whole number of at least 1 (argparse prints the error and exits 2)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, got {text!r}")
    return value


def _backends(log_dir: str) -> str:
    """Which Keras backend and versions ran which runs of a log_dir, one line each."""
    from runmanager.storage import JOURNAL_NAME, results_from_journal

    journal = Path(log_dir) / JOURNAL_NAME
    if not journal.is_file():
        raise LogDirError(f"--info needs a log_dir with its {JOURNAL_NAME}, got {log_dir!r}.")
    groups: dict[str, list[int]] = {}
    for number, record in sorted(results_from_journal(journal).runs.items()):
        backend = record.backend or {}
        text = ", ".join(f"{name} {version}" for name, version in backend.items() if name != "backend")
        key = f"backend {backend['backend']} ({text})" if backend else "backend not recorded"
        groups.setdefault(key, []).append(number)
    return "\n".join(f"{key}: runs {', '.join(map(str, numbers))}" for key, numbers in groups.items())


def _where(frame: Any, expression: str, *, also: Callable[[], Any] | None = None) -> Any:
    """The rows of ``frame`` that match; when the expression names columns ``frame`` lacks, the
    rows of ``also()`` (the aggregated table, built only then) that match. The expression is
    parsed and walked by :mod:`runmanager.query`, never run: a results folder may come from anyone."""
    from runmanager.errors import InvalidArgumentError
    from runmanager.query import columns_used, select

    other = None
    try:
        names = columns_used(expression)  # refuses what a filter may not hold before any table is built
        missing = [name for name in names if name not in frame.columns]
        if not missing:
            return select(frame, expression)
        if also is not None:
            other = also()
            if all(name in other.columns for name in names):
                return select(other, expression)
        unknown = [name for name in missing if other is None or name not in other.columns]
        if unknown:
            message = (f"The filter {expression!r} names {unknown[0]!r}, which is not a column; put a name that is "
                       "not a Python name in backticks, such as `val accuracy`.")
        else:
            aggregated = next(name for name in names if name not in frame.columns)
            of_runs = next(name for name in names if name not in other.columns)
            message = (f"The filter {expression!r} names {of_runs!r}, a column of the runs, and {aggregated!r}, "
                       "a column of the aggregated table; a filter selects runs or configurations, so use the "
                       "columns of one table.")
    except InvalidArgumentError as error:
        message = str(error)
    if also is not None and other is None:
        other = also()  # its columns, for the message
    columns = dict.fromkeys([*frame.columns, *([] if other is None else other.columns)])
    raise InvalidArgumentError(f"--where: {message} Columns: {', '.join(map(str, columns))}.") from None


def _show(args: argparse.Namespace) -> int:
    from runmanager.analysis import aggregate, metric_columns, param_columns
    from runmanager.errors import InvalidArgumentError
    from runmanager.events import resolve_mode
    from runmanager.repeats import REPEAT
    from runmanager.storage import load_results, load_summary
    from runmanager.tables import format_table

    if args.info:
        print(_backends(args.log_dir))
    if args.epochs and args.aggregate:
        raise InvalidArgumentError("--epochs and --aggregate do not go together; pass one of them.")
    test, alpha = args.test, _alpha(args.alpha)
    if test is not None:
        from runmanager.significance import check_test

        check_test(test)
        if not (args.aggregate and args.metric):
            raise InvalidArgumentError(f"--test {test} compares configurations by a metric: pass --aggregate and "
                                       "--metric too, e.g. --aggregate --metric val_accuracy --test welch.")
    frame = load_results(args.log_dir) if args.epochs else load_summary(args.log_dir)
    if frame.empty:
        raise LogDirError(f"{args.log_dir!r} has no runs yet.")
    params = param_columns(frame)
    mode = None
    if args.metric is not None:
        mode = resolve_mode(args.metric, args.mode, who="--metric")
        metrics = metric_columns(frame)
        if args.metric not in metrics:
            raise InvalidArgumentError(f"Unknown metric {args.metric!r}; the runs logged {', '.join(metrics)}.")
    if args.aggregate:
        if args.where:  # over the runs' columns, else over the aggregated table's
            selected = _where(frame, args.where, also=lambda: aggregate(frame, args.metric, mode, test, alpha))
            table = aggregate(selected, args.metric, mode, test, alpha) if "status" in selected.columns else selected
        else:
            table = aggregate(frame, args.metric, mode, test, alpha)
        params = [name for name in params if name != REPEAT]
        modes = {args.metric: mode} if args.metric else {}
        print(format_table(table, args.format, params=params, modes=modes))
        return 0
    if args.where:
        frame = _where(frame, args.where)
    if args.metric is not None:
        frame = frame.sort_values(args.metric, ascending=mode == "min", na_position="last", kind="stable")
    if "error" in frame.columns and frame["error"].isna().all():
        frame = frame.drop(columns="error")
    print(format_table(frame, args.format, params=params))
    return 0


def _metric_and_mode(text: str) -> tuple[str, str | None]:
    """A ``--metric`` value, ``NAME`` or ``NAME:min`` / ``NAME:max``, as the name and its mode.

    Examples:
        >>> _metric_and_mode("params:min"), _metric_and_mode("val_accuracy")
        (('params', 'min'), ('val_accuracy', None))
    """
    name, colon, suffix = text.rpartition(":")
    if not colon:
        return text, None
    if suffix not in ("min", "max"):
        raise InvalidArgumentError(
            f"--metric {text!r}: what follows ':' must be 'min' or 'max', got {suffix!r}; e.g. --metric params:min."
        )
    return name, suffix


def _alpha(text: str | None) -> float:
    """``--alpha`` as a number; checked here, not by argparse, so a bad one is one line, not a usage."""
    from runmanager.significance import check_alpha

    if text is None:
        return 0.05
    try:
        value = float(text)
    except ValueError:
        raise InvalidArgumentError(f"--alpha must be a number between 0 and 1, such as 0.05, got {text!r}.") from None
    return check_alpha(value)


def _compare(args: argparse.Namespace) -> int:
    from runmanager.comparison import compare, compare_note
    from runmanager.tables import add_notes, format_table, latex_escape

    if args.metric is None:
        raise InvalidArgumentError("compare needs --metric NAME, the metric to compare, e.g. --metric val_accuracy.")
    table = compare(args.log_dir, args.log_dir_b, metric=args.metric, mode=args.mode, test=args.test,
                    alpha=_alpha(args.alpha))
    text = format_table(table, args.format, params=table.attrs["comparison"]["params"])
    if args.format != "csv":
        note = compare_note(table)
        shown = latex_escape(note) if args.format == "latex" else note
        text = add_notes(text, args.format, [shown], len(table.columns))
    print(text)
    return 0


def _best(args: argparse.Namespace) -> int:
    from runmanager.analysis import aggregate, best_run, default_mode, param_columns
    from runmanager.display import value_text
    from runmanager.repeats import REPEAT
    from runmanager.storage import load_summary
    from runmanager.tables import format_table

    given = [_metric_and_mode(text) for text in args.metric or []]
    if len(given) > 1:
        return _front(args, given)
    if given:
        args.metric, suffix = given[0]
        if suffix is not None and args.mode is not None and suffix != args.mode:
            raise InvalidArgumentError(f"--metric {args.metric}:{suffix} and --mode {args.mode} disagree; give the "
                                       "mode once.")
        args.mode = suffix or args.mode
    else:
        args.metric = None
    if args.model:
        return _best_model(args)
    if args.metric is None:
        raise InvalidArgumentError("best needs --metric NAME (e.g. --metric val_accuracy); only --model may leave "
                                   "it out, for the sweep's own metric.")
    summary = load_summary(args.log_dir)
    best = best_run(summary, args.metric, args.mode)
    mode = args.mode or default_mode(args.metric)
    params = param_columns(summary)
    if REPEAT in params:
        table = aggregate(summary, args.metric, mode)
        top = table.head(1).to_dict("records")[0]  # ints stay ints
        configuration = [name for name in params if name != REPEAT]
        shown = ", ".join(f"{name}={value_text(top[name])}" for name in configuration)
        print(f"Best configuration by mean {args.metric} ({mode}) over {int(top['completed'])} completed of "
              f"{int(top['runs'])} repeats: {shown}")
        print(format_table(table.head(1), args.format, params=configuration, modes={args.metric: mode},
                           most_completed=int(table["completed"].max())))
        return 0
    print(f"Best run by {args.metric} ({mode}): run {int(best['run'])}")
    row = summary.loc[[best.name]].drop(columns=["status", "error"])
    print(format_table(row, args.format, params=params))
    return 0


def _front(args: argparse.Namespace, given: list[tuple[str, str | None]]) -> int:
    """Print the Pareto front of several ``--metric``s: runs, or configurations with repeats."""
    from runmanager.analysis import param_columns
    from runmanager.objectives import resolve_objectives
    from runmanager.pareto import pareto
    from runmanager.repeats import REPEAT
    from runmanager.storage import load_summary
    from runmanager.tables import format_table

    if args.mode is not None:
        raise InvalidArgumentError(f"--mode {args.mode} goes with one --metric; with several, give each its mode "
                                   "as NAME:min or NAME:max, e.g. --metric params:min.")
    if args.model:
        raise InvalidArgumentError("--model prints the best run's model by one metric; give one --metric.")
    objectives = resolve_objectives([name for name, _ in given], [how for _, how in given], who="--metric")
    names, modes = [name for name, _ in objectives], [how for _, how in objectives]
    summary = load_summary(args.log_dir)
    front = pareto(summary, names, modes)
    params = param_columns(summary)
    by = ", ".join(f"{name} ({how})" for name, how in objectives)
    if REPEAT in params:
        configuration = [name for name in params if name != REPEAT]
        print(f"Pareto front by mean {by} over completed repeats: {len(front)} configurations, best first by "
              f"{names[0]}")
        print(format_table(front, args.format, params=configuration, modes=dict(objectives)))
        return 0
    completed = int((summary["status"] == "completed").sum())
    print(f"Pareto front by {by}: {len(front)} of {completed} completed runs, best first by {names[0]}")
    shown = front.drop(columns=[c for c in ("status", "error") if c in front.columns])
    print(format_table(shown, args.format, params=params))
    return 0


def _best_model(args: argparse.Namespace) -> int:
    """Print the path of the best run's kept model, by --metric or the sweep's metric."""
    from runmanager.checkpoints import model_file
    from runmanager.storage import JOURNAL_NAME, results_from_journal

    journal = Path(args.log_dir) / JOURNAL_NAME
    if not journal.is_file():
        raise LogDirError(f"best --model needs a log_dir with its {JOURNAL_NAME}, got {args.log_dir!r}.")
    print(Path(args.log_dir) / model_file(results_from_journal(journal), None, args.metric, args.mode))
    return 0


def _report(args: argparse.Namespace) -> int:
    from runmanager.reporting import report

    path = report(args.log_dir, args.output, args.metric, mode=args.mode, by=args.by)
    print(f"Wrote {path} ({path.stat().st_size / 1e6:.1f} MB); open it in a browser, no network needed.")
    return 0


def _tensorboard(args: argparse.Namespace) -> int:
    from runmanager.tensorboard import serve

    return serve(args.log_dir, port=args.port)


def _mlflow(args: argparse.Namespace) -> int:
    from runmanager.sinks.mlflow import upload

    sent = upload(args.log_dir, args.tracking_uri, args.experiment)
    print(f"{args.log_dir} is in MLflow at {sent['tracking_uri']}, experiment {sent['experiment_id']}, as run "
          f"{sent['run_id']}: {sent['created']} runs created, {sent['epochs']} epochs and {sent['ended']} run ends "
          f"sent, {sent['artifacts']} artifacts logged; what MLflow held already was skipped.")
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="runmanager", description="Hyperparameter sweeps for Keras, as tables you can read."
    )
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up notices, which runmanager hides")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser("demo", help="run a real sweep on scikit-learn's digits (a minute or two)")
    demo.add_argument("--log-dir", help="folder for the results (default: runs/demo-TIMESTAMP)")
    demo.add_argument("--epochs", type=_positive_int, default=DEMO_EPOCHS,
                      help=f"epochs per run, at least 1 (default: {DEMO_EPOCHS})")
    demo.set_defaults(func=_demo)
    show = commands.add_parser("show", help="print the per-run summary of a sweep")
    show.add_argument("log_dir", help="a log_dir, or a results/summary .csv or .json")
    show.add_argument("--epochs", action="store_true", help="print every epoch row instead")
    show.add_argument("--info", action="store_true",
                      help="first say which Keras backend and versions ran the runs")
    show.add_argument("--aggregate", action="store_true",
                      help="one row per configuration: mean ± std over its repeats")
    show.add_argument("--metric", help="sort best first by this metric (with --aggregate: rank by its mean)")
    show.add_argument("--mode", choices=("min", "max"), help="with --metric; default: min for losses, else max")
    show.add_argument("--where", metavar="EXPR",
                      help="keep the rows that match, e.g. \"lr < 0.01 and status == 'completed'\": columns, "
                           "numbers, 'strings', == != < <= > >=, in [...], and/or/not, + - * /; never run as code")
    show.add_argument("--test", metavar="welch|mannwhitney",
                      help="with --aggregate --metric: test every configuration against the best; the tied-best "
                           "cells are bold (needs scipy: pip install \"runmanager[stats]\")")
    show.add_argument("--alpha", metavar="A", help="the significance level of --test (default: 0.05)")
    show.add_argument("--format", choices=FORMATS, default="plain",
                      help="plain (default), github (Markdown), latex (booktabs) or csv")
    show.set_defaults(func=_show)
    compare = commands.add_parser("compare", help="which configurations really differ: pairwise tests in a sweep, "
                                                  "or each configuration of one sweep against another's")
    compare.add_argument("log_dir", help="a log_dir, or a summary .csv or .json")
    compare.add_argument("log_dir_b", nargs="?", help="a second one: compare each configuration with the same one here")
    compare.add_argument("--metric", help="the metric compared, e.g. val_accuracy (needed)")
    compare.add_argument("--mode", choices=("min", "max"), help="default: min for losses, else max")
    compare.add_argument("--test", metavar="welch|mannwhitney|paired",
                         help="default: paired (by seed) for two sweeps with the same seeds, else welch")
    compare.add_argument("--alpha", metavar="A", help="the significance level (default: 0.05)")
    compare.add_argument("--format", choices=FORMATS, default="plain",
                         help="plain (default), github (Markdown), latex (booktabs) or csv (one row per pair)")
    compare.set_defaults(func=_compare)
    best = commands.add_parser("best", help="print the best run by a metric")
    best.add_argument("log_dir", help="a log_dir, or a summary .csv or .json")
    best.add_argument("--metric", action="append", metavar="NAME[:min|max]",
                      help="e.g. val_accuracy or val_loss (needed, but with --model); repeat it for the Pareto "
                           "front of several metrics, e.g. --metric val_accuracy --metric params:min")
    best.add_argument("--mode", choices=("min", "max"), help="with one --metric; default: min for losses, else max")
    best.add_argument("--format", choices=FORMATS, default="plain",
                      help="plain (default), github (Markdown), latex (booktabs) or csv")
    best.add_argument("--model", action="store_true",
                      help="print the path of the best run's kept model (by --metric, default the sweep's metric)")
    best.set_defaults(func=_best)
    report = commands.add_parser("report", help="write one self-contained HTML report of a sweep")
    report.add_argument("log_dir")
    report.add_argument("-o", "--output", help="the HTML file to write, or a folder to write report.html into "
                        "(default: LOG_DIR/report.html)")
    report.add_argument("--metric", help="the metric to rank by (default: val_accuracy, val_loss, ... as logged)")
    report.add_argument("--mode", choices=("min", "max"), help="default: min for losses, else max")
    report.add_argument("--by", help="the param that colours the learning curves (default: the most influential)")
    report.set_defaults(func=_report)
    board = commands.add_parser("tensorboard", help="start TensorBoard on 127.0.0.1 for a log_dir")
    board.add_argument("log_dir")
    board.add_argument("--port", type=int, default=0, help="default: a free port")
    board.set_defaults(func=_tensorboard)
    mlflow = commands.add_parser("mlflow", help="send a finished or crashed sweep to MLflow (again: only what is missing)")
    mlflow.add_argument("log_dir")
    mlflow.add_argument("--tracking-uri", help="e.g. http://127.0.0.1:5000 or sqlite:///mlflow.db "
                        "(default: MLflow's own, MLFLOW_TRACKING_URI)")
    mlflow.add_argument("--experiment", help="the MLflow experiment, created if missing (default: "
                        "MLFLOW_EXPERIMENT_NAME, else Default)")
    mlflow.set_defaults(func=_mlflow)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``runmanager`` command with ``argv``; return its exit code.

    Examples:
        main(["best", "runs/demo", "--metric", "val_accuracy"])
        0
    """
    args = _parser().parse_args(argv)
    if args.verbose:
        from runmanager.backend import SHOW_NOTICES

        os.environ[SHOW_NOTICES] = "1"
    try:
        return args.func(args)
    except (RunManagerError, OSError) as exc:
        print(f"runmanager: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("runmanager: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

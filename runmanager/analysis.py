"""Questions asked of finished sweeps: which run was best, and how do configurations compare
over their repeats?"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError
from runmanager.events import Status, default_mode, resolve_mode
from runmanager.objectives import pareto_mask, recorded_objectives, resolve_objectives

__all__ = ["aggregate", "best_run", "default_mode", "metric_columns", "param_columns", "param_key", "t_quantile_975"]


def param_columns(frame: Any) -> list[str]:
    """The parameter columns of a summary (between ``run`` and ``status``) or of epoch
    rows (after ``run_duration``); none for a frame of another shape."""
    columns = list(frame.columns)
    if "run" in columns and "status" in columns:
        return columns[columns.index("run") + 1 : columns.index("status")]
    if "run_duration" in columns:
        return columns[columns.index("run_duration") + 1 :]
    return []


def metric_columns(frame: Any) -> list[str]:
    """The metric (and extra) columns of a summary (between ``epochs`` and ``run_duration``,
    ``best_epoch`` left out) or of epoch rows (between ``epoch`` and ``epoch_duration``).

    Examples:
        >>> import pandas as pd
        >>> metric_columns(pd.DataFrame(columns=["run", "epoch", "loss", "epoch_duration", "run_duration"]))
        ['loss']
    """
    columns = list(frame.columns)
    if "epochs" in columns and "run_duration" in columns:
        found = columns[columns.index("epochs") + 1 : columns.index("run_duration")]
    elif "epoch" in columns and "epoch_duration" in columns:
        found = columns[columns.index("epoch") + 1 : columns.index("epoch_duration")]
    else:
        return []
    return [c for c in found if c != "best_epoch"]


def is_numeric(values: Any) -> bool:
    """True for a column of numbers (not bools, not text).

    Examples:
        >>> import pandas as pd
        >>> is_numeric(pd.Series([1.5, 2])), is_numeric(pd.Series([True])), is_numeric(pd.Series(["a"]))
        (True, False, False)
    """
    import pandas as pd

    return bool(pd.api.types.is_numeric_dtype(values)) and not pd.api.types.is_bool_dtype(values)


def numeric_columns(frame: Any, columns: list[str]) -> list[str]:
    """Those of ``columns`` that hold numbers (not bools, not text)."""
    return [c for c in columns if is_numeric(frame[c])]


def summary_of(source: Any) -> Any:
    """The summary DataFrame of a summary, a RunManager, or a path :func:`runmanager.load_summary` reads."""
    if isinstance(source, (str, os.PathLike)):
        from runmanager.storage import load_summary

        return load_summary(source)
    if hasattr(source, "summary") and callable(source.summary):
        return source.summary()
    if hasattr(source, "columns") and "status" in source.columns and "epochs" in source.columns:
        return source
    raise InvalidArgumentTypeError(
        f"Expected a summary DataFrame (m.summary()), a RunManager or a path to a log_dir, got {source!r}."
    )


def best_run(summary: Any, metric: str, mode: str | None = None) -> Any:
    """The summary row of the best completed run by the final value of ``metric``.

    Failed, diverged, interrupted and running runs are left out.

    Args:
        summary: a summary DataFrame (``m.summary()``), or a path that
            :func:`runmanager.load_summary` reads.
        metric: a metric column, e.g. ``"val_accuracy"``.
        mode: ``"max"`` or ``"min"``; default: ``"min"`` for losses, else ``"max"``.

    Raises:
        InvalidArgumentError: an unknown metric or mode, or no completed run has the metric.

    Examples:
        >>> import pandas as pd
        >>> summary = pd.DataFrame({"run": [1, 2, 3], "status": ["completed", "completed", "diverged"],
        ...                         "epochs": [5, 5, 2], "val_loss": [0.5, 0.3, 0.1], "run_duration": [1.0] * 3})
        >>> int(best_run(summary, "val_loss")["run"])
        2
    """
    summary = summary_of(summary)
    mode = resolve_mode(metric, mode, who="best_run")
    metrics = metric_columns(summary)
    if metric not in metrics:
        raise InvalidArgumentError(
            f"Unknown metric {metric!r}; the sweep has {', '.join(metrics) or 'no metrics'}."
        )
    done = summary[(summary["status"] == Status.COMPLETED) & summary[metric].map(
        lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    if done.empty:
        raise InvalidArgumentError(f"No completed run has a finite {metric!r} to compare.")
    position = done[metric].idxmin() if mode == "min" else done[metric].idxmax()
    return done.loc[position]


#: Student's t quantiles t(0.975, df) for df = 1..30; above 30 a Cornish-Fisher expansion
#: around the normal quantile is exact to 1e-6.
_T975 = (12.7062047, 4.3026527, 3.1824463, 2.7764451, 2.5705818, 2.4469119, 2.3646243, 2.3060041,
         2.2621572, 2.2281389, 2.2009852, 2.1788128, 2.1603687, 2.1447867, 2.1314495, 2.1199053,
         2.1098155, 2.1009220, 2.0930241, 2.0859634, 2.0796138, 2.0738731, 2.0686576, 2.0638986,
         2.0595386, 2.0555294, 2.0518305, 2.0484071, 2.0452296, 2.0422725)


def t_quantile_975(df: int) -> float:
    """Student's t quantile at 0.975 with ``df`` degrees of freedom (the 95% two-sided interval).

    Examples:
        >>> round(t_quantile_975(4), 4), round(t_quantile_975(1000), 4)
        (2.7764, 1.9623)
    """
    if df < 1:
        return math.nan
    if df <= len(_T975):
        return _T975[df - 1]
    z = 1.959963984540054
    return (z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)
            + (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / (384 * df**3))


def param_key(value: Any) -> Any:
    """A param value as a key to group, colour or compare by: the value itself when it is
    hashable, a list or a dict as its JSON text (``[64, 32]``), and one key (None) for a
    missing value (None or NaN).

    Examples:
        >>> param_key(0.1), param_key([64, 32]), param_key({"name": "adam"}), param_key(float("nan"))
        (0.1, '[64, 32]', '{"name": "adam"}', None)
    """
    from runmanager.display import value_text

    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        hash(value)
    except TypeError:
        return value_text(value)
    return value


def aggregate(summary: Any, metric: str | Sequence[str] | None = None,
              mode: str | Sequence[str | None] | None = None, test: str | None = None,
              alpha: float = 0.05) -> Any:
    """One row per configuration (the params without ``repeat``) over its runs.

    Columns: the params, ``runs``, ``completed``, then for every numeric metric
    ``<name>_mean`` and ``<name>_std``: the mean and the sample standard deviation
    (ddof=1; NaN for a single run) over the configuration's completed runs. With
    ``metric``, rows are sorted best first by ``<metric>_mean``, a ``rank`` column
    (1 = best; ties share a rank, a configuration without a completed run has none)
    comes first, and ``<metric>_ci95`` is the half-width of the 95% confidence interval
    of the mean, ``t(0.975, n-1) * std / sqrt(n)`` over the n completed runs.

    Given a list of metrics (and of modes), rows are ranked by the first, and a boolean
    ``pareto`` column after ``completed`` is True for each configuration on the Pareto front of
    all of them, by their means over completed runs (see :func:`runmanager.pareto`); the
    summary of a sweep of several objectives gets that column for the sweep's own objectives.

    With ``test`` (and ``metric``; the first, with a list), every configuration is compared with
    the best one (rank 1): ``p_value`` is the one-sided p-value of "worse than the best" (Welch's
    t-test or the Mann–Whitney U test over the completed runs), Holm-corrected over the
    comparisons made, NaN for the best and where either side has fewer than 2 completed runs;
    ``tied_best`` is True for the best and for every configuration not significantly worse at
    ``alpha``, False where no test could be made (see :mod:`runmanager.significance`). The
    frame's ``attrs["significance"]`` says which metric, test and alpha, for the tables.

    Args:
        summary: a summary DataFrame (``m.summary()``), a RunManager, or a log_dir
            or summary file path.
        metric: the metric to rank by, e.g. ``"val_accuracy"``, or a list of metrics.
        mode: ``"min"`` or ``"max"`` (a list, with a list of metrics); default: ``"min"`` for
            losses and errors, else ``"max"``.
        test: ``"welch"`` or ``"mannwhitney"`` to test every configuration against the best;
            needs ``metric`` and scipy (``pip install "runmanager[stats]"``).
        alpha: the significance level of ``test``, between 0 and 1.

    Raises:
        InvalidArgumentError: an unknown metric, mode or test, an alpha outside (0, 1), or a
            test without a metric.
        MissingExtraError: ``test`` without scipy installed.

    Examples:
        >>> import pandas as pd
        >>> summary = pd.DataFrame({"run": [1, 2, 3, 4], "lr": [0.1, 0.1, 0.01, 0.01], "repeat": [1, 2, 1, 2],
        ...                         "status": ["completed"] * 4, "epochs": [3] * 4,
        ...                         "val_accuracy": [0.8, 0.9, 0.6, 0.7], "run_duration": [1.0] * 4})
        >>> aggregate(summary, "val_accuracy")[["rank", "lr", "runs", "val_accuracy_mean"]]
           rank    lr  runs  val_accuracy_mean
        0     1  0.10     2               0.85
        1     2  0.01     2               0.65
        >>> aggregate(summary, "val_accuracy", test="welch")[["lr", "p_value", "tied_best"]].round(3)
             lr  p_value  tied_best
        0  0.10      NaN       True
        1  0.01    0.053       True
    """
    import pandas as pd

    from runmanager.repeats import REPEAT

    summary = summary_of(summary)
    params = [name for name in param_columns(summary) if name != REPEAT]
    metrics = numeric_columns(summary, metric_columns(summary))
    objectives = [] if metric is None else resolve_objectives(metric, mode, who="aggregate")
    for name, _ in objectives:
        if name not in metrics:
            raise InvalidArgumentError(
                f"Unknown metric {name!r}; the sweep has {', '.join(metrics) or 'no metrics'}."
            )
    if objectives:
        metric, mode = objectives[0]
    if test is not None:
        from runmanager.significance import check_alpha, check_test, require_scipy

        check_test(test)
        check_alpha(alpha)
        if metric is None:
            raise InvalidArgumentError(f"test={test!r} compares configurations by a metric; pass metric= too, "
                                       "e.g. aggregate(summary, 'val_accuracy', test='welch').")
        require_scipy(f"aggregate(test={test!r})")
    samples: list[Any] = []  # the tested metric's completed values, one array per row
    groups: dict[tuple[Any, ...], list[int]] = {}
    keys = zip(*(summary[name].tolist() for name in params)) if params else ((),) * len(summary)
    for position, key in enumerate(keys):
        groups.setdefault(tuple(param_key(value) for value in key), []).append(position)
    completed = (summary["status"] == Status.COMPLETED).to_numpy()
    rows = []
    for positions in groups.values():
        part = summary.iloc[positions]
        done = part[completed[positions]]
        row: dict[str, Any] = {name: part[name].iloc[0] for name in params}
        row["runs"] = len(part)
        row["completed"] = len(done)
        for name in metrics:
            values = done[name].astype(float)
            row[f"{name}_mean"] = values.mean()
            row[f"{name}_std"] = values.std(ddof=1)
            if name == metric:
                count = int(values.notna().sum())
                row[f"{name}_ci95"] = t_quantile_975(count - 1) * row[f"{name}_std"] / math.sqrt(max(count, 1))
                samples.append(values[values.map(math.isfinite)].to_numpy())
        rows.append(row)
    columns = [*params, "runs", "completed"]
    for name in metrics:
        columns += [f"{name}_mean", f"{name}_std"] + ([f"{name}_ci95"] if name == metric else [])
    frame = pd.DataFrame(rows, columns=columns)
    front = objectives if len(objectives) > 1 else recorded_objectives(summary)
    if len(front) > 1:
        mask = pareto_mask(frame, [f"{name}_mean" for name, _ in front], [how for _, how in front],
                           frame["completed"] > 0)
        frame.insert(columns.index("completed") + 1, "pareto", pd.Series(mask, index=frame.index, dtype=bool))
    if metric is not None:
        mean = f"{metric}_mean"
        frame = frame.sort_values(mean, ascending=mode == "min", na_position="last", kind="stable")
        frame.insert(0, "rank", frame[mean].rank(method="min", ascending=mode == "min").astype("Int64"))
        if test is not None:
            from runmanager.significance import tied_with_best

            p_values, tied = tied_with_best([samples[i] for i in frame.index], 0, mode, test, alpha)
            frame["p_value"], frame["tied_best"] = p_values, tied
            frame.attrs["significance"] = {"metric": metric, "mode": mode, "test": test, "alpha": alpha}
        frame = frame.reset_index(drop=True)
    return frame

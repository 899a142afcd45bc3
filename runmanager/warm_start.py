"""The runs of an earlier sweep, as a warm start of an adaptive search: from its log_dir (or a
summary file), a summary DataFrame, or a list of dicts of params and metric values.

Only completed runs with a finite value of every objective count (a failed, diverged or pruned
run says nothing about where the good values are). Runs that repeat one configuration
(``repeat`` 1..N) are one configuration, told with the mean of its completed repeats, as a
search is told during a sweep with repeats.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, RunManagerError
from runmanager.grid import check_param_name, python_scalar
from runmanager.naming import REPEAT, run_id

__all__ = ["EarlierRun", "earlier_runs"]


@dataclass
class EarlierRun:
    """One configuration of an earlier sweep: its params, and one value per objective (the mean
    over its completed runs)."""

    params: dict[str, Any]
    values: list[float]
    runs: int = 1


def _missing(value: Any) -> bool:
    """None, NaN or pandas' NA: how a summary holds a param that a run of a conditional space lacks."""
    return value is None or (isinstance(value, float) and math.isnan(value)) or type(value).__name__ == "NAType"


def _could_be_param(name: Any) -> bool:
    """False for a column runmanager writes or a metric name Keras logs: never a param."""
    try:
        check_param_name(name, name)
    except RunManagerError:
        return False
    return True


def _finite(value: Any) -> float | None:
    value = python_scalar(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def _rows_of_frame(frame: Any, metrics: list[str], where: str) -> list[dict[str, Any]]:
    missing = [metric for metric in metrics if metric not in frame.columns]
    if missing:
        raise InvalidArgumentError(
            f"warm_start {where} has no column {missing[0]!r}, the metric OptunaSearch optimises; its columns "
            f"are {', '.join(map(str, frame.columns))}. Give the summary of a sweep that logged it, or pass "
            "metric= as that sweep logged it."
        )
    if len(frame) == 0:
        raise InvalidArgumentError(f"warm_start {where} holds no runs; give the summary of a sweep that ran.")
    columns = list(frame.columns)
    if "run" in columns and "status" in columns:  # a summary: the params are between run and status
        params = columns[columns.index("run") + 1 : columns.index("status")]
    else:
        params = [c for c in columns if c not in metrics and _could_be_param(c)]
    return [{"params": {name: row[name] for name in params}, "status": row.get("status"),
             "values": [row[metric] for metric in metrics]} for row in frame.to_dict("records")]


def _rows_of_dicts(runs: Sequence[Any], metrics: list[str]) -> list[dict[str, Any]]:
    if not runs:
        raise InvalidArgumentError(
            "warm_start is an empty list; give dicts of params and metric values, e.g. "
            f"[{{'lr': 0.01, {metrics[0]!r}: 0.9}}]."
        )
    rows = []
    for index, run in enumerate(runs):
        if not isinstance(run, Mapping):
            raise InvalidArgumentTypeError(
                f"warm_start[{index}] is {run!r}; a list for warm_start holds dicts of a run's params and "
                f"metric values, e.g. {{'lr': 0.01, {metrics[0]!r}: 0.9}}."
            )
        missing = [metric for metric in metrics if metric not in run]
        if missing:
            raise InvalidArgumentError(
                f"warm_start[{index}] = {dict(run)!r} has no {missing[0]!r}, the metric OptunaSearch optimises; "
                f"give each dict the run's value of it, e.g. {{..., {missing[0]!r}: 0.9}} (None for a run that failed)."
            )
        params = {name: value for name, value in run.items()
                  if name not in metrics and name != "status" and _could_be_param(name)}
        rows.append({"params": params, "status": run.get("status"), "values": [run[m] for m in metrics]})
    return rows


def _rows(source: Any, metrics: list[str]) -> list[dict[str, Any]]:
    if isinstance(source, (str, os.PathLike)):
        from runmanager.errors import LogDirError
        from runmanager.storage import load_summary

        path = Path(source)
        if not path.exists():
            raise InvalidArgumentError(
                f"warm_start {str(path)!r} does not exist; give the log_dir of an earlier sweep (or its summary "
                ".csv or .json), a summary DataFrame, or a list of dicts of params and metric values."
            )
        try:
            frame = load_summary(path)
        except LogDirError as exc:
            raise InvalidArgumentError(f"warm_start {str(path)!r} cannot be read: {exc}") from exc
        return _rows_of_frame(frame, metrics, repr(str(path)))
    if hasattr(source, "columns") and hasattr(source, "to_dict"):
        return _rows_of_frame(source, metrics, "(a DataFrame)")
    if isinstance(source, Sequence) and not isinstance(source, (str, bytes)):
        return _rows_of_dicts(source, metrics)
    raise InvalidArgumentTypeError(
        f"warm_start must be the log_dir of an earlier sweep (a path), a summary DataFrame (load_summary(...)), "
        f"or a list of dicts of params and metric values, got {source!r}."
    )


def earlier_runs(source: Any, metrics: Sequence[str], fields: Sequence[str] = ()) -> list[EarlierRun]:
    """The completed configurations of ``source``, with the mean of each metric over their runs.

    Args:
        source: a log_dir or summary file path, a summary DataFrame, or a list of dicts (each a
            run's params and its value of every metric; keys that cannot be params, such as
            ``status``, ``epochs`` or ``loss``, are left out of its params).
        metrics: the metrics to read, in order (a search's objectives).
        fields: the params of the search being warm started; ``repeat`` is a param of the
            configuration only if it is one of them.

    Raises:
        InvalidArgumentError: a missing path, one without runs, a summary without a metric, a
            dict without one, an empty list.
        InvalidArgumentTypeError: something else.

    Examples:
        >>> runs = earlier_runs([{"lr": 0.1, "repeat": 1, "val_loss": 0.5}, {"lr": 0.1, "repeat": 2, "val_loss": 0.3},
        ...                      {"lr": 0.2, "val_loss": None}], ["val_loss"])
        >>> [(run.params, run.values, run.runs) for run in runs]
        [({'lr': 0.1}, [0.4], 2)]
    """
    metrics = list(metrics)
    groups: dict[str, tuple[dict[str, Any], list[list[float]]]] = {}
    for row in _rows(source, metrics):
        if row["status"] is not None and not _missing(row["status"]) and row["status"] != "completed":
            continue
        values = [_finite(value) for value in row["values"]]
        if any(value is None for value in values):
            continue
        params = {name: None if _missing(value) else python_scalar(value) for name, value in row["params"].items()
                  if name != REPEAT or REPEAT in fields}
        _, seen = groups.setdefault(run_id(params), (params, []))
        seen.append(values)  # type: ignore[arg-type]
    return [EarlierRun(params, [sum(column) / len(column) for column in zip(*seen)], len(seen))
            for params, seen in groups.values()]

"""Questions asked of finished sweeps: which run was best?"""

from __future__ import annotations

import math
import os
from typing import Any

from runmanager.errors import InvalidArgumentError
from runmanager.events import Status, default_mode, resolve_mode

__all__ = ["best_run", "default_mode", "metric_columns", "param_columns"]


def param_columns(frame: Any) -> list[str]:
    """The parameter columns of a summary (between ``run`` and ``status``) or of epoch
    rows (after ``run_duration``); none for a frame of another shape."""
    columns = list(frame.columns)
    if "run" in columns and "status" in columns:
        return columns[columns.index("run") + 1 : columns.index("status")]
    if "run_duration" in columns:
        return columns[columns.index("run_duration") + 1 :]
    return []


def metric_columns(summary: Any) -> list[str]:
    """The metric (and extra) columns of a summary: those between ``epochs`` and ``run_duration``."""
    columns = list(summary.columns)
    return columns[columns.index("epochs") + 1 : columns.index("run_duration")]


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
    if isinstance(summary, (str, os.PathLike)):
        from runmanager.storage import load_summary

        summary = load_summary(summary)
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

"""Figures of a sweep with matplotlib: learning curves, params against a metric, each
param's effect. Needs ``runmanager[report]``.

Every function returns a :class:`matplotlib.figure.Figure` built without pyplot, so
nothing global changes and no window opens; it carries a PNG representation
(:class:`runmanager.figure.InlineFigure`), so Jupyter shows a returned figure inline
without ``%matplotlib inline``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any

from runmanager.analysis import is_numeric, metric_columns, numeric_columns, param_key
from runmanager.errors import InvalidArgumentError, InvalidArgumentTypeError, missing_extra

__all__ = ["curves_figure", "effects_figure", "influence", "parallel_figure", "pareto_figure", "plot",
           "require_matplotlib", "short_labels"]

#: Above this many distinct values a numeric param is coloured on a scale, and binned for its effect.
MAX_LEVELS = 10
#: The most characters of a value drawn beside an axis of the parallel coordinates: axes are at
#: least 1.6 inches apart, and 16 characters of 7 pt text, even of the widest glyphs (``m``, ``W``),
#: end before the next axis (measured with matplotlib's renderer).
MAX_LABEL = 16
#: The start of the SVG id of a text drawn shorter than it is; its label holds the whole text.
TITLED = "titled-"
_EPOCH_COLUMNS = ("run", "epoch", "epoch_duration", "run_duration")


def require_matplotlib() -> Any:
    """The Figure class of runmanager's figures, or the error that names the extra to install."""
    try:
        from runmanager.figure import InlineFigure
    except ImportError:
        raise missing_extra("matplotlib", "report", "Plots and reports") from None
    return InlineFigure


def epoch_rows(source: Any) -> Any:
    """The epoch rows of a results DataFrame (``m.results``), a RunManager, or a path."""
    if isinstance(source, (str, os.PathLike)):
        from runmanager.storage import load_results

        return load_results(source)
    if hasattr(source, "results") and hasattr(source, "summary") and not hasattr(source, "columns"):
        return source.results
    if hasattr(source, "columns") and {"run", "epoch"} <= set(source.columns):
        return source
    raise InvalidArgumentTypeError(
        f"Expected epoch rows (m.results), a RunManager or a path to a log_dir, got {source!r}."
    )


def epoch_metrics(frame: Any) -> list[str]:
    """The numeric metric columns of epoch rows."""
    return numeric_columns(frame, metric_columns(frame))


def epoch_params(frame: Any) -> list[str]:
    """The param columns of epoch rows (after ``run_duration``)."""
    columns = list(frame.columns)
    return columns[columns.index("run_duration") + 1 :] if "run_duration" in columns else []


def _check_metric(metric: Any, metrics: Sequence[str]) -> None:
    if metric not in metrics:
        raise InvalidArgumentError(
            f"Unknown metric {metric!r}; the runs logged {', '.join(metrics) or 'no metrics'}."
        )


def _check_param(by: Any, params: Sequence[str]) -> None:
    if by is not None and by not in params:
        raise InvalidArgumentError(
            f"Unknown param {by!r} to colour by; the sweep's params are {', '.join(params) or 'none'}."
        )


def _label(value: Any) -> Any:
    """A param value as a group or a legend shows it: a list or a dict as its JSON text (so it
    can be grouped by), a missing one (None, NaN) as ``"None"``."""
    key = param_key(value)
    return "None" if key is None else key


def _levels(values: Any) -> Any:
    """Values grouped for an effect: as they are, or in quantile bins for a numeric param with
    more than ``MAX_LEVELS`` distinct values."""
    import pandas as pd

    if is_numeric(values) and values.nunique() > MAX_LEVELS:
        return pd.qcut(values, 5, duplicates="drop")
    return values.map(_label)


def influence(per_run: Any, params: Sequence[str], metric: str) -> dict[str, float]:
    """How much of the spread of ``metric`` over runs each param explains: the share of the
    variance between the param's values (eta squared, 0..1), over the runs with a finite value.

    Examples:
        >>> import pandas as pd
        >>> runs = pd.DataFrame({"lr": [0.1, 0.1, 0.01, 0.01], "bs": [32, 64, 32, 64], "acc": [0.9, 0.9, 0.5, 0.5]})
        >>> influence(runs, ["lr", "bs"], "acc")
        {'lr': 1.0, 'bs': 0.0}
    """
    values = per_run[metric].astype(float)
    finite = values.map(math.isfinite)
    values = values[finite]
    total = ((values - values.mean()) ** 2).sum()
    shares: dict[str, float] = {}
    for name in params:
        if total == 0 or len(values) < 2:
            shares[name] = 0.0
            continue
        groups = values.groupby(_levels(per_run.loc[finite, name]), observed=True, dropna=False)
        between = sum(len(g) * (g.mean() - values.mean()) ** 2 for _, g in groups)
        shares[name] = float(between / total)
    return shares


def _colour_by(values: Any) -> tuple[list[Any], Any]:
    """A colour per value, and how to explain it: ``("legend", [(label, colour)])`` for few
    distinct values, ``("scale", (cmap, norm))`` for many numbers."""
    import matplotlib
    from matplotlib.colors import LogNorm, Normalize

    if is_numeric(values) and values.nunique() > MAX_LEVELS:
        cmap = matplotlib.colormaps["viridis"]
        low, high = float(values.min()), float(values.max())
        norm = LogNorm(low, high) if low > 0 and high / low >= 100 else Normalize(low, high)
        return [cmap(norm(v)) if v == v else "grey" for v in values], ("scale", (cmap, norm))
    distinct = list(dict.fromkeys(values.map(_label)))
    try:
        distinct.sort()
    except TypeError:
        pass
    if is_numeric(values):
        cmap = matplotlib.colormaps["viridis"]
        palette = {v: cmap(0.85 * i / max(len(distinct) - 1, 1)) for i, v in enumerate(distinct)}  # no pale yellow
    else:
        cmap = matplotlib.colormaps["tab10"]
        palette = {v: cmap(i % 10) for i, v in enumerate(distinct)}
    colours = [palette[_label(v)] for v in values]
    return colours, ("legend", [(str(v), palette[v]) for v in distinct])


def _explain(fig: Any, ax: Any, by: str, how: Any) -> None:
    from matplotlib.cm import ScalarMappable
    from matplotlib.lines import Line2D

    kind, detail = how
    if kind == "scale":
        cmap, norm = detail
        fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=by)
    elif detail:
        handles = [Line2D([], [], color=colour, label=label) for label, colour in detail[:20]]
        ax.legend(handles=handles, title=by, fontsize="small", title_fontsize="small",
                  loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)


def curves_figure(frame: Any, metric: str, by: str | None, *, bands: bool = False,
                  group: Sequence[str] = ()) -> Any:
    """Learning curves of ``metric``: one line per run coloured by ``by``, or with ``bands``
    one line per configuration (runs that share the params ``group``) at the mean over its
    runs, with a band of one standard deviation."""
    from matplotlib.collections import LineCollection
    from matplotlib.ticker import MaxNLocator

    Figure = require_matplotlib()
    fig = Figure(figsize=(7.5, 3.8), layout="constrained")
    ax = fig.add_subplot()
    data = frame[frame[metric].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    if bands and group:
        keys = [data[name].map(_label) for name in group]
        curves = data.groupby(keys, sort=False, dropna=False)
    else:
        curves = data.groupby("run", sort=True)
    lines = []
    firsts = []
    for _, part in curves:
        if bands and group:
            stats = part.groupby("epoch")[metric].agg(["mean", "std"])
            epochs, mean = stats.index.to_numpy(), stats["mean"].to_numpy()
            std = stats["std"].fillna(0).to_numpy()
            lines.append((epochs, mean, std))
        else:
            lines.append((part["epoch"].to_numpy(), part[metric].to_numpy(), None))
        if by is not None:
            firsts.append(part[by].iloc[0])  # the run's (or configuration's) value of by
    how = None
    if by is not None and firsts:
        import pandas as pd

        colours, how = _colour_by(pd.Series(firsts))
    else:
        colours = ["C0"] * len(lines)
    alpha = 0.9 if len(lines) <= 20 else max(0.15, 20 / len(lines))
    if bands and group:
        for (epochs, mean, std), colour in zip(lines, colours):
            ax.plot(epochs, mean, color=colour, linewidth=1.4)
            ax.fill_between(epochs, mean - std, mean + std, color=colour, alpha=0.15, linewidth=0)
    else:
        segments = [list(zip(epochs, values)) for epochs, values, _ in lines]
        ax.add_collection(LineCollection(segments, colors=colours, linewidths=1.0, alpha=alpha))
        ax.autoscale()
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(metric)
    ax.grid(alpha=0.3)
    if how is not None and by is not None:
        _explain(fig, ax, by, how)
    return fig


def plot(results_or_path: Any, metric: str, by: str | None = None) -> Any:
    """Learning curves of ``metric``, one line per run, coloured by the param ``by``.

    Args:
        results_or_path: epoch rows (``m.results``), a RunManager, or a log_dir or
            results file path.
        metric: a metric the runs logged, e.g. ``"val_accuracy"``.
        by: a param to colour the runs by; default: the param that explains most of
            the spread of the runs' final ``metric`` (see :func:`influence`).

    Returns:
        A :class:`matplotlib.figure.Figure` (Jupyter shows it inline; ``fig.savefig("c.svg")``).

    Raises:
        InvalidArgumentError: an unknown metric or param.
        MissingExtraError: matplotlib is not installed (``pip install runmanager[report]``).

    Examples:
        fig = runmanager.plot("runs/digits", "val_accuracy", by="learning_rate")
        fig.savefig("curves.svg")
    """
    require_matplotlib()
    frame = epoch_rows(results_or_path)
    _check_metric(metric, epoch_metrics(frame))
    params = epoch_params(frame)
    _check_param(by, params)
    if by is None and params:
        finals = frame.groupby("run").last()
        shares = influence(finals, params, metric)
        by = max(shares, key=lambda name: shares[name])
    return curves_figure(frame, metric, by)


def short_labels(labels: Sequence[str], width: int = MAX_LABEL) -> dict[str, str]:
    """Each label as drawn: at most ``width`` characters, a longer one cut in the middle
    (its start, ``…``, its end), with the split chosen so that distinct labels stay distinct
    where any split can keep them so.

    Examples:
        >>> shown = short_labels(["resnet50_pretrained_imagenet_frozen", "resnet50_pretrained_imagenet_finetuned",
        ...                       "vgg16"], width=16)
        >>> list(shown.values())
        ['resnet50…_frozen', 'resnet50…netuned', 'vgg16']
    """
    labels = list(dict.fromkeys(labels))
    if all(len(label) <= width for label in labels):
        return {label: label for label in labels}
    half = (width - 1) // 2
    # Tails from half the width up, then shorter ones: endings tell variants apart most often.
    tails = [*range(half, width - 1), *range(half - 1, 0, -1)]
    shortened: dict[str, str] = {}
    for tail in tails:
        head = width - 1 - tail
        shortened = {label: label if len(label) <= width else f"{label[:head]}…{label[-tail:]}" for label in labels}
        if len(set(shortened.values())) == len(labels):
            break
    else:
        shortened = {label: label if len(label) <= width else f"{label[:width - 1 - half]}…{label[-half:]}"
                     for label in labels}
    return shortened


def _axis_name(name: str, width: int = MAX_LABEL) -> str:
    """An axis name (a param) on lines of about ``width`` characters, broken after ``_``, so
    long names do not run into their neighbours; every character is kept."""
    lines = [""]
    for part in re.split(r"(?<=_)", name):
        if lines[-1] and len(lines[-1]) + len(part) > width:
            lines.append("")
        lines[-1] += part
    return "\n".join(lines)


def _axis_positions(values: Any, *, metric: bool = False) -> tuple[Any, list[tuple[float, str]]]:
    """Values placed on a 0..1 axis, and the ticks that label it (log for wide positive ranges)."""
    import numpy as np

    from runmanager.display import format_value

    if is_numeric(values) and values.notna().any():
        numbers = values.astype(float)
        low, high = float(numbers.min()), float(numbers.max())
        log = low > 0 and high / low >= 100
        scale = np.log10 if log else (lambda x: x)
        lo, hi = scale(low), scale(high)
        span = (hi - lo) or 1.0
        positions = (scale(numbers) - lo) / span
        ticks = [(0.0, format_value("", low, param=not metric)), (1.0, format_value("", high, param=not metric))]
        if not metric and values.nunique() <= MAX_LEVELS:
            ticks = [(float((scale(v) - lo) / span), format_value("", float(v), param=True))
                     for v in sorted(numbers.dropna().unique())]
        if not metric and values.isna().any():  # a run of a conditional space without this param
            ticks.insert(0, (-0.05, "None"))
        return positions.fillna(-0.05), ticks
    labels = values.map(lambda v: str(_label(v)))
    distinct = sorted(labels.unique())
    where = {label: (i / (len(distinct) - 1) if len(distinct) > 1 else 0.5) for i, label in enumerate(distinct)}
    return labels.map(where).astype(float), [(where[label], label) for label in distinct]


def parallel_figure(per_run: Any, params: Sequence[str], metric: str, mode: str) -> Any:
    """Parallel coordinates: an axis per param and one for ``metric``, a line per run (or
    configuration) coloured by ``metric``, the best drawn on top."""
    import matplotlib
    import numpy as np
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    Figure = require_matplotlib()
    axes = [*params, metric]
    fig = Figure(figsize=(max(4.5, 1.6 * len(axes) + 1.5), 4.0), layout="constrained")
    ax = fig.add_subplot()
    data = per_run[per_run[metric].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    data = data.sort_values(metric, ascending=mode == "max")  # the best last, drawn on top
    placed = [_axis_positions(data[name], metric=name == metric) for name in axes]
    ys = np.column_stack([positions.to_numpy() for positions, _ in placed]) if len(data) else np.zeros((0, 1))
    cmap = matplotlib.colormaps["viridis" if mode == "max" else "viridis_r"]
    values = data[metric].astype(float)
    norm = Normalize(float(values.min()), float(values.max())) if len(values) else Normalize(0, 1)
    segments = [list(zip(range(len(axes)), row)) for row in ys]
    alpha = 0.8 if len(segments) <= 50 else max(0.2, 50 / len(segments))
    ax.add_collection(LineCollection(segments, colors=[cmap(norm(v)) for v in values], linewidths=1.0,
                                     alpha=alpha))
    for i, (_, ticks) in enumerate(placed):
        ax.axvline(i, color="black", linewidth=0.8)
        shown = short_labels([label for _, label in ticks])
        for y, label in ticks:
            text = ax.text(i + 0.04, y, shown[label], fontsize=7, va="center", ha="left")
            if shown[label] != label:  # the whole label, as the tooltip of the report's SVG
                text.set_gid(f"{TITLED}{i}-{len(ax.texts)}")
                text.set_label(label)
    ax.set_xlim(-0.2, len(axes) - 0.6)
    ax.set_ylim(-0.08, 1.08)
    ax.set_xticks(range(len(axes)), [_axis_name(name) for name in axes])
    ax.set_yticks([])
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    from matplotlib.cm import ScalarMappable

    fig.colorbar(ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    return fig


def effects_figure(per_run: Any, params: Sequence[str], metric: str) -> Any:
    """Each param's effect: the mean of ``metric`` (± one standard deviation) over the runs
    with each of its values (quantile bins for a param with many numeric values)."""
    Figure = require_matplotlib()
    count = max(len(params), 1)
    columns = min(count, 3)
    rows = math.ceil(count / columns)
    fig = Figure(figsize=(3.2 * columns, 2.6 * rows), layout="constrained")
    data = per_run[per_run[metric].map(lambda v: isinstance(v, (int, float)) and math.isfinite(v))]
    for i, name in enumerate(params):
        ax = fig.add_subplot(rows, columns, i + 1)
        stats = data[metric].astype(float).groupby(_levels(data[name]), observed=True, dropna=False).agg(
            ["mean", "std", "count"])
        try:
            stats = stats.sort_index()
        except TypeError:
            pass
        labels = [str(level) for level in stats.index]
        ax.errorbar(range(len(stats)), stats["mean"], yerr=stats["std"].fillna(0), fmt="o-", capsize=3,
                    color="C0", markersize=4)
        ax.set_xticks(range(len(stats)), labels, rotation=30 if max(map(len, labels), default=0) > 6 else 0,
                      fontsize=7, ha="right" if max(map(len, labels), default=0) > 6 else "center")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel(metric, fontsize=8)
        ax.grid(alpha=0.3)
    return fig


def _wide_range(values: Any) -> bool:
    """True for positive values spanning two orders of magnitude or more: drawn on a log axis."""
    low, high = float(values.min()), float(values.max())
    return low > 0 and high / low >= 100


def pareto_figure(points: Any, x: str, y: str, modes: tuple[str, str], front: Sequence[bool],
                  labels: Sequence[str], *, step: bool = True) -> Any:
    """Runs (or configurations) in the plane of two objectives: every point grey, the points of
    the Pareto ``front`` marked and labelled, and with ``step`` a step line through them, the
    edge of what the front dominates. ``modes`` are ``x``'s and ``y``'s ("min"/"max").

    Examples:
        >>> import pandas as pd
        >>> points = pd.DataFrame({"params": [1210, 4810, 2410], "val_accuracy": [0.90, 0.97, 0.89]})
        >>> fig = pareto_figure(points, "params", "val_accuracy", ("min", "max"), [True, True, False], ["1", "2", "3"])
        >>> [line.get_drawstyle() for line in fig.axes[0].lines]
        ['steps-post']
    """
    import numpy as np

    Figure = require_matplotlib()
    fig = Figure(figsize=(7.5, 4.2), layout="constrained")
    ax = fig.add_subplot()
    xs, ys = points[x].astype(float).to_numpy(), points[y].astype(float).to_numpy()
    on = np.asarray(front, dtype=bool)
    ax.scatter(xs[~on], ys[~on], s=28, color="#8c959f", alpha=0.8, linewidths=0, label="dominated", zorder=2)
    ax.scatter(xs[on], ys[on], s=46, color="#cf222e", edgecolors="black", linewidths=0.6, label="on the front",
               zorder=4)
    order = np.argsort(xs[on], kind="stable")
    if step and on.sum() > 1:
        # The edge of what the front dominates: it steps when x passes a front point going the
        # way x gets worse (right for "min", left for "max").
        ax.plot(xs[on][order], ys[on][order], drawstyle="steps-post" if modes[0] == "min" else "steps-pre",
                color="#cf222e", linewidth=1.2, alpha=0.8, zorder=3)
    for px, py, label in zip(xs[on], ys[on], np.asarray(labels, dtype=object)[on]):
        ax.annotate(str(label), (px, py), xytext=(4, 4), textcoords="offset points", fontsize=7, zorder=5)
    if len(xs) and _wide_range(points[x].astype(float)):
        ax.set_xscale("log")
    if len(ys) and _wide_range(points[y].astype(float)):
        ax.set_yscale("log")
    better = {"min": "lower is better", "max": "higher is better"}
    ax.set_xlabel(f"{x} ({better[modes[0]]})")
    ax.set_ylabel(f"{y} ({better[modes[1]]})")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small", frameon=False, loc="best")
    return fig

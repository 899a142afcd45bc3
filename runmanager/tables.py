"""Tables of a finished sweep in the formats people paste them into: a terminal, Markdown,
a paper (LaTeX with booktabs) or a spreadsheet (CSV).

An aggregated table (:func:`runmanager.aggregate`) shows each metric as one column
whose cells read ``0.9431 ± 0.0040`` (mean ± sample standard deviation over the
completed repeats); in the Markdown and LaTeX tables the best mean of each metric
column is bold.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from runmanager.display import format_value
from runmanager.errors import InvalidArgumentError
from runmanager.events import default_mode

__all__ = ["FORMATS", "format_table", "latex_table", "mean_std_columns"]

#: The table formats ``format_table`` and ``runmanager show --format`` know.
FORMATS = ("plain", "github", "latex", "csv")

_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    r"""``text`` with LaTeX's special characters escaped.

    Examples:
        >>> print(latex_escape("val_accuracy 5%"))
        val\_accuracy 5\%
    """
    return "".join(_LATEX_SPECIAL.get(char, char) for char in text)


def latex_table(headers: Sequence[str], rows: Sequence[Sequence[str]], aligns: Sequence[str]) -> str:
    r"""A booktabs ``tabular`` of cells that are LaTeX already (headers are escaped here).

    Examples:
        >>> print(latex_table(["lr", "loss"], [["0.1", "0.2500"]], ["left", "right"]))
        \begin{tabular}{lr}
        \toprule
        lr & loss \\
        \midrule
        0.1 & 0.2500 \\
        \bottomrule
        \end{tabular}
    """
    spec = "".join("r" if align == "right" else "l" for align in aligns)
    lines = [rf"\begin{{tabular}}{{{spec}}}", r"\toprule", " & ".join(map(latex_escape, headers)) + r" \\",
             r"\midrule"]
    lines += [" & ".join(row) + r" \\" for row in rows]
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines)


def mean_std_columns(frame: Any) -> list[str]:
    """The metrics of an aggregated frame: names that have both ``_mean`` and ``_std`` columns.

    Examples:
        >>> import pandas as pd
        >>> mean_std_columns(pd.DataFrame(columns=["lr", "runs", "loss_mean", "loss_std"]))
        ['loss']
    """
    columns = set(frame.columns)
    return [c[: -len("_mean")] for c in frame.columns
            if c.endswith("_mean") and c[: -len("_mean")] + "_std" in columns]


def _is_best(value: Any, best: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value == best


def format_table(frame: Any, fmt: str = "plain", *, params: Sequence[str] = (),
                 modes: dict[str, str] | None = None) -> str:
    """``frame`` as a table in ``fmt``: ``"plain"`` (aligned text), ``"github"`` (Markdown),
    ``"latex"`` (booktabs) or ``"csv"`` (every value as it is, for a spreadsheet).

    For an aggregated frame, the ``_mean`` and ``_std`` columns of each metric become one
    column of ``mean ± std`` cells (CSV keeps them apart), and in ``github`` and ``latex``
    the best mean of each metric is bold; ``modes`` overrides whether a metric is best
    low or high (default: by its name, low for losses and errors).

    Raises:
        InvalidArgumentError: an unknown format.

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"lr": [0.1, 0.01], "runs": [3, 3], "acc_mean": [0.9, 0.8],
        ...                       "acc_std": [0.01, 0.02]})
        >>> print(format_table(frame, "github", params=["lr"]))
        |   lr |   runs |                 acc |
        |------|--------|---------------------|
        |  0.1 |      3 | **0.9000 ± 0.0100** |
        | 0.01 |      3 |     0.8000 ± 0.0200 |
    """
    if fmt not in FORMATS:
        raise InvalidArgumentError(f"Unknown table format {fmt!r}; choose one of {', '.join(FORMATS)}.")
    if fmt == "csv":
        return frame.to_csv(index=False).rstrip("\n")
    combined = mean_std_columns(frame)
    modes = modes or {}
    columns: list[str] = []  # shown columns: a plain column, or a metric standing for its mean and std
    for column in frame.columns:
        if column.endswith("_std") and column[: -len("_std")] in combined:
            continue
        if column.endswith("_ci95") and column[: -len("_ci95")] in combined:
            continue
        columns.append(column[: -len("_mean")] if column.endswith("_mean") and column[: -len("_mean")] in combined
                       else column)
    best: dict[str, float] = {}
    for metric in combined:
        means = frame[f"{metric}_mean"].astype(float)
        means = means[means.map(math.isfinite)]
        if len(frame) > 1 and not means.empty:
            best[metric] = means.min() if modes.get(metric, default_mode(metric)) == "min" else means.max()
    latex = fmt == "latex"

    def cell(column: str, row: Any) -> str:
        if column in combined:
            mean, std = row[f"{column}_mean"], row[f"{column}_std"]
            if not isinstance(mean, float) or math.isnan(mean):
                return ""  # no completed run to average
            text = format_value(column, mean)
            if isinstance(std, float) and not math.isnan(std):
                text += (r" $\pm$ " if latex else " ± ") + format_value(column, std)
            if fmt != "plain" and column in best and _is_best(mean, best[column]):
                return rf"\textbf{{{text}}}" if latex else f"**{text}**"
            return text
        value = row[column]
        text = format_value(column, None if value is None or value != value else value, param=column in params)
        return latex_escape(text) if latex else text

    rows = [[cell(column, row) for column in columns] for row in frame.to_dict("records")]  # ints stay ints
    aligns = ["right" if column in combined or frame[column].dtype.kind in "iuf" else "left" for column in columns]
    if latex:
        return latex_table(columns, rows, aligns)
    return tabulate(rows, headers=columns, tablefmt="simple" if fmt == "plain" else "github",
                    disable_numparse=True, colalign=aligns)

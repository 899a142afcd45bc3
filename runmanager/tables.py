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

__all__ = ["FORMATS", "format_table", "latex_table", "mean_std_columns", "mean_std_text", "shown_columns"]

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


def shown_columns(frame: Any) -> tuple[list[str], list[str]]:
    """The columns a table of ``frame`` shows, and the metrics among them: an aggregated
    frame's ``<m>_mean``, ``<m>_std`` and ``<m>_ci95`` show as one column ``<m>``.

    Examples:
        >>> import pandas as pd
        >>> shown_columns(pd.DataFrame(columns=["lr", "loss_mean", "loss_std", "loss_ci95"]))
        (['lr', 'loss'], ['loss'])
    """
    combined = mean_std_columns(frame)
    hidden = {f"{metric}_{stat}" for metric in combined for stat in ("std", "ci95")}
    means = {f"{metric}_mean": metric for metric in combined}
    return [means.get(c, c) for c in frame.columns if c not in hidden], combined


def mean_std_text(metric: str, mean: Any, std: Any, plus_minus: str = " ± ") -> str:
    """A ``mean ± std`` cell; only the mean for a single run (NaN std), empty without a mean.

    Examples:
        >>> mean_std_text("loss", 0.25, 0.0123), mean_std_text("loss", 0.25, float("nan"))
        ('0.2500 ± 0.0123', '0.2500')
    """
    if not isinstance(mean, float) or math.isnan(mean):
        return ""  # no completed run to average
    text = format_value(metric, mean)
    if isinstance(std, float) and not math.isnan(std):
        text += plus_minus + format_value(metric, std)
    return text


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
    columns, combined = shown_columns(frame)
    modes = modes or {}
    best: dict[str, float] = {}
    for metric in combined:
        means = frame[f"{metric}_mean"].astype(float)
        means = means[means.map(math.isfinite)]
        if len(frame) > 1 and not means.empty:
            best[metric] = means.min() if modes.get(metric, default_mode(metric)) == "min" else means.max()
    latex = fmt == "latex"

    def cell(column: str, row: Any) -> str:
        if column in combined:
            mean = row[f"{column}_mean"]
            text = mean_std_text(column, mean, row[f"{column}_std"], r" $\pm$ " if latex else " ± ")
            if text and fmt != "plain" and column in best and _is_best(mean, best[column]):
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

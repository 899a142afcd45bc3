"""Tables of a finished sweep in the formats people paste them into: a terminal, Markdown,
a paper (LaTeX with booktabs) or a spreadsheet (CSV).

An aggregated table (:func:`runmanager.aggregate`) shows each metric as one column
whose cells read ``0.9431 ± 0.0040`` (mean ± sample standard deviation over the
completed repeats); in the Markdown and LaTeX tables the best mean of each metric
column is bold. A configuration whose mean is over fewer completed repeats than another's
(a repeat failed, diverged or was pruned) has its ``completed`` count marked ``*``, and a
note under the table says what the mark means: its mean may rank high on luck.

A frame from ``aggregate(metric, test=...)`` carries which metric was tested (its
``attrs["significance"]``): in that metric's column every tied-best cell is bold (marked
``†`` in plain text), not only the best mean, and a note under the table names the test
and alpha. CSV stays data: the ``p_value`` and ``tied_best`` columns.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tabulate import tabulate

from runmanager.display import format_value
from runmanager.errors import InvalidArgumentError
from runmanager.events import default_mode

__all__ = ["FEWER_MARK", "FORMATS", "TIED_MARK", "add_notes", "fewer_completed", "fewer_completed_note", "format_table",
           "latex_table", "mean_std_columns", "mean_std_text", "shown_columns", "tied_best_note"]

#: The table formats ``format_table`` and ``runmanager show --format`` know.
FORMATS = ("plain", "github", "latex", "csv")
#: The mark on the ``completed`` count of a configuration with fewer completed repeats than another.
FEWER_MARK = "*"
#: The mark on a tied-best cell in a plain-text table, which cannot be bold.
TIED_MARK = "†"

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
    if "significance" in frame.attrs:
        hidden.add("tied_best")  # the bold cells (or marks) say it
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


def fewer_completed(frame: Any, most: int | None = None) -> list[bool]:
    """Which rows of an aggregated frame have a mean over fewer completed runs than ``most``
    (default: the most any row of ``frame`` has); a row with no completed run has no mean and
    is not marked. All False for a frame without ``completed`` or ``_mean`` columns.

    Examples:
        >>> import pandas as pd
        >>> frame = pd.DataFrame({"lr": [0.1, 0.01, 1.0], "runs": [2, 2, 2], "completed": [1, 2, 0],
        ...                       "acc_mean": [0.9, 0.8, None], "acc_std": [None, 0.02, None]})
        >>> fewer_completed(frame)
        [True, False, False]
    """
    if "completed" not in frame.columns or not mean_std_columns(frame) or frame.empty:
        return [False] * len(frame)
    counts = [int(count) for count in frame["completed"]]
    most = max(counts) if most is None else most
    return [0 < count < most for count in counts]


def fewer_completed_note(most: int) -> str:
    """The note under a table with marked rows: what ``*`` means.

    Examples:
        >>> fewer_completed_note(3)
        '* completed fewer repeats than other configurations (up to 3): its mean is over fewer runs.'
    """
    return (f"{FEWER_MARK} completed fewer repeats than other configurations (up to {most}): "
            "its mean is over fewer runs.")


def tied_best_note(significance: dict[str, Any], fmt: str = "github") -> str:
    """The note under a table whose tested metric has its tied-best cells bold (in ``fmt``
    ``"plain"``: marked ``†``): which metric, which test, and alpha.

    Examples:
        >>> print(tied_best_note({"metric": "val_accuracy", "test": "welch", "alpha": 0.05}))
        Bold in val_accuracy: the best mean, and the means not significantly worse (one-sided Welch's t-test against the best, Holm-corrected, alpha = 0.05).
    """
    from runmanager.significance import TEST_NAMES

    lead = f"{TIED_MARK} in" if fmt == "plain" else "Bold in"
    return (f"{lead} {significance['metric']}: the best mean, and the means not significantly worse (one-sided "
            f"{TEST_NAMES[significance['test']]} against the best, Holm-corrected, alpha = {significance['alpha']:g}).")


def _is_best(value: Any, best: float) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value == best


def format_table(frame: Any, fmt: str = "plain", *, params: Sequence[str] = (),
                 modes: dict[str, str] | None = None, most_completed: int | None = None) -> str:
    """``frame`` as a table in ``fmt``: ``"plain"`` (aligned text), ``"github"`` (Markdown),
    ``"latex"`` (booktabs) or ``"csv"`` (every value as it is, for a spreadsheet).

    For an aggregated frame, the ``_mean`` and ``_std`` columns of each metric become one
    column of ``mean ± std`` cells (CSV keeps them apart), and in ``github`` and ``latex``
    the best mean of each metric is bold; ``modes`` overrides whether a metric is best
    low or high (default: by its name, low for losses and errors). In the metric a frame
    from ``aggregate(metric, test=...)`` was tested on, every tied-best cell is bold
    (``†`` in plain text), with a note under the table. A configuration with
    fewer completed runs than ``most_completed`` (default: the most of any row) has its
    ``completed`` count marked ``*``, explained in a note under the table. Values are
    never cut (see :func:`runmanager.display.format_value`).

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
    tested = frame.attrs.get("significance") if "tied_best" in frame.columns else None
    tested_metric = tested["metric"] if tested and tested["metric"] in combined and len(frame) > 1 else None

    def cell(column: str, row: Any) -> str:
        if column in combined:
            mean = row[f"{column}_mean"]
            text = mean_std_text(column, mean, row[f"{column}_std"], r" $\pm$ " if latex else " ± ")
            if column == tested_metric:
                bold = bool(text) and row["tied_best"] is True
                if bold and fmt == "plain":
                    return text + TIED_MARK
            else:
                bold = bool(text) and fmt != "plain" and column in best and _is_best(mean, best[column])
            if bold:
                return rf"\textbf{{{text}}}" if latex else f"**{text}**"
            return text
        value = row[column]
        text = format_value(column, None if value is None or value != value else value, param=column in params)
        return latex_escape(text) if latex else text

    rows = [[cell(column, row) for column in columns] for row in frame.to_dict("records")]  # ints stay ints
    aligns = ["right" if column in combined or frame[column].dtype.kind in "iuf" else "left" for column in columns]
    fewer = fewer_completed(frame, most_completed)
    note = ""
    if any(fewer):
        mark = {"latex": f"$^{{{FEWER_MARK}}}$", "github": "\\" + FEWER_MARK}.get(fmt, FEWER_MARK)
        at = columns.index("completed")
        for row, marked in zip(rows, fewer):
            if marked:
                row[at] += mark
        most = most_completed if most_completed is not None else int(frame["completed"].max())
        note = fewer_completed_note(most)
    notes = []
    if note:  # the "*" escaped in Markdown, else it starts a list
        text = note[len(FEWER_MARK):].strip()
        notes.append({"latex": f"{mark} {latex_escape(text)}", "github": "\\" + note}.get(fmt, note))
    if tested_metric:
        notes.append(latex_escape(tied_best_note(tested, fmt)) if latex else tied_best_note(tested, fmt))
    if latex:
        table = latex_table(columns, rows, aligns)
    else:
        table = tabulate(rows, headers=columns, tablefmt="simple" if fmt == "plain" else "github",
                         disable_numparse=True, colalign=aligns)
    return add_notes(table, fmt, notes, len(columns))


def add_notes(table: str, fmt: str, notes: Sequence[str], width: int) -> str:
    r"""``table`` with ``notes`` under it: lines in plain text, paragraphs in Markdown, and in
    LaTeX last rows of the ``tabular`` (``width`` columns wide, the notes LaTeX already), so
    they stay with the table in the paper.

    Examples:
        >>> print(add_notes(latex_table(["lr"], [["0.1"]], ["left"]), "latex", ["A note."], 1))
        \begin{tabular}{l}
        \toprule
        lr \\
        \midrule
        0.1 \\
        \bottomrule
        \multicolumn{1}{l}{\footnotesize A note.} \\
        \end{tabular}
    """
    if fmt == "latex":
        end = "\n" + r"\end{tabular}"
        rows = "".join("\n" + rf"\multicolumn{{{width}}}{{l}}{{\footnotesize {text}}} \\" for text in notes)
        return table[: table.rindex(end)] + rows + end if notes else table
    return ("\n\n" if fmt == "github" else "\n").join([table, *notes])

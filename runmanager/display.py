"""How results are shown while a sweep runs: one growing table.

In a terminal, the header is printed once and then one aligned line per epoch
as it finishes; a new header is printed only when the columns change (a new
metric or parameter appears). In Jupyter, one displayed table is updated in
place through an ``IPython.display`` handle.
"""

from __future__ import annotations

import json
import math
import sys
from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from tabulate import tabulate

__all__ = ["LiveTable", "format_value", "in_jupyter", "value_text"]

_DURATIONS = ("epoch_duration", "run_duration")
#: An error message in a table is cut to its first line and this many characters: its whole text
#: is in the journal, the CSV and the report. Nothing else is ever cut, so that two params that
#: differ only at their end (``resnet50_pretrained_imagenet_frozen`` and ``..._finetuned``) never
#: read the same.
_MAX_ERROR = 60
#: Rows the Jupyter table shows: the latest ones, so a long sweep does not re-render thousands.
JUPYTER_ROWS = 30


def value_text(value: Any) -> str:
    """A value as text: a list or a dict as JSON (``[64, 32]``, ``{"name": "adam"}``), anything
    else as ``str``. Distinct lists and dicts give distinct texts, so the text can stand for
    the value where a hashable key is needed.

    Examples:
        >>> value_text([64, 32]), value_text({"name": "adam", "lr": 0.1}), value_text("relu")
        ('[64, 32]', '{"name": "adam", "lr": 0.1}', 'relu')
    """
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def format_value(column: str, value: Any, *, param: bool = False) -> str:
    """A cell as a person reads it: 4 decimals, durations in seconds, lists and dicts as JSON.

    A parameter (``param=True``) is shown as given, ``0.001`` rather than ``0.0010``.
    Text is never cut, except an ``error`` message: its first line, at most 60 characters.

    Examples:
        >>> format_value("loss", 0.123456789), format_value("epoch_duration", 1.23456)
        ('0.1235', '1.23s')
        >>> format_value("lr", 0.001, param=True), format_value("layers", [64, 32], param=True)
        ('0.001', '[64, 32]')
    """
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        if column in _DURATIONS:
            return f"{value:.2f}s"
        if param:
            return f"{value:g}"
        if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
            return f"{value:.3g}"
        return f"{value:.4f}"
    text = value_text(value)
    if column == "error":
        first = text.strip().split("\n", 1)[0]
        if first != text.strip() or len(first) > _MAX_ERROR:
            return first[: _MAX_ERROR - 1] + "…"
    return text


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _plain(text: str) -> dict[str, str]:
    """``text`` as a display shows plain text: displayed as a str, it would show as its repr, quoted."""
    return {"text/plain": text}


def in_jupyter() -> bool:
    """True inside a Jupyter kernel, where a table can be updated in place."""
    if "IPython" not in sys.modules:
        return False
    from IPython import get_ipython

    shell = get_ipython()
    return shell is not None and type(shell).__name__ in ("ZMQInteractiveShell", "Shell")


class LiveTable:
    """A table that grows by one line per epoch.

    Args:
        stream: where terminal lines go (default: ``sys.stdout`` at each write).
        jupyter: update one displayed table in place; default: when in Jupyter.
        max_rows: how many of the latest rows the Jupyter table shows.

    Examples:
        >>> table = LiveTable()
        >>> table.add({"run": 1, "epoch": 1, "loss": 0.5, "epoch_duration": 0.25})
          run    epoch        loss    epoch_duration
        -----  -------  ----------  ----------------
            1        1      0.5000             0.25s
    """

    def __init__(self, stream: TextIO | None = None, *, jupyter: bool | None = None,
                 max_rows: int = JUPYTER_ROWS) -> None:
        self._stream = stream
        self.jupyter = in_jupyter() if jupyter is None else jupyter
        self._columns: list[str] | None = None
        self._widths: list[int] = []
        self._aligns: list[str] = []
        self._rows: deque[Mapping[str, Any]] = deque(maxlen=max_rows)
        self._added = 0
        self._handle: Any = None
        self._status: Any = None
        self._params: set[str] = set()
        self.html = ""

    def _write(self, text: str) -> None:
        stream = self._stream or sys.stdout
        stream.write(text + "\n")
        stream.flush()

    def note(self, text: str) -> None:
        """A line of text between table rows (a failed run, the end of a sweep)."""
        if self.jupyter:
            from IPython.display import display

            display(_plain(text), raw=True)
        else:
            self._write(text)

    def status(self, text: str) -> None:
        """A status line (a sweep's progress): appended in a terminal, so a log reads the same;
        in Jupyter one display updated in place."""
        if not self.jupyter:
            self._write(text)
            return
        from IPython.display import display

        if self._status is None:
            self._status = display(_plain(text), raw=True, display_id=True)
        else:
            self._status.update(_plain(text), raw=True)

    def add(self, row: Mapping[str, Any], params: Sequence[str] = ()) -> None:
        """Show one more row; the columns named in ``params`` are parameters."""
        self._params.update(params)
        if self.jupyter:
            self._rows.append(dict(row))
            self._added += 1
            self._update_jupyter()
            return
        columns = list(row)
        cells = [format_value(c, row[c], param=c in self._params) for c in columns]
        if columns != self._columns:
            self._start(columns, row, cells)
            return
        if any(len(cell) > width and align == "left" for cell, width, align in zip(cells, self._widths, self._aligns)):
            # A longer text than its column was sized for (a param, never cut): a new header with
            # the wider column, so the lines below stay aligned under it.
            self._start(columns, row, cells, at_least=self._widths)
            return
        padded = [self._pad(cell, i) for i, cell in enumerate(cells)]
        self._write(self._render(padded).splitlines()[-1])

    def _start(self, columns: list[str], row: Mapping[str, Any], cells: list[str],
               at_least: Sequence[int] = ()) -> None:
        self._columns = columns
        self._aligns = ["right" if _is_number(row[c]) or c in _DURATIONS else "left" for c in columns]
        # Leave room for wider numbers later, so lines stay aligned under the header.
        self._widths = [
            max(len(c), len(cell) + (2 if _is_number(row[c]) else 0), 3 if c in ("run", "epoch") else 0)
            for c, cell in zip(columns, cells)
        ]
        self._widths = [max([width, *at_least[i:i + 1]]) for i, width in enumerate(self._widths)]
        padded = [self._pad(cell, i) for i, cell in enumerate(cells)]
        self._write(self._render(padded))

    def _pad(self, cell: str, index: int) -> str:
        width = self._widths[index]
        return cell.rjust(width) if self._aligns[index] == "right" else cell.ljust(width)

    def _render(self, padded: Sequence[str]) -> str:
        assert self._columns is not None
        headers = [self._pad(c, i) for i, c in enumerate(self._columns)]
        return tabulate([padded], headers=headers, tablefmt="simple", disable_numparse=True, colalign=self._aligns)

    def _update_jupyter(self) -> None:
        from IPython.display import HTML, display

        columns: dict[str, None] = {}
        for row in self._rows:
            columns.update(dict.fromkeys(row))
        table = [[format_value(c, row.get(c), param=c in self._params) for c in columns] for row in self._rows]
        self.html = tabulate(table, headers=list(columns), tablefmt="html", disable_numparse=True)
        if self._added > len(self._rows):
            self.html = f"<p>the latest {len(self._rows)} of {self._added} rows</p>" + self.html
        if self._handle is None:
            self._handle = display(HTML(self.html), display_id=True)
        else:
            self._handle.update(HTML(self.html))

"""The live table sink: one line per epoch in a terminal, one bounded table in Jupyter."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runmanager.display import LiveTable
from runmanager.events import EpochEnded, RunEnded, Status, SweepEnded, SweepStarted
from runmanager.results import Results
from runmanager.sinks.base import Sink

if TYPE_CHECKING:
    from runmanager.results import RunRecord

__all__ = ["TableSink"]


class TableSink(Sink):
    """Shows every epoch row as it ends (or, with ``per_run``, each run's summary row when it
    ends), a note for each run that did not complete, and how the sweep ended.

    Examples:
        m = RunManager("runs/x", sinks=[TableSink(LiveTable(stream=open("table.txt", "w")))], verbose=0)
    """

    def __init__(self, table: LiveTable | None = None, log_dir: Path | None = None, *, per_run: bool = False) -> None:
        self.table = table if table is not None else LiveTable()
        self.log_dir = log_dir
        self.per_run = per_run
        self.kept: dict[str, int] = {}  # runs of a resumed sweep that ended before it, by status

    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        self.kept = {}

    def on_run_kept(self, record: RunRecord) -> None:
        self.kept[record.status.value] = self.kept.get(record.status.value, 0) + 1

    def on_epoch_end(self, event: EpochEnded, record: RunRecord) -> None:
        if not self.per_run:
            self.table.add(Results.row(record, event), params=record.params)

    def on_run_end(self, event: RunEnded, record: RunRecord) -> None:
        if self.per_run:
            row = Results.summary_row(record)
            row.pop("error")  # said in the note below, where it has room
            self.table.add(row, params=record.params)
        if event.status != Status.COMPLETED:
            self.table.note(f"run {event.run} {event.status}" + (f": {event.error}" if event.error else ""))

    def on_note(self, text: str) -> None:
        self.table.note(text)

    def on_sweep_end(self, event: SweepEnded) -> None:
        counts = dict(event.counts)
        for status, n in self.kept.items():
            counts[status] = counts.get(status, 0) + n
        done = ", ".join(f"{n} {status}" for status, n in counts.items()) or "nothing to run"
        kept = sum(self.kept.values())
        if kept:
            done += f" ({'all' if kept == sum(counts.values()) else kept} of them from before the resume)"
        where = f"; results in {os.fspath(self.log_dir)}" if self.log_dir is not None else ""
        how = "stopped by its time budget" if event.reason == "timeout" else event.reason
        self.table.note(f"sweep {how}: {done}{where}")
        self.kept = {}

"""The progress sink: after every run, one line with how far the sweep is, when it ends, and
which run leads.

    progress: 12/40 runs (10 completed, 1 failed, 1 pruned) | 1m32s elapsed, ETA 3m10s | best: run 7, val_accuracy 0.9431

The ETA is the mean time of the runs so far times the runs left, divided among the
workers; there is none while the total is unknown. The best run is the one with the best
value at its best epoch of the sweep's metric (``sweep(metric=...)``, else its search's or
pruner's when it has one, else the first of ``val_accuracy``, ``val_loss``, ``accuracy``,
``loss`` that the runs log), as checkpoints and ``best_model()`` judge runs. Lines are
appended, never redrawn, so a log file of the output reads the same as the terminal;
in Jupyter the line is one display updated in place.

A resumed sweep counts the runs of its search that ended before the resume as they are
skipped: they are among the runs done and the best run, not in the ETA's run times.
"""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING, Any

from runmanager.display import LiveTable
from runmanager.events import EpochEnded, RunEnded, Status, SweepStarted, default_mode
from runmanager.results import best_epoch, epoch_value
from runmanager.sinks.base import Sink

if TYPE_CHECKING:
    from runmanager.results import RunRecord

__all__ = ["ProgressSink", "format_seconds"]

_PREFERRED = ("val_accuracy", "val_loss", "accuracy", "loss")


def format_seconds(seconds: float) -> str:
    """A duration as a person reads it.

    Examples:
        >>> format_seconds(5.2), format_seconds(92), format_seconds(4000)
        ('5s', '1m32s', '1h06m')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class ProgressSink(Sink):
    """Prints the progress line of a sweep after each of its runs.

    Examples:
        m = RunManager("runs/x", sinks=[ProgressSink(LiveTable())], verbose=0)
    """

    def __init__(self, table: LiveTable | None = None) -> None:
        self.table = table if table is not None else LiveTable()
        self.active = False
        self.line = ""

    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        self.active = True
        self.started = time.monotonic()
        self.total = event.total
        self.workers = max(1, event.workers)
        self.metric = event.metric
        self.mode = event.mode or (default_mode(event.metric) if event.metric else "max")
        self.counts: dict[str, int] = {}
        self.durations: list[float] = []
        self.best: tuple[float, int] | None = None
        self.line = ""
        self.kept_since_line = False  # runs from before the resume counted after the last line

    def _pick_metric(self, metrics: Any) -> None:
        if self.metric is None:
            self.metric = next((name for name in _PREFERRED if name in metrics), None)
            if self.metric is not None:
                self.mode = default_mode(self.metric)

    def on_epoch_end(self, event: EpochEnded, record: RunRecord) -> None:
        if self.active:
            self._pick_metric(event.metrics)

    def _count(self, record: RunRecord) -> None:
        self.counts[record.status.value] = self.counts.get(record.status.value, 0) + 1
        if record.status == Status.COMPLETED and self.metric is not None:
            position = best_epoch(record, self.metric, self.mode)  # runs are ranked by their best epoch
            value = None if position is None else epoch_value(record.epochs[position], self.metric)
            if value is not None and math.isfinite(value) and (
                    self.best is None or (value < self.best[0] if self.mode == "min" else value > self.best[0])):
                self.best = (value, record.number)

    def on_run_kept(self, record: RunRecord) -> None:
        if not self.active:
            return
        if record.epochs:
            self._pick_metric(record.epochs[-1].metrics)
        self._count(record)
        self.kept_since_line = True

    def on_run_end(self, event: RunEnded, record: RunRecord) -> None:
        if not self.active:
            return
        self._count(record)
        self.durations.append(event.run_duration)
        self._show()

    def _show(self) -> None:
        self.line = self.render()
        self.kept_since_line = False
        self.table.status(self.line)

    def render(self) -> str:
        done = sum(self.counts.values())
        of = f"/{self.total}" if self.total is not None else ""
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items())
        elapsed = time.monotonic() - self.started
        line = f"progress: {done}{of} runs ({counts}) | {format_seconds(elapsed)} elapsed"
        if self.total is not None and done < self.total and self.durations:
            eta = sum(self.durations) / len(self.durations) * (self.total - done) / self.workers
            line += f", ETA {format_seconds(eta)}"
        if self.best is not None:
            line += f" | best: run {self.best[1]}, {self.metric} {self.best[0]:.4f}"
        return line

    def on_sweep_end(self, event: Any) -> None:
        if self.active and self.line and self.kept_since_line:
            self._show()  # runs from before the resume came after the last run of this sweep
        self.active = False

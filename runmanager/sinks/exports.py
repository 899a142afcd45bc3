"""The exports sink: ``results.csv/json`` and ``summary.csv/json``, rewritten at a bounded cost.

Rewriting the exports reads every run, so it grows with the sweep. After a run
they are rewritten only when the estimated cost of that (the last rewrite's
cost, scaled by the rows since) is at most ``budget`` (5%) of the time since the
last rewrite: after every run of an ordinary sweep, spaced out over a sweep of
thousands of short runs, so the bookkeeping per run stays constant. They are
always rewritten when a sweep ends or is interrupted, when the manager is
closed, and at interpreter exit. The journal holds every epoch regardless.
"""

from __future__ import annotations

import atexit
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

from runmanager.events import EpochEnded, RunEnded, SweepEnded
from runmanager.sinks.base import Sink
from runmanager.storage import write_exports, write_failure

if TYPE_CHECKING:
    from runmanager.results import Results, RunRecord

__all__ = ["ExportSink"]

_PENDING: weakref.WeakSet[ExportSink] = weakref.WeakSet()


@atexit.register
def _flush_pending() -> None:  # pragma: no cover - runs at interpreter exit
    for sink in list(_PENDING):
        try:
            sink.flush()
        except Exception:  # noqa: BLE001 - the journal has everything; exports are derived
            pass


class ExportSink(Sink):
    """Keeps the export files of ``log_dir`` up to date with ``results``.

    Args:
        log_dir: where the files go.
        results: the fold the files are made from (the manager's own).
        budget: the share of the elapsed time a rewrite after a run may cost.

    Examples:
        sink = ExportSink(Path("runs/x"), m_results)
    """

    def __init__(self, log_dir: Path, results: Results, *, budget: float = 0.05) -> None:
        self.log_dir = log_dir
        self.results = results
        self.budget = budget
        self.writes = 0
        self._cost = 0.0  # seconds the last rewrite took
        self._rows_then = 0
        self._last = time.perf_counter()
        self._dirty = False

    def _mark(self) -> None:
        if not self._dirty:
            self._dirty = True
            _PENDING.add(self)

    def on_epoch_end(self, event: EpochEnded, record: RunRecord) -> None:
        self._mark()

    def on_run_end(self, event: RunEnded, record: RunRecord) -> None:
        self._mark()
        estimate = self._cost * max(self.results.rows_count, 1) / max(self._rows_then, 1)
        if estimate <= self.budget * (time.perf_counter() - self._last):
            self.write()

    def on_sweep_end(self, event: SweepEnded) -> None:
        self.flush()

    def flush(self) -> None:
        if self._dirty:
            self.write()

    def write(self) -> None:
        """Rewrite the four files now, atomically."""
        start = time.perf_counter()
        try:
            write_exports(self.log_dir, self.results)
        except OSError as exc:
            raise write_failure(self.log_dir, exc) from exc
        self._last = time.perf_counter()
        self._cost = self._last - start
        self._rows_then = self.results.rows_count
        self._dirty = False
        self.writes += 1
        _PENDING.discard(self)

    def reset(self) -> None:
        self._dirty = False
        _PENDING.discard(self)


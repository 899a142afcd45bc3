"""The record of a manager's runs: each event folded into the results and handed to the sinks.

A :class:`Recorder` is where every event of a RunManager goes, whoever made it:
the run handle of this process, a worker's events that reached the driver, the
sweep's own start and end. It folds the event into the results
(:mod:`runmanager.results`), sends it to the sinks (journal, exports, table,
TensorBoard, yours), writes the checkpoint bytes a worker without the log_dir
sends, and lets a :class:`~runmanager.checkpoints.CheckpointKeeper` delete the
checkpoints that ended runs no longer need. Executors and sweeps talk to it, not
to the RunManager.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from runmanager.checkpoints import copy_model_file, write_model_bytes
from runmanager.errors import LogDirError, LogDirWriteError
from runmanager.events import (
    Event,
    ModelBytes,
    RunEnded,
    RunStarted,
    SinkState,
    Status,
    SweepEnded,
    SweepStarted,
)
from runmanager.naming import params_of
from runmanager.results import Results, RunRecord
from runmanager.sinks.base import SinkList
from runmanager.storage import write_failure

if TYPE_CHECKING:
    from runmanager.checkpoints import CheckpointKeeper

__all__ = ["Recorder"]


class Recorder:
    """Folds events into ``results`` and hands them to ``sinks``.

    Args:
        sinks: the consumers of the events.
        keep: keep every run's record (False in a worker's copy, which keeps only its current run).

    Examples:
        >>> recorder = Recorder(SinkList())
        >>> recorder.record(RunStarted.of(1, {"lr": 0.1})).status
        <Status.RUNNING: 'running'>
        >>> recorder.lost(1, {"lr": 0.1}, "worker process exited with code -9", started=True)
        >>> recorder.run(1).status
        <Status.INTERRUPTED: 'interrupted'>
    """

    def __init__(self, sinks: SinkList, *, keep: bool = True) -> None:
        self.sinks = sinks
        self.keep = keep
        self.results = Results()
        self.log_dir: Path | None = None
        self.keeper: CheckpointKeeper | None = None
        #: set when another RunManager of this process took the log_dir over: nothing more is recorded
        self.taken_over = False
        #: the first failure to write the log_dir
        self.write_error: LogDirWriteError | None = None

    def record(self, event: Event) -> RunRecord | None:
        """Fold one run event into the results and send it to every sink; return its run's record."""
        if self.taken_over:
            raise LogDirError(
                f"Another RunManager took over log_dir {str(self.log_dir)!r} while run {getattr(event, 'run', '?')} "
                "was going here; this run's later epochs are not recorded. Use one RunManager per log_dir."
            )
        if isinstance(event, ModelBytes) and self.log_dir is not None:
            target = self.log_dir / event.file
            try:  # the file first, then its journal event: the journal never names an incomplete file
                if event.same_as is not None:
                    size = copy_model_file(self.log_dir / event.same_as, target)
                else:
                    size = write_model_bytes(target, event.data)
            except OSError as exc:
                self.write_error = write_failure(self.log_dir, exc)
                raise self.write_error from exc
            event = event.saved(size)
        if isinstance(event, RunStarted) and self.keeper is not None:
            self.keeper.run_started(self.results.runs.get(event.run), event)
        record = self.results.apply(event)
        try:
            self.sinks.dispatch(event, record)
        except LogDirWriteError as exc:
            self.write_error = exc
            raise
        if isinstance(event, RunEnded):
            if self.keeper is not None and record is not None:
                self.keeper.run_ended(record, self.record)
            if not self.keep:
                self.results.forget(event.run)
        return record

    def run(self, number: int) -> RunRecord | None:
        """What is known of run ``number`` (status, epochs, checkpoints), or None."""
        return self.results.runs.get(number)

    def lost(self, number: int, run: Any, error: str, *, started: bool, status: Status = Status.INTERRUPTED) -> None:
        """Record run ``number`` as ended with ``status`` and ``error`` where the run itself could not
        say so: its worker died or was stopped, or the sweep found it unusable after it ended.
        ``started``: its start was recorded already."""
        if not started:
            self.record(RunStarted.of(number, params_of(run)))
        record = self.results.runs[number]
        self.record(RunEnded(number, record.run_id, status, len(record.epochs), record.run_duration or 0.0, error))

    def save(self, event: SinkState) -> None:
        """Fold a sink's own state into the results and hand it to the sinks (the journal writes it):
        what :meth:`runmanager.sinks.SinkStore.save` does."""
        if self.taken_over:
            return  # another RunManager writes this log_dir now; its runs are no longer this sink's
        self.results.apply(event)
        try:
            self.sinks.on_sink_state(event)
        except LogDirWriteError as exc:
            self.write_error = exc
            raise

    def note(self, text: str) -> None:
        """Show a line to the person watching; it is not recorded."""
        self.sinks.on_note(text)

    def sweep_started(self, event: SweepStarted, search: Any) -> None:
        """A sweep over ``search`` starts (its executor is ready)."""
        self.results.apply(event)
        self.sinks.on_sweep_start(event, search)

    def kept(self, record: RunRecord) -> None:
        """The resumed sweep keeps ``record``, a run that ended before the resume, instead of
        running it again (the progress line counts it)."""
        self.sinks.on_run_kept(record)

    def sweep_ended(self, event: SweepEnded) -> None:
        """The sweep ended; the exports are brought up to date."""
        try:
            self.sinks.on_sweep_end(event)
        except LogDirWriteError as exc:
            self.write_error = exc
            raise

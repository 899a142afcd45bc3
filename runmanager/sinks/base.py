"""The Sink interface: one class whose hooks are optional no-ops, and the list that fans events out.

Re-exported by :mod:`runmanager.sinks`, with the sinks users add themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runmanager.events import (
    CheckpointRemoved,
    CheckpointSaved,
    EpochEnded,
    Event,
    ModelBytes,
    RunEnded,
    RunNote,
    RunStarted,
    SinkState,
    SweepEnded,
    SweepStarted,
)

if TYPE_CHECKING:
    from runmanager.results import Results, RunRecord

__all__ = ["Sink", "SinkList", "SinkStore"]


class SinkStore:
    """What a sink added to a RunManager is handed (:meth:`Sink.on_attach`): the manager's log_dir,
    the fold of its events, and a corner of the journal for state of the sink's own.

    What a sink saves is a :class:`~runmanager.events.SinkState` event: journaled, folded into
    ``results.sink_state``, and so found again by a resumed sweep and by readers of the log_dir.
    Use it from the hooks (the thread that records the events), not from a thread of the sink's own.

    Args:
        recorder: the manager's :class:`~runmanager.recorder.Recorder`.

    Examples:
        class RemembersRuns(Sink):
            def on_attach(self, store):
                self.store = store
            def on_run_start(self, event, record):
                self.store.save("mine", f"run {event.run}", "seen")
    """

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    @property
    def log_dir(self) -> Path | None:
        """The manager's log_dir once it is open (from the first run or sweep on), else None."""
        return self._recorder.log_dir

    @property
    def results(self) -> Results:
        """The fold of every event so far, the journal's included after a resume. Read it, never change it."""
        return self._recorder.results

    def state(self, sink: str) -> dict[str, Any]:
        """What sink ``sink`` saved, key by key (the latest value of each), journal included."""
        return dict(self._recorder.results.sink_state.get(sink, {}))

    def save(self, sink: str, key: str, value: Any) -> None:
        """Keep ``value`` (anything JSON holds) under ``key`` for sink ``sink``: folded and journaled now."""
        self._recorder.save(SinkState(sink, key, value))


class Sink:
    """A consumer of events; every hook is an optional no-op.

    Run hooks get the event and the run's record after the event was folded
    into it (``record.epochs`` already holds an ended epoch). Sweep hooks get
    the sweep's search (its ``fields``, ``values_of`` and ``hparams``) at the
    start, and the counts by status at the end, also when the sweep is
    interrupted or stopped.
    """

    def on_attach(self, store: SinkStore) -> None:
        """The sink was added to a RunManager (``sinks=`` or ``add_sink``); ``store`` gives it the
        log_dir, the fold of the events and a place in the journal for state of its own."""

    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        """A sweep starts (after the log_dir was opened, before its first run)."""

    def on_run_start(self, event: RunStarted, record: RunRecord) -> None:
        """A run starts."""

    def on_epoch_end(self, event: EpochEnded, record: RunRecord) -> None:
        """An epoch of a run ended."""

    def on_run_end(self, event: RunEnded, record: RunRecord) -> None:
        """A run ended, with any status."""

    def on_checkpoint(self, event: CheckpointSaved | CheckpointRemoved | ModelBytes, record: RunRecord) -> None:
        """A run's model was saved to a checkpoint file (complete on disk), or such a file was deleted;
        in a worker without the log_dir, its bytes are on their way to the driver (``ModelBytes``)."""

    def on_run_note(self, event: RunNote, record: RunRecord) -> None:
        """Something worth knowing about a run that is not a row (a checkpoint that could not be read)."""

    def on_run_kept(self, record: RunRecord) -> None:
        """A resumed sweep keeps this run of its search, which ended before the resume: it is not
        run again, and it counts among the sweep's runs (progress, the best run so far)."""

    def on_sweep_end(self, event: SweepEnded) -> None:
        """A sweep ended: finished, interrupted or stopped."""

    def on_note(self, text: str) -> None:
        """A line for the person watching (where a sweep runs, why it stopped); not recorded."""

    def on_sink_state(self, event: SinkState) -> None:
        """A sink saved state of its own (:meth:`SinkStore.save`); the journal writes it down."""

    def reset(self) -> None:
        """The log_dir's outputs were deleted (``overwrite=True``): forget what was written."""

    def flush(self) -> None:
        """Bring what this sink writes up to date (the manager is being closed)."""

    def close(self) -> None:
        """Release files and handles; called once, after :meth:`flush`."""


_RUN_HOOKS = {RunStarted: "on_run_start", EpochEnded: "on_epoch_end", RunEnded: "on_run_end",
              CheckpointSaved: "on_checkpoint", CheckpointRemoved: "on_checkpoint", ModelBytes: "on_checkpoint",
              RunNote: "on_run_note"}


class SinkList(Sink):
    """Sends each event to every sink it holds, in the order they were added.

    Examples:
        >>> from runmanager.events import RunStarted
        >>> seen = []
        >>> class Starts(Sink):
        ...     def on_run_start(self, event, record):
        ...         seen.append(event.run)
        >>> SinkList([Starts()]).dispatch(RunStarted.of(1, {"lr": 0.1}), None)
        >>> seen
        [1]
    """

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self._sinks: list[Sink] = list(sinks)

    def add(self, sink: Sink, position: int | None = None) -> None:
        """Add ``sink`` last, or at ``position``."""
        self._sinks.insert(len(self._sinks) if position is None else position, sink)

    def remove(self, sink: Sink) -> None:
        self._sinks.remove(sink)

    def __iter__(self) -> Iterator[Sink]:
        return iter(self._sinks)

    def dispatch(self, event: Event, record: RunRecord | None) -> None:
        """Send a run event (start, epoch, end, checkpoint, note) with its record to every sink."""
        hook = _RUN_HOOKS[type(event)]
        for sink in self._sinks:
            getattr(sink, hook)(event, record)

    def on_sweep_start(self, event: SweepStarted, search: Any) -> None:
        for sink in self._sinks:
            sink.on_sweep_start(event, search)

    def on_run_kept(self, record: RunRecord) -> None:
        for sink in self._sinks:
            sink.on_run_kept(record)

    def _every(self, hook: str, *args: Any) -> None:
        """Call ``hook`` on every sink, even when one fails (an end must reach them all), then
        raise the first error."""
        errors: list[BaseException] = []
        for sink in self._sinks:
            try:
                getattr(sink, hook)(*args)
            except Exception as exc:  # noqa: BLE001 - raised below, after the other sinks
                errors.append(exc)
        if errors:
            raise errors[0]

    def on_sweep_end(self, event: SweepEnded) -> None:
        self._every("on_sweep_end", event)

    def on_note(self, text: str) -> None:
        for sink in self._sinks:
            sink.on_note(text)

    def on_sink_state(self, event: SinkState) -> None:
        for sink in self._sinks:
            sink.on_sink_state(event)

    def reset(self) -> None:
        for sink in self._sinks:
            sink.reset()

    def flush(self) -> None:
        self._every("flush")

    def close(self) -> None:
        self._every("close")

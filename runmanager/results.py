"""The fold of events into runs and rows: the single source of truth of what a sweep holds.

A live RunManager and a journal read back from disk apply the same events in
the same order to a :class:`Results`, so both always agree. Applying an event
costs the same whatever the number of runs already folded; building a frame
(:meth:`Results.frame`, :meth:`Results.summary`) is the only step that reads
every run, and only readers and the exports do it.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from runmanager.errors import InvalidArgumentError
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
    Status,
    SweepEnded,
    SweepStarted,
    resolve_mode,
)
from runmanager.objectives import pareto_mask

__all__ = ["Results", "RunRecord", "best_epoch", "epoch_value", "fold", "params_changed", "union"]


@dataclass
class RunRecord:
    """Everything known about one run, folded from its events."""

    number: int
    run_id: str
    params: dict[str, Any]
    status: Status = Status.RUNNING
    epochs: list[EpochEnded] = field(default_factory=list)
    error: str | None = None
    traceback: str | None = None
    run_duration: float | None = None
    backend: dict[str, str] | None = None
    #: its checkpoint files on disk by kind ("best", "last"), as their journal events say
    checkpoints: dict[str, CheckpointSaved] = field(default_factory=dict)
    #: kind -> why its file was deleted ("keep_models", "finished")
    removed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    #: the seed a sweep gave it (None: unseeded, or not recorded)
    seed: int | None = None

    @property
    def kept_model(self) -> CheckpointSaved | None:
        """The checkpoint ``load_model`` gives for this run: its best model, else its last one."""
        return self.checkpoints.get("best") or self.checkpoints.get("last")

    def final(self, metric: str) -> float | None:
        """The last value of ``metric`` the run logged, or None. A numeric extra column
        (``extra_columns()``, ``end_epoch(params=...)``) counts as a metric here, so a search
        can optimise a model's size as well as its accuracy.

        Examples:
            >>> record = RunRecord(1, "r1", {})
            >>> record.epochs = [EpochEnded(1, "r1", 1, {"val_loss": 0.5}, {"params": 1210}, 0.1, 0.1)]
            >>> record.final("val_loss"), record.final("params"), record.final("accuracy")
            (0.5, 1210.0, None)
        """
        for epoch in reversed(self.epochs):
            value = epoch_value(epoch, metric)
            if value is not None:
                return value
        return None


def epoch_value(epoch: EpochEnded, name: str) -> float | None:
    """An epoch's value of metric ``name``: a logged metric, else a numeric extra column (a model's
    size, say, which a sweep may judge runs by too); None when it has neither.

    Examples:
        >>> epoch_value(EpochEnded(1, "r1", 1, {"loss": 0.5}, {"params": 1210}, 0.1, 0.1), "params")
        1210.0
    """
    if name in epoch.metrics:
        return epoch.metrics[name]
    value = epoch.extras.get(name)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def union(names: Iterable[str], into: dict[str, None]) -> None:
    """Add ``names`` to the ordered set ``into`` (a dict), keeping first-seen order."""
    for name in names:
        into.setdefault(name, None)


class Results:
    """Runs and epoch rows, built by applying events in order.

    Examples:
        >>> from runmanager.events import RunStarted
        >>> results = Results()
        >>> record = results.apply(RunStarted.of(1, {"lr": 0.1}))
        >>> record.status, results.next_number
        (<Status.RUNNING: 'running'>, 2)
    """

    def __init__(self) -> None:
        self.runs: dict[int, RunRecord] = {}
        self.by_id: dict[str, RunRecord] = {}
        self.rows_count = 0
        self._next_number = 1
        self._metrics: dict[str, None] = {}
        self._extras: dict[str, None] = {}
        self._params: dict[str, None] = {}
        self.checkpointed = False  # a checkpoint event was seen: summaries get the checkpoint columns
        #: the metric and mode the latest sweep judged runs by, where it named one
        self.sweep_metric: str | None = None
        self.sweep_mode: str | None = None
        #: every (metric, mode) of the latest sweep with several objectives; () for one objective
        self.objectives: tuple[tuple[str, str], ...] = ()
        #: how the latest sweep ended ("finished", "timeout", "interrupted", "stopped"), "running"
        #: while it has not ended (or its writer died), None when there was no sweep
        self.sweep_end: str | None = None
        #: when the first event was recorded: with the log_dir's name, what identifies its runs elsewhere
        self.began: float | None = None
        #: sink name -> key -> value: what the sinks keep of their own (:class:`SinkState`)
        self.sink_state: dict[str, dict[str, Any]] = {}

    def apply(self, event: Event) -> RunRecord | None:
        """Fold one event into the state; return the run it concerns (``None`` for sweep events)."""
        if self.began is None:
            self.began = getattr(event, "time", None)
        if isinstance(event, RunStarted):
            # A rerun of a run (resume) starts it afresh: its old epochs after the checkpoint it
            # goes on from (all of them, without one) are superseded.
            old = self.runs.get(event.run)
            record = RunRecord(event.run, event.run_id, dict(event.params),
                               backend=dict(event.backend) if event.backend else None, seed=event.seed)
            if old is not None:
                record.epochs = [epoch for epoch in old.epochs if epoch.epoch <= event.from_epoch]
                record.checkpoints = {kind: saved for kind, saved in old.checkpoints.items()
                                      if saved.epoch <= event.from_epoch}
                record.removed, record.notes = old.removed, old.notes
                self.rows_count -= len(old.epochs) - len(record.epochs)
            self.runs[record.number] = record
            self.by_id[record.run_id] = record
            self._next_number = max(self._next_number, record.number + 1)
            union(record.params, self._params)
            return record
        if isinstance(event, EpochEnded):
            record = self.runs[event.run]
            record.epochs.append(event)
            record.run_duration = event.run_duration
            self.rows_count += 1
            union(event.metrics, self._metrics)
            union(event.extras, self._extras)
            return record
        if isinstance(event, RunEnded):
            record = self.runs[event.run]
            record.status = event.status
            record.error = event.error
            record.traceback = event.traceback
            record.run_duration = event.run_duration
            return record
        if isinstance(event, CheckpointSaved):
            record = self.runs[event.run]
            record.checkpoints[event.kind] = event
            record.removed.pop(event.kind, None)
            self.checkpointed = True
            return record
        if isinstance(event, CheckpointRemoved):
            record = self.runs[event.run]
            if record.checkpoints.pop(event.kind, None) is not None:
                record.removed[event.kind] = event.reason
            return record
        if isinstance(event, ModelBytes):
            return self.runs.get(event.run)  # on its way to the driver, which folds its CheckpointSaved
        if isinstance(event, RunNote):
            record = self.runs[event.run]
            record.notes.append(event.text)
            return record
        if isinstance(event, SinkState):
            self.sink_state.setdefault(event.sink, {})[event.key] = event.value
        elif isinstance(event, SweepStarted):
            self.sweep_end = "running"
            if event.metric is not None:
                self.sweep_metric, self.sweep_mode = event.metric, event.mode
                self.objectives = tuple(event.objectives or ())
        elif isinstance(event, SweepEnded):
            self.sweep_end = event.reason
        return None  # sweep events describe the sweep, not its rows

    def forget(self, number: int) -> None:
        """Drop run ``number`` (a worker keeps only the run it is doing)."""
        record = self.runs.pop(number, None)
        if record is not None:
            self.by_id.pop(record.run_id, None)
            self.rows_count -= len(record.epochs)

    @property
    def next_number(self) -> int:
        """The number the next new run gets: one more than any run seen."""
        return self._next_number

    @property
    def metric_names(self) -> list[str]:
        return list(self._metrics)

    @property
    def extra_names(self) -> list[str]:
        """The extra columns of the epoch rows (``extra_columns()``, ``end_epoch(**extra)``)."""
        return list(self._extras)

    @property
    def param_names(self) -> list[str]:
        return list(self._params)

    def columns(self) -> list[str]:
        """Epoch-row columns: run, epoch, metrics, extras, durations, params."""
        return ["run", "epoch", *self._metrics, *self._extras, "epoch_duration", "run_duration", *self._params]

    @staticmethod
    def row(record: RunRecord, epoch: EpochEnded) -> OrderedDict[str, Any]:
        """One epoch row in API order."""
        row: OrderedDict[str, Any] = OrderedDict(run=record.number, epoch=epoch.epoch)
        row.update(epoch.metrics)
        row.update(epoch.extras)
        row["epoch_duration"] = epoch.epoch_duration
        row["run_duration"] = epoch.run_duration
        row.update(record.params)
        return row

    def rows(self) -> Iterator[OrderedDict[str, Any]]:
        for number in sorted(self.runs):
            record = self.runs[number]
            for epoch in record.epochs:
                yield self.row(record, epoch)

    def frame(self) -> Any:
        """Every epoch row as a pandas DataFrame, one aligned column per name."""
        import pandas as pd

        return pd.DataFrame(list(self.rows()), columns=self.columns())

    @property
    def multi_objective(self) -> bool:
        """True when the latest sweep judged runs by several objectives: summaries get ``pareto``."""
        return len(self.objectives) > 1

    def summary_columns(self, *, at: str = "last") -> list[str]:
        best = ["best_epoch"] if at == "best" else []
        # After run_duration, so it is neither a param nor a metric column to the readers of a summary.
        front = ["pareto"] if self.multi_objective else []
        kept = ["checkpoint", "checkpoint_epoch"] if self.checkpointed else []
        return ["run", *self._params, "status", "epochs", *best, *self._metrics, *self._extras, "run_duration",
                *front, *kept, "error"]

    @staticmethod
    def summary_row(record: RunRecord, best: tuple[str, str] | None = None, *,
                    checkpoints: bool = False) -> dict[str, Any]:
        """One run's summary: params, status, epochs, the final value of each metric, duration, error.

        With ``best=(metric, mode)`` the metrics are those of the run's best epoch by ``metric``
        (the latest value of each up to that epoch), and ``best_epoch`` says which it was; a run
        that never logged a finite ``metric`` has no best epoch and shows its final values.
        With ``checkpoints``, ``checkpoint`` (the kept model's file, relative to the log_dir; empty
        when none) and ``checkpoint_epoch`` come before ``error``.
        """
        row: dict[str, Any] = {"run": record.number, **record.params}
        row["status"] = record.status.value
        row["epochs"] = len(record.epochs)
        epochs = record.epochs
        if best is not None:
            position = best_epoch(record, *best)
            row["best_epoch"] = None if position is None else epochs[position].epoch
            if position is not None:
                epochs = epochs[: position + 1]
        for epoch in epochs:  # the last epoch that has a metric gives its final value
            row.update(epoch.metrics)
            row.update(epoch.extras)
        row["run_duration"] = record.run_duration
        if checkpoints:
            kept = record.kept_model
            row["checkpoint"] = "" if kept is None else kept.file
            row["checkpoint_epoch"] = None if kept is None else kept.epoch
        row["error"] = record.error
        return row

    def summary(self, *, at: str = "last", metric: str | None = None, mode: str | None = None) -> Any:
        """One row per run, as :meth:`summary_row`, in run order; ``at="best"`` reports each run at
        its best epoch by ``metric`` (``mode``: ``"min"``/``"max"``, by default from the name).

        For a sweep of several objectives, ``pareto`` (after ``run_duration``) is True for each
        completed run on the Pareto front of the values shown, and ``attrs["objectives"]`` lists
        the ``[metric, mode]`` pairs, so :func:`runmanager.aggregate` can judge configurations too.

        Raises:
            InvalidArgumentError: a bad ``at``, no ``metric`` with ``at="best"``, or a metric no run logged.
        """
        import pandas as pd

        best = None
        if at == "best":
            if metric is None:
                raise InvalidArgumentError('summary(at="best") needs metric=, e.g. metric="val_accuracy".')
            mode = resolve_mode(metric, mode, who='summary(at="best")')
            if self.runs and metric not in self._metrics:
                raise InvalidArgumentError(
                    f"Unknown metric {metric!r}; the runs logged {', '.join(self._metrics) or 'no metrics'}."
                )
            best = (metric, mode)
        elif at != "last":
            raise InvalidArgumentError(f'at must be "last" (final epochs) or "best" (best epoch by metric), got {at!r}.')
        rows = [self.summary_row(self.runs[number], best, checkpoints=self.checkpointed) for number in sorted(self.runs)]
        frame = pd.DataFrame(rows, columns=self.summary_columns(at=at))
        if self.multi_objective:
            metrics = [name for name, _ in self.objectives]
            modes = [how for _, how in self.objectives]
            frame["pareto"] = pd.Series(pareto_mask(frame, metrics, modes, frame["status"] == Status.COMPLETED),
                                        index=frame.index, dtype=bool)
            frame.attrs["objectives"] = [[name, how] for name, how in self.objectives]
        return frame


def best_epoch(record: RunRecord, metric: str, mode: str) -> int | None:
    """The index in ``record.epochs`` of the epoch with the best finite ``metric`` (the first
    of equals), or None when the run never logged a finite value of it.

    Examples:
        >>> from runmanager.events import EpochEnded
        >>> record = RunRecord(1, "r1", {})
        >>> record.epochs = [EpochEnded(1, "r1", e, {"val_loss": v}, {}, 0.1, 0.1 * e)
        ...                  for e, v in enumerate([0.5, 0.3, 0.4], start=1)]
        >>> best_epoch(record, "val_loss", "min")
        1
    """
    found: int | None = None
    best = math.nan
    for position, epoch in enumerate(record.epochs):
        value = epoch_value(epoch, metric)
        if value is None or not math.isfinite(value):
            continue
        if found is None or (value < best if mode == "min" else value > best):
            found, best = position, value
    return found


def fold(events: Iterable[Event], into: Results | None = None) -> Results:
    """Apply ``events`` in order to a new (or the given) Results.

    Examples:
        >>> fold([RunStarted.of(1, {"lr": 0.1})]).param_names
        ['lr']
    """
    results = Results() if into is None else into
    for event in events:
        results.apply(event)
    return results


def params_changed(results: Results, fields: Iterable[str]) -> tuple[list[str], list[str]] | None:
    """``(added, removed)`` parameter names of a new grid against the runs folded so far, or None."""
    old, new = set(results.param_names), set(fields)
    return (sorted(new - old), sorted(old - new)) if results.runs and old != new else None


"""The one schema: what happens in a sweep, as typed events, and how they are written down.

Every change a RunManager records is one of four events: a sweep starts, a
run starts, an epoch ends, a run ends (and a sweep ends); checkpoints, notes and
the state a sink keeps of its own (:class:`SinkState`) are events too. They are built here
and nowhere else, folded into runs by :class:`runmanager.results.Results`,
sent to the sinks (journal, exports, table, TensorBoard), and carried from
worker processes to the driver as they are (they pickle). :func:`to_dict` and
:func:`from_dict` are the one serialisation, the journal's line format.

Nothing here needs Keras, TensorFlow or pandas.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from runmanager.errors import InvalidArgumentError, JournalError
from runmanager.naming import jsonable, run_id

__all__ = [
    "CheckpointRemoved",
    "CheckpointSaved",
    "EpochEnded",
    "Event",
    "ModelBytes",
    "RunEnded",
    "RunNote",
    "RunStarted",
    "SinkState",
    "Status",
    "SweepEnded",
    "SweepStarted",
    "default_mode",
    "from_dict",
    "is_lower_better",
    "resolve_mode",
    "to_dict",
]


class Status(StrEnum):
    """How a run ended, or that it is still going. Equal to its string (``Status.COMPLETED == "completed"``).

    Examples:
        >>> Status("diverged") is Status.DIVERGED, Status.DIVERGED.finished
        (True, True)
    """

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    DIVERGED = "diverged"
    INTERRUPTED = "interrupted"
    PRUNED = "pruned"

    @property
    def finished(self) -> bool:
        """True for a run that a resumed sweep does not start again on its own."""
        return self in (Status.COMPLETED, Status.FAILED, Status.DIVERGED, Status.PRUNED)

    @property
    def unsuccessful(self) -> bool:
        """True for a run that ended by an error of its own (``retry_failed`` reruns these)."""
        return self in (Status.FAILED, Status.DIVERGED)


# Metrics where lower is better, besides every "...loss" and "...error".
_LOWER_IS_BETTER = ("mse", "mae", "mape", "msle", "rmse", "crossentropy", "hinge", "divergence",
                    "logcosh", "poisson", "perplexity")


def is_lower_better(metric: str) -> bool:
    """True for a metric named as a loss or an error (``loss``, ``val_loss``, ``mean_squared_error``,
    ``val_mae``, ``mse``, ...): the one rule for judging metrics and for spotting divergence.

    Examples:
        >>> [is_lower_better(m) for m in ("val_loss", "mean_squared_error", "val_mae", "val_accuracy")]
        [True, True, True, False]
    """
    name = metric.lower()
    return "loss" in name or "error" in name or any(name == s or name.endswith("_" + s) for s in _LOWER_IS_BETTER)


def resolve_mode(metric: Any, mode: Any, *, who: str) -> str:
    """Check a metric name and a mode; return the mode, ``default_mode(metric)`` when None.

    Examples:
        >>> resolve_mode("val_loss", None, who="A pruner")
        'min'
    """
    if not isinstance(metric, str) or not metric:
        raise InvalidArgumentError(f"{who} needs the name of a logged metric such as 'val_accuracy', got {metric!r}.")
    if mode is None:
        return default_mode(metric)
    if mode not in ("min", "max"):
        raise InvalidArgumentError(f"mode must be 'min' or 'max', got {mode!r}.")
    return mode


def default_mode(metric: str) -> str:
    """``"min"`` for a metric named as a loss or an error, else ``"max"``.

    Examples:
        >>> default_mode("val_loss"), default_mode("val_accuracy")
        ('min', 'max')
    """
    return "min" if is_lower_better(metric) else "max"


@dataclass(frozen=True)
class Event:
    """Base of every event; ``TYPE`` is its name in the journal."""

    TYPE: ClassVar[str] = ""


@dataclass(frozen=True)
class SweepStarted(Event):
    """A sweep begins: the names of its parameters, how many runs it may have (None: not
    known), how many run at once, the metric (and mode) it judges runs by, and, for a sweep
    of several objectives, every ``(metric, mode)`` it records a Pareto front by (the first
    is ``metric``; None for one objective, and in journals older than this field)."""

    TYPE: ClassVar[str] = "sweep"
    fields: tuple[str, ...]
    time: float = field(default_factory=time.time)
    total: int | None = None
    workers: int = 1
    metric: str | None = None
    mode: str | None = None
    objectives: tuple[tuple[str, str], ...] | None = None


@dataclass(frozen=True)
class SweepEnded(Event):
    """A sweep ends: how many runs ended with each status, and why it ended
    (``"finished"``, ``"interrupted"``, ``"stopped"``)."""

    TYPE: ClassVar[str] = "sweep_end"
    counts: Mapping[str, int]
    reason: str = "finished"
    time: float = field(default_factory=time.time)


@dataclass(frozen=True)
class RunStarted(Event):
    """Run ``run`` (its number) starts with ``params``; resumed from a checkpoint, it goes on
    after epoch ``from_epoch`` and the rows of its earlier attempt after that epoch are superseded.
    ``seed``: what a sweep seeded it with (None: not seeded, or a journal written before seeds
    were recorded), so that repeats of two sweeps can be paired by seed."""

    TYPE: ClassVar[str] = "run_start"
    run: int
    run_id: str
    params: Mapping[str, Any]
    time: float = field(default_factory=time.time)
    #: the Keras backend and the versions of Keras and of the backend library, where Keras is loaded
    backend: Mapping[str, str] | None = None
    from_epoch: int = 0
    seed: int | None = None

    @classmethod
    def of(cls, number: int, params: Mapping[str, Any], from_epoch: int = 0, seed: int | None = None) -> RunStarted:
        """The start of run ``number``; its id, JSON-safe params and backend are derived here.

        Examples:
            >>> RunStarted.of(1, {"lr": 0.1}).run_id == run_id({"lr": 0.1})
            True
        """
        from runmanager.backend import describe

        return cls(number, run_id(params), jsonable(dict(params)), backend=describe(), from_epoch=from_epoch,
                   seed=seed)


@dataclass(frozen=True)
class EpochEnded(Event):
    """Epoch ``epoch`` (1-based) of run ``run`` ended with these metrics and extra columns."""

    TYPE: ClassVar[str] = "epoch"
    run: int
    run_id: str
    epoch: int
    metrics: Mapping[str, float]
    extras: Mapping[str, Any]
    epoch_duration: float
    run_duration: float

    @property
    def diverged(self) -> bool:
        """True when a loss-like metric of this epoch is NaN or infinite."""
        return any(is_lower_better(name) and not math.isfinite(value) for name, value in self.metrics.items())


@dataclass(frozen=True)
class RunEnded(Event):
    """Run ``run`` ended with ``status`` after ``epochs`` epochs."""

    TYPE: ClassVar[str] = "run_end"
    run: int
    run_id: str
    status: Status
    epochs: int
    run_duration: float
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True)
class CheckpointSaved(Event):
    """Run ``run``'s model after ``epoch`` is in ``file`` (relative to the log_dir), ``bytes`` long:
    its ``kind`` is ``"best"`` (the run's best epoch so far) or ``"last"`` (its latest, for resume).
    Written to the journal only once the file is complete."""

    TYPE: ClassVar[str] = "checkpoint"
    run: int
    epoch: int
    kind: str
    file: str
    bytes: int


@dataclass(frozen=True)
class ModelBytes(Event):
    """A checkpoint on its way from a worker that cannot see the log_dir to the driver, which
    writes ``data`` to ``file`` (relative to the log_dir) and only then records :meth:`saved`.
    Never written to the journal."""

    TYPE: ClassVar[str] = "checkpoint_bytes"
    run: int
    epoch: int
    kind: str
    file: str
    data: bytes
    #: the file (relative to the log_dir) this one is a copy of, sent just before it: no ``data``
    same_as: str | None = None

    def saved(self, size: int) -> CheckpointSaved:
        """The journal event of this checkpoint, once its file is written (``size`` bytes)."""
        return CheckpointSaved(self.run, self.epoch, self.kind, self.file, size)

    def __repr__(self) -> str:  # not the megabytes of the model
        what = f"a copy of {self.same_as!r}" if self.same_as else f"{len(self.data)} bytes"
        return f"ModelBytes(run={self.run}, epoch={self.epoch}, kind={self.kind!r}, {what})"


@dataclass(frozen=True)
class CheckpointRemoved(Event):
    """Run ``run``'s ``kind`` checkpoint was deleted, and why (``"keep_models"``: the run fell out
    of the k best; ``"finished"``: a run that ended needs no ``last`` to resume from)."""

    TYPE: ClassVar[str] = "checkpoint_removed"
    run: int
    kind: str
    reason: str


@dataclass(frozen=True)
class RunNote(Event):
    """Something worth knowing about run ``run`` that is not a row (a checkpoint that could not be
    read, so the run started again from epoch 1)."""

    TYPE: ClassVar[str] = "note"
    run: int
    text: str


@dataclass(frozen=True)
class SinkState(Event):
    """A sink's own state, kept in the journal so that a resumed sweep (or a reader) finds it
    again: the value (anything JSON holds) of ``key`` for the sink named ``sink``; a later
    value of the same key replaces it. MLflowSink keeps its MLflow run ids this way."""

    TYPE: ClassVar[str] = "sink_state"
    sink: str
    key: str
    value: Any


_TYPES: dict[str, type[Event]] = {cls.TYPE: cls for cls in (SweepStarted, SweepEnded, RunStarted, EpochEnded, RunEnded,
                                                          CheckpointSaved, CheckpointRemoved, RunNote, SinkState)}


def to_dict(event: Event) -> dict[str, Any]:
    """An event as the JSON object of its journal line (``type`` first).

    Examples:
        >>> to_dict(RunEnded(1, "ab12", Status.COMPLETED, 3, 1.5))["status"]
        'completed'
    """
    data = asdict(event)
    if isinstance(event, RunEnded):
        data["status"] = event.status.value
    if isinstance(event, SweepStarted):
        data["fields"] = list(event.fields)
        if event.objectives is None:
            del data["objectives"]  # a sweep of one objective writes the line it always wrote
        else:
            data["objectives"] = [list(pair) for pair in event.objectives]
    if isinstance(event, RunStarted) and event.seed is None:
        del data["seed"]  # an unseeded run's line stays as it always was
    if isinstance(event, CheckpointSaved):
        return {"type": event.TYPE, "event": event.TYPE, **data}  # "event": the contract's name for it
    return {"type": event.TYPE, **data}


def from_dict(data: Mapping[str, Any]) -> Event | None:
    """The event of a journal line; ``None`` for a type this version does not know.

    Raises:
        JournalError: a known type with missing or unknown fields.

    Examples:
        >>> from_dict({"type": "sweep", "fields": ["lr"], "time": 0.0})
        SweepStarted(fields=('lr',), time=0.0, total=None, workers=1, metric=None, mode=None, objectives=None)
    """
    cls = _TYPES.get(data.get("type", ""))
    if cls is None:
        return None
    values = {k: v for k, v in data.items() if k not in ("type", "event")}
    try:
        if cls is RunEnded:
            values["status"] = Status(values["status"])
        elif cls is SweepStarted:
            values["fields"] = tuple(values["fields"])
            if values.get("objectives") is not None:
                values["objectives"] = tuple((str(name), str(how)) for name, how in values["objectives"])
        return cls(**values)
    except (KeyError, TypeError, ValueError) as exc:
        raise JournalError(f"Journal event {dict(data)!r} is not a valid {cls.TYPE!r} event: {exc}.") from None

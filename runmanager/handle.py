"""The per-run handle: the one object that owns a run while it goes.

A :class:`RunHandle` holds a run's number, params, the epochs it has done, the
epoch that is going, whether it diverged or was pruned, how it ends, its model and
its checkpoints. The Keras callback, the manual-loop calls of a RunManager,
``run_task`` and the workers all talk to it; each change becomes an event
(:mod:`runmanager.events`) handed to the ``emit`` function it was begun with (a
RunManager's: fold, journal, table, ...). It knows nothing of managers, sweeps or
executors, as Optuna's ``Trial`` knows nothing of the study's storage.

Nothing here needs Keras: a model is only handed to the checkpoint writer.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from runmanager.checkpoints import Checkpoint, CheckpointPlan, CheckpointWriter
from runmanager.errors import ColumnClashError, LifecycleError
from runmanager.events import EpochEnded, Event, RunEnded, RunNote, RunStarted, Status
from runmanager.grid import RESERVED_NAMES
from runmanager.naming import jsonable, params_of, run_id

__all__ = ["RunHandle"]


@dataclass
class _Epoch:
    start: float
    logged: dict[str, float] = field(default_factory=dict)
    # name -> [weighted total, total weight]
    sums: dict[str, list[float]] = field(default_factory=dict)


class RunHandle:
    """One run of a RunManager, from its start to its end.

    Args:
        run: the run's params (a ``Run`` namedtuple or a mapping).
        number: its number in the log_dir (1-based); a resumed run keeps its own.
        restored: the checkpoint it goes on from (``Checkpoint()`` for a fresh start).
        judge: asked after every epoch whether the run stops there (a sweep's pruner).
        plan: which checkpoints to save after an epoch (None: none unless asked by hand).
        writer: where checkpoint files go (None: nowhere).
        note: a checkpoint that could not be read, to record once the run has begun.
        elapsed: the seconds the run had trained before its checkpoint (its ``run_duration`` goes on from it).
        seed: what the sweep seeded the run with, recorded in its ``RunStarted``.

    Examples:
        >>> events = []
        >>> handle = RunHandle({"lr": 0.1}, 1)
        >>> handle.begin(events.append)
        >>> handle.begin_epoch(); handle.track("loss", 1.0, 2.0); handle.end_epoch({}).metrics
        {'loss': 0.5}
        >>> handle.end().status
        <Status.COMPLETED: 'completed'>
        >>> [type(event).__name__ for event in events]
        ['RunStarted', 'EpochEnded', 'RunEnded']
    """

    def __init__(self, run: Any, number: int, *, restored: Checkpoint | None = None,
                 judge: Callable[[EpochEnded], bool] | None = None, plan: CheckpointPlan | None = None,
                 writer: CheckpointWriter | None = None, note: str | None = None, elapsed: float = 0.0,
                 seed: int | None = None) -> None:
        self.run = run
        self.params = params_of(run)
        for name in self.params:
            if name in RESERVED_NAMES:
                raise ColumnClashError(f"Parameter {name!r} has the name of a column runmanager writes; rename it.")
        self.number = number
        self.run_id = run_id(self.params)
        self.restored = restored if restored is not None else Checkpoint()
        self.judge = judge
        self.plan = plan
        self.writer = writer
        self.pending_note = note
        self.elapsed = elapsed
        self.seed = seed
        #: epochs done (a resumed run counts those before its checkpoint)
        self.epochs = self.restored.epoch
        self.model: Any = self.restored.model
        self.status = Status.RUNNING
        self.diverged = False
        self.pruned = False
        #: what began it: None for the manual calls and sweeps, the callback of a standalone ``fit``
        self.owner: Any = None
        self.last_event: EpochEnded | None = None
        self._ending: tuple[Status, str | None, str | None] | None = None
        self._emit: Callable[[Event], Any] | None = None
        self._epoch: _Epoch | None = None
        self._start = 0.0
        self._checkpointed_epoch = 0

    # ------------------------------------------------------------------------------
    # Lifecycle
    # ------------------------------------------------------------------------------
    @property
    def begun(self) -> bool:
        return self._emit is not None

    @property
    def active(self) -> bool:
        """Begun and not ended."""
        return self._emit is not None and self.status == Status.RUNNING

    def begin(self, emit: Callable[[Event], Any], model: Any = None) -> None:
        """Start the run: its ``RunStarted`` (going on after ``restored.epoch``) goes to ``emit``."""
        if self._emit is not None:
            raise LifecycleError(f"Run {self.number} was begun already.")
        self._emit = emit
        if model is not None:
            self.model = model
        # A resumed run's duration goes on from its checkpoint's, so run_duration stays the time trained.
        self._start = time.perf_counter() - self.elapsed
        emit(RunStarted.of(self.number, self.params, from_epoch=self.restored.epoch, seed=self.seed))
        if self.pending_note is not None:
            emit(RunNote(self.number, self.pending_note))
            self.pending_note = None

    def _emitter(self, caller: str) -> Callable[[Event], Any]:
        if self._emit is None:
            raise LifecycleError(f"{caller}() was called before begin_run(); start a run first.")
        return self._emit

    @property
    def epoch_going(self) -> bool:
        return self._epoch is not None

    def begin_epoch(self) -> None:
        """Start the next epoch."""
        self._emitter("begin_epoch")
        if self._epoch is not None:
            raise LifecycleError(
                f"begin_epoch() was called while epoch {self.epochs} is still going; call end_epoch() first."
            )
        self.epochs += 1
        self._epoch = _Epoch(time.perf_counter())

    def track(self, name: str, total: float, weight: float, *, caller: str = "track") -> None:
        """Add ``total`` over ``weight`` samples to the epoch's weighted mean of ``name``."""
        if self._epoch is None:
            raise LifecycleError(f"{caller}() was called outside an epoch; call begin_epoch() first.")
        sums = self._epoch.sums.setdefault(name, [0.0, 0.0])
        sums[0] += total
        sums[1] += weight

    def record_logs(self, logs: Mapping[str, Any]) -> None:
        """Record metric values already averaged over the epoch (what Keras passes to
        ``on_epoch_end``); a value that is not a number is skipped with a warning."""
        if self._epoch is None:
            raise LifecycleError("record_logs() was called outside an epoch; call begin_epoch() first.")
        for name, value in logs.items():
            try:
                self._epoch.logged[name] = float(value)
            except (TypeError, ValueError):
                warnings.warn(f"Keras logged {name!r} = {value!r}, which is not a number; it is not recorded.",
                              RuntimeWarning, stacklevel=3)

    def end_epoch(self, extras: Mapping[str, Any]) -> EpochEnded:
        """Finish the epoch: its metrics, ``extras`` (already checked), durations; then the pruner's
        verdict and the checkpoints this epoch saves. Return its event."""
        emit = self._emitter("end_epoch")
        if self._epoch is None:
            raise LifecycleError("end_epoch() was called before begin_epoch(); start an epoch first.")
        epoch = self._epoch
        metrics: dict[str, float] = dict(epoch.logged)
        for name, (total, weight) in epoch.sums.items():
            metrics[name] = total / weight
        check_columns(metrics, extras, self.params)
        now = time.perf_counter()
        event = EpochEnded(self.number, self.run_id, self.epochs, metrics, jsonable(dict(extras)),
                           now - epoch.start, now - self._start)
        self._epoch = None
        self.diverged = self.diverged or event.diverged
        self.last_event = event
        emit(event)
        if self.judge is not None and not self.diverged and self.judge(event):
            self.pruned = True
        return event

    def discard_epoch(self) -> None:
        """Drop the epoch that is going, if any, without a row (its ``fit`` raised or was left)."""
        if self._epoch is not None:
            self._epoch = None
            self.epochs -= 1

    def prune(self) -> None:
        """Stop the run at the end of its current epoch, with status ``"pruned"``."""
        self.pruned = True

    @property
    def natural_status(self) -> Status:
        """How the run ends if nothing went wrong: ``completed``, ``diverged`` or ``pruned``."""
        return Status.DIVERGED if self.diverged else Status.PRUNED if self.pruned else Status.COMPLETED

    @property
    def should_stop(self) -> bool:
        """True once training should stop: a loss became NaN/inf, or a pruner stopped the run."""
        return self.diverged or self.pruned

    def finish(self, status: Status | str, error: str | None = None, traceback: str | None = None) -> None:
        """Say how the run ends (a failure, an interrupt), for :meth:`end` to record."""
        self._ending = (Status(status), error, traceback)

    @property
    def ending(self) -> tuple[Status, str | None, str | None] | None:
        return self._ending

    def end(self) -> RunEnded:
        """End the run with the status :meth:`finish` gave, else its natural one; an epoch still
        going is dropped. Return its event."""
        emit = self._emitter("end_run")
        if self.status != Status.RUNNING:
            raise LifecycleError(f"Run {self.number} has ended already.")
        ending = self._ending
        if ending is None:
            if self._epoch is not None:
                raise LifecycleError(
                    f"end_run() was called while epoch {self.epochs} is still going; call end_epoch() first."
                )
            ending = (self.natural_status, None, None)
        else:
            self.discard_epoch()
        status, error, traceback = ending
        self.status = status
        event = RunEnded(self.number, self.run_id, status, self.epochs, time.perf_counter() - self._start,
                         error, traceback)
        emit(event)
        return event

    # ------------------------------------------------------------------------------
    # Checkpoints
    # ------------------------------------------------------------------------------
    def checkpoint(self, model: Any = None, *, final: bool = False, by_hand: bool = False) -> list[str]:
        """Save the checkpoints the plan asks for after the epoch that just ended (``final``: the
        run's last epoch). Without a plan (checkpoints off) nothing is saved, unless ``by_hand``:
        then ``best`` when the epoch is the best so far, and ``last``. Return the kinds saved."""
        model = model if model is not None else self.model
        event = self.last_event
        if self.writer is None or model is None or event is None or event.epoch <= self._checkpointed_epoch:
            return []  # nowhere to save, nothing to save, or saved after this epoch already
        if self.diverged:
            return []  # NaN weights: nothing worth keeping or going on from
        if self.plan is None:
            if not by_hand:
                return []
            self.plan = CheckpointPlan("best")
        # A numeric extra column (a model's size) may be what the sweep judges runs by.
        values = {name: value for name, value in event.extras.items()
                  if isinstance(value, (int, float)) and not isinstance(value, bool)}
        kinds = self.plan.kinds(event.epoch, {**values, **event.metrics}, final=final or self.pruned or by_hand)
        emit = self._emitter("save_checkpoint")
        for saved in self.writer.save(model, self.number, event.epoch, kinds):
            emit(saved)
        if kinds:
            self._checkpointed_epoch = event.epoch
        return kinds


def check_columns(metrics: Mapping[str, Any], extras: Mapping[str, Any], params: Mapping[str, Any]) -> None:
    """Refuse an epoch row in which two columns would have the same name.

    Raises:
        ColumnClashError: a metric or an extra column has the name of a param or of a column
            runmanager writes, or an extra column has the name of a metric.
    """
    for name in metrics:
        if name in RESERVED_NAMES or name in params:
            raise ColumnClashError(
                f"Metric {name!r} has the name of "
                f"{'a parameter' if name in params else 'a column runmanager writes'}; "
                "rename the metric or the parameter."
            )
    for name in extras:
        if name in RESERVED_NAMES or name in params or name in metrics:
            raise ColumnClashError(
                f"Extra column {name!r} clashes with another column of the row "
                "(a metric, a parameter, or one runmanager writes); give it another name."
            )

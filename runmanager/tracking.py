"""Tracking runs and epochs: the RunManager.

A RunManager is fed either by the PyTorch-style manual calls (``begin_run``,
``begin_epoch``, ``track_loss``, ``end_epoch``, ``end_run``) or by a Keras
callback (:meth:`RunManager.callback`). Every change becomes an event
(:mod:`runmanager.events`) that is folded into the in-memory results
(:mod:`runmanager.results`) and sent to the manager's sinks
(:mod:`runmanager.sinks`): the journal and the exports in ``log_dir``, the live
table, TensorBoard, and any sink the user adds. Sweeps live in
:mod:`runmanager.sweep`; :meth:`RunManager.sweep` is their entry. Keras is
imported only where it is used.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runmanager.display import LiveTable
from runmanager.errors import (
    ColumnClashError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LifecycleError,
    LogDirError,
    LogDirWriteError,
)
from runmanager.events import EpochEnded, Event, RunEnded, RunStarted, Status, SweepEnded, SweepStarted
from runmanager.grid import RESERVED_NAMES
from runmanager.naming import jsonable, params_of
from runmanager.results import Results, RunRecord
from runmanager.signals import exception_text, interrupt_reason, terminate_like_interrupt
from runmanager.sinks import Sink, SinkList
from runmanager.sinks.progress import ProgressSink
from runmanager.sinks.table import TableSink
from runmanager.storage import JOURNAL_NAME, TENSORBOARD_DIR, load_for_writing, prepare_log_dir, write_frame

__all__ = ["RunManager"]


def _to_numpy(value: Any) -> Any:
    import numpy as np

    detach = getattr(value, "detach", None)  # a torch tensor that needs grad
    if detach is not None:
        value = detach().cpu()
    return np.asarray(value)


def _number(value: Any, what: str) -> float:
    """``value`` as a float, or an error that names ``what`` and the value (text is not a number,
    even when ``float()`` would read it)."""
    try:
        if isinstance(value, (str, bytes)):
            raise TypeError
        return float(value)
    except (TypeError, ValueError):
        shown = repr(value)
        shown = shown if len(shown) <= 80 else shown[:77] + "..."
        raise InvalidArgumentTypeError(
            f"{what} must be a number (a float, an int, or a scalar array or tensor), got {shown}."
        ) from None


@dataclass
class _ActiveRun:
    number: int
    run_id: str
    params: dict[str, Any]
    start: float
    diverged: bool = False
    pruned: bool = False


@dataclass
class _ActiveEpoch:
    start: float
    logged: dict[str, float] = field(default_factory=dict)
    # name -> [weighted total, total weight]
    sums: dict[str, list[float]] = field(default_factory=dict)


class RunManager:
    """Tracks runs and epochs, and keeps the results as rows, on disk and on screen.

    Args:
        log_dir: folder for the journal and the result files; ``None`` keeps
            everything in memory. Created if missing. One RunManager at a time
            writes into a log_dir (see :mod:`runmanager.lock`).
        verbose: 1 prints a live table, one line per epoch, and in a sweep a progress
            line after every run (done of total, counts, ETA, best run); 2 prints one
            row per finished run instead of one per epoch, for long sweeps; 0 prints nothing.
        tensorboard: also write TensorBoard scalars and HParams data under
            ``log_dir/tensorboard`` (needs ``runmanager[tensorboard]``).
        overwrite: replace the runs already in ``log_dir`` instead of refusing.
        durable: fsync the journal after every event (on by default).
        sinks: more consumers of the events (:class:`runmanager.sinks.Sink`).

    Raises:
        LogDirError: ``log_dir`` is a file or not writable.

    Examples:
        >>> m = RunManager(verbose=0)
        >>> m.begin_run({"lr": 0.1})
        >>> m.begin_epoch()
        >>> m.track_loss(0.5, batch_size=32)
        >>> m.track_loss(0.25, batch_size=32)
        >>> m.end_epoch()
        >>> m.end_run()
        >>> m.results[["run", "epoch", "loss", "lr"]].to_dict("records")
        [{'run': 1, 'epoch': 1, 'loss': 0.375, 'lr': 0.1}]
    """

    def __init__(
        self,
        log_dir: str | os.PathLike[str] | None = None,
        *,
        verbose: int = 1,
        tensorboard: bool = False,
        overwrite: bool = False,
        durable: bool = True,
        sinks: Iterable[Sink] = (),
    ) -> None:
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise InvalidArgumentTypeError(f"log_dir must be a path or None, got {log_dir!r}.")
        if verbose not in (0, 1, 2, True, False):
            raise InvalidArgumentTypeError(
                f"verbose must be 0 (quiet), 1 (a row per epoch) or 2 (a row per run), got {verbose!r}.")
        self.log_dir: Path | None = prepare_log_dir(log_dir) if log_dir is not None else None
        self.verbose = int(verbose)
        self.overwrite = bool(overwrite)
        self.durable = bool(durable)
        self.run_count = 0
        self.epoch_count = 0
        self.run_params: Any = None
        self.model: Any = None
        self._results = Results()
        self._keep_results = True  # False in a worker's copy: it keeps only its current run
        self._sinks = SinkList()
        self._file_sinks: list[Sink] = []  # the journal and the exports, while the log_dir is open
        self._lock: Any = None
        self._opened = False
        self._in_sweep = False
        self._taken_over = False
        self._write_error: LogDirWriteError | None = None  # the first failure to write the log_dir
        self._run: _ActiveRun | None = None
        self._epoch: _ActiveEpoch | None = None
        self._number: int | None = None  # from begin_run_as(), for the begin_run() it calls
        self._ending: tuple[Status, str | None, str | None] | None = None  # from end_run_as()
        self._tensorboard: Any = None
        if self.verbose:
            table = LiveTable()
            self._sinks.add(TableSink(table, self.log_dir, per_run=self.verbose == 2))
            self._sinks.add(ProgressSink(table))
        if tensorboard:
            self._enable_tensorboard()
        for sink in sinks:
            self.add_sink(sink)

    def _enable_tensorboard(self) -> None:
        if self._tensorboard is not None:
            return
        if self.log_dir is None:
            raise LogDirError("tensorboard=True needs a log_dir to write the event files into.")
        from runmanager.tensorboard import TensorBoardWriter

        self._tensorboard = TensorBoardWriter(self.log_dir / TENSORBOARD_DIR)
        self._sinks.add(self._tensorboard)

    def add_sink(self, sink: Sink) -> None:
        """Send every later event to ``sink`` too (after the journal, the exports and the table).

        Examples:
            m.add_sink(MyMlflowSink())
        """
        if not isinstance(sink, Sink):
            raise InvalidArgumentTypeError(f"add_sink() takes a runmanager.sinks.Sink, got {sink!r}.")
        self._sinks.add(sink)

    @property
    def sinks(self) -> tuple[Sink, ...]:
        """The consumers of this manager's events, in the order they get them."""
        return tuple(self._sinks)

    # ------------------------------------------------------------------------------
    # State, as in the original RunManager
    # ------------------------------------------------------------------------------
    @property
    def run_data(self) -> list[OrderedDict[str, Any]]:
        """Every epoch row so far, as ``OrderedDict`` rows in column order."""
        return list(self._results.rows())

    @property
    def results(self) -> Any:
        """Every epoch row so far as a pandas DataFrame (one row per epoch)."""
        return self._results.frame()

    def summary(self, at: str = "last", metric: str | None = None, mode: str | None = None) -> Any:
        """One row per run: ``run``, params, ``status``, ``epochs``, final metrics,
        ``run_duration``, ``error``.

        Args:
            at: ``"last"``: each metric's final value; ``"best"``: the values of each
                run's best epoch by ``metric``, with a ``best_epoch`` column after ``epochs``.
            metric: the metric that picks the best epoch (needed with ``at="best"``).
            mode: ``"min"`` or ``"max"``; default ``"min"`` for a loss or an error, else ``"max"``.

        Raises:
            InvalidArgumentError: a bad ``at`` or ``mode``, or a metric no run logged.

        Examples:
            >>> RunManager(verbose=0).summary().columns.tolist()
            ['run', 'status', 'epochs', 'run_duration', 'error']
            >>> RunManager(verbose=0).summary(at="best", metric="val_accuracy").columns.tolist()
            ['run', 'status', 'epochs', 'best_epoch', 'run_duration', 'error']
        """
        return self._results.summary(at=at, metric=metric, mode=mode)

    def aggregate(self, metric: str | None = None, mode: str | None = None) -> Any:
        """One row per configuration over its repeats: params, ``runs``, ``completed``, and
        ``<metric>_mean`` / ``<metric>_std`` over completed runs for every metric; with
        ``metric``, sorted best first with a ``rank`` column. See :func:`runmanager.aggregate`.

        Examples:
            m.sweep(train, {"lr": [0.01, 0.001]}, repeats=3, seed=0)
            m.aggregate("val_accuracy")[["rank", "lr", "val_accuracy_mean", "val_accuracy_std"]]
        """
        from runmanager.analysis import aggregate

        return aggregate(self.summary(), metric, mode)

    def run_record(self, number: int) -> RunRecord | None:
        """What is known of run ``number`` (status, epochs, error), or None.

        Examples:
            >>> RunManager(verbose=0).run_record(1) is None
            True
        """
        return self._results.runs.get(number)

    @property
    def run_diverged(self) -> bool:
        """True once a loss of the current run became NaN or infinite: stop training it."""
        return self._run is not None and self._run.diverged

    @property
    def run_pruned(self) -> bool:
        """True once a pruner decided the current run should stop: end it after this epoch."""
        return self._run is not None and self._run.pruned

    def prune_run(self, number: int) -> None:
        """Stop run ``number`` at the end of its current epoch, with status ``"pruned"`` (a pruner's
        decision; a custom training loop sees it through :attr:`run_pruned`).

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.prune_run(1); m.end_run()
            >>> m.summary()["status"].tolist()
            ['pruned']
        """
        if self._run is not None and self._run.number == number:
            self._run.pruned = True

    @property
    def run_active(self) -> bool:
        """True between ``begin_run`` and ``end_run``."""
        return self._run is not None

    def extra_columns(self) -> Mapping[str, Any]:
        """Extra columns for the epoch row; override in a subclass. Called at every epoch end.

        ``self.model`` is the run's model (``None`` if none was given).

        Examples:
            >>> class WithWeights(RunManager):
            ...     def extra_columns(self):
            ...         return {"weights": self.model.count_params() if self.model else 0}
        """
        return {}

    # ------------------------------------------------------------------------------
    # The manual, PyTorch-style calls
    # ------------------------------------------------------------------------------
    def begin_run(self, run: Any, model: Any = None) -> None:
        """Start a run with these params (a ``Run`` namedtuple or a mapping).

        Subclasses may override it, calling ``super().begin_run(run, model)``;
        sweeps call it for every run too.

        Raises:
            LifecycleError: a run is still going; call ``end_run()`` first.
            LogDirError: ``log_dir`` already holds runs of an earlier sweep.
        """
        if self._run is not None:
            raise LifecycleError(
                f"begin_run() was called while run {self._run.number} is still going; "
                "call end_run() first."
            )
        params = params_of(run)
        for name in params:
            if name in RESERVED_NAMES:
                raise ColumnClashError(
                    f"Parameter {name!r} has the name of a column runmanager writes; rename it."
                )
        self._open()
        # A sweep assigns the number (a resumed run keeps its own); otherwise the next free one.
        number = self._number or self._results.next_number
        self.run_count = number
        self.epoch_count = 0
        self.run_params = run
        self.model = model
        event = RunStarted.of(number, params)
        self._run = _ActiveRun(number, event.run_id, params, time.perf_counter())
        self._emit(event)

    def begin_run_as(self, run: Any, number: int) -> None:
        """Begin ``run`` as run ``number`` of a sweep (a resumed run keeps its number), through
        the overridable :meth:`begin_run`. Sweeps and executors call it; code of your own calls
        ``begin_run``.

        Examples:
            m.begin_run_as(run, 7)
        """
        self._number = number
        try:
            self.begin_run(run)
        finally:
            self._number = None

    def begin_epoch(self) -> None:
        """Start an epoch of the current run."""
        if self._run is None:
            raise LifecycleError("begin_epoch() was called before begin_run(); start a run first.")
        if self._epoch is not None:
            raise LifecycleError(
                f"begin_epoch() was called while epoch {self.epoch_count} is still going; "
                "call end_epoch() first."
            )
        self.epoch_count += 1
        self._epoch = _ActiveEpoch(time.perf_counter())

    def _accumulate(self, caller: str, name: str, total: float, weight: float) -> None:
        if self._epoch is None:
            raise LifecycleError(f"{caller}() was called outside an epoch; call begin_epoch() first.")
        sums = self._epoch.sums.setdefault(name, [0.0, 0.0])
        sums[0] += total
        sums[1] += weight

    def track_loss(self, loss: Any, batch_size: int) -> None:
        """Add a batch's mean loss; the epoch's ``loss`` is the mean weighted by batch size,
        so a short last batch counts exactly as much as its samples.

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.track_loss(1.0, batch_size=3); m.track_loss(4.0, batch_size=1)
            >>> m.end_epoch(); m.results["loss"].item()
            1.75
        """
        size = _number(batch_size, "track_loss(): batch_size")
        if not (size > 0 and size.is_integer()):
            raise InvalidArgumentError(f"batch_size must be a positive number of samples, got {batch_size!r}.")
        self._accumulate("track_loss", "loss", _number(loss, "track_loss(): the batch's loss") * size, int(size))

    def track_num_correct(self, preds: Any, labels: Any) -> int:
        """Count a batch's correct predictions into the epoch's ``accuracy``; return the count.

        ``preds`` are class probabilities or logits (one more axis than
        ``labels``; a single column means binary probabilities, cut at 0.5) or
        class ids; ``labels`` are class ids or one-hot rows.

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.track_num_correct([[0.9, 0.1], [0.2, 0.8]], [0, 0])
            1
        """
        p, y = _to_numpy(preds), _to_numpy(labels)
        if y.ndim == p.ndim and y.ndim >= 2 and y.shape[-1] > 1:
            y = y.argmax(axis=-1)  # one-hot labels
        if p.ndim == y.ndim + 1:
            p = (p[..., 0] > 0.5).astype(y.dtype) if p.shape[-1] == 1 else p.argmax(axis=-1)
        elif p.ndim == y.ndim and p.dtype.kind == "f" and y.dtype.kind in "iub":
            if not (p == p.round()).all():
                p = (p > 0.5).astype(y.dtype)
        if p.shape != y.shape:
            raise InvalidArgumentError(
                f"track_num_correct: predictions of shape {p.shape} do not match labels of shape "
                f"{y.shape}; give class probabilities (batch, classes) or class ids (batch,)."
            )
        correct = int((p == y).sum())
        self._accumulate("track_num_correct", "accuracy", correct, y.size)
        return correct

    def track(self, name: str, value: Any, weight: float = 1) -> None:
        """Add a value of any metric; the epoch's value is the weighted mean of what was tracked.

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.track("grad_norm", 2.0); m.track("grad_norm", 4.0)
            >>> m.end_epoch(); m.results["grad_norm"].item()
            3.0
        """
        if not isinstance(name, str) or not name:
            raise InvalidArgumentTypeError(f"track() needs a metric name as a non-empty str, got {name!r}.")
        weight = _number(weight, f"track({name!r}): weight")
        if weight <= 0:
            raise InvalidArgumentError(f"track({name!r}): weight must be positive, got {weight!r}.")
        self._accumulate("track", name, _number(value, f"track(): the value of metric {name!r}") * weight,
                         weight)

    def end_epoch(self, **extra: Any) -> None:
        """Finish the epoch: compute its metrics and write its row.

        Keyword arguments become extra columns of the row, after the metrics.

        Raises:
            LifecycleError: no epoch is going.
            ColumnClashError: an extra column has the name of another column.
        """
        if self._epoch is None or self._run is None:
            raise LifecycleError("end_epoch() was called before begin_epoch(); start an epoch first.")
        epoch, run = self._epoch, self._run
        metrics: dict[str, float] = dict(epoch.logged)
        for name, (total, weight) in epoch.sums.items():
            metrics[name] = total / weight
        extras: dict[str, Any] = dict(self.extra_columns() or {})
        for name, value in extra.items():
            if name in extras:
                raise ColumnClashError(
                    f"Extra column {name!r} is given by both extra_columns() and end_epoch(); "
                    "give it once, or rename one of them."
                )
            extras[name] = value
        self._check_columns(metrics, extras, run.params)
        now = time.perf_counter()
        event = EpochEnded(run.number, run.run_id, self.epoch_count, metrics, jsonable(extras),
                           now - epoch.start, now - run.start)
        self._epoch = None
        run.diverged = run.diverged or event.diverged
        self._emit(event)

    @staticmethod
    def _check_columns(metrics: Mapping[str, Any], extras: Mapping[str, Any], params: Mapping[str, Any]) -> None:
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

    def end_run(self) -> None:
        """Finish the current run: ``completed``, ``diverged`` if a loss became NaN/inf, or
        ``pruned`` if a pruner stopped it.

        Subclasses may override it, calling ``super().end_run()``; sweeps call it
        at the end of every run, whatever its status.
        """
        if self._run is None:
            raise LifecycleError("end_run() was called before begin_run(); start a run first.")
        ending, self._ending = self._ending, None
        if ending is None:
            if self._epoch is not None:
                raise LifecycleError(
                    f"end_run() was called while epoch {self.epoch_count} is still going; "
                    "call end_epoch() first."
                )
            ending = (self.run_status, None, None)
        run, self._run = self._run, None
        self._epoch = None  # an epoch still open is dropped, not recorded
        self.model = None
        record = self._results.runs[run.number]
        status, error, traceback = ending
        self._emit(RunEnded(run.number, run.run_id, status, len(record.epochs), time.perf_counter() - run.start,
                            error, traceback))

    @property
    def run_status(self) -> Status | None:
        """How the current run would end now (``completed``, ``diverged`` or ``pruned``); None outside a run."""
        run = self._run
        if run is None:
            return None
        return Status.DIVERGED if run.diverged else Status.PRUNED if run.pruned else Status.COMPLETED

    def end_run_as(self, status: Status | str, error: str | None = None, traceback: str | None = None) -> None:
        """End the current run with ``status`` (and the error that caused it), through the
        overridable :meth:`end_run`. An epoch still open is dropped. Sweeps and adapters call it.

        Examples:
            m.end_run_as("failed", "ValueError: bad input")
        """
        self._ending = (Status(status), error, traceback)
        try:
            self.end_run()
        finally:
            self._ending = None

    def discard_epoch(self) -> None:
        """Drop the epoch that is going, if any, without a row (its fit() raised or was left).

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.discard_epoch(); m.epoch_count
            0
        """
        if self._epoch is not None:
            self._epoch = None
            self.epoch_count -= 1

    def record_logs(self, logs: Mapping[str, Any]) -> None:
        """Record metric values already averaged over the epoch (what Keras passes to
        ``on_epoch_end``), in their order; a value that is not a number is skipped with a warning.

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.record_logs({"loss": 0.5, "val_loss": 0.75}); m.end_epoch()
            >>> m.results[["loss", "val_loss"]].values.tolist()
            [[0.5, 0.75]]
        """
        if self._epoch is None:
            raise LifecycleError("record_logs() was called outside an epoch; call begin_epoch() first.")
        for name, value in logs.items():
            try:
                self._epoch.logged[name] = float(value)
            except (TypeError, ValueError):
                warnings.warn(f"Keras logged {name!r} = {value!r}, which is not a number; it is not recorded.",
                              RuntimeWarning, stacklevel=3)

    def record_event(self, event: Event) -> None:
        """Record an event of a run carried out elsewhere (a worker process): the driver side.

        Examples:
            m.record_event(event)  # an EpochEnded sent by a worker
        """
        self._emit(event)

    def record_lost_run(self, number: int, run: Any, error: str, *, started: bool,
                        status: Status = Status.INTERRUPTED) -> None:
        """Record run ``number`` as ended with ``status`` (``interrupted``) and ``error`` where the
        run itself could not say so: its worker died or was stopped, or the sweep found it
        unusable after it ended. ``started``: its start was already recorded.

        Examples:
            m.record_lost_run(3, run, "worker process exited with code -9", started=True)
        """
        if not started:
            self._emit(RunStarted.of(number, params_of(run)))
        record = self._results.runs[number]
        self._emit(RunEnded(number, record.run_id, status, len(record.epochs), record.run_duration or 0.0, error))

    # ------------------------------------------------------------------------------
    # Keras
    # ------------------------------------------------------------------------------
    def callback(self, run: Any) -> Any:
        """A ``keras.callbacks.Callback`` that records ``run``: it begins the run when
        training begins, records every epoch's logs, and ends the run when training ends.

        Examples:
            model.fit(x, y, epochs=3, callbacks=[m.callback(run)])
        """
        from runmanager.keras_callback import RunCallback

        return RunCallback(self, run)

    # ------------------------------------------------------------------------------
    # Sweeps
    # ------------------------------------------------------------------------------
    def sweep(
        self,
        train: Callable[..., Any],
        params: Any,
        executor: Any = "sequential",
        *,
        workers: int | None = None,
        resume: bool = False,
        seed: int | None = None,
        retry_failed: bool = False,
        max_consecutive_failures: int = 3,
        allow_grid_change: bool = False,
        max_runs_per_worker: int = 100,
        gpus: list[int | str] | None = None,
        ray_address: str | None = None,
        num_cpus: float = 1,
        num_gpus: float = 0,
        tensorboard: bool = False,
        timeout: float | None = None,
        pruner: Any = None,
        repeats: int = 1,
        max_retries: int = 1,
        runtime_env: dict[str, Any] | None = None,
    ) -> Any:
        """Run ``train(run, callbacks)`` for every run of ``params``; return :meth:`summary`.

        Args:
            train: a module-level function that builds and fits a model for one
                run, passing ``callbacks`` to ``fit``.
            params: anything :class:`RunBuilder` takes, a RunBuilder, a sequence of
                namedtuple runs (``grid.sample(20, seed=0)``), or a
                :class:`runmanager.search.Search`.
            executor: ``"sequential"`` (this process), ``"processes"`` (local
                worker processes), ``"ray"`` (actors on a Ray cluster), or an
                :class:`runmanager.executors.Executor`.
            workers: how many runs at once with ``"processes"`` or ``"ray"``;
                default: one per visible GPU, else one per CPU core.
            resume: skip runs already completed in ``log_dir`` (matched by their
                params) and rerun the rest.
            seed: seed Python, NumPy and Keras before every run.
            retry_failed: with ``resume``, rerun failed and diverged runs too.
            max_consecutive_failures: stop the sweep after this many failed runs
                in a row (0: never stop).
            allow_grid_change: with ``resume``, accept a grid whose parameter
                names differ from the journal's.
            max_runs_per_worker: replace a worker process after this many runs,
                so memory stays flat over a long sweep.
            gpus: GPU ids for ``"processes"`` workers, one per worker in turn,
                each worker seeing only its own; default: every visible GPU;
                ``[]``: hide the GPUs from the workers.
            ray_address: the Ray cluster to join; default: the running one, or
                a local Ray started for the sweep.
            num_cpus: Ray CPUs per worker (per concurrent run).
            num_gpus: Ray GPUs per worker (per concurrent run); a fraction such as
                0.5 packs that many runs on one GPU (their TensorFlow then grows its
                GPU memory as needed instead of taking it all).
            tensorboard: also write TensorBoard data for this sweep, as
                ``RunManager(..., tensorboard=True)`` does.
            timeout: a time budget in seconds: no run starts after it, runs already
                going finish. ``summary().attrs["sweep_end"]`` is then ``"timeout"``.
            pruner: a :class:`runmanager.pruning.Pruner` that stops bad runs early
                (``MedianPruner``, ``SuccessiveHalvingPruner``, or a rule of your own).
            repeats: run every configuration this many times; the runs get a
                ``repeat`` column (1..N) after the params, and with ``seed=S``
                repeat ``r`` is seeded ``S + r - 1``. See :meth:`aggregate`.
            max_retries: with ``"processes"`` or ``"ray"``, run a run whose worker died
                (a crash, a kill, a node of the cluster gone) again from its start, on
                the workers left, up to this many times; then it is recorded
                ``interrupted`` with the reason.
            runtime_env: a Ray runtime environment for ``"ray"`` (``pip`` packages,
                ``env_vars``...); on a joined cluster, the driver's code is added to it
                (its script's folder as ``working_dir``, its own modules as ``py_modules``).

        Examples:
            def train(run, callbacks):
                model = build_model(run)
                model.fit(x, y, epochs=3, callbacks=callbacks, verbose=0)
            m.sweep(train, {"units": [16, 32]}, seed=0)
        """
        from runmanager.executors import Executor
        from runmanager.repeats import Repeated, check_repeats
        from runmanager.search import as_search
        from runmanager.sweep import Sweep, check_sweep_arguments, create_executor

        check_sweep_arguments(train, executor, seed, max_consecutive_failures, workers, max_runs_per_worker,
                              gpus, num_cpus, num_gpus, timeout, pruner, max_retries, runtime_env)
        search = as_search(params)
        if check_repeats(repeats) > 1:
            search = Repeated(search, repeats)
        if self._run is not None:
            raise LifecycleError(
                f"sweep() was called while run {self._run.number} is still going; call end_run() first."
            )
        if resume and self.log_dir is None:
            raise InvalidArgumentError(
                "resume=True continues the sweep recorded in a log_dir, and this RunManager has none "
                "(log_dir=None keeps the runs in memory only). Pass a folder, RunManager('runs/sweep1'), "
                "to keep the runs and resume them later, or drop resume=True."
            )
        self._open(resume=resume, fields=search.fields, allow_grid_change=allow_grid_change)
        if tensorboard:
            self._enable_tensorboard()
        runner = executor if isinstance(executor, Executor) else create_executor(
            executor, workers=workers, max_runs_per_worker=max_runs_per_worker,
            gpus=gpus, ray_address=ray_address, num_cpus=num_cpus, num_gpus=num_gpus, runtime_env=runtime_env)
        self._in_sweep = True
        try:
            with terminate_like_interrupt():
                sweep = Sweep(self, train, search, runner, self._results, seed=seed, retry_failed=retry_failed,
                              max_consecutive_failures=max_consecutive_failures, timeout=timeout,
                              pruner=pruner, max_retries=max_retries)
                sweep.run()
        finally:
            self._in_sweep = False
        summary = self.summary()
        summary.attrs["sweep_end"] = sweep.reason
        return summary

    def note(self, text: str) -> None:
        """Show a line to the person watching (the live table prints it); it is not recorded.

        Examples:
            m.note("joined the Ray cluster at 10.0.0.5:6379")
        """
        self._sinks.on_note(text)

    def begin_sweep(self, event: SweepStarted, search: Any) -> None:
        """Tell the sinks that a sweep over ``search`` starts (its executor is ready). The Sweep calls it."""
        self._sinks.on_sweep_start(event, search)

    def keep_run(self, record: RunRecord) -> None:
        """Tell the sinks that the resumed sweep keeps ``record``, a run that ended before the
        resume, instead of running it again. The Sweep calls it."""
        self._sinks.on_run_kept(record)

    def end_sweep(self, event: SweepEnded) -> None:
        """Tell the sinks that the sweep ended (the exports are brought up to date). The Sweep calls it."""
        try:
            self._sinks.on_sweep_end(event)
        except LogDirWriteError as exc:
            self._write_error = exc
            raise

    # ------------------------------------------------------------------------------
    # Files
    # ------------------------------------------------------------------------------
    def save(self, name: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write the epoch rows to ``name.csv`` and ``name.json`` (a JSON list of records).

        Examples:
            m.save("results")  # results.csv and results.json in the current folder
        """
        return write_frame(self.results, name)

    def close(self) -> None:
        """Bring the exports up to date, close every sink (the journal, TensorBoard's files, your
        own sinks), and let other writers have the log_dir. The manager may be used again."""
        try:
            self._sinks.flush()
        except LogDirWriteError as exc:
            if self._write_error is None:
                raise
            # Already reported when it stopped the sweep: one clear error, not a second one here.
            warnings.warn(f"The exports of {self.log_dir} are not up to date: {exc}", RuntimeWarning, stacklevel=2)
        finally:
            self._sinks.close()
            self._release_files()

    def _release_files(self) -> None:
        """Forget the log_dir's file sinks (already closed) and its lock."""
        for sink in self._file_sinks:
            self._sinks.remove(sink)
        self._file_sinks = []
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._opened = False

    # Driver-only state stays behind when a manager is sent to a worker process.
    _DRIVER_ONLY = ("_sinks", "_file_sinks", "_lock", "_tensorboard", "_results", "_write_error", "_run", "_epoch",
                    "model", "run_params")

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in self._DRIVER_ONLY}
        state.update(log_dir=None, verbose=0, _opened=False, _in_sweep=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.__dict__.update(dict.fromkeys(self._DRIVER_ONLY), _sinks=SinkList(), _file_sinks=[],
                             _results=Results(), _keep_results=False)

    def __enter__(self) -> RunManager:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            if exc is not None and self._run is not None:
                # The block was left in the middle of a run: its end is recorded, not left "running".
                import traceback

                text = interrupt_reason(exc) if isinstance(exc, KeyboardInterrupt) else exception_text(exc)
                status = Status.FAILED if isinstance(exc, Exception) else Status.INTERRUPTED
                with contextlib.suppress(LogDirError):  # the block's own exception is the one to see
                    self.end_run_as(status, text, "".join(traceback.format_exception(exc)))
        finally:
            self.close()

    # ------------------------------------------------------------------------------
    # Internals
    # ------------------------------------------------------------------------------
    def _open(self, *, resume: bool = False, fields: tuple[str, ...] | None = None,
              allow_grid_change: bool = False) -> None:
        """Open ``log_dir`` for writing once: take its lock, then refuse, resume or replace an
        earlier sweep."""
        if self._opened:
            return
        if self.log_dir is not None:
            from runmanager.lock import acquire
            from runmanager.sinks.exports import ExportSink
            from runmanager.sinks.journal import JournalSink

            lock = acquire(self.log_dir, busy=self._lock_busy, lost=self._lock_lost)
            try:
                loaded = load_for_writing(self.log_dir, overwrite=self.overwrite, resume=resume, fields=fields,
                                          allow_grid_change=allow_grid_change)
                journal = JournalSink(self.log_dir / JOURNAL_NAME, durable=self.durable)
            except BaseException:
                lock.release()
                raise
            if self.overwrite:
                self._sinks.reset()
            self._lock, self._taken_over, self._write_error = lock, False, None
            self._results = loaded  # nothing ran before the log_dir was opened
            self._file_sinks = [journal, ExportSink(self.log_dir, loaded)]
            for position, sink in enumerate(self._file_sinks):
                self._sinks.add(sink, position)
        self._opened = True

    def _lock_busy(self) -> bool:
        return self._in_sweep

    def _lock_lost(self) -> None:
        """Another RunManager of this process took the log_dir over: write what is pending, let go."""
        self._sinks.flush()
        for sink in self._file_sinks:
            sink.close()
        self._lock = None
        self._release_files()
        self._taken_over = True

    def _emit(self, event: Event) -> None:
        """Fold one event into the results and send it to every sink."""
        if self._taken_over:
            raise LogDirError(
                f"Another RunManager took over log_dir {str(self.log_dir)!r} while run {event.run} "
                "was going here; this run's later epochs are not recorded. Use one RunManager per log_dir."
            )
        record = self._results.apply(event)
        try:
            self._sinks.dispatch(event, record)
        except LogDirWriteError as exc:
            self._write_error = exc
            raise
        if isinstance(event, RunEnded) and not self._keep_results:
            self._results.forget(event.run)

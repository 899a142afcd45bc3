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
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
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
from runmanager.events import Status
from runmanager.grid import RESERVED_NAMES
from runmanager.handle import RunHandle
from runmanager.naming import params_of, run_id
from runmanager.recorder import Recorder
from runmanager.signals import exception_text, interrupt_reason, terminate_like_interrupt
from runmanager.sinks.base import Sink, SinkList, SinkStore
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
        self._sinks = SinkList()
        self._recorder = Recorder(self._sinks)
        self._file_sinks: list[Sink] = []  # the journal and the exports, while the log_dir is open
        self._lock: Any = None
        self._opened = False
        self._in_sweep = False
        self._current: RunHandle | None = None  # the run going, or the last one, ended
        self._next: RunHandle | None = None  # the run the next begin_run() begins, prepared by a sweep or restore()
        self._idle_model: Any = None  # m.model between runs
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
        """Send every later event to ``sink`` too (after the journal, the exports and the table);
        its ``on_attach`` gets the manager's :class:`~runmanager.sinks.SinkStore`.

        Examples:
            m.add_sink(MLflowSink("http://127.0.0.1:5000", experiment="cnn"))
        """
        if not isinstance(sink, Sink):
            raise InvalidArgumentTypeError(f"add_sink() takes a runmanager.sinks.Sink, got {sink!r}.")
        sink.on_attach(SinkStore(self._recorder))
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
        return list(self._recorder.results.rows())

    @property
    def results(self) -> Any:
        """Every epoch row so far as a pandas DataFrame (one row per epoch)."""
        return self._recorder.results.frame()

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
        return self._recorder.results.summary(at=at, metric=metric, mode=mode)

    def aggregate(self, metric: str | Sequence[str] | None = None,
                  mode: str | Sequence[str | None] | None = None, test: str | None = None,
                  alpha: float = 0.05) -> Any:
        """One row per configuration over its repeats: params, ``runs``, ``completed``, and
        ``<metric>_mean`` / ``<metric>_std`` over completed runs for every metric; with
        ``metric``, sorted best first with a ``rank`` column; with ``test`` (``"welch"`` or
        ``"mannwhitney"``), ``p_value`` and ``tied_best`` against the best configuration.
        See :func:`runmanager.aggregate`.

        Examples:
            m.sweep(train, {"lr": [0.01, 0.001]}, repeats=3, seed=0)
            m.aggregate("val_accuracy")[["rank", "lr", "val_accuracy_mean", "val_accuracy_std"]]
            m.aggregate("val_accuracy", test="welch")[["rank", "lr", "p_value", "tied_best"]]
        """
        from runmanager.analysis import aggregate

        return aggregate(self.summary(), metric, mode, test=test, alpha=alpha)

    def pareto(self, metrics: str | Sequence[str] | None = None,
               modes: str | Sequence[str | None] | None = None) -> Any:
        """The runs (with repeats: the configurations, by their means) on the Pareto front of
        ``metrics``, best first by the first; default: the objectives of a multi-objective sweep.
        See :func:`runmanager.pareto`.

        Examples:
            m.sweep(train, OptunaSearch(space, 30, metric=["val_accuracy", "params"], mode=["max", "min"]))
            m.pareto(["val_accuracy", "params"], ["max", "min"])[["run", "units", "val_accuracy", "params"]]
        """
        from runmanager.pareto import pareto

        return pareto(self.summary(), metrics, modes)

    @property
    def run_count(self) -> int:
        """The number of the current run (or of the last one); 0 before the first."""
        return 0 if self._current is None else self._current.number

    @property
    def epoch_count(self) -> int:
        """Epochs of the current run so far (or of the last one), the one going included."""
        return 0 if self._current is None else self._current.epochs

    @property
    def run_params(self) -> Any:
        """The params of the current run (or of the last one), as given to ``begin_run``."""
        return None if self._current is None else self._current.run

    @property
    def model(self) -> Any:
        """The current run's model (``None`` when none was given); outside a run, whatever was
        set last (``None`` after ``end_run``)."""
        current = self.current_run
        return current.model if current is not None else self._idle_model

    @model.setter
    def model(self, model: Any) -> None:
        current = self.current_run
        if current is not None:
            current.model = model
        else:
            self._idle_model = model

    @property
    def current_run(self) -> RunHandle | None:
        """The handle of the run going (its number, params, epochs, status, checkpoints), or None.

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1})
            >>> m.current_run.number, m.current_run.params
            (1, {'lr': 0.1})
        """
        current = self._current
        return current if current is not None and current.active else None

    @property
    def run_diverged(self) -> bool:
        """True once a loss of the current run became NaN or infinite: stop training it."""
        current = self.current_run
        return current is not None and current.diverged

    @property
    def run_pruned(self) -> bool:
        """True once a pruner decided the current run should stop: end it after this epoch."""
        current = self.current_run
        return current is not None and current.pruned

    @property
    def run_active(self) -> bool:
        """True between ``begin_run`` and ``end_run``."""
        return self.current_run is not None

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
        if self.current_run is not None:
            raise LifecycleError(
                f"begin_run() was called while run {self.current_run.number} is still going; "
                "call end_run() first."
            )
        params = params_of(run)
        for name in params:
            if name in RESERVED_NAMES:
                raise ColumnClashError(
                    f"Parameter {name!r} has the name of a column runmanager writes; rename it."
                )
        handle, self._next = self._next, None
        if handle is not None and handle.run_id != run_id(params):
            handle = None  # prepared for another run, which never began
        self._open()
        if handle is None:  # by hand: the next free number
            from runmanager.checkpoints import CheckpointWriter

            handle = RunHandle(run, self._recorder.results.next_number,
                               writer=None if self.log_dir is None else CheckpointWriter(self.log_dir))
        self._current = handle
        handle.begin(self._recorder.record, model)

    def prepare_run(self, handle: RunHandle) -> None:
        """Make ``handle`` the run that the next ``begin_run(run)`` of the same params begins: a
        sweep's run with its number, its pruner and checkpoints, or a run restored from a
        checkpoint. ``begin_run`` stays the one place a run begins, so subclass hooks see every run.

        Examples:
            m.prepare_run(RunHandle(run, 7, restored=Checkpoint(4, model)))
            m.begin_run(run)              # run 7, going on after epoch 4
        """
        if not isinstance(handle, RunHandle) or handle.begun:
            raise InvalidArgumentTypeError(f"prepare_run() takes a RunHandle that has not begun, got {handle!r}.")
        self._next = handle

    def _going(self, caller: str) -> RunHandle:
        current = self.current_run
        if current is None:
            raise LifecycleError(f"{caller}() was called before begin_run(); start a run first.")
        return current

    def begin_epoch(self) -> None:
        """Start an epoch of the current run."""
        self._going("begin_epoch").begin_epoch()

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
        self._going("track_loss").track("loss", _number(loss, "track_loss(): the batch's loss") * size, int(size),
                                        caller="track_loss")

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
        handle = self._going("track_num_correct")
        correct = int((p == y).sum())
        handle.track("accuracy", correct, y.size, caller="track_num_correct")
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
        self._going("track").track(name, _number(value, f"track(): the value of metric {name!r}") * weight, weight)

    def end_epoch(self, **extra: Any) -> None:
        """Finish the epoch: compute its metrics and write its row.

        Keyword arguments become extra columns of the row, after the metrics.

        Raises:
            LifecycleError: no epoch is going.
            ColumnClashError: an extra column has the name of another column.
        """
        handle = self.current_run
        if handle is None or not handle.epoch_going:
            raise LifecycleError("end_epoch() was called before begin_epoch(); start an epoch first.")
        extras: dict[str, Any] = dict(self.extra_columns() or {})
        for name, value in extra.items():
            if name in extras:
                raise ColumnClashError(
                    f"Extra column {name!r} is given by both extra_columns() and end_epoch(); "
                    "give it once, or rename one of them."
                )
            extras[name] = value
        handle.end_epoch(extras)

    def end_run(self) -> None:
        """Finish the current run: ``completed``, ``diverged`` if a loss became NaN/inf, or
        ``pruned`` if a pruner stopped it (a sweep may have said otherwise: failed, interrupted).

        Subclasses may override it, calling ``super().end_run()``; sweeps call it
        at the end of every run, whatever its status.
        """
        self._going("end_run").end()
        self._idle_model = None

    def record_logs(self, logs: Mapping[str, Any]) -> None:
        """Record metric values already averaged over the epoch (what Keras passes to
        ``on_epoch_end``), in their order; a value that is not a number is skipped with a warning.

        Examples:
            >>> m = RunManager(verbose=0); m.begin_run({"lr": 0.1}); m.begin_epoch()
            >>> m.record_logs({"loss": 0.5, "val_loss": 0.75}); m.end_epoch()
            >>> m.results[["loss", "val_loss"]].values.tolist()
            [[0.5, 0.75]]
        """
        self._going("record_logs").record_logs(logs)

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
        tensorboard: bool = False,
        timeout: float | None = None,
        pruner: Any = None,
        repeats: int = 1,
        metric: str | Sequence[str] | None = None,
        mode: str | Sequence[str | None] | None = None,
        checkpoint: bool | str = False,
        checkpoint_every: int = 1,
        keep_models: int | None = None,
        **moved: Any,
    ) -> Any:
        """Run ``train(run, callbacks)`` for every run of ``params``; return :meth:`summary`.

        Args:
            train: a module-level function that builds and fits a model for one
                run, passing ``callbacks`` to ``fit``; with a third parameter,
                ``train(run, callbacks, checkpoint)``, it goes on from a checkpoint
                (``checkpoint.model``, ``checkpoint.epoch``) when the run was interrupted.
            params: anything :class:`RunBuilder` takes, a RunBuilder, a sequence of
                namedtuple runs (``grid.sample(20, seed=0)``), or a
                :class:`runmanager.search.Search`.
            executor: an executor object from :mod:`runmanager.executors`
                (``SequentialExecutor()``, ``ProcessExecutor(workers=4, gpus=[0, 1])``,
                ``RayExecutor(address="auto")``, ``DaskExecutor(client)``), whose constructor
                takes its own options, or the name of one: ``"sequential"`` (this process,
                the default), ``"processes"``, ``"ray"``, ``"dask"``.
            workers: with an executor's name, how many runs at once (default: the
                executor's: one per visible GPU, else one per CPU core; a Dask cluster's
                workers).
            resume: skip runs already completed in ``log_dir`` (matched by their
                params) and rerun the rest.
            seed: seed Python, NumPy and Keras before every run.
            retry_failed: with ``resume``, rerun failed and diverged runs too.
            max_consecutive_failures: stop the sweep after this many failed runs
                in a row (0: never stop).
            allow_grid_change: with ``resume``, accept a grid whose parameter
                names differ from the journal's.
            tensorboard: also write TensorBoard data for this sweep, as
                ``RunManager(..., tensorboard=True)`` does.
            timeout: a time budget in seconds: no run starts after it, runs already
                going finish. ``summary().attrs["sweep_end"]`` is then ``"timeout"``.
            pruner: a :class:`runmanager.pruning.Pruner` that stops bad runs early
                (``MedianPruner``, ``SuccessiveHalvingPruner``, or a rule of your own).
            repeats: run every configuration this many times; the runs get a
                ``repeat`` column (1..N) after the params, and with ``seed=S``
                repeat ``r`` is seeded ``S + r - 1``. See :meth:`aggregate`.
            metric: the metric the sweep judges runs by (checkpoints, ``keep_models``, the
                progress line's best run); default: the search's or the pruner's, else the first
                of ``val_accuracy``, ``val_loss``, ``accuracy``, ``loss`` that the runs log. A list
                of metrics (or a multi-objective search) makes a sweep of several objectives: the
                first judges runs as above, all are recorded, and :meth:`summary` and
                :meth:`aggregate` get a ``pareto`` column (see :meth:`pareto`); a pruner is refused.
            mode: ``"min"`` or ``"max"`` for ``metric`` (a list, with a list of metrics); default
                ``"min"`` for a loss or an error.
            checkpoint: ``True``/``"best"`` keeps each run's best model in
                ``LOG_DIR/checkpoints/<run>/best.keras`` (and ``last.keras`` while it is
                unfinished, to resume from); ``"last"`` keeps only its latest model.
            checkpoint_every: save every N epochs (and at a run's last epoch).
            keep_models: keep the models of the k best finished runs only, deleting the others.
            **moved: the options that moved to the executor objects (``max_runs_per_worker``,
                ``gpus``, ``ray_address``, ``num_cpus``, ``num_gpus``, ``runtime_env``,
                ``max_retries``) still work with an executor's name for one release, with a
                ``DeprecationWarning``.

        Examples:
            def train(run, callbacks):
                model = build_model(run)
                model.fit(x, y, epochs=3, callbacks=callbacks, verbose=0)
            m.sweep(train, {"units": [16, 32]}, seed=0)
        """
        from runmanager.checkpoints import CheckpointSettings, check_checkpoint_arguments, check_param_names
        from runmanager.executors.base import Executor
        from runmanager.repeats import Repeated, check_repeats
        from runmanager.search import as_search
        from runmanager.sweep import (
            Sweep,
            check_pruner_objectives,
            check_sweep_arguments,
            check_train,
            create_executor,
            moved_options,
            sweep_objectives,
        )

        options = moved_options(executor, moved)
        check_sweep_arguments(train, executor, seed=seed, max_consecutive_failures=max_consecutive_failures,
                              workers=workers, timeout=timeout, pruner=pruner, repeats=check_repeats(repeats),
                              manager=self)
        runner = executor if isinstance(executor, Executor) else create_executor(executor, workers, options)
        kept = check_checkpoint_arguments(checkpoint, checkpoint_every, keep_models)
        check_train(train, checkpoints=kept is not None)
        search = as_search(params)
        if repeats > 1:
            search = Repeated(search, repeats)
        objectives = sweep_objectives(metric, mode, search, pruner)
        check_pruner_objectives(pruner, objectives)
        metric, mode = objectives[0] if objectives else (None, None)
        if kept is not None:
            check_param_names(search.fields)
        if self.current_run is not None:
            raise LifecycleError(
                f"sweep() was called while run {self.current_run.number} is still going; call end_run() first."
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
        settings = None if kept is None else CheckpointSettings.for_sweep(
            self.log_dir, kept, every=checkpoint_every, metric=metric, metric_mode=mode, keep_models=keep_models)
        self._in_sweep = True
        try:
            with terminate_like_interrupt():
                sweep = Sweep(self, train, search, runner, self._recorder, seed=seed, retry_failed=retry_failed,
                              max_consecutive_failures=max_consecutive_failures, timeout=timeout,
                              pruner=pruner, metric=metric, mode=mode,
                              checkpoints=settings, objectives=objectives)
                sweep.run()
        finally:
            self._in_sweep = False
            self._recorder.keeper = self._manual_keeper()
        summary = self.summary()
        summary.attrs["sweep_end"] = sweep.reason
        return summary

    def note(self, text: str) -> None:
        """Show a line to the person watching (the live table prints it); it is not recorded.

        Examples:
            m.note("joined the Ray cluster at 10.0.0.5:6379")
        """
        self._recorder.note(text)

    # ------------------------------------------------------------------------------
    # Models
    # ------------------------------------------------------------------------------
    def save_checkpoint(self, model: Any = None) -> list[str]:
        """Save the current run's model after the epoch that just ended (call it after
        ``end_epoch()`` in a custom loop): ``best.keras`` when the epoch is the run's best so far
        by the sweep's metric (by hand: the first of ``val_accuracy``, ``val_loss``, ``accuracy``,
        ``loss`` logged), and ``last.keras`` to resume from. Return the kinds saved.

        Raises:
            LifecycleError: no run is going, or it has no ended epoch yet.
            LogDirError: the manager has no log_dir to keep files in.

        Examples:
            m.end_epoch()
            m.save_checkpoint(model)       # ['best', 'last'] at a new best epoch, else ['last']
        """
        handle = self._going("save_checkpoint")
        if self.log_dir is None:
            raise LogDirError("save_checkpoint() needs a log_dir to keep the model in; pass RunManager(log_dir=...).")
        if handle.last_event is None:
            raise LifecycleError("save_checkpoint() was called before the run's first end_epoch(); "
                                 "save after an epoch has ended.")
        if model is None and handle.model is None:
            raise LifecycleError("save_checkpoint() needs the model: pass it, or give it to begin_run(run, model).")
        from runmanager.checkpoints import check_param_names

        check_param_names(handle.params)
        return handle.checkpoint(model, by_hand=True)

    def restore(self, run: Any) -> tuple[Any, int]:
        """The model and the epochs done of ``run`` (matched by its params) from its last
        checkpoint in the log_dir, for a custom loop to go on from; ``(None, 0)`` when it has
        none. The next ``begin_run(run)`` goes on as the same run, after that epoch. Opens the
        log_dir to resume it, as ``sweep(resume=True)`` does.

        Examples:
            model, done = m.restore(run)
            model = model or build_model(run)
            m.begin_run(run, model)
            for epoch in range(done, 20): ...
        """
        from runmanager.checkpoints import Checkpoint, CheckpointWriter, ResumePoint, restore

        self._open(resume=True)  # going on from a checkpoint resumes the log_dir's runs
        record = self._recorder.results.by_id.get(run_id(params_of(run)))
        if record is None or record.status.finished:
            return None, 0
        saved = record.checkpoints.get("last")
        if saved is None:
            return None, 0
        elapsed = next((e.run_duration for e in record.epochs if e.epoch == saved.epoch), 0.0)
        model = restore(ResumePoint(saved.epoch, saved.file), self.log_dir)
        self.prepare_run(RunHandle(run, record.number, restored=Checkpoint(saved.epoch, model), elapsed=elapsed,
                                   writer=CheckpointWriter(self.log_dir)))
        return model, saved.epoch

    def load_model(self, run: int, *, compile: bool = True) -> Any:
        """The kept model of run ``run`` (its best epoch's, or its last with ``checkpoint="last"``).

        Raises:
            CheckpointError: the run has no kept model; the message says why.

        Examples:
            model = m.load_model(7)
        """
        from runmanager.checkpoints import model_file, read_model

        return read_model(self._files_dir() / model_file(self._recorder.results, run), compile=compile)

    def best_model(self, metric: str | None = None, mode: str | None = None, *, compile: bool = True) -> Any:
        """The model of the best run that has one, at its best epoch, by ``metric`` (default: the
        sweep's metric).

        Raises:
            CheckpointError: no run has a kept model (the sweep ran without ``checkpoint=True``).

        Examples:
            m.sweep(train, grid, checkpoint=True)
            model = m.best_model()
            model.evaluate(x_test, y_test)
        """
        from runmanager.checkpoints import model_file, read_model

        path = model_file(self._recorder.results, None, metric, mode)
        return read_model(self._files_dir() / path, compile=compile)

    def _files_dir(self) -> Path:
        if self.log_dir is None:
            raise LogDirError("This RunManager has no log_dir, so it kept no models; pass RunManager(log_dir=...).")
        return self.log_dir

    def _manual_keeper(self) -> Any:
        """What deletes a finished run's last.keras when runs are checkpointed by hand."""
        if self.log_dir is None:
            return None
        from runmanager.checkpoints import CheckpointKeeper

        return CheckpointKeeper(self.log_dir)

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
            if self._recorder.write_error is None:
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
    _DRIVER_ONLY = ("_sinks", "_recorder", "_file_sinks", "_lock", "_tensorboard", "_current", "_next", "_idle_model")

    def __getstate__(self) -> dict[str, Any]:
        state = {k: v for k, v in self.__dict__.items() if k not in self._DRIVER_ONLY}
        state.update(log_dir=None, verbose=0, _opened=False, _in_sweep=False)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        sinks = SinkList()  # a worker's copy keeps only the run it is doing; its sink forwards the events
        self.__dict__.update(dict.fromkeys(self._DRIVER_ONLY), _sinks=sinks, _file_sinks=[],
                             _recorder=Recorder(sinks, keep=False))

    def __enter__(self) -> RunManager:
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        try:
            current = self.current_run
            if exc is not None and current is not None:
                # The block was left in the middle of a run: its end is recorded, not left "running".
                import traceback

                text = interrupt_reason(exc) if isinstance(exc, KeyboardInterrupt) else exception_text(exc)
                status = Status.FAILED if isinstance(exc, Exception) else Status.INTERRUPTED
                with contextlib.suppress(LogDirError):  # the block's own exception is the one to see
                    current.finish(status, text, "".join(traceback.format_exception(exc)))
                    self.end_run()
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
            self._lock = lock
            recorder = self._recorder
            recorder.taken_over, recorder.write_error = False, None
            recorder.results, recorder.log_dir = loaded, self.log_dir  # nothing ran before the log_dir was opened
            recorder.keeper = self._manual_keeper()
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
        self._recorder.taken_over = True
